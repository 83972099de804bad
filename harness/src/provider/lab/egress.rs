//! The egress gateway's Envoy, as Istio programs `istio-egressgateway` from a Gateway and
//! the VirtualService bound to it: one listener per Gateway server port that has a route
//! out. `ISTIO_MUTUAL` servers terminate the mesh's mTLS (a client certificate from the
//! run's CA is required) and send the plaintext on; other servers pass the bytes through
//! as they came (TLS `PASSTHROUGH`). Either way the upstream is the external host, dialled
//! from the gateway's own address, so both legs cross the lab network and are captured.

use serde_json::{Value, json};

use super::envoy::{
    SidecarConfig, UpstreamCluster, cluster_name, downstream_tls, socket, tcp_proxy,
};

/// One egress Gateway server the gateway Envoy serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EgressRoute {
    /// The gateway port.
    pub port: u16,
    /// Terminate Istio mTLS on it (`ISTIO_MUTUAL`); otherwise bytes pass through.
    pub istio_mutual: bool,
    /// The external host and port the route sends the traffic to, in plaintext or as the
    /// client's own TLS.
    pub cluster: UpstreamCluster,
}

/// The listeners for a gateway's egress routes.
pub fn listeners(cfg: &SidecarConfig) -> Vec<Value> {
    cfg.egress
        .iter()
        .map(|r| {
            let name = cluster_name(&r.cluster);
            let filters = json!([tcp_proxy(&format!("egress_{}", r.port), &name)]);
            let chain = if r.istio_mutual {
                json!({"transport_socket": downstream_tls(false), "filters": filters})
            } else {
                json!({"filters": filters})
            };
            json!({
                "name": format!("0.0.0.0_{}", r.port),
                "address": socket(cfg.pod_ip, r.port),
                "filter_chains": [chain],
            })
        })
        .collect()
}

/// The BlackHoleCluster: no endpoints, so a TCP proxy to it accepts the app's connection
/// and closes it, as Istio does to unregistered destinations under `REGISTRY_ONLY`.
pub const BLACKHOLE: &str = "BlackHoleCluster";

/// The BlackHoleCluster's definition.
pub fn blackhole_cluster() -> Value {
    json!({"name": BLACKHOLE, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": BLACKHOLE, "endpoints": []}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::lab::envoy::bootstrap;

    fn gateway(istio_mutual: bool) -> SidecarConfig {
        SidecarConfig {
            pod: "istio-egressgateway-0".into(),
            namespace: "istio-system".into(),
            workload: "egress-gateway".into(),
            pod_ip: [10, 0, 0, 9].into(),
            inbound: vec![],
            outbound: vec![],
            ingress: vec![],
            egress: vec![EgressRoute {
                port: 443,
                istio_mutual,
                cluster: UpstreamCluster {
                    http: false,
                    host: "ratings-db.meshproof.test".into(),
                    service_port: 27017,
                    target_port: 27017,
                    service_fqdn: "ratings-db.meshproof.test".into(),
                    tls: None,
                },
            }],
        }
    }

    #[test]
    fn istio_mutual_servers_require_a_mesh_client_certificate() {
        let b = bootstrap(&gateway(true));
        let l = &b["static_resources"]["listeners"][0];
        assert_eq!(l["address"]["socket_address"]["port_value"], 443);
        let tls = &l["filter_chains"][0]["transport_socket"]["typed_config"];
        assert_eq!(tls["require_client_certificate"], true);
        let proxy = &l["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(
            proxy["cluster"],
            "outbound|27017||ratings-db.meshproof.test"
        );
        let c = &b["static_resources"]["clusters"][0];
        assert_eq!(c["name"], "outbound|27017||ratings-db.meshproof.test");
        assert!(
            c.get("transport_socket").is_none(),
            "the db leg is plaintext"
        );
    }

    #[test]
    fn passthrough_servers_forward_the_clients_bytes() {
        let b = bootstrap(&gateway(false));
        let chain = &b["static_resources"]["listeners"][0]["filter_chains"][0];
        assert!(chain.get("transport_socket").is_none());
    }
}
