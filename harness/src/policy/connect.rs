//! One pair under Istio (or without a mesh): the client's outbound side meets the
//! server's inbound side, and the row says what the wire shows and whether it works.
//!
//! The class on the wire is what the client side sends (an Istio ClientHello even when
//! the server then refuses it); the status is whether the server side accepts it, and
//! then whether authorization lets it through.

use super::authz::{self, Decision, Facts};
use super::cluster::PodInfo;
use super::context::{Ctx, Endpoint};
use super::inbound;
use super::outbound::{self, OutboundPolicy, Target};
use super::types::{AppProtocol, ClientTls, Consequence, MtlsMode, Pair, PeerSource, Row, Status};
use super::{mesh_routes, protocol};
use crate::wire::FlowClass;

/// The server side of one port, as the acceptance check needs it.
pub struct ServerView {
    /// A proxy intercepts the port.
    pub intercepted: bool,
    /// Its mode (STRICT for a gateway server that requires Istio mTLS).
    pub mode: MtlsMode,
    /// Why the port is not intercepted, when it is not.
    pub bypass: String,
    /// The application (or the terminating gateway) expects TLS.
    pub expects_tls: bool,
    /// The application speaks first.
    pub server_first: bool,
}

/// What the client side puts on the wire.
pub fn class_of(out: &OutboundPolicy, app: FlowClass) -> FlowClass {
    match (out.intercepted, out.tls) {
        (true, ClientTls::IstioMutual) => FlowClass::IstioMtls,
        (true, ClientTls::Simple | ClientTls::Mutual) => FlowClass::Tls,
        (true, ClientTls::ConsulMutual) => FlowClass::ConsulMtls,
        _ => app,
    }
}

/// Whether the server side accepts what the client sends; `Err` carries the problem and
/// whether it stalls rather than fails.
pub fn accept(out: &OutboundPolicy, app: FlowClass, s: &ServerView) -> Result<(), (String, bool)> {
    let sends = if out.intercepted {
        out.tls
    } else {
        ClientTls::Disable
    };
    let sends_tls = matches!(sends, ClientTls::Simple | ClientTls::Mutual) || app == FlowClass::Tls;
    let what = match sends {
        ClientTls::IstioMutual => "Istio mTLS",
        ClientTls::Simple | ClientTls::Mutual => "TLS it originates",
        _ if app == FlowClass::Tls => "its application's own TLS",
        _ => "plaintext",
    };
    let fail = |m: String| Err((m, false));
    if !s.intercepted {
        return match sends {
            ClientTls::IstioMutual => fail(format!(
                "the client sends Istio mTLS but nothing terminates it on the server ({})",
                s.bypass
            )),
            _ if sends_tls != s.expects_tls => fail(format!(
                "the client sends {what}, which the server does not speak"
            )),
            _ => Ok(()),
        };
    }
    match (s.mode, sends) {
        (MtlsMode::Strict | MtlsMode::Permissive, ClientTls::IstioMutual) => Ok(()),
        (MtlsMode::Strict, _) => fail(format!("the server is STRICT and the client sends {what}")),
        (MtlsMode::Disable, ClientTls::IstioMutual) => fail(
            "the client sends Istio mTLS to a port whose mTLS is DISABLE: the application receives TLS bytes".into(),
        ),
        _ if sends_tls != s.expects_tls => fail(format!("the client sends {what}, which the server does not speak")),
        (MtlsMode::Permissive, _) if s.server_first => Err((
            "a server-first protocol under PERMISSIVE with a plaintext client: the sidecar waits for the client to speak first".into(),
            true,
        )),
        _ => Ok(()),
    }
}

/// The consequence of a refused connection, as the client's application sees it.
pub fn refused(out: &OutboundPolicy, client: &Endpoint, proto: AppProtocol) -> Consequence {
    if client.is_gateway || (out.intercepted && proto.is_http()) {
        Consequence::Unavailable503
    } else {
        Consequence::Reset
    }
}

/// The outbound side through the client's mesh VirtualService, if one routes the Service
/// ([`mesh_routes::routing`]): the subset the connection takes decides subset-level TLS.
/// When it can take several subsets whose TLS differs, or leaves the Service, the second
/// value says why the wire cannot be predicted.
fn routed_outbound(
    ctx: &Ctx,
    pair: &Pair,
    client: &Endpoint,
    t: &Target,
    pod: &PodInfo,
) -> (OutboundPolicy, Option<String>) {
    let plain = || outbound::build(ctx, &pair.client, client, t, Some(pod));
    let routable = ctx.mesh.kind == super::MeshKind::Istio
        && client.injection.injected
        && !client.is_gateway
        && pair.subset.is_empty();
    let Some(labels) = client.pod.as_ref().map(|p| &p.labels).filter(|_| routable) else {
        return (plain(), None);
    };
    let who = mesh_routes::Client {
        namespace: pair.client.namespace().unwrap_or_default(),
        labels,
        request: pair.request.as_ref(),
        http: t.protocol.is_http(),
    };
    let routing = mesh_routes::routing(ctx, &who, &ctx.fqdn(t.service, t.namespace), t.port);
    let by = routing.by.clone().unwrap_or_default();
    let outs: Vec<OutboundPolicy> = routing
        .subsets
        .iter()
        .map(|subset| {
            outbound::build(
                ctx,
                &pair.client,
                client,
                &Target {
                    subset: subset.as_str(),
                    ..*t
                },
                Some(pod),
            )
        })
        .collect();
    let mut out = outs[0].clone();
    if routing.subsets.len() > 1 || !routing.subsets[0].is_empty() {
        out.notes.push(format!(
            "VirtualService {by} routes this traffic to subset(s) {}",
            routing.subsets.join(", ")
        ));
    }
    let differ = outs
        .iter()
        .any(|o| (o.intercepted, o.tls) != (out.intercepted, out.tls));
    let why = routing.elsewhere.or_else(|| {
        differ.then(|| {
            let modes: Vec<String> = routing
                .subsets
                .iter()
                .zip(&outs)
                .map(|(s, o)| format!("{s}: {}", o.tls.as_str()))
                .collect();
            format!(
                "VirtualService {by} can route this connection to subsets whose TLS differs ({})",
                modes.join(", ")
            )
        })
    });
    (out, why)
}

