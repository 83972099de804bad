//! Envoy sidecar configuration, generated as Istio would program the sidecar.
//!
//! The generator reads a small [`SidecarConfig`] (which the lab derives from the policy
//! model) and writes a static Envoy bootstrap in JSON:
//! - inbound, one listener per served port on the pod IP: STRICT requires a client
//!   certificate from the run's CA; PERMISSIVE uses the TLS inspector and a filter chain
//!   that matches Istio's ALPN values, with a plaintext chain beside it; DISABLE is plain
//!   TCP. AuthorizationPolicy becomes Envoy's RBAC HTTP filter (Envoy itself answers
//!   `403 RBAC: access denied`), or the RBAC network filter on TCP ports.
//! - outbound, one listener per upstream on a loopback address the app dials (explicit
//!   interception): Istio's SNI `outbound_.<port>_._.<fqdn>`, its ALPN, the workload's
//!   certificate, and a check of the server's SPIFFE identity.

use std::net::{IpAddr, SocketAddr};

use serde_json::{Value, json};

/// Where certificates are mounted in the sidecar (Istio's own paths).
pub const CERT_CHAIN: &str = "/etc/certs/cert-chain.pem";
/// The workload key.
pub const KEY: &str = "/etc/certs/key.pem";
/// The run's root certificate.
pub const ROOT_CERT: &str = "/etc/certs/root-cert.pem";
/// Envoy's admin port, local to the pod, as in Istio.
pub const ADMIN_PORT: u16 = 15000;
/// The ALPN values Istio's client sidecar offers for TCP.
pub const ALPN_TCP: [&str; 2] = ["istio-peer-exchange", "istio"];
/// The ALPN values Istio's client sidecar offers for HTTP/1.1.
pub const ALPN_HTTP11: [&str; 3] = ["istio-http/1.1", "istio", "http/1.1"];
/// The ALPN values an inbound PERMISSIVE chain matches as mesh mTLS.
pub const ISTIO_ALPNS: [&str; 5] = [
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

/// Inbound mTLS mode of one port, as PeerAuthentication resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum InboundMode {
    /// Only mesh mTLS.
    Strict,
    /// Mesh mTLS and plaintext.
    Permissive,
    /// Plaintext only.
    Disable,
}

/// One AuthorizationPolicy rule, reduced to what the lab's RBAC filter checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuthzRule {
    /// HTTP methods (empty: any).
    pub methods: Vec<String>,
    /// Paths; a trailing `*` is a prefix, a leading `*` a suffix (empty: any).
    pub paths: Vec<String>,
    /// Source principals without `spiffe://` (empty: any).
    pub principals: Vec<String>,
    /// Source namespaces (empty: any).
    pub namespaces: Vec<String>,
}

/// The AuthorizationPolicies in force on one port.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Authz {
    /// DENY rules (checked first).
    pub deny: Vec<AuthzRule>,
    /// ALLOW rules: `None` when no ALLOW policy applies (everything allowed), `Some(empty)`
    /// for allow-nothing (`spec: {}`).
    pub allow: Option<Vec<AuthzRule>>,
    /// The policies' `name/namespace`, for the rule names Envoy reports.
    pub sources: Vec<String>,
}

/// One served port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InboundPort {
    /// The container port.
    pub port: u16,
    /// HTTP (HTTP connection manager) rather than TCP proxy.
    pub http: bool,
    /// The mTLS mode.
    pub mode: InboundMode,
    /// Authorization, when any policy applies.
    pub authz: Option<Authz>,
}

/// How the sidecar originates TLS to an upstream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamTls {
    /// The SNI (`outbound_.<port>_._.<fqdn>`).
    pub sni: String,
    /// ALPN offered.
    pub alpn: Vec<String>,
    /// SPIFFE identities the server may present.
    pub peer_identities: Vec<String>,
}

/// A destination the sidecar originates connections to, as an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpstreamCluster {
    /// HTTP rather than TCP (ALPN and, outbound, the filter chosen).
    pub http: bool,
    /// The DNS name of the destination (service or pod).
    pub host: String,
    /// The service port (names the cluster, as in Istio).
    pub service_port: u16,
    /// The container port dialled on the destination pod.
    pub target_port: u16,
    /// The FQDN of the service (names the cluster).
    pub service_fqdn: String,
    /// Mesh mTLS, or plaintext when `None`.
    pub tls: Option<UpstreamTls>,
}

