//! The lab's identities: a CA made fresh for each run, and one certificate per workload
//! carrying the SPIFFE identity Istio would give it.
//!
//! Like istiod's workload certificates, the leaf certificates have no subject and a single
//! URI SAN `spiffe://cluster.local/ns/<ns>/sa/<sa>`, and they are short-lived. Keys and
//! certificates live only in memory and inside the lab's containers: nothing touches the
//! host's disk, so nothing is left behind.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use super::LabError;

/// The trust domain Istio uses by default.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// A workload identity: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{TRUST_DOMAIN}/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The leaf certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never appear in logs or panic messages.
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

/// The run's certificate authority.
pub struct LabCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for LabCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabCa").finish_non_exhaustive()
    }
}

fn pki_error(what: &str, e: rcgen::Error) -> LabError {
    LabError::Pki(format!("{what}: {e}"))
}

impl LabCa {
    /// A new self-signed root, named after the run so leftovers are recognisable.
    pub fn generate(run_id: &str) -> Result<LabCa, LabError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "meshproof lab");
        dn.push(DnType::CommonName, format!("meshproof lab CA {run_id}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(2);
        let key = KeyPair::generate().map_err(|e| pki_error("CA key", e))?;
        let issuer = CertifiedIssuer::self_signed(params, key)
            .map_err(|e| pki_error("CA certificate", e))?;
        Ok(LabCa { issuer })
    }

    /// The root certificate every sidecar trusts.
    pub fn root_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A workload certificate for `id`, valid for a day, usable for both TLS sides.
    pub fn issue(&self, id: &SpiffeId) -> Result<IssuedCert, LabError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let uri = id
            .to_string()
            .try_into()
            .map_err(|e| pki_error("SPIFFE URI", e))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(1);
        let key = KeyPair::generate().map_err(|e| pki_error("workload key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| pki_error("workload certificate", e))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, UnixTime};

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn verifier(root: &str) -> std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(root)).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .unwrap()
    }

    #[test]
    fn leaf_chains_to_its_run_ca_only() {
        let ca = LabCa::generate("t1").unwrap();
        let other = LabCa::generate("t2").unwrap();
        let id = SpiffeId {
            namespace: "pii-demo".into(),
            service_account: "mysql".into(),
        };
        let leaf = ca.issue(&id).unwrap();
        let now = UnixTime::now();
        assert!(
            verifier(&ca.root_pem())
                .verify_client_cert(&der(&leaf.cert_pem), &[], now)
                .is_ok()
        );
        assert!(
            verifier(&other.root_pem())
                .verify_client_cert(&der(&leaf.cert_pem), &[], now)
                .is_err()
        );
    }

    #[test]
    fn leaf_carries_the_spiffe_uri() {
        let ca = LabCa::generate("t").unwrap();
        let id = SpiffeId {
            namespace: "rabbitmq".into(),
            service_account: "rabbitmq-server".into(),
        };
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/rabbitmq/sa/rabbitmq-server"
        );
        let leaf = der(&ca.issue(&id).unwrap().cert_pem);
        let uri = id.to_string();
        assert!(
            leaf.windows(uri.len()).any(|w| w == uri.as_bytes()),
            "URI SAN missing"
        );
        assert!(
            !format!("{:?}", ca.issue(&id).unwrap()).contains("PRIVATE"),
            "Debug leaks the key"
        );
    }
}
