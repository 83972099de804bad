//! The mesh policy model: from a scenario's manifests to the wire it should produce.
//!
//! A pure library: manifests in, matrix out, no cluster. For every pair a scenario
//! declares (a workload's `calls`, a probe's `from` -> `to`), [`evaluate`] decides what
//! the client's proxy sends, what the server's proxy accepts, what authorization says,
//! and so the class of the flow on the wire and whether the connection works
//! ([`Row`]). Semantics follow Istio 1.30 (checked against its source) and consul-k8s 2.0;
//! each submodule names the upstream code it mirrors.
//!
//! The scenario runner compares [`expected_flows`] with a scenario's own wire
//! expectations; the Docker lab programs Envoy from [`inbound`] and [`outbound`].

mod authz;
pub(crate) mod cluster;
mod connect;
mod consul;
pub(crate) mod context;
mod destination;
pub(crate) mod egress;
mod external;
mod gateway;
pub(crate) mod inbound;
mod inject_webhook;
mod injection;
mod matrix;
mod mesh_routes;
pub(crate) mod outbound;
mod pairs;
mod patterns;
mod peer;
pub(crate) mod protocol;
mod sidecar_scope;
mod table;
mod types;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use authz::AppliedPolicy;
pub use inbound::{InboundPolicy, InboundPort};
pub use injection::ConsulDefaults;
pub use matrix::{Matrix, evaluate, expected_flows};
pub use outbound::{EndpointTls, OutboundPolicy};
pub use pairs::creation_order;
pub use table::render as render_table;
pub use types::{
    AppProtocol, ClientTls, Consequence, ExpectedFlow, MtlsMode, Pair, Peer, PeerSource, Request,
    Row, Status, TlsSource, Undecided,
};

use crate::crd::CrdError;
use crate::manifest::Document;
use crate::scenario::{MeshName, OutboundPolicy as TrafficPolicy, Requirements, Scenario};

