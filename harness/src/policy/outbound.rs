//! The client side: what a client's sidecar does when its application dials a Service
//! port.
//!
//! Istio 1.30 (`pilot/pkg/networking/core/cluster_tls.go`, `cluster_traffic_policy.go`,
//! `pilot/pkg/xds/endpoints/mtls_checker.go`, `BestEffortInferServiceMTLSMode`):
//! - a DestinationRule TLS setting for the port wins;
//! - otherwise auto mTLS: no mTLS if the Service's namespace (or the mesh) policy is
//!   DISABLE, or, for headless (passthrough) Services, if any endpoint lacks a sidecar;
//!   headless Services then get mTLS to every endpoint, since their ORIGINAL_DST cluster
//!   cannot match per-endpoint labels; other Services get mTLS per endpoint, only to
//!   endpoints with a sidecar whose own mode for the target port is not DISABLE;
//! - the SNI is `outbound_.<port>_.<subset>_.<host>`, the ALPN says `istio`.

use serde::Serialize;

use super::cluster::{PodInfo, SvcInfo};
use super::context::{Ctx, Endpoint};
use super::destination::{self, MergedRule};
use super::types::{AppProtocol, ClientTls, MtlsMode, Peer, TlsSource};
use super::{peer, protocol, sidecar_scope};
use crate::crd::networking::{ClientTlsMode, ClientTlsSettings, SimpleLb};

/// A client's outbound side for one Service port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboundPolicy {
    /// The client.
    pub client: Peer,
    /// The client has a mesh proxy.
    pub sidecar: bool,
    /// The Service dialled.
    pub service: String,
    /// Its namespace.
    pub namespace: String,
    /// Its fully qualified host.
    pub host: String,
    /// The Service port.
    pub port: u16,
    /// How the proxy handles the traffic.
    pub protocol: AppProtocol,
    /// A headless Service (per-endpoint, ORIGINAL_DST).
    pub headless: bool,
    /// The client's proxy sees this traffic.
    pub intercepted: bool,
    /// The TLS the proxy originates.
    pub tls: ClientTls,
    /// Where that came from.
    pub tls_source: TlsSource,
    /// Envoy's cluster name, `outbound|<port>|<subset>|<host>`.
    pub cluster: String,
    /// The SNI sent, for TLS modes.
    pub sni: Option<String>,
    /// The ALPN offered, for TLS modes.
    pub alpn: Vec<String>,
    /// Server identities accepted, for ISTIO_MUTUAL.
    pub subject_alt_names: Vec<String>,
    /// Under auto mTLS, the decision per endpoint workload.
    pub endpoints: Vec<EndpointTls>,
    /// Why things are the way they are.
    pub notes: Vec<String>,
    /// Why the client's proxy drops this traffic (the destination is not in its registry
    /// and outbound traffic is `REGISTRY_ONLY`), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// Why the model cannot tell whether the proxy sees this traffic at all, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecided: Option<String>,
}

/// The auto mTLS decision for one endpoint workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointTls {
    /// The endpoint's workload.
    pub workload: String,
    /// It has a sidecar.
    pub sidecar: bool,
    /// What the client sends it.
    pub tls: ClientTls,
}

/// What is dialled.
pub struct Target<'a> {
    /// Service name.
    pub service: &'a str,
    /// Service namespace.
    pub namespace: &'a str,
    /// The Kubernetes Service, if it is one.
    pub svc: Option<&'a SvcInfo>,
    /// A `MESH_EXTERNAL` ServiceEntry (or an unregistered destination).
    pub external: bool,
    /// The Service port.
    pub port: u16,
    /// A DestinationRule subset (from a route).
    pub subset: &'a str,
    /// How the proxy handles the traffic.
    pub protocol: AppProtocol,
}

fn convert(mode: ClientTlsMode) -> ClientTls {
    match mode {
        ClientTlsMode::Disable => ClientTls::Disable,
        ClientTlsMode::Simple => ClientTls::Simple,
        ClientTlsMode::Mutual => ClientTls::Mutual,
        ClientTlsMode::IstioMutual => ClientTls::IstioMutual,
    }
}

