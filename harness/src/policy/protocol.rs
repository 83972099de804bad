//! What a port speaks, as Istio decides it, and what its bytes look like without a mesh.
//!
//! Istio reads a Service port's protocol from `appProtocol`, else from the port name
//! (`<protocol>[-<suffix>]`); an undeclared port is sniffed, which finds HTTP when the
//! application speaks it. The scenario's own workload description (`ports[].protocol`)
//! stands in for the application.

use super::cluster::SvcPort;
use super::types::AppProtocol;
use crate::scenario::Protocol;
use crate::wire::FlowClass;

/// The protocol a Service port declares, if it declares one Istio knows.
pub fn declared(port: &SvcPort) -> Option<AppProtocol> {
    let from_name = |name: &str| name.split('-').next().unwrap_or(name).to_ascii_lowercase();
    let token = port
        .app_protocol
        .as_deref()
        .map(str::to_ascii_lowercase)
        .or_else(|| port.name.as_deref().map(from_name))?;
    match token.as_str() {
        "http" | "kubernetes.io/ws" | "kubernetes.io/wss" => Some(AppProtocol::Http),
        "http2" | "grpc" | "grpc-web" | "kubernetes.io/h2c" => Some(AppProtocol::Http2),
        "https" | "tls" => Some(AppProtocol::Tls),
        "tcp" | "mongo" | "mysql" | "redis" => Some(AppProtocol::Tcp),
        _ => None,
    }
}

/// How the proxies treat the port: the declared protocol, else what sniffing would find
/// in what the application speaks, else opaque TCP.
pub fn effective(declared: Option<AppProtocol>, app: Option<Protocol>) -> AppProtocol {
    declared.unwrap_or(match app {
        Some(Protocol::Http) => AppProtocol::Http,
        Some(Protocol::Tls) => AppProtocol::Tls,
        _ => AppProtocol::Tcp,
    })
}

/// The class the application's own bytes have on the wire.
pub fn app_class(declared: Option<AppProtocol>, app: Option<Protocol>) -> FlowClass {
    if app == Some(Protocol::Tls) || (app.is_none() && declared == Some(AppProtocol::Tls)) {
        FlowClass::Tls
    } else {
        FlowClass::Plaintext
    }
}

/// Server-first protocols: the server speaks before the client, which defeats the
/// PERMISSIVE sidecar's wait for the client's first bytes.
pub fn server_first(app: Option<Protocol>) -> bool {
    matches!(app, Some(Protocol::Mysql | Protocol::Mongodb))
}

/// The ALPN an Istio client sidecar offers when it originates Istio mTLS.
pub fn istio_alpn(protocol: AppProtocol) -> Vec<String> {
    let list: &[&str] = match protocol {
        AppProtocol::Http => &["istio-http/1.1", "istio", "http/1.1"],
        AppProtocol::Http2 => &["istio-h2", "istio", "h2"],
        AppProtocol::Tcp | AppProtocol::Tls => &["istio-peer-exchange", "istio"],
    };
    list.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn port(name: Option<&str>, app: Option<&str>) -> SvcPort {
        SvcPort {
            name: name.map(str::to_string),
            port: 80,
            target: IntOrString::Int(80),
            app_protocol: app.map(str::to_string),
        }
    }

    #[test]
    fn declared_protocols() {
        let table = [
            (Some("http"), None, Some(AppProtocol::Http)),
            (Some("http-management"), None, Some(AppProtocol::Http)),
            (Some("tcp-mysql"), None, Some(AppProtocol::Tcp)),
            (Some("tls-amqps"), None, Some(AppProtocol::Tls)),
            (Some("grpc-api"), None, Some(AppProtocol::Http2)),
            (Some("epmd"), None, None),
            (Some("web"), Some("http"), Some(AppProtocol::Http)),
            (Some("http"), Some("tcp"), Some(AppProtocol::Tcp)),
            (None, None, None),
        ];
        for (name, app, want) in table {
            assert_eq!(declared(&port(name, app)), want, "{name:?} {app:?}");
        }
    }

    #[test]
    fn sniffing_and_classes() {
        assert_eq!(effective(None, Some(Protocol::Http)), AppProtocol::Http);
        assert_eq!(effective(None, Some(Protocol::Amqp)), AppProtocol::Tcp);
        assert_eq!(
            effective(Some(AppProtocol::Tcp), Some(Protocol::Http)),
            AppProtocol::Tcp
        );
        assert_eq!(app_class(None, Some(Protocol::Tls)), FlowClass::Tls);
        assert_eq!(app_class(Some(AppProtocol::Tls), None), FlowClass::Tls);
        assert_eq!(
            app_class(Some(AppProtocol::Tls), Some(Protocol::Amqp)),
            FlowClass::Plaintext
        );
        assert_eq!(
            istio_alpn(AppProtocol::Tcp),
            ["istio-peer-exchange", "istio"]
        );
        assert!(server_first(Some(Protocol::Mysql)) && !server_first(Some(Protocol::Amqp)));
    }
}
