//! Istio gateways as servers: which Gateway server answers on a port, what it expects,
//! and where its VirtualServices route a request next.
//!
//! A Gateway selects gateway pods by label (`istio: ingressgateway` for the default
//! ingress gateway, from any namespace); `port.number` is the gateway Service's port.
//! A VirtualService binds to it through `gateways` (`name` in its own namespace,
//! `ns/name`, or the legacy `name.ns.svc...`), and the first matching HTTP route wins.

use super::authz::{self, Decision, Facts};
use super::connect::{self, ServerView};
use super::context::{Ctx, Endpoint, gateway_target_port};
use super::destination::resolve_host;
use super::outbound::{self, Target};
use super::types::{
    AppProtocol, ClientTls, Consequence, MtlsMode, Pair, Peer, PeerSource, Request, Row, Status,
};
use crate::crd::networking::{Gateway, HttpMatchRequest, Server, VirtualService};
use crate::crd::{ServerTlsMode, StringMatch};
use crate::scenario::Protocol;
use crate::wire::FlowClass;

/// A row and the hop the gateway forwards to.
pub struct Evaluated {
    /// The client -> gateway row.
    pub row: Row,
    /// The gateway -> backend pair, when a route matches.
    pub next: Option<Pair>,
}

/// Evaluates a pair whose server is the ingress or egress gateway.
pub fn row(ctx: &Ctx, pair: &Pair, client: &Endpoint) -> Result<Evaluated, String> {
    let gw = ctx.endpoint(&pair.server).ok_or("gateway peer")?;
    let gw_pod = gw.pod.as_ref().ok_or("gateway pod")?;
    let found = servers(ctx, gw_pod, pair.port);
    let http_client = pair.request.is_some();
    let proto = if http_client {
        AppProtocol::Http
    } else {
        AppProtocol::Tcp
    };
    let t = Target {
        service: &gw_pod.name,
        namespace: &gw_pod.namespace,
        svc: None,
        external: false,
        port: pair.port,
        subset: &pair.subset,
        protocol: proto,
    };
    let out = outbound::build(ctx, &pair.client, client, &t, None);
    let mut notes = out.notes.clone();
    // The application's own TLS passes through to a gateway (TLS PASSTHROUGH egress).
    let app = if pair.protocols.get(&pair.port) == Some(&Protocol::Tls) {
        FlowClass::Tls
    } else {
        FlowClass::Plaintext
    };
    let mut row = Row {
        client: pair.client.clone(),
        server: pair.server.clone(),
        service: gw_pod.name.clone(),
        namespace: gw_pod.namespace.clone(),
        port: pair.port,
        target_port: Some(gateway_target_port(pair.port)),
        wire_port: Some(pair.port),
        protocol: proto,
        request: pair.request.clone(),
        server_mode: MtlsMode::Disable,
        server_source: PeerSource::NotIntercepted {
            reason: "no Gateway server".into(),
        },
        client_tls: if out.intercepted {
            out.tls
        } else {
            ClientTls::Disable
        },
        client_tls_source: out.tls_source.clone(),
        client_sidecar: client.injection.injected,
        server_sidecar: gw.injection.injected,
        class: connect::class_of(&out, app),
        status: Status::Ok,
        origins: vec![pair.origin.clone()],
        notes: Vec::new(),
    };
    let host = pair.request.as_ref().and_then(|r| r.host.as_deref());
    let Some((gateway, server)) = found
        .iter()
        .find(|(_, s)| s.hosts.iter().any(|h| host_matches(strip_ns(h), host)))
        .or(found.first())
    else {
        row.status = Status::conflict(
            format!(
                "no Gateway server listens on port {} of {}",
                pair.port, gw_pod.name
            ),
            Consequence::Refused,
        );
        return Ok(Evaluated { row, next: None });
    };
    let tls_mode = server.tls.as_ref().map(|t| t.mode);
    row.server_mode = if tls_mode == Some(ServerTlsMode::IstioMutual) {
        MtlsMode::Strict
    } else {
        MtlsMode::Disable
    };
    row.server_source = PeerSource::Gateway {
        name: gateway.name().to_string(),
        namespace: gateway.namespace().to_string(),
    };
    let terminates = tls_mode.is_some_and(|m| m != ServerTlsMode::IstioMutual)
        || matches!(
            server.port.protocol.to_ascii_uppercase().as_str(),
            "HTTPS" | "TLS"
        );
    let view = ServerView {
        intercepted: true,
        mode: row.server_mode,
        bypass: String::new(),
        expects_tls: terminates,
        server_first: false,
    };
    if let Err((problem, _)) = connect::accept(&out, app, &view) {
        row.status = Status::conflict(problem, connect::refused(&out, client, proto));
        return Ok(Evaluated { row, next: None });
    }
    let mut policy_notes = Vec::new();
    let policies: Vec<_> = authz::applicable(
        ctx.cluster.authorization_policies.iter().map(|r| &r.object),
        &ctx.mesh.root_namespace,
        gw_pod,
        &mut policy_notes,
    )
    .into_iter()
    .map(|p| authz::for_port(p, proto.is_http()))
    .collect();
    notes.extend(policy_notes);
    let facts = Facts {
        principal: None,
        port: gateway_target_port(pair.port),
        request: pair.request.as_ref(),
    };
    match authz::decide(&policies, &facts) {
        Decision::Deny { by } => {
            let c = if proto.is_http() {
                Consequence::Forbidden403
            } else {
                Consequence::RbacClosed
            };
            row.status = Status::conflict(format!("denied at the gateway by {by}"), c);
            return Ok(Evaluated { row, next: None });
        }
        Decision::Depends { why } => {
            row.status = Status::cannot_predict(format!("at the gateway, {why}"));
        }
        Decision::Allow => {}
    }
    // RBAC runs before the router: when authorization is undecided, so is a 404.
    let undecided = row.status.clone();
    let next = if pair.server == Peer::IngressGateway {
        route(ctx, pair, gateway, server, &mut row)?
    } else {
        super::egress::from_gateway(ctx, pair, gateway, pair.port)
    };
    if matches!(undecided, Status::CannotPredict { .. }) {
        row.status = undecided;
    }
    if pair.server == Peer::EgressGateway && next.is_none() {
        notes.push("no VirtualService bound to the egress Gateway routes this traffic on".into());
    }
    row.notes = notes;
    Ok(Evaluated { row, next })
}