/// Computes the outbound side; `server` is the endpoint workload the pair names, used
/// to pick the per-endpoint auto mTLS decision.
pub fn build(
    ctx: &Ctx,
    peer: &Peer,
    client: &Endpoint,
    t: &Target,
    server: Option<&PodInfo>,
) -> OutboundPolicy {
    // A destination that is not a Kubernetes Service is dialled by its host name.
    let host = match t.svc {
        None if t.service.contains('.') => t.service.to_string(),
        _ => ctx.fqdn(t.service, t.namespace),
    };
    let headless = t.svc.is_some_and(|s| s.headless);
    let mut out = OutboundPolicy {
        client: peer.clone(),
        sidecar: client.injection.injected,
        service: t.service.to_string(),
        namespace: t.namespace.to_string(),
        cluster: format!("outbound|{}|{}|{host}", t.port, t.subset),
        host,
        port: t.port,
        protocol: t.protocol,
        headless,
        intercepted: false,
        tls: ClientTls::Disable,
        tls_source: TlsSource::NotIntercepted {
            reason: client.injection.reason.clone(),
        },
        sni: None,
        alpn: Vec::new(),
        subject_alt_names: Vec::new(),
        endpoints: Vec::new(),
        notes: Vec::new(),
        blocked: None,
        undecided: None,
    };
    if !client.injection.injected {
        out.tls_source = TlsSource::NotIntercepted {
            reason: "no sidecar".into(),
        };
        return out;
    }
    if !client.is_gateway && !client.interception.outbound(t.port) {
        out.tls_source = TlsSource::NotIntercepted {
            reason: format!("port {} excluded", t.port),
        };
        out.notes.push(format!(
            "traffic to port {} bypasses the sidecar (excludeOutboundPorts)",
            t.port
        ));
        return out;
    }
    out.intercepted = true;
    if !client.is_gateway
        && !client.interception.include_outbound_ports.contains(&t.port)
        && let Some(ranges) = &client.interception.outbound_ranges
    {
        out.undecided = Some(format!(
            "the client's {ranges} decides whether its sidecar captures this traffic, and the model has no addresses"
        ));
    }
    let labels = client
        .pod
        .as_ref()
        .map(|p| p.labels.clone())
        .unwrap_or_default();
    let client_ns = peer.namespace().unwrap_or_default();
    if !client.is_gateway && t.svc.is_some() && unregistered(ctx, &mut out, client_ns, &labels, t) {
        return out;
    }
    let rule = ctx.rules.lookup(
        &ctx.mesh.root_namespace,
        client_ns,
        &labels,
        &out.host,
        t.namespace,
    );
    match rule.and_then(|r| destination::cluster_tls(r, t.port, t.subset).map(|tls| (r, tls))) {
        Some((r, tls)) if !client.is_gateway && sidecar_drops_credential(r, &tls) => {
            out.tls = ClientTls::Disable;
            out.tls_source = TlsSource::DestinationRule {
                name: r.from[0].clone(),
                namespace: r.namespace.clone(),
            };
            out.notes.push(format!(
                "DestinationRule {}/{}: {} with credentialName and no workloadSelector builds no TLS at a sidecar: the connection is plaintext",
                r.from[0],
                r.namespace,
                convert(tls.mode).as_str()
            ));
        }
        Some((r, tls)) => {
            out.tls = convert(tls.mode);
            out.tls_source = TlsSource::DestinationRule {
                name: r.from[0].clone(),
                namespace: r.namespace.clone(),
            };
            if r.from.len() > 1 {
                out.notes.push(format!(
                    "DestinationRules {} merged for {}",
                    r.from.join(", "),
                    r.host
                ));
            }
            out.sni = (!tls.sni.is_empty()).then(|| tls.sni.clone());
            if !tls.subject_alt_names.is_empty() {
                out.subject_alt_names = tls.subject_alt_names.clone();
            }
        }
        None => auto(ctx, &mut out, rule, t, server),
    }
    finish(ctx, &mut out, t);
    out
}

/// `buildUpstreamClusterTLSContext` (`pilot/pkg/networking/core/cluster_tls.go` at 1.30.3,
/// test "tls mode SIMPLE, credentialName is set with proxy type Sidecar"): at a sidecar,
/// SIMPLE or MUTUAL with a `credentialName` (other than a `configmap://` one) from a rule
/// without a workloadSelector gets no TLS context at all.
fn sidecar_drops_credential(rule: &MergedRule, tls: &ClientTlsSettings) -> bool {
    matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual)
        && !tls.credential_name.is_empty()
        && !tls.credential_name.starts_with("configmap://")
        && rule.selector.is_none()
}

/// A Kubernetes Service the client's Sidecar does not let it see
/// ([`sidecar_scope::hidden`]): blocked under `REGISTRY_ONLY`, else sent through the
/// PassthroughCluster in plaintext. True when that decides the outbound side.
fn unregistered(
    ctx: &Ctx,
    out: &mut OutboundPolicy,
    client_ns: &str,
    labels: &std::collections::BTreeMap<String, String>,
    t: &Target,
) -> bool {
    let scope = sidecar_scope::for_pod(&ctx.cluster, &ctx.mesh.root_namespace, client_ns, labels);
    let Some(why) = sidecar_scope::hidden(scope, client_ns, t.namespace, &out.host, t.port) else {
        return false;
    };
    if sidecar_scope::registry_only(scope, ctx.mesh.registry_only) {
        out.blocked = Some(format!("{why} and outbound traffic is REGISTRY_ONLY"));
    }
    out.tls = ClientTls::Disable;
    out.tls_source = TlsSource::Passthrough {
        reason: why.clone(),
    };
    out.notes.push(format!(
        "{why}: not in the client's registry, so the PassthroughCluster carries it without TLS"
    ));
    true
}

