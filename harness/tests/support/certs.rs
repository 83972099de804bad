//! A throw-away CA and leaf certificates, in the shapes meshes use (SPIFFE URI SANs).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

/// PEM files for one leaf: certificate, key, and the CA that signed it.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Creates a CA in `dir` and returns a function that issues leaves signed by it.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    ca_path: PathBuf,
    dir: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, issuer.pem()).unwrap();
        Ca {
            issuer,
            ca_path,
            dir: dir.to_path_buf(),
        }
    }

    /// A leaf with DNS names and an optional SPIFFE identity.
    pub fn leaf(&self, name: &str, dns: &[&str], spiffe: Option<&str>) -> Leaf {
        let mut params =
            CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        if let Some(uri) = spiffe {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Leaf {
            cert: cert_path,
            key: key_path,
            ca: self.ca_path.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn ca_der(&self) -> rustls::pki_types::CertificateDer<'static> {
        self.issuer.der().clone()
    }
}