/// Gateway servers on `port` of the gateway pod, oldest Gateway first.
fn servers<'a>(
    ctx: &'a Ctx,
    pod: &super::cluster::PodInfo,
    port: u16,
) -> Vec<(&'a Gateway, &'a Server)> {
    ctx.cluster
        .gateways
        .iter()
        .map(|g| &g.object)
        .filter(|g| {
            !g.spec.selector.is_empty()
                && g.spec
                    .selector
                    .iter()
                    .all(|(k, v)| pod.labels.get(k) == Some(v))
        })
        .flat_map(|g| g.spec.servers.iter().map(move |s| (g, s)))
        .filter(|(_, s)| s.port.number == u32::from(port))
        .collect()
}

fn strip_ns(host: &str) -> &str {
    host.split_once('/').map(|(_, h)| h).unwrap_or(host)
}

/// Istio host matching: `*` matches all, `*.example.com` by suffix, otherwise exact; the
/// request's `:port` is ignored. A request without a Host header matches only `*`.
pub fn host_matches(pattern: &str, host: Option<&str>) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some(host) = host else { return false };
    let host = host
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host)
        .to_ascii_lowercase();
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(&suffix.to_ascii_lowercase()),
        None => host == pattern.to_ascii_lowercase(),
    }
}

pub(super) fn gateway_ref(vs: &VirtualService, reference: &str) -> String {
    match reference.split_once('/') {
        Some((".", name)) => format!("{}/{name}", vs.namespace()),
        Some((ns, name)) => format!("{ns}/{name}"),
        None => match reference.split_once('.') {
            Some((name, rest)) => format!("{}/{name}", rest.split('.').next().unwrap_or(rest)),
            None => format!("{}/{reference}", vs.namespace()),
        },
    }
}