/// Evaluates a pair whose server is a workload with a Service, under Istio or no mesh.
pub fn workload_row(
    ctx: &Ctx,
    pair: &Pair,
    client: &Endpoint,
    server: &Endpoint,
    pod: &PodInfo,
) -> Result<Row, String> {
    let svc = ctx
        .cluster
        .service(&pair.service, &pair.namespace)
        .ok_or_else(|| {
            format!(
                "Service {}/{} is not in the manifests",
                pair.namespace, pair.service
            )
        })?;
    let svc_port = svc.port(pair.port).ok_or_else(|| {
        format!(
            "Service {}/{} has no port {}",
            pair.namespace, pair.service, pair.port
        )
    })?;
    let mut notes = Vec::new();
    if !svc.selects(pod) {
        notes.push(format!(
            "Service {} does not select the pods of {}",
            svc.name, pod.name
        ));
    }
    let target = pod.resolve_target(&svc_port.target);
    if target.is_none() {
        notes.push(format!(
            "targetPort {:?} of Service {} names no container port of {}",
            svc_port.target, svc.name, pod.name
        ));
    }
    let hint = target.and_then(|t| pair.protocols.get(&t).copied());
    let declared = protocol::declared(svc_port);
    let proto = protocol::effective(declared, hint);
    let app = protocol::app_class(declared, hint);
    let t = Target {
        service: &pair.service,
        namespace: &pair.namespace,
        svc: Some(svc),
        external: false,
        port: pair.port,
        subset: &pair.subset,
        protocol: proto,
    };
    let (out, routed) = routed_outbound(ctx, pair, client, &t, pod);
    notes.extend(out.notes.iter().cloned());
    let port = inbound::port_policy(ctx, pod, target.unwrap_or(pair.port), proto, &mut notes);
    let intercepted =
        server.injection.injected && target.is_none_or(|p| server.interception.inbound(p));
    let bypass = if server.injection.injected {
        format!("port {} excluded", port.port)
    } else {
        "no sidecar".to_string()
    };
    let view = ServerView {
        intercepted,
        mode: port.mtls,
        bypass: bypass.clone(),
        expects_tls: app == FlowClass::Tls,
        server_first: protocol::server_first(hint),
    };
    if declared.is_none() && protocol::server_first(hint) && (out.intercepted || intercepted) {
        notes.push(format!(
            "Service port {} declares no protocol for a server-first protocol: protocol sniffing waits for the client; name it tcp-*",
            pair.port
        ));
    }
    let class = class_of(&out, app);
    let mut status = match accept(&out, app, &view) {
        Ok(()) => Status::Ok,
        Err((problem, true)) => Status::conflict(problem, Consequence::Stall),
        Err((problem, false)) => Status::conflict(problem, refused(&out, client, proto)),
    };
    if let Some(why) = &out.blocked {
        status = Status::conflict(why.clone(), Consequence::Blocked);
    }
    if let Some(why) = out.undecided.as_ref().or(routed.as_ref()) {
        status = Status::cannot_predict_wire(why.clone());
    }
    if status.is_ok() && intercepted {
        let principal = (class == FlowClass::IstioMtls)
            .then(|| client.pod.as_ref().map(|p| ctx.principal(p)))
            .flatten();
        let facts = Facts {
            principal,
            port: port.port,
            request: pair.request.as_ref(),
        };
        match authz::decide(&port.authz, &facts) {
            Decision::Allow => {}
            Decision::Deny { by } => {
                let c = if proto.is_http() {
                    Consequence::Forbidden403
                } else {
                    Consequence::RbacClosed
                };
                status = Status::conflict(format!("denied by {by}"), c);
            }
            Decision::Depends { why } => status = Status::cannot_predict(why),
        }
    }
    notes.sort();
    notes.dedup();
    Ok(Row {
        client: pair.client.clone(),
        server: pair.server.clone(),
        service: pair.service.clone(),
        namespace: pair.namespace.clone(),
        port: pair.port,
        target_port: target,
        wire_port: target,
        protocol: proto,
        request: pair.request.clone(),
        server_mode: port.mtls,
        server_source: if intercepted {
            port.mtls_source
        } else {
            PeerSource::NotIntercepted { reason: bypass }
        },
        client_tls: if out.intercepted {
            out.tls
        } else {
            ClientTls::Disable
        },
        client_tls_source: out.tls_source.clone(),
        client_sidecar: client.injection.injected,
        server_sidecar: server.injection.injected,
        class,
        status,
        origins: vec![pair.origin.clone()],
        notes,
    })
}
