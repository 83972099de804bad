//! What kind of bytes a flow carried: the one classification every other module shares.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How one TCP connection looked on the wire.
///
/// The spelling in YAML, JSON and reports is the kebab-case form (`istio-mtls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowClass {
    /// Application bytes in clear.
    Plaintext,
    /// TLS that is not a mesh's: the application's own TLS (AMQPS, MySQL TLS, HTTPS).
    Tls,
    /// Istio sidecar mTLS: Istio's ALPN or `outbound_.` SNI in the ClientHello.
    IstioMtls,
    /// Istio ambient HBONE: HTTP/2 CONNECT over mTLS to port 15008.
    Hbone,
    /// Consul Connect mTLS: Consul's SNI form in the ClientHello.
    ConsulMtls,
    /// Not enough bytes were seen to decide.
    Unknown,
}

impl FlowClass {
    /// Every class, in a stable order.
    pub const ALL: [FlowClass; 6] = [
        FlowClass::Plaintext,
        FlowClass::Tls,
        FlowClass::IstioMtls,
        FlowClass::Hbone,
        FlowClass::ConsulMtls,
        FlowClass::Unknown,
    ];

    /// The kebab-case spelling used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowClass::Plaintext => "plaintext",
            FlowClass::Tls => "tls",
            FlowClass::IstioMtls => "istio-mtls",
            FlowClass::Hbone => "hbone",
            FlowClass::ConsulMtls => "consul-mtls",
            FlowClass::Unknown => "unknown",
        }
    }

    /// True for the classes that mean a mesh encrypted and authenticated the flow.
    pub fn is_mesh_mtls(self) -> bool {
        matches!(
            self,
            FlowClass::IstioMtls | FlowClass::Hbone | FlowClass::ConsulMtls
        )
    }
}

impl fmt::Display for FlowClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that names no [`FlowClass`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown flow class `{0}`; expected one of plaintext, tls, istio-mtls, hbone, consul-mtls, unknown"
)]
pub struct UnknownClass(pub String);

impl FromStr for FlowClass {
    type Err = UnknownClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FlowClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownClass(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips_through_serde_and_from_str() {
        for class in FlowClass::ALL {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            assert_eq!(class.as_str().parse::<FlowClass>().unwrap(), class);
        }
        assert!("mtls".parse::<FlowClass>().is_err());
    }
}
