//! The application's own TLS, for servers that require it (MongoDB with TLS on) and the
//! probes that speak to them.
//!
//! The server presents a certificate made at start-up for its instance name; the client
//! sends the host it dials as SNI and, like the seed's `mongo --sslAllowInvalidCertificates`,
//! does not verify the chain: what the scenario checks is that the bytes on the wire are
//! the application's TLS with that SNI, end to end, which a mesh in the middle would break.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use super::WorkloadError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::Protocol(format!("tls {what}: {e}"))
}

/// A TLS acceptor with a self-signed certificate for `name`.
pub fn acceptor(name: &str) -> Result<tokio_rustls::TlsAcceptor, WorkloadError> {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()])
        .map_err(|e| tls_error("certificate", e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("versions", e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| tls_error("server config", e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Opens TLS over `stream` with `sni` as the server name, without verifying the chain.
pub async fn connect(
    stream: TcpStream,
    sni: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, WorkloadError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_string()).map_err(|e| tls_error("server name", e))?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?)
}

/// Accepts any server certificate, but still checks the handshake's signatures.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