/// Auto mTLS, when no DestinationRule sets TLS for the port.
fn auto(
    ctx: &Ctx,
    out: &mut OutboundPolicy,
    rule: Option<&MergedRule>,
    t: &Target,
    server: Option<&PodInfo>,
) {
    out.tls_source = TlsSource::Auto;
    if !ctx.mesh.auto_mtls || t.external {
        out.notes.push(
            if t.external {
                "mesh-external destination: no auto mTLS"
            } else {
                "auto mTLS is off"
            }
            .into(),
        );
        return;
    }
    let passthrough = out.headless
        || rule
            .and_then(|r| r.traffic_policy.as_ref())
            .and_then(|tp| tp.load_balancer.as_ref())
            .is_some_and(|lb| lb.simple == Some(SimpleLb::Passthrough));
    let endpoints = t.svc.map(|s| ctx.service_endpoints(s)).unwrap_or_default();
    if passthrough && (endpoints.is_empty() || endpoints.iter().any(|(_, sidecar)| !sidecar)) {
        out.notes
            .push("headless service with an endpoint without sidecar: auto mTLS is off".into());
        return;
    }
    let inferred = peer::namespace_mode(&ctx.cluster, &ctx.mesh.root_namespace, t.namespace)
        .unwrap_or(MtlsMode::Permissive);
    if inferred == MtlsMode::Disable {
        out.notes.push(format!(
            "namespace {} (or mesh) PeerAuthentication is DISABLE: auto mTLS sends plaintext",
            t.namespace
        ));
        return;
    }
    if passthrough {
        out.tls = ClientTls::IstioMutual;
        out.notes
            .push("headless service: client mode inferred from namespace/mesh policy only".into());
        return;
    }
    let eds_mode = rule.and_then(|r| destination::endpoint_tls_mode(r, t.port, t.subset));
    out.endpoints = endpoints
        .iter()
        .map(|(pod, sidecar)| {
            let mtls = match eds_mode {
                Some(mode) => mode == ClientTlsMode::IstioMutual,
                None => *sidecar && endpoint_port_mode(ctx, pod, t) != Some(MtlsMode::Disable),
            };
            EndpointTls {
                workload: pod.name.clone(),
                sidecar: *sidecar,
                tls: if mtls {
                    ClientTls::IstioMutual
                } else {
                    ClientTls::Disable
                },
            }
        })
        .collect();
    let chosen = match server {
        Some(pod) => out.endpoints.iter().find(|e| e.workload == pod.name),
        None => out
            .endpoints
            .first()
            .filter(|first| out.endpoints.iter().all(|e| e.tls == first.tls)),
    };
    out.tls = chosen.map(|e| e.tls).unwrap_or(ClientTls::Disable);
    if server.is_none() && chosen.is_none() && !out.endpoints.is_empty() {
        out.notes
            .push("auto mTLS differs between endpoints; see `endpoints`".into());
    }
}

/// The endpoint workload's own mode for the Service port's target port.
fn endpoint_port_mode(ctx: &Ctx, pod: &PodInfo, t: &Target) -> Option<MtlsMode> {
    let target = t
        .svc?
        .port(t.port)
        .and_then(|p| pod.resolve_target(&p.target))?;
    Some(peer::workload_mode(&ctx.cluster, &ctx.mesh.root_namespace, pod, target).mode)
}

/// SNI, ALPN and SANs for the chosen mode.
fn finish(ctx: &Ctx, out: &mut OutboundPolicy, t: &Target) {
    match out.tls {
        ClientTls::IstioMutual => {
            if out.sni.is_none() {
                out.sni = Some(format!("outbound_.{}_.{}_.{}", t.port, t.subset, out.host));
            }
            out.alpn = protocol::istio_alpn(t.protocol);
            if out.subject_alt_names.is_empty() {
                let mut sans: Vec<String> = t
                    .svc
                    .map(|s| ctx.service_endpoints(s))
                    .unwrap_or_default()
                    .iter()
                    .map(|(p, _)| format!("spiffe://{}", ctx.principal(p)))
                    .collect();
                sans.sort();
                sans.dedup();
                out.subject_alt_names = sans;
            }
        }
        ClientTls::Simple | ClientTls::Mutual if t.protocol.is_http() => {
            out.alpn = protocol::istio_alpn(t.protocol);
        }
        _ => {}
    }
}
