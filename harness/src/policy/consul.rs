//! Consul Connect: transparent proxy, explicit upstreams and intentions.
//!
//! consul-k8s semantics (v2.0): an injected pod's Envoy serves Connect mTLS on its public
//! listener, port 20000, where intentions are enforced.
//! - With transparent proxy, outbound traffic is redirected to Envoy, and inbound traffic
//!   to the public listener (which accepts only mTLS).
//! - Without it, the application reaches upstreams through explicit listeners on
//!   `localhost:<port>` (`consul.hashicorp.com/connect-service-upstreams`), and nothing
//!   redirects: a call through kube DNS goes straight to the pod's port in plaintext,
//!   bypassing intentions (the seed's finding).
//! - Intentions: an exact source beats `*`, an exact destination beats `*`; `permissions`
//!   decide per request; otherwise the default applies (allow when ACLs are off).

use super::authz::{Decision, string_match};
use super::cluster::PodInfo;
use super::context::{Ctx, Endpoint};
use super::injection::{self, port_list};
use super::protocol;
use super::types::{
    AppProtocol, ClientTls, Consequence, MtlsMode, Pair, PeerSource, Request, Row, Status,
    TlsSource,
};
use crate::crd::consul::{
    IntentionAction, IntentionHttpPermission, ServiceIntentions, annotations,
};
use crate::wire::FlowClass;

/// Envoy's public listener in a Consul-injected pod.
pub const PUBLIC_LISTENER_PORT: u16 = 20000;

/// The Consul service name of a pod: the `connect-service` annotation, else the first
/// Service selecting it, else the workload name.
fn service_name(ctx: &Ctx, pod: &PodInfo) -> String {
    if let Some(name) = pod.annotations.get(annotations::SERVICE) {
        return name.clone();
    }
    ctx.cluster
        .services
        .values()
        .find(|s| s.selects(pod))
        .map(|s| s.name.clone())
        .unwrap_or_else(|| pod.name.clone())
}

/// `connect-service-upstreams`: the upstream service listening on `localhost:<port>`.
fn upstream(pod: &PodInfo, port: u16) -> Option<String> {
    pod.annotations
        .get(annotations::UPSTREAMS)?
        .split(',')
        .find_map(|entry| {
            let mut parts = entry.trim().split(':');
            let name = parts.next()?.split('.').next()?.to_string();
            (parts.next()?.trim().parse::<u16>().ok()? == port).then_some(name)
        })
}

fn excluded(pod: &PodInfo, key: &str, port: u16) -> bool {
    pod.annotations
        .get(key)
        .is_some_and(|v| port_list(key, v, &mut Vec::new()).contains(&port))
}

/// What every Consul row of one pair shares.
struct Side<'a> {
    pair: &'a Pair,
    client: &'a Endpoint,
    server: &'a Endpoint,
    target: Option<u16>,
    proto: AppProtocol,
}

/// Evaluates a pair under Consul.
pub fn row(
    ctx: &Ctx,
    pair: &Pair,
    client: &Endpoint,
    server: &Endpoint,
    pod: &PodInfo,
) -> Result<Row, String> {
    let d = ctx.mesh.consul;
    let server_tproxy = server.injection.injected
        && injection::consul_transparent_proxy(
            &ctx.cluster.namespace_labels(&pod.namespace),
            pod,
            d,
        );
    let client_tproxy = client.injection.injected
        && client.pod.as_ref().is_some_and(|p| {
            injection::consul_transparent_proxy(&ctx.cluster.namespace_labels(&p.namespace), p, d)
        });
    let svc = ctx.cluster.service_of(pod);
    let (target, declared) = match (
        pair.service.as_str(),
        ctx.cluster.service(&pair.service, &pair.namespace),
    ) {
        ("localhost", _) => (
            svc.and_then(|s| s.ports.first())
                .and_then(|p| pod.resolve_target(&p.target)),
            None,
        ),
        (_, Some(s)) => {
            let port = s
                .port(pair.port)
                .ok_or_else(|| format!("Service {} has no port {}", s.name, pair.port))?;
            (pod.resolve_target(&port.target), protocol::declared(port))
        }
        (name, None) => {
            return Err(format!(
                "Service {}/{name} is not in the manifests",
                pair.namespace
            ));
        }
    };
    let hint = target.and_then(|t| pair.protocols.get(&t).copied());
    let proto = protocol::effective(declared, hint);
    let app = protocol::app_class(declared, hint);
    let side = Side {
        pair,
        client,
        server,
        target,
        proto,
    };
    let mut notes = Vec::new();
    let (via_mesh, detail) = if pair.service == "localhost" {
        match client.pod.as_ref().and_then(|p| upstream(p, pair.port)) {
            Some(name) => (true, format!("upstream {name}:{}", pair.port)),
            None => {
                return Ok(base(
                    &side,
                    app,
                    notes,
                    Status::conflict(
                        format!(
                            "nothing listens on localhost:{} in the client pod: no such upstream annotation",
                            pair.port
                        ),
                        Consequence::Refused,
                    ),
                ));
            }
        }
    } else if client_tproxy
        && !client
            .pod
            .as_ref()
            .is_some_and(|p| excluded(p, annotations::EXCLUDE_OUTBOUND, pair.port))
    {
        (true, "transparent proxy".to_string())
    } else {
        (
            false,
            if client.injection.injected {
                "kube DNS with transparent proxy off: dialled directly"
            } else {
                "no Consul proxy"
            }
            .to_string(),
        )
    };
    if !via_mesh {
        let redirected =
            server_tproxy && target.is_none_or(|t| !excluded(pod, annotations::EXCLUDE_INBOUND, t));
        let status = if redirected {
            Status::conflict(
                "transparent proxy redirects the server's inbound traffic to its Connect listener, which accepts only mTLS",
                Consequence::Reset,
            )
        } else {
            if server.injection.injected {
                notes.push(
                    "the application port is reached directly: intentions are bypassed".into(),
                );
            }
            Status::Ok
        };
        let mut row = base(&side, app, notes, status);
        row.client_tls_source = TlsSource::Consul { detail };
        row.server_mode = if redirected {
            MtlsMode::Strict
        } else {
            MtlsMode::Permissive
        };
        row.server_source = server_source(server, server_tproxy);
        return Ok(row);
    }
    let status = if !server.injection.injected {
        Status::conflict(
            "the client sends Connect mTLS but the server has no Consul proxy",
            Consequence::Reset,
        )
    } else {
        let dest = service_name(ctx, pod);
        let src = client
            .pod
            .as_ref()
            .map(|p| service_name(ctx, p))
            .unwrap_or_default();
        match intention(ctx, &dest, &src, pair.request.as_ref()) {
            Decision::Allow => Status::Ok,
            Decision::Deny { by } => Status::conflict(
                format!("denied by {by}"),
                if proto.is_http() {
                    Consequence::Forbidden403
                } else {
                    Consequence::RbacClosed
                },
            ),
            Decision::Depends { why } => {
                notes.push(format!("intentions depend on the request: {why}"));
                Status::Ok
            }
        }
    };
    let mut row = base(&side, FlowClass::ConsulMtls, notes, status);
    row.wire_port = Some(PUBLIC_LISTENER_PORT);
    row.client_tls = ClientTls::ConsulMutual;
    row.client_tls_source = TlsSource::Consul { detail };
    row.server_mode = MtlsMode::Strict;
    row.server_source = PeerSource::Consul {
        detail: "public listener 20000 accepts only Connect mTLS".into(),
    };
    Ok(row)
}