/// One upstream the app dials through the sidecar.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboundRoute {
    /// Where the sidecar listens for the app.
    pub listen: SocketAddr,
    /// Where it sends the traffic.
    pub cluster: UpstreamCluster,
    /// Not in the registry under `REGISTRY_ONLY`: the traffic goes to the
    /// BlackHoleCluster instead of `cluster`.
    pub blackhole: bool,
}

/// One ingress-gateway route: HTTP for `hosts` on `port` goes to `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngressRoute {
    /// The gateway port (a Gateway server's port).
    pub port: u16,
    /// Host names (the `Host` header) routed here.
    pub hosts: Vec<String>,
    /// The destination.
    pub cluster: UpstreamCluster,
}

/// Everything one sidecar needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SidecarConfig {
    /// The pod name.
    pub pod: String,
    /// Its namespace.
    pub namespace: String,
    /// The workload name.
    pub workload: String,
    /// The pod IP, on which inbound listeners bind.
    pub pod_ip: IpAddr,
    /// Served ports.
    pub inbound: Vec<InboundPort>,
    /// Upstreams.
    pub outbound: Vec<OutboundRoute>,
    /// Ingress-gateway routes (the gateway's Envoy only).
    pub ingress: Vec<IngressRoute>,
    /// Egress-gateway routes (the egress gateway's Envoy only).
    pub egress: Vec<super::egress::EgressRoute>,
}

/// The Envoy bootstrap for a sidecar, as JSON.
pub fn bootstrap(cfg: &SidecarConfig) -> Value {
    let mut listeners: Vec<Value> = cfg
        .inbound
        .iter()
        .map(|p| inbound_listener(cfg, p))
        .collect();
    let mut clusters: Vec<Value> = cfg.inbound.iter().map(inbound_cluster).collect();
    listeners.extend(cfg.outbound.iter().map(outbound_listener));
    clusters.extend(
        cfg.outbound
            .iter()
            .filter(|r| !r.blackhole)
            .map(|r| upstream_cluster(&r.cluster)),
    );
    if cfg.outbound.iter().any(|r| r.blackhole) {
        clusters.push(super::egress::blackhole_cluster());
    }
    listeners.extend(ingress_listeners(cfg));
    listeners.extend(super::egress::listeners(cfg));
    clusters.extend(cfg.egress.iter().map(|r| upstream_cluster(&r.cluster)));
    let mut seen = std::collections::BTreeSet::new();
    for route in &cfg.ingress {
        if seen.insert(cluster_name(&route.cluster)) {
            clusters.push(upstream_cluster(&route.cluster));
        }
    }
    json!({
        "node": {
            "id": format!("sidecar~{}~{}.{}~{}.svc.cluster.local", cfg.pod_ip, cfg.pod, cfg.namespace, cfg.namespace),
            "cluster": format!("{}.{}", cfg.workload, cfg.namespace),
        },
        "admin": {"address": socket(IpAddr::from([127, 0, 0, 1]), ADMIN_PORT)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    })
}

pub(super) fn socket(ip: IpAddr, port: u16) -> Value {
    json!({"socket_address": {"address": ip.to_string(), "port_value": port}})
}

fn inbound_cluster_name(port: u16) -> String {
    format!("inbound|{port}||")
}

pub(super) fn cluster_name(r: &UpstreamCluster) -> String {
    // Istio names per-service clusters `outbound|port||fqdn`; a pod-addressed route (a
    // headless service's endpoint) also carries the pod host so names stay unique.
    if r.host == r.service_fqdn {
        format!("outbound|{}||{}", r.service_port, r.service_fqdn)
    } else {
        format!("outbound|{}||{}|{}", r.service_port, r.service_fqdn, r.host)
    }
}

fn inbound_listener(cfg: &SidecarConfig, p: &InboundPort) -> Value {
    let filters = if p.http {
        inbound_http_filters(cfg, p)
    } else {
        inbound_tcp_filters(cfg, p)
    };
    let mtls_chain = |matcher: Value| {
        json!({
            "filter_chain_match": matcher,
            "transport_socket": downstream_tls(p.http),
            "filters": filters,
        })
    };
    let chains = match p.mode {
        InboundMode::Strict => vec![mtls_chain(json!({}))],
        InboundMode::Permissive => vec![
            mtls_chain(json!({"transport_protocol": "tls", "application_protocols": ISTIO_ALPNS})),
            json!({"filter_chain_match": {}, "filters": filters}),
        ],
        InboundMode::Disable => vec![json!({"filter_chain_match": {}, "filters": filters})],
    };
    let mut listener = json!({
        "name": format!("inbound_{}_{}", cfg.pod_ip, p.port),
        "address": socket(cfg.pod_ip, p.port),
        "filter_chains": chains,
    });
    if p.mode != InboundMode::Disable {
        listener["listener_filters"] = json!([{
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
        }]);
    }
    listener
}

fn tls_certificates() -> Value {
    json!([{"certificate_chain": {"filename": CERT_CHAIN}, "private_key": {"filename": KEY}}])
}

fn tls_params() -> Value {
    json!({"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"})
}

pub(super) fn downstream_tls(http: bool) -> Value {
    let alpn: &[&str] = if http {
        &["h2", "http/1.1"]
    } else {
        &["istio-peer-exchange", "h2", "http/1.1"]
    };
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": {
                "alpn_protocols": alpn,
                "tls_params": tls_params(),
                "tls_certificates": tls_certificates(),
                "validation_context": {
                    "trusted_ca": {"filename": ROOT_CERT},
                    "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}],
                },
            },
        },
    })
}