/// Errors from the policy model.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// `--phase` names no phase of the scenario.
    #[error("scenario {scenario} has no phase `{phase}`; phases: {}", known.join(", "))]
    UnknownPhase {
        /// The scenario.
        scenario: String,
        /// The phase asked for.
        phase: String,
        /// The phases that exist.
        known: Vec<String>,
    },
    /// Manifests that do not parse into their types; Istio would reject them too.
    #[error("{} manifest problem{}:\n{}", errors.len(), if errors.len() == 1 { "" } else { "s" }, list(errors))]
    Manifests {
        /// Every problem, located.
        errors: Vec<CrdError>,
    },
    /// No Deployment, StatefulSet, DaemonSet or Pod of that name.
    #[error("no workload {name} in namespace {namespace} in the manifests")]
    UnknownWorkload {
        /// The name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// No Service (or ServiceEntry host) of that name.
    #[error("no Service {name} in namespace {namespace} in the manifests")]
    UnknownService {
        /// The name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// The Service has no such port.
    #[error("Service {service} has no port {port}")]
    UnknownPort {
        /// The Service.
        service: String,
        /// The port.
        port: u16,
    },
}

fn list(errors: &[CrdError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which mesh the model applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeshKind {
    /// Plain Kubernetes: no proxies anywhere.
    None,
    /// Istio with sidecars.
    Istio,
    /// Consul Connect.
    Consul,
}

/// How the mesh is installed, as far as the model cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeshOptions {
    /// The mesh.
    pub kind: MeshKind,
    /// Istio's root namespace (mesh-wide policies live here).
    pub root_namespace: String,
    /// The SPIFFE trust domain.
    pub trust_domain: String,
    /// The cluster DNS domain.
    pub domain: String,
    /// `meshConfig.enableAutoMtls` (on by default).
    pub auto_mtls: bool,
    /// `meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY`.
    pub registry_only: bool,
    /// consul-k8s install defaults.
    pub consul: ConsulDefaults,
    /// Consul's default intention: allow (ACLs off, the chart default) or deny.
    pub consul_default_allow: bool,
}

impl MeshOptions {
    /// Istio's defaults.
    pub fn istio() -> MeshOptions {
        MeshOptions {
            kind: MeshKind::Istio,
            ..MeshOptions::none()
        }
    }

    /// Consul with the chart's defaults: injection opt-in per pod, transparent proxy on,
    /// ACLs off (intentions default to allow).
    pub fn consul() -> MeshOptions {
        MeshOptions {
            kind: MeshKind::Consul,
            ..MeshOptions::none()
        }
    }

    /// No mesh.
    pub fn none() -> MeshOptions {
        MeshOptions {
            kind: MeshKind::None,
            root_namespace: "istio-system".into(),
            trust_domain: "cluster.local".into(),
            domain: "cluster.local".into(),
            auto_mtls: true,
            registry_only: false,
            consul: ConsulDefaults {
                inject: false,
                transparent_proxy: true,
            },
            consul_default_allow: true,
        }
    }

    /// The options a scenario's `requires` asks for.
    pub fn for_requirements(r: &Requirements) -> MeshOptions {
        let Some(mesh) = &r.mesh else {
            return MeshOptions::none();
        };
        let mut o = match mesh.name {
            MeshName::Istio => MeshOptions::istio(),
            MeshName::Consul => MeshOptions::consul(),
        };
        o.registry_only = mesh.outbound_traffic_policy == TrafficPolicy::RegistryOnly;
        if let Some(tproxy) = mesh.transparent_proxy {
            o.consul.transparent_proxy = tproxy;
        }
        o
    }
}

impl Matrix {
    /// The matrix for a scenario after `phase` (after the last phase when `None`): the
    /// objects that exist then, every workload call, and the probes of that phase.
    pub fn for_scenario(s: &Scenario, phase: Option<&str>) -> Result<Matrix, PolicyError> {
        check_phase(s, phase)?;
        let docs = creation_order(s, phase);
        let errors = cluster::Cluster::new(&docs).problems;
        if !errors.is_empty() {
            return Err(PolicyError::Manifests { errors });
        }
        let mesh = MeshOptions::for_requirements(&s.file.requires);
        let pairs = pairs::from_scenario(s, phase, &mesh);
        Ok(evaluate(&docs, &pairs, &mesh))
    }
}

fn check_phase(s: &Scenario, phase: Option<&str>) -> Result<(), PolicyError> {
    match phase {
        Some(p) if s.phase(p).is_none() => Err(PolicyError::UnknownPhase {
            scenario: s.name().to_string(),
            phase: p.to_string(),
            known: s.file.phases.iter().map(|p| p.name.value.clone()).collect(),
        }),
        _ => Ok(()),
    }
}

/// A Service by name and namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRef<'a> {
    /// The Service's name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
}

/// The inbound side of a workload: per container port, interception, mTLS mode and
/// authorization. `docs` are in creation order.
pub fn inbound(
    docs: &[Document],
    workload: &Peer,
    mesh: &MeshOptions,
) -> Result<InboundPolicy, PolicyError> {
    let ctx = context::Ctx::new(docs, mesh);
    inbound_in(&ctx, workload, &Default::default())
}

fn inbound_in(
    ctx: &context::Ctx,
    workload: &Peer,
    hints: &std::collections::BTreeMap<u16, crate::scenario::Protocol>,
) -> Result<InboundPolicy, PolicyError> {
    let unknown = || PolicyError::UnknownWorkload {
        name: workload.name().to_string(),
        namespace: workload.namespace().unwrap_or_default().to_string(),
    };
    let endpoint = ctx.endpoint(workload).ok_or_else(unknown)?;
    let pod = endpoint.pod.ok_or_else(unknown)?;
    Ok(inbound::build(ctx, &pod, hints))
}

/// The outbound side of a client for one Service port: whether it is intercepted, the TLS
/// mode and its source, SNI, ALPN and SANs. `docs` are in creation order.
pub fn outbound(
    docs: &[Document],
    client: &Peer,
    service: ServiceRef,
    port: u16,
    mesh: &MeshOptions,
) -> Result<OutboundPolicy, PolicyError> {
    let ctx = context::Ctx::new(docs, mesh);
    outbound_in(&ctx, client, service, port, None)
}

fn outbound_in(
    ctx: &context::Ctx,
    client: &Peer,
    service: ServiceRef,
    port: u16,
    hint: Option<crate::scenario::Protocol>,
) -> Result<OutboundPolicy, PolicyError> {
    let endpoint = ctx
        .endpoint(client)
        .ok_or_else(|| PolicyError::UnknownWorkload {
            name: client.name().to_string(),
            namespace: client.namespace().unwrap_or_default().to_string(),
        })?;
    let svc = ctx
        .cluster
        .service(service.name, service.namespace)
        .ok_or_else(|| PolicyError::UnknownService {
            name: service.name.to_string(),
            namespace: service.namespace.to_string(),
        })?;
    let svc_port = svc.port(port).ok_or_else(|| PolicyError::UnknownPort {
        service: service.name.to_string(),
        port,
    })?;
    let t = outbound::Target {
        service: service.name,
        namespace: service.namespace,
        svc: Some(svc),
        external: false,
        port,
        subset: "",
        protocol: protocol::effective(protocol::declared(svc_port), hint),
    };
    Ok(outbound::build(ctx, client, &endpoint, &t, None))
}

/// [`inbound`] for a scenario workload after `phase`, with the protocols the scenario
/// says each port speaks.
pub fn inbound_for_scenario(
    s: &Scenario,
    phase: Option<&str>,
    workload: &str,
) -> Result<InboundPolicy, PolicyError> {
    check_phase(s, phase)?;
    let w = s
        .workload(workload)
        .ok_or_else(|| PolicyError::UnknownWorkload {
            name: workload.to_string(),
            namespace: "-".into(),
        })?;
    let ctx = context::Ctx::new(
        &creation_order(s, phase),
        &MeshOptions::for_requirements(&s.file.requires),
    );
    let hints = w.ports.iter().map(|p| (p.port, p.protocol)).collect();
    inbound_in(&ctx, &Peer::workload(&w.name.value, &w.namespace), &hints)
}

/// [`outbound`] for a scenario client (a workload or `ingress-gateway`) after `phase`.
pub fn outbound_for_scenario(
    s: &Scenario,
    phase: Option<&str>,
    client: &str,
    service: ServiceRef,
    port: u16,
) -> Result<OutboundPolicy, PolicyError> {
    check_phase(s, phase)?;
    let peer = match client {
        crate::scenario::peers::INGRESS_GATEWAY => Peer::IngressGateway,
        crate::scenario::peers::EGRESS_GATEWAY => Peer::EgressGateway,
        name => {
            let w = s
                .workload(name)
                .ok_or_else(|| PolicyError::UnknownWorkload {
                    name: name.to_string(),
                    namespace: "-".into(),
                })?;
            Peer::workload(&w.name.value, &w.namespace)
        }
    };
    let ctx = context::Ctx::new(
        &creation_order(s, phase),
        &MeshOptions::for_requirements(&s.file.requires),
    );
    let hint = s
        .file
        .workloads
        .iter()
        .filter(|w| w.namespace == service.namespace)
        .find_map(|w| w.ports.iter().find(|p| p.port == port).map(|p| p.protocol));
    outbound_in(&ctx, &peer, service, port, hint)
}
