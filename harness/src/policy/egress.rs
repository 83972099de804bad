//! Egress through Istio's egress gateway: the two VirtualService hops that send a mesh
//! client's traffic for an external host to the gateway, and from the gateway on to the
//! host.
//!
//! Istio (`pilot/pkg/networking/core/route/route.go`, TCP and TLS routes): a
//! VirtualService whose `gateways` include `mesh` (or that names none) programs every
//! sidecar; a `tcp` route matches on the destination port, a `tls` route also on the
//! SNI. The seed's pattern routes `mesh` traffic for the database's host to
//! `istio-egressgateway.istio-system.svc.cluster.local` (a DestinationRule subset sets
//! ISTIO_MUTUAL to it), and a second route bound to the egress Gateway sends what arrives
//! on the gateway's port to the database's host and port.

use super::context::Ctx;
use super::destination::resolve_host;
use super::gateway::{gateway_ref, host_matches};
use super::types::{Pair, Peer};
use crate::crd::networking::{Gateway, RouteDestination, VirtualService};

/// The in-mesh name of the egress gateway Service.
const GATEWAY_SERVICE: &str = "istio-egressgateway";

/// One L4 route of a VirtualService: the gateways it is limited to, the port and SNI
/// hosts it matches, and where it goes.
struct L4Route<'a> {
    gateways: &'a [String],
    port: Option<u32>,
    sni_hosts: &'a [String],
    to: &'a RouteDestination,
}

fn l4_routes(vs: &VirtualService) -> Vec<L4Route<'_>> {
    let mut out = Vec::new();
    for r in &vs.spec.tcp {
        let first = r.route.first();
        if r.matches.is_empty() {
            out.extend(first.map(|to| L4Route {
                gateways: &[],
                port: None,
                sni_hosts: &[],
                to,
            }));
        }
        for m in &r.matches {
            out.extend(first.map(|to| L4Route {
                gateways: &m.gateways,
                port: m.port,
                sni_hosts: &[],
                to,
            }));
        }
    }
    for r in &vs.spec.tls {
        for m in &r.matches {
            out.extend(r.route.first().map(|to| L4Route {
                gateways: &m.gateways,
                port: m.port,
                sni_hosts: &m.sni_hosts,
                to,
            }));
        }
    }
    out
}

fn binds_mesh(vs: &VirtualService) -> bool {
    vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh")
}

fn route_port(to: &RouteDestination) -> Option<u16> {
    to.destination
        .port
        .as_ref()
        .and_then(|p| u16::try_from(p.number).ok())
}

/// The client -> egress gateway pair for a pair to an external host, when a `mesh`
/// VirtualService routes the host's port to the egress gateway. The original pair rides
/// along in `onward`, so the gateway's own hop can find the workload behind the host.
pub fn to_gateway(ctx: &Ctx, pair: &Pair) -> Option<Pair> {
    // `mesh` programs sidecars only: a gateway's own traffic follows its Gateway binding.
    if matches!(
        pair.client,
        Peer::IngressGateway | Peer::EgressGateway | Peer::Host
    ) {
        return None;
    }
    let gateway_host = ctx.fqdn(GATEWAY_SERVICE, &ctx.mesh.root_namespace);
    for vs in ctx.cluster.virtual_services.iter().map(|r| &r.object) {
        if !binds_mesh(vs)
            || !vs
                .spec
                .hosts
                .iter()
                .any(|h| host_matches(h, Some(&pair.service)))
        {
            continue;
        }
        let route = l4_routes(vs).into_iter().find(|r| {
            (r.gateways.is_empty() || r.gateways.iter().any(|g| g == "mesh"))
                && r.port.is_none_or(|p| p == u32::from(pair.port))
                && (r.sni_hosts.is_empty()
                    || r.sni_hosts
                        .iter()
                        .any(|h| host_matches(h, Some(&pair.service))))
        });
        let Some(route) = route else { continue };
        let dest = resolve_host(&route.to.destination.host, vs.namespace(), &ctx.mesh.domain);
        if dest != gateway_host {
            continue;
        }
        let mut original = pair.clone();
        original.client = Peer::EgressGateway;
        let port = route_port(route.to).unwrap_or(pair.port);
        // What the application speaks reaches the gateway's port unchanged.
        let speaks = pair.protocols.get(&pair.port).copied();
        return Some(Pair {
            client: pair.client.clone(),
            server: Peer::EgressGateway,
            service: GATEWAY_SERVICE.into(),
            namespace: ctx.mesh.root_namespace.clone(),
            port,
            subset: route.to.destination.subset.clone(),
            request: pair.request.clone(),
            origin: pair.origin.clone(),
            protocols: speaks.map(|p| (port, p)).into_iter().collect(),
            onward: vec![original],
        });
    }
    None
}

