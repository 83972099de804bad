//! From a ClientHello to a [`FlowClass`]: which mesh, if any, made this TLS.
//!
//! The rules are the ones each mesh puts on the wire, checked against upstream:
//! - Istio sidecars offer the ALPN `istio-peer-exchange`/`istio` (TCP) or
//!   `istio-http/1.0`, `istio-http/1.1`, `istio-h2` (HTTP) and send the SNI
//!   `outbound_.<port>_.<subset>_.<fqdn>` (`pilot/pkg/model/service.go`).
//! - Istio ambient (ztunnel) speaks HBONE: TLS 1.3 to port 15008, ALPN `h2`, no SNI.
//! - Consul Connect sends the SNI `[subset.]service.namespace.dc.internal.<trust-domain>`,
//!   with `internal-v1` and a partition label for non-default admin partitions,
//!   `external` for cluster peers and `query` for prepared queries
//!   (`agent/connect/sni.go`); the trust domain is `<cluster-uuid>.consul`.

use super::FlowClass;

/// The port ztunnel listens on for HBONE.
pub const HBONE_PORT: u16 = 15008;

const ISTIO_ALPN: [&str; 5] = ["istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"];

/// Classifies a flow that carried a ClientHello with these fields to `server_port`.
pub fn classify_hello(sni: Option<&str>, alpn: &[String], server_port: u16) -> FlowClass {
    if alpn.iter().any(|a| ISTIO_ALPN.contains(&a.as_str())) || sni.is_some_and(is_istio_sni) {
        FlowClass::IstioMtls
    } else if sni.is_some_and(is_consul_sni) {
        FlowClass::ConsulMtls
    } else if server_port == HBONE_PORT && sni.is_none() && alpn.iter().any(|a| a == "h2") {
        FlowClass::Hbone
    } else {
        FlowClass::Tls
    }
}

/// `outbound_.<port>_.<subset>_.<host>` (and Istio's `inbound_.` form): the subset may be
/// empty (`_`), the port is numeric and the host is not.
pub fn is_istio_sni(sni: &str) -> bool {
    let Some(rest) = sni.strip_prefix("outbound_.").or_else(|| sni.strip_prefix("inbound_.")) else {
        return false;
    };
    let Some((port, rest)) = rest.split_once("_.") else { return false };
    let Some((_subset, host)) = rest.split_once("_.") else { return false };
    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok() && !host.is_empty()
}

/// Consul Connect's SNI: labels, then a marker (`internal`, `internal-v1`, `external`
/// or `query`), then a trust domain `<uuid>.consul`.
pub fn is_consul_sni(sni: &str) -> bool {
    let labels: Vec<&str> = sni.split('.').collect();
    if labels.len() < 4 || labels.iter().any(|l| l.is_empty()) {
        return false;
    }
    let n = labels.len();
    let (marker, uuid, tld) = (labels[n - 3], labels[n - 2], labels[n - 1]);
    let before = n - 3;
    let enough_before = match marker {
        // `dc.internal.<td>` (mesh gateways) up to `subset.svc.ns.dc.internal.<td>`.
        "internal" => (1..=4).contains(&before),
        "internal-v1" => (4..=5).contains(&before),
        "external" => (4..=5).contains(&before),
        "query" => before == 3,
        _ => false,
    };
    enough_before && tld == "consul" && is_uuid(uuid)
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alpn(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const TD: &str = "7a6a3c5b-0f1e-4d2c-9b8a-112233445566.consul";

    #[test]
    fn istio_by_alpn_or_sni() {
        let sni = "outbound_.3306_._.mysql.ns.svc.cluster.local";
        assert_eq!(classify_hello(Some(sni), &[], 3306), FlowClass::IstioMtls);
        assert_eq!(classify_hello(None, &alpn(&["istio-http/1.1", "istio", "http/1.1"]), 80), FlowClass::IstioMtls);
        assert_eq!(classify_hello(Some("outbound_.9080_.v2_.reviews.default.svc.cluster.local"), &[], 1), FlowClass::IstioMtls);
        assert!(!is_istio_sni("outbound_.http_._.x"));
        assert!(!is_istio_sni("outbound_.80_._."));
        assert!(!is_istio_sni("outbound.example.com"));
    }

    #[test]
    fn consul_forms() {
        for sni in [
            format!("counting.default.dc1.internal.{TD}"),
            format!("v2.counting.default.dc1.internal.{TD}"),
            format!("counting.default.team-a.dc1.internal-v1.{TD}"),
            format!("counting.default.default.peer1.external.{TD}"),
            format!("geo.default.dc1.query.{TD}"),
            format!("dc2.internal.{TD}"),
        ] {
            assert_eq!(classify_hello(Some(&sni), &[], 20000), FlowClass::ConsulMtls, "{sni}");
        }
        assert!(!is_consul_sni("counting.default.dc1.internal.not-a-uuid.consul"));
        assert!(!is_consul_sni("web.service.consul"));
        assert!(!is_consul_sni(&format!("counting.default.dc1.internal.{TD}.evil.com")));
    }

    #[test]
    fn hbone_needs_port_h2_and_no_sni() {
        assert_eq!(classify_hello(None, &alpn(&["h2"]), HBONE_PORT), FlowClass::Hbone);
        assert_eq!(classify_hello(Some("a.example"), &alpn(&["h2"]), HBONE_PORT), FlowClass::Tls);
        assert_eq!(classify_hello(None, &alpn(&["h2"]), 443), FlowClass::Tls);
        assert_eq!(classify_hello(None, &[], HBONE_PORT), FlowClass::Tls);
    }
}