fn inbound_tcp_filters(cfg: &SidecarConfig, p: &InboundPort) -> Value {
    let mut filters = Vec::new();
    if let Some(authz) = &p.authz {
        filters.extend(rbac_filters(cfg, authz, false));
    }
    filters.push(tcp_proxy(
        &format!("inbound|{}", p.port),
        &inbound_cluster_name(p.port),
    ));
    Value::Array(filters)
}

pub(super) fn tcp_proxy(stat_prefix: &str, cluster: &str) -> Value {
    json!({
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": stat_prefix,
            "cluster": cluster,
        },
    })
}

fn http_connection_manager(
    stat_prefix: &str,
    cluster: &str,
    mut http_filters: Vec<Value>,
    inbound: bool,
) -> Value {
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "route_config": {
            "name": stat_prefix,
            "virtual_hosts": [{
                "name": stat_prefix,
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "0s"}}],
            }],
        },
        "http_filters": http_filters,
    });
    if inbound {
        // Like Istio, pass the verified client identity to the app in XFCC.
        hcm["forward_client_cert_details"] = json!("APPEND_FORWARD");
        hcm["set_current_client_cert_details"] = json!({"uri": true});
    }
    json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm})
}

fn inbound_http_filters(cfg: &SidecarConfig, p: &InboundPort) -> Value {
    let rbac = p
        .authz
        .as_ref()
        .map(|a| rbac_filters(cfg, a, true))
        .unwrap_or_default();
    json!([http_connection_manager(
        &format!("inbound_{}", p.port),
        &inbound_cluster_name(p.port),
        rbac,
        true
    )])
}

/// The RBAC filters for one port: DENY first, then ALLOW, as Istio orders them.
fn rbac_filters(cfg: &SidecarConfig, authz: &Authz, http: bool) -> Vec<Value> {
    let source = authz.sources.join(",");
    let mut out = Vec::new();
    if !authz.deny.is_empty() {
        out.push(rbac_filter(cfg, "DENY", &authz.deny, &source, http));
    }
    if let Some(allow) = &authz.allow {
        out.push(rbac_filter(cfg, "ALLOW", allow, &source, http));
    }
    out
}

fn rbac_filter(
    cfg: &SidecarConfig,
    action: &str,
    rules: &[AuthzRule],
    source: &str,
    http: bool,
) -> Value {
    let policies: serde_json::Map<String, Value> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = format!("ns[{}]-policy[{source}]-rule[{i}]", cfg.namespace);
            (
                name,
                json!({"permissions": [permission(r, http)], "principals": [principal(r)]}),
            )
        })
        .collect();
    let (name, ty) = if http {
        (
            "envoy.filters.http.rbac",
            "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        )
    } else {
        (
            "envoy.filters.network.rbac",
            "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
        )
    };
    let mut typed = json!({"@type": ty, "rules": {"action": action, "policies": policies}});
    if !http {
        typed["stat_prefix"] = json!("tcp.");
    }
    json!({"name": name, "typed_config": typed})
}

fn any_of(matchers: Vec<Value>) -> Option<Value> {
    (!matchers.is_empty()).then(|| json!({"or_rules": {"rules": matchers}}))
}

fn string_match(pattern: &str) -> Value {
    if pattern == "*" {
        json!({"prefix": ""})
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        json!({"prefix": prefix})
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        json!({"suffix": suffix})
    } else {
        json!({"exact": pattern})
    }
}

