//! The server side: what a workload's sidecar does with each inbound port.
//!
//! [`InboundPolicy`] is complete enough to program an Envoy sidecar as Istio would:
//! per container port, whether it is intercepted, the mTLS mode (STRICT: mTLS only;
//! PERMISSIVE: TLS inspector choosing between Istio mTLS and plaintext; DISABLE: plain
//! TCP proxy), the protocol (HTTP filters or TCP) and the authorization rules.

use std::collections::BTreeMap;

use serde::Serialize;

use super::authz::{self, AppliedPolicy};
use super::cluster::PodInfo;
use super::context::Ctx;
use super::peer;
use super::protocol;
use super::types::{AppProtocol, MtlsMode, Peer, PeerSource};
use crate::scenario::Protocol;

/// A workload's inbound side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundPolicy {
    /// The workload.
    pub workload: Peer,
    /// Its ServiceAccount.
    pub service_account: String,
    /// Its SPIFFE identity, `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
    pub spiffe_id: String,
    /// A mesh proxy runs in the pod.
    pub sidecar: bool,
    /// Why (or why not).
    pub sidecar_reason: String,
    /// Container ports traffic reaches without passing the proxy.
    pub excluded_ports: Vec<u16>,
    /// Every known container port.
    pub ports: Vec<InboundPort>,
    /// Settings that exist but do not count, and why.
    pub notes: Vec<String>,
}

/// One container port of a workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundPort {
    /// The container port.
    pub port: u16,
    /// Its name in the pod spec.
    pub name: Option<String>,
    /// How the proxy handles it.
    pub protocol: AppProtocol,
    /// The proxy sees this port's traffic.
    pub intercepted: bool,
    /// The effective PeerAuthentication mode.
    pub mtls: MtlsMode,
    /// Where it came from.
    pub mtls_source: PeerSource,
    /// Authorization for this port, in CUSTOM/DENY/ALLOW evaluation order of creation.
    pub authz: Vec<AppliedPolicy>,
}

impl InboundPolicy {
    /// The entry for a container port.
    pub fn port(&self, port: u16) -> Option<&InboundPort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// The protocol Istio declares for a container port, from any Service targeting it.
pub fn declared_for(ctx: &Ctx, pod: &PodInfo, port: u16) -> Option<AppProtocol> {
    ctx.cluster
        .services
        .values()
        .filter(|s| s.selects(pod))
        .flat_map(|s| s.ports.iter())
        .find(|p| pod.resolve_target(&p.target) == Some(port))
        .and_then(protocol::declared)
}

/// Builds the inbound side of a pod; `hints` are the protocols the scenario says the
/// application speaks per container port.
pub fn build(ctx: &Ctx, pod: &PodInfo, hints: &BTreeMap<u16, Protocol>) -> InboundPolicy {
    let (injection, interception) = ctx.proxy(pod);
    let mut ports: Vec<(Option<String>, u16)> = pod.ports.clone();
    for svc in ctx.cluster.services.values().filter(|s| s.selects(pod)) {
        for p in &svc.ports {
            if let Some(target) = pod.resolve_target(&p.target)
                && !ports.iter().any(|(_, n)| *n == target)
            {
                ports.push((None, target));
            }
        }
    }
    for port in hints.keys() {
        if !ports.iter().any(|(_, n)| n == port) {
            ports.push((None, *port));
        }
    }
    ports.sort_by_key(|(_, n)| *n);
    let mut notes = interception.notes.clone();
    let ports = ports
        .into_iter()
        .map(|(name, port)| {
            let declared = declared_for(ctx, pod, port);
            let proto = protocol::effective(declared, hints.get(&port).copied());
            let mut entry = port_policy(ctx, pod, port, proto, &mut notes);
            entry.name = name;
            entry.intercepted = injection.injected && interception.inbound(port);
            entry
        })
        .collect::<Vec<_>>();
    notes.sort();
    notes.dedup();
    InboundPolicy {
        workload: Peer::workload(&pod.name, &pod.namespace),
        service_account: pod.service_account.clone(),
        spiffe_id: format!("spiffe://{}", ctx.principal(pod)),
        sidecar: injection.injected,
        sidecar_reason: injection.reason,
        excluded_ports: ports
            .iter()
            .filter(|p| injection.injected && !p.intercepted)
            .map(|p| p.port)
            .collect(),
        ports,
        notes,
    }
}

/// The mTLS mode and authorization of one port (interception is decided by the caller).
pub fn port_policy(
    ctx: &Ctx,
    pod: &PodInfo,
    port: u16,
    proto: AppProtocol,
    notes: &mut Vec<String>,
) -> InboundPort {
    let root = &ctx.mesh.root_namespace;
    let decision = peer::workload_mode(&ctx.cluster, root, pod, port);
    notes.extend(decision.notes);
    let policies = authz::applicable(
        ctx.cluster.authorization_policies.iter().map(|r| &r.object),
        root,
        pod,
        notes,
    );
    InboundPort {
        port,
        name: None,
        protocol: proto,
        intercepted: true,
        mtls: decision.mode,
        mtls_source: decision.source,
        authz: policies
            .into_iter()
            .map(|p| authz::for_port(p, proto.is_http()))
            .collect(),
    }
}
