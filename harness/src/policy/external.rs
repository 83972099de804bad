//! Destinations without a pod in the manifests: workloads outside the cluster, reached
//! through a ServiceEntry or not registered at all.
//!
//! Istio: a `MESH_EXTERNAL` ServiceEntry gets no auto mTLS (a DestinationRule may still
//! originate TLS); an unregistered destination goes to the PassthroughCluster under
//! `ALLOW_ANY` and to the BlackHoleCluster under `REGISTRY_ONLY` (the mesh option, or a
//! `Sidecar` resource's `outboundTrafficPolicy` for the client).

use super::connect::{self, ServerView};
use super::context::{Ctx, Endpoint};
use super::outbound::{self, Target};
use super::types::{AppProtocol, ClientTls, Consequence, MtlsMode, Pair, PeerSource, Row, Status};
use super::{MeshKind, protocol, sidecar_scope};
use crate::crd::networking::{Location, ServiceEntry};
use crate::scenario::Protocol;
use crate::wire::FlowClass;

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

fn entry<'a>(ctx: &'a Ctx, host: &str, client_ns: &str) -> Option<&'a ServiceEntry> {
    ctx.cluster
        .service_entries
        .iter()
        .map(|r| &r.object)
        .find(|se| {
            let visible = se.spec.export_to.is_empty()
                || se.spec.export_to.iter().any(|e| {
                    e == "*" || e == client_ns || (e == "." && se.namespace() == client_ns)
                });
            visible && se.spec.hosts.iter().any(|h| host_matches(h, host))
        })
}

/// Evaluates a pair whose server has no manifest: `pair.service` is the host dialled.
pub fn row(ctx: &Ctx, pair: &Pair, client: &Endpoint) -> Result<Row, String> {
    let client_ns = pair.client.namespace().unwrap_or_default();
    let labels = client
        .pod
        .as_ref()
        .map(|p| p.labels.clone())
        .unwrap_or_default();
    let scope = sidecar_scope::for_pod(&ctx.cluster, &ctx.mesh.root_namespace, client_ns, &labels);
    let mut hidden_note = None;
    // A ServiceEntry host outside the client Sidecar's egress hosts is not in its registry.
    let se = entry(ctx, &pair.service, client_ns).filter(|s| {
        let why = sidecar_scope::hidden(scope, client_ns, s.namespace(), &pair.service, pair.port);
        hidden_note = why.clone();
        why.is_none() || client.is_gateway
    });
    if se.is_none()
        && ctx
            .cluster
            .service(&pair.service, &pair.namespace)
            .is_some()
    {
        return Err(format!(
            "{} has a Service but no Deployment or StatefulSet",
            pair.server
        ));
    }
    let port = se.and_then(|s| {
        s.spec
            .ports
            .iter()
            .find(|p| p.number == u32::from(pair.port))
    });
    if se.is_some() && port.is_none() {
        return Err(format!(
            "ServiceEntry for {} has no port {}",
            pair.service, pair.port
        ));
    }
    let hint = pair.protocols.get(&pair.port).copied();
    let declared_tls =
        port.is_some_and(|p| matches!(p.protocol.to_ascii_uppercase().as_str(), "TLS" | "HTTPS"));
    let declared = declared_tls.then_some(AppProtocol::Tls);
    let proto = protocol::effective(
        declared,
        hint.or(port
            .filter(|p| p.protocol.eq_ignore_ascii_case("HTTP"))
            .map(|_| Protocol::Http)),
    );
    let app = protocol::app_class(declared, hint);
    let external = se.is_none_or(|s| s.spec.location == Location::MeshExternal);
    let t = Target {
        service: &pair.service,
        namespace: &pair.namespace,
        svc: None,
        external,
        port: pair.port,
        subset: &pair.subset,
        protocol: proto,
    };
    let out = outbound::build(ctx, &pair.client, client, &t, None);
    let wire_port = port
        .and_then(|p| {
            se.and_then(|s| s.spec.endpoints.first())
                .and_then(|e| e.ports.get(&p.name).copied())
                .or(p.target_port)
        })
        .and_then(|p| u16::try_from(p).ok())
        .or(Some(pair.port));
    let view = ServerView {
        intercepted: false,
        mode: MtlsMode::Disable,
        bypass: "outside the mesh".into(),
        expects_tls: app == FlowClass::Tls,
        server_first: false,
    };
    let mut status = match connect::accept(&out, app, &view) {
        Ok(()) => Status::Ok,
        Err((problem, _)) => Status::conflict(problem, connect::refused(&out, client, proto)),
    };
    let mut notes = out.notes.clone();
    notes.extend(hidden_note);
    if se.is_none() && ctx.mesh.kind == MeshKind::Istio && out.intercepted {
        if sidecar_scope::registry_only(scope, ctx.mesh.registry_only) {
            status = Status::conflict(
                format!(
                    "{} is not in the registry (no ServiceEntry) and outbound traffic is REGISTRY_ONLY",
                    pair.service
                ),
                Consequence::Blocked,
            );
        } else {
            notes.push(
                "not in the registry: sent through the PassthroughCluster (ALLOW_ANY)".into(),
            );
        }
    }
    if let Some(why) = &out.undecided {
        status = Status::cannot_predict_wire(why.clone());
    }
    Ok(Row {
        client: pair.client.clone(),
        server: pair.server.clone(),
        service: pair.service.clone(),
        namespace: pair.namespace.clone(),
        port: pair.port,
        target_port: wire_port,
        wire_port,
        protocol: proto,
        request: pair.request.clone(),
        server_mode: MtlsMode::Disable,
        server_source: match se {
            Some(s) => PeerSource::NotIntercepted {
                reason: format!("ServiceEntry {}/{}", s.name(), s.namespace()),
            },
            None => PeerSource::NotIntercepted {
                reason: "outside the mesh".into(),
            },
        },
        client_tls: if out.intercepted {
            out.tls
        } else {
            ClientTls::Disable
        },
        client_tls_source: out.tls_source.clone(),
        client_sidecar: client.injection.injected,
        server_sidecar: false,
        class: connect::class_of(&out, app),
        status,
        origins: vec![pair.origin.clone()],
        notes: std::mem::take(&mut notes),
    })
}