/// The next hop for an HTTP request through the ingress gateway, or a 404.
fn route(
    ctx: &Ctx,
    pair: &Pair,
    gateway: &Gateway,
    server: &Server,
    row: &mut Row,
) -> Result<Option<Pair>, String> {
    let me = format!("{}/{}", gateway.namespace(), gateway.name());
    let request = pair.request.clone().unwrap_or_else(|| Request {
        method: "GET".into(),
        path: "/".into(),
        host: None,
    });
    let host = request.host.as_deref();
    let bound = ctx
        .cluster
        .virtual_services
        .iter()
        .map(|v| &v.object)
        .filter(|vs| {
            vs.spec.gateways.iter().any(|g| gateway_ref(vs, g) == me)
                && vs.spec.hosts.iter().any(|h| host_matches(h, host))
                && server.hosts.iter().any(|h| host_matches(strip_ns(h), host))
        });
    for vs in bound {
        for r in &vs.spec.http {
            if !(r.matches.is_empty()
                || r.matches
                    .iter()
                    .any(|m| http_match(m, &request, pair.port, &me, vs, &mut row.notes)))
            {
                continue;
            }
            let Some(dest) = r.route.first().map(|d| &d.destination) else {
                row.notes.push(format!("VirtualService {}: the matching route has no destination (redirect or direct response)", vs.name()));
                return Ok(None);
            };
            return backend(ctx, pair, vs, dest).map(Some);
        }
    }
    row.status = Status::conflict(
        format!(
            "no VirtualService route on {me} for {request}{}",
            if host.is_none() {
                " (no Host header)"
            } else {
                ""
            }
        ),
        Consequence::NotFound404,
    );
    Ok(None)
}

fn string_match(m: &StringMatch, value: &str, notes: &mut Vec<String>) -> bool {
    if m.regex.is_some() {
        notes.push("regex matches are not evaluated; the route is treated as not matching".into());
        return false;
    }
    m.exact.as_deref().is_none_or(|e| e == value)
        && m.prefix.as_deref().is_none_or(|p| value.starts_with(p))
}

fn http_match(
    m: &HttpMatchRequest,
    r: &Request,
    port: u16,
    me: &str,
    vs: &VirtualService,
    notes: &mut Vec<String>,
) -> bool {
    if !m.headers.is_empty()
        || !m.query_params.is_empty()
        || !m.without_headers.is_empty()
        || !m.source_labels.is_empty()
    {
        notes.push(format!(
            "VirtualService {}: header, query and source matches are not evaluated",
            vs.name()
        ));
        return false;
    }
    m.uri
        .as_ref()
        .is_none_or(|u| string_match(u, &r.path, notes))
        && m.method
            .as_ref()
            .is_none_or(|u| string_match(u, &r.method, notes))
        && m.port.is_none_or(|p| p == u32::from(port))
        && (m.gateways.is_empty() || m.gateways.iter().any(|g| gateway_ref(vs, g) == me))
}

/// The gateway -> Service pair for a route destination.
fn backend(
    ctx: &Ctx,
    pair: &Pair,
    vs: &VirtualService,
    dest: &crate::crd::networking::Destination,
) -> Result<Pair, String> {
    let fqdn = resolve_host(&dest.host, vs.namespace(), &ctx.mesh.domain);
    let suffix = format!(".svc.{}", ctx.mesh.domain);
    let (name, namespace) = fqdn
        .strip_suffix(&suffix)
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(|| {
            format!(
                "VirtualService {} routes to {fqdn}, which is not a cluster Service",
                vs.name()
            )
        })?;
    let svc = ctx.cluster.service(name, namespace).ok_or_else(|| {
        format!(
            "VirtualService {} routes to Service {namespace}/{name}, which is not in the manifests",
            vs.name()
        )
    })?;
    let port = match (dest.port, svc.ports.as_slice()) {
        (Some(p), _) => {
            u16::try_from(p.number).map_err(|_| "route port out of range".to_string())?
        }
        (None, [only]) => only.port,
        (None, _) => {
            return Err(format!(
                "VirtualService {} must name a port of {name}, which has several",
                vs.name()
            ));
        }
    };
    let pod = ctx
        .cluster
        .endpoints(svc)
        .next()
        .ok_or_else(|| format!("no workload behind Service {namespace}/{name}"))?;
    let target = svc.port(port).and_then(|p| pod.resolve_target(&p.target));
    Ok(Pair {
        client: pair.server.clone(),
        server: Peer::workload(&pod.name, &pod.namespace),
        service: name.to_string(),
        namespace: namespace.to_string(),
        port,
        subset: dest.subset.clone(),
        request: pair.request.clone(),
        origin: format!("via {} ({})", pair.server.name(), vs.name()),
        protocols: target
            .map(|t| [(t, Protocol::Http)].into_iter().collect())
            .unwrap_or_default(),
        onward: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matching() {
        assert!(host_matches("*", None));
        assert!(host_matches(
            "rabbit.meshproof.test",
            Some("Rabbit.meshproof.test:80")
        ));
        assert!(host_matches("*.meshproof.test", Some("a.meshproof.test")));
        assert!(!host_matches("a.meshproof.test", Some("b.meshproof.test")));
        assert!(!host_matches("a.meshproof.test", None));
    }
}