fn server_source(server: &Endpoint, tproxy: bool) -> PeerSource {
    let detail = match (server.injection.injected, tproxy) {
        (false, _) => {
            return PeerSource::NotIntercepted {
                reason: "no Consul proxy".into(),
            };
        }
        (true, true) => "transparent proxy on: inbound redirected to the Connect listener",
        (true, false) => "transparent proxy off: the application port is reachable directly",
    };
    PeerSource::Consul {
        detail: detail.into(),
    }
}

fn base(side: &Side, class: FlowClass, notes: Vec<String>, status: Status) -> Row {
    let Side {
        pair,
        client,
        server,
        target,
        proto,
    } = *side;
    Row {
        client: pair.client.clone(),
        server: pair.server.clone(),
        service: pair.service.clone(),
        namespace: pair.namespace.clone(),
        port: pair.port,
        target_port: target,
        wire_port: target,
        protocol: proto,
        request: pair.request.clone(),
        server_mode: MtlsMode::Permissive,
        server_source: PeerSource::NotIntercepted {
            reason: "no Consul proxy".into(),
        },
        client_tls: ClientTls::Disable,
        client_tls_source: TlsSource::Consul {
            detail: String::new(),
        },
        client_sidecar: client.injection.injected,
        server_sidecar: server.injection.injected,
        class,
        status,
        origins: vec![pair.origin.clone()],
        notes,
    }
}

/// Decides an intention for `src` calling `dest`.
pub fn intention(ctx: &Ctx, dest: &str, src: &str, request: Option<&Request>) -> Decision {
    let all = || ctx.cluster.intentions.iter().map(|r| &r.object);
    let order: Vec<(&ServiceIntentions, bool)> = all()
        .filter(|i| i.spec.destination.name == dest)
        .map(|i| (i, true))
        .chain(
            all()
                .filter(|i| i.spec.destination.name == "*")
                .map(|i| (i, false)),
        )
        .collect();
    for wildcard_src in [false, true] {
        for (i, _) in &order {
            let wanted = if wildcard_src { "*" } else { src };
            let Some(source) = i.spec.sources.iter().find(|s| s.name == wanted) else {
                continue;
            };
            let by = format!(
                "ServiceIntentions {}/{} (source {wanted})",
                i.name(),
                i.namespace()
            );
            if let Some(action) = source.action {
                return verdict(action, by);
            }
            for p in &source.permissions {
                match (p.http.as_ref(), request) {
                    (None, _) => return verdict(p.action, by),
                    (Some(_), None) => {
                        return Decision::Depends {
                            why: format!("{by} has HTTP permissions"),
                        };
                    }
                    (Some(h), Some(r)) if http_permission(h, r) => return verdict(p.action, by),
                    _ => {}
                }
            }
        }
    }
    if ctx.mesh.consul_default_allow {
        Decision::Allow
    } else {
        Decision::Deny {
            by: "the default intention policy (deny)".into(),
        }
    }
}

fn verdict(action: IntentionAction, by: String) -> Decision {
    match action {
        IntentionAction::Allow => Decision::Allow,
        IntentionAction::Deny => Decision::Deny { by },
    }
}

fn http_permission(h: &IntentionHttpPermission, r: &Request) -> bool {
    (h.path_exact.is_empty() || h.path_exact == r.path)
        && (h.path_prefix.is_empty() || r.path.starts_with(&h.path_prefix))
        && (h.methods.is_empty() || h.methods.iter().any(|m| string_match(m, &r.method)))
        && h.path_regex.is_empty()
        && h.header.is_empty()
}