/// The egress gateway -> external host pair: the route of a VirtualService bound to
/// `gateway` for traffic arriving on `port`, to one of the hosts in `pair.onward`.
pub fn from_gateway(ctx: &Ctx, pair: &Pair, gateway: &Gateway, port: u16) -> Option<Pair> {
    let me = format!("{}/{}", gateway.namespace(), gateway.name());
    for vs in ctx.cluster.virtual_services.iter().map(|r| &r.object) {
        if !vs.spec.gateways.iter().any(|g| gateway_ref(vs, g) == me) {
            continue;
        }
        for route in l4_routes(vs) {
            let here = route.gateways.is_empty()
                || route.gateways.iter().any(|g| gateway_ref(vs, g) == me);
            if !here || route.port.is_some_and(|p| p != u32::from(port)) {
                continue;
            }
            let host = &route.to.destination.host;
            let Some(next) = pair.onward.iter().find(|o| &o.service == host) else {
                continue;
            };
            let mut next = next.clone();
            next.client = Peer::EgressGateway;
            next.port = route_port(route.to).unwrap_or(next.port);
            next.origin = format!("via egress-gateway ({})", vs.name());
            return Some(next);
        }
    }
    None
}

/// One egress Gateway server as the lab's gateway Envoy serves it: a port, whether it
/// terminates Istio mTLS there (`ISTIO_MUTUAL`) or passes TLS through, and the external
/// host and port its route sends the bytes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressListener {
    /// The gateway port.
    pub port: u16,
    /// The server's TLS mode is `ISTIO_MUTUAL`.
    pub istio_mutual: bool,
    /// The external host the route sends traffic to.
    pub host: String,
    /// Its port.
    pub host_port: u16,
}

/// Every egress Gateway server with a route out, for hosts dialled by `pairs`.
pub fn listeners(ctx: &Ctx, pairs: &[Pair]) -> Vec<EgressListener> {
    let mut out = Vec::new();
    let Some(gw) = ctx.endpoint(&Peer::EgressGateway) else {
        return out;
    };
    let Some(pod) = gw.pod else { return out };
    let Some(first) = pairs.first() else {
        return out;
    };
    for g in ctx.cluster.gateways.iter().map(|r| &r.object) {
        let selected = !g.spec.selector.is_empty()
            && g.spec
                .selector
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v));
        if !selected {
            continue;
        }
        for s in &g.spec.servers {
            let Ok(port) = u16::try_from(s.port.number) else {
                continue;
            };
            let probe = Pair {
                onward: pairs.to_vec(),
                ..first.clone()
            };
            let Some(next) = from_gateway(ctx, &probe, g, port) else {
                continue;
            };
            out.push(EgressListener {
                port,
                istio_mutual: s
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.mode == crate::crd::ServerTlsMode::IstioMutual),
                host: next.service,
                host_port: next.port,
            });
        }
    }
    out
}

/// How a client's proxy sends its traffic for an external host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalPath {
    /// Straight to the host (a ServiceEntry, or the PassthroughCluster under ALLOW_ANY).
    Direct,
    /// Nowhere: `REGISTRY_ONLY` and no ServiceEntry, Istio's BlackHoleCluster.
    Blocked,
    /// To the egress gateway's port, with Istio mTLS or not.
    ViaGateway {
        /// The gateway port.
        port: u16,
        /// The proxy originates Istio mTLS to the gateway.
        istio_mtls: bool,
    },
}

/// The path of `pair`, whose server is a workload outside the cluster.
pub fn path(ctx: &Ctx, pair: &Pair) -> Result<ExternalPath, String> {
    let client = ctx
        .endpoint(&pair.client)
        .ok_or_else(|| format!("client {} has no manifest", pair.client))?;
    if let Some(via) = to_gateway(ctx, pair) {
        let row = super::gateway::row(ctx, &via, &client)?.row;
        return Ok(ExternalPath::ViaGateway {
            port: via.port,
            istio_mtls: row.client_tls == super::ClientTls::IstioMutual,
        });
    }
    let row = super::external::row(ctx, pair, &client)?;
    Ok(match row.status {
        super::Status::Conflict {
            consequence: super::Consequence::Blocked,
            ..
        } => ExternalPath::Blocked,
        _ => ExternalPath::Direct,
    })
}