fn permission(r: &AuthzRule, http: bool) -> Value {
    let mut all = Vec::new();
    if http {
        let methods = r
            .methods
            .iter()
            .map(|m| json!({"header": {"name": ":method", "string_match": {"exact": m}}}));
        all.extend(any_of(methods.collect()));
        let paths = r
            .paths
            .iter()
            .map(|p| json!({"url_path": {"path": string_match(p)}}));
        all.extend(any_of(paths.collect()));
    }
    if all.is_empty() {
        json!({"any": true})
    } else {
        json!({"and_rules": {"rules": all}})
    }
}

fn principal(r: &AuthzRule) -> Value {
    let mut all = Vec::new();
    let principals = r.principals.iter().map(
        |p| json!({"authenticated": {"principal_name": string_match(&format!("spiffe://{p}"))}}),
    );
    all.extend(any_of(principals.collect()));
    let namespaces = r.namespaces.iter().map(|ns| {
        json!({"authenticated": {"principal_name": {"safe_regex": {"regex": format!(".*/ns/{}/.*", regex_escape(ns))}}}})
    });
    all.extend(any_of(namespaces.collect()));
    if all.is_empty() {
        json!({"any": true})
    } else {
        json!({"and_ids": {"ids": all}})
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

fn inbound_cluster(p: &InboundPort) -> Value {
    let name = inbound_cluster_name(p.port);
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(IpAddr::from([127, 0, 0, 1]), p.port)}}]}],
        },
    })
}

fn outbound_listener(r: &OutboundRoute) -> Value {
    let cluster = if r.blackhole {
        super::egress::BLACKHOLE.to_string()
    } else {
        cluster_name(&r.cluster)
    };
    let filter = if r.cluster.http {
        http_connection_manager(
            &format!("outbound_{}", r.listen),
            &cluster,
            Vec::new(),
            false,
        )
    } else {
        tcp_proxy(&cluster, &cluster)
    };
    json!({
        "name": format!("outbound_{}", r.listen),
        "address": socket(r.listen.ip(), r.listen.port()),
        "filter_chains": [{"filters": [filter]}],
    })
}

/// The gateway's listeners: plain HTTP on the pod IP, routed by `Host` to mesh clusters.
fn ingress_listeners(cfg: &SidecarConfig) -> Vec<Value> {
    let ports: std::collections::BTreeSet<u16> = cfg.ingress.iter().map(|r| r.port).collect();
    ports
        .into_iter()
        .map(|port| {
            let hosts: Vec<Value> = cfg
                .ingress
                .iter()
                .filter(|r| r.port == port)
                .map(|r| {
                    let mut domains: Vec<String> = r.hosts.clone();
                    domains.extend(r.hosts.iter().map(|h| format!("{h}:{port}")));
                    json!({
                        "name": format!("{}:{port}", r.hosts.join(",")),
                        "domains": domains,
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster_name(&r.cluster), "timeout": "0s"}}],
                    })
                })
                .collect();
            let router = json!({
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            });
            let hcm = json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": format!("http.{port}"),
                "route_config": {"name": format!("http.{port}"), "virtual_hosts": hosts},
                "http_filters": [router],
            });
            json!({
                "name": format!("0.0.0.0_{port}"),
                "address": socket(cfg.pod_ip, port),
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            })
        })
        .collect()
}

fn upstream_cluster(r: &UpstreamCluster) -> Value {
    let name = cluster_name(r);
    let mut cluster = json!({
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_ONLY",
        "dns_refresh_rate": "1s",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": r.host, "port_value": r.target_port}}}}]}],
        },
    });
    if let Some(tls) = &r.tls {
        let sans: Vec<Value> = tls
            .peer_identities
            .iter()
            .map(|id| json!({"san_type": "URI", "matcher": {"exact": id}}))
            .collect();
        cluster["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": tls.sni,
                "common_tls_context": {
                    "alpn_protocols": tls.alpn,
                    "tls_params": tls_params(),
                    "tls_certificates": tls_certificates(),
                    "validation_context": {"trusted_ca": {"filename": ROOT_CERT}, "match_typed_subject_alt_names": sans},
                },
            },
        });
    }
    cluster
}

/// Istio's SNI for a service port: `outbound_.<port>_._.<fqdn>` (no subset).
pub fn istio_sni(port: u16, fqdn: &str) -> String {
    format!("outbound_.{port}_._.{fqdn}")
}

#[cfg(test)]
#[path = "envoy_tests.rs"]
mod tests;
