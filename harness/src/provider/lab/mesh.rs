//! What the applied manifests mean for the lab's data plane: injection, interception,
//! mTLS modes, client TLS and authorization, all decided by the policy model, plus the
//! Services and gateway routes the lab dials.
//!
//! The lab has no reading of Istio semantics of its own: it asks `policy::` (the model
//! the runner cross-checks captures against), so the Envoy configuration it generates and
//! the expectations it is judged by cannot drift apart. This module converts the model's
//! answers to the lab's Envoy types in one place; what remains of its own is plain
//! manifest lookup: Services as the lab dials them, and the ingress gateway's routes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::envoy::{self, Authz, AuthzRule, InboundMode};
use crate::crd::security::{AuthzAction, Rule};
use crate::manifest::Document;
use crate::policy::cluster::{PodInfo, SvcInfo};
use crate::policy::context::Ctx;
use crate::policy::egress::{self, EgressListener, ExternalPath};
use crate::policy::{
    AppliedPolicy, ClientTls, MeshOptions, MtlsMode, Pair, Peer, inbound, outbound, protocol,
};
use crate::scenario::{Protocol, Scenario};

/// The applied documents, indexed by the policy model.
pub struct Mesh<'a> {
    docs: &'a [Document],
    ctx: Ctx,
}

impl std::fmt::Debug for Mesh<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("documents", &self.docs.len())
            .field("options", &self.ctx.mesh)
            .field("running", &self.ctx.running)
            .finish()
    }
}

/// One Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port clients dial.
    pub port: u16,
    /// The container port it reaches: a number, or a container port's name.
    pub target: Target,
}

/// A Service's `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A number.
    Number(u16),
    /// A container port's name.
    Name(String),
}

/// A Service, as the lab needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `clusterIP: None`.
    pub headless: bool,
    /// Ports.
    pub ports: Vec<ServicePort>,
}

impl Service {
    /// `<name>.<namespace>.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

/// One route of an ingress Gateway: requests for `hosts` on `port` go to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRoute {
    /// The gateway's listening port (the Gateway server port).
    pub port: u16,
    /// Host names routed.
    pub hosts: Vec<String>,
    /// The destination service FQDN.
    pub destination: String,
    /// The destination service port.
    pub destination_port: u16,
}

impl<'a> Mesh<'a> {
    /// The model's view of these documents (in creation order) under these mesh options.
    pub fn new(docs: &'a [Document], options: &MeshOptions) -> Mesh<'a> {
        Mesh {
            docs,
            ctx: Ctx::new(docs, options),
        }
    }

    /// The view under the mesh the scenario requires.
    pub fn for_scenario(scenario: &Scenario, docs: &'a [Document]) -> Mesh<'a> {
        Mesh::new(
            docs,
            &MeshOptions::for_requirements(&scenario.file.requires),
        )
    }

    /// The same documents with the pods that run now: `running` maps `namespace/name` to
    /// whether the workload's pods have a sidecar. Pods keep the sidecar they were created
    /// with, so clients must follow the pods, not what injection would decide today.
    pub fn observing(&self, running: BTreeMap<String, bool>) -> Mesh<'a> {
        let mut ctx = Ctx::new(self.docs, &self.ctx.mesh);
        ctx.running = running;
        Mesh {
            docs: self.docs,
            ctx,
        }
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<&PodInfo> {
        self.ctx.cluster.pod(name, namespace)
    }

    /// Whether the workload's manifest has been applied (its pods should exist).
    pub fn has_workload(&self, namespace: &str, name: &str) -> bool {
        self.pod(namespace, name).is_some()
    }

    /// Whether a pod created now gets a sidecar.
    pub fn injected(&self, namespace: &str, name: &str) -> bool {
        self.pod(namespace, name)
            .is_some_and(|pod| self.ctx.proxy(pod).0.injected)
    }

    /// Whether a sidecar in the workload's pods sees inbound traffic to this container port.
    pub fn intercepts_inbound(&self, namespace: &str, name: &str, port: u16) -> bool {
        self.pod(namespace, name)
            .is_none_or(|pod| self.ctx.proxy(pod).1.inbound(port))
    }

    /// Whether a sidecar in the workload's pods sees outbound traffic to this port.
    pub fn intercepts_outbound(&self, namespace: &str, name: &str, port: u16) -> bool {
        self.pod(namespace, name)
            .is_none_or(|pod| self.ctx.proxy(pod).1.outbound(port))
    }

    /// The container port a Service's `targetPort` reaches on the workload's pods.
    pub fn container_port(&self, namespace: &str, workload: &str, target: &Target) -> Option<u16> {
        match target {
            Target::Number(n) => Some(*n),
            Target::Name(name) => self
                .pod(namespace, workload)?
                .resolve_target(&IntOrString::String(name.clone())),
        }
    }

    /// A Service by namespace and name.
    pub fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        self.ctx.cluster.service(name, namespace).map(service)
    }

    /// The Services in the workload's namespace whose selector matches its pods.
    pub fn services_for(&self, namespace: &str, workload: &str) -> Vec<Service> {
        let Some(pod) = self.pod(namespace, workload) else {
            return Vec::new();
        };
        self.ctx
            .cluster
            .services
            .values()
            .filter(|s| s.selects(pod))
            .map(service)
            .collect()
    }

    /// The sidecar's inbound ports among `served` (container port and what the app speaks
    /// there): the intercepted ones, with the model's mTLS mode and authorization.
    pub fn inbound_ports(
        &self,
        namespace: &str,
        name: &str,
        served: &[(u16, Protocol)],
    ) -> Vec<envoy::InboundPort> {
        let Some(pod) = self.pod(namespace, name) else {
            return Vec::new();
        };
        let hints = served.iter().copied().collect();
        let policy = inbound::build(&self.ctx, pod, &hints);
        let interception = self.ctx.proxy(pod).1;
        served
            .iter()
            .filter(|(port, _)| interception.inbound(*port))
            .filter_map(|&(port, protocol)| {
                let p = policy.port(port)?;
                Some(envoy::InboundPort {
                    port,
                    http: protocol == Protocol::Http,
                    mode: inbound_mode(p.mtls),
                    authz: authz(&p.authz, port),
                })
            })
            .collect()
    }

    /// Whether `client`'s proxy originates Istio mTLS to `service:port`, where the app
    /// speaks `speaks` and the pods reached are those of workload `server`.
    pub fn client_mtls(
        &self,
        client: &Peer,
        service: &Service,
        port: u16,
        speaks: Protocol,
        server: &str,
    ) -> bool {
        let Some(endpoint) = self.ctx.endpoint(client) else {
            return false;
        };
        let svc = self.ctx.cluster.service(&service.name, &service.namespace);
        let declared = svc.and_then(|s| s.port(port)).and_then(protocol::declared);
        let target = outbound::Target {
            service: &service.name,
            namespace: &service.namespace,
            svc,
            external: false,
            port,
            subset: "",
            protocol: protocol::effective(declared, Some(speaks)),
        };
        let server = self.pod(&service.namespace, server);
        let policy = outbound::build(&self.ctx, client, &endpoint, &target, server);
        policy.tls == ClientTls::IstioMutual
    }

    /// The path `client`'s proxy gives traffic for `host:port` of the external workload
    /// `server` (in `namespace`), which speaks `speaks` there.
    pub fn external_path(
        &self,
        client: &Peer,
        server: &Peer,
        host: &str,
        port: u16,
        speaks: Protocol,
    ) -> ExternalPath {
        let pair = external_pair(client, server, host, port, speaks);
        egress::path(&self.ctx, &pair).unwrap_or(ExternalPath::Direct)
    }

    /// The egress gateway's servers with a route out, for these (client, external
    /// workload, host, port, protocol) destinations.
    pub fn egress_listeners(
        &self,
        wanted: &[(Peer, Peer, String, u16, Protocol)],
    ) -> Vec<EgressListener> {
        let pairs: Vec<Pair> = wanted
            .iter()
            .map(|(c, s, h, p, speaks)| external_pair(c, s, h, *p, *speaks))
            .collect();
        egress::listeners(&self.ctx, &pairs)
    }

    fn of_kind(&self, kind: &'a str) -> impl Iterator<Item = &'a Document> + 'a {
        self.docs.iter().filter(move |d| d.kind == kind)
    }

    /// Routes of Gateways selecting `istio: ingressgateway`, joined with their
    /// VirtualServices.
    pub fn gateway_routes(&self) -> Vec<GatewayRoute> {
        let mut routes = Vec::new();
        for gw in self.of_kind("Gateway") {
            let selector = string_map(gw.value.pointer("/spec/selector"));
            if selector.get("istio").map(String::as_str) != Some("ingressgateway") {
                continue;
            }
            let gw_ns = gw.namespace_or_default();
            let names = [gw.name.clone(), format!("{gw_ns}/{}", gw.name)];
            let servers = gw
                .value
                .pointer("/spec/servers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for vs in self.of_kind("VirtualService") {
                let gateways = strings(vs.value.pointer("/spec/gateways"));
                if !gateways.iter().any(|g| names.contains(g)) {
                    continue;
                }
                let hosts = strings(vs.value.pointer("/spec/hosts"));
                let dest = vs.value.pointer("/spec/http/0/route/0/destination");
                let (Some(host), Some(dport)) = (
                    dest.and_then(|d| text(d, "/host")),
                    dest.and_then(|d| d.pointer("/port/number"))
                        .and_then(Value::as_u64),
                ) else {
                    continue;
                };
                let fqdn = if host.contains('.') {
                    host.to_string()
                } else {
                    format!("{host}.{}.svc.cluster.local", vs.namespace_or_default())
                };
                for server in &servers {
                    if let Some(port) = server.pointer("/port/number").and_then(Value::as_u64) {
                        routes.push(GatewayRoute {
                            port: port as u16,
                            hosts: hosts.clone(),
                            destination: fqdn.clone(),
                            destination_port: dport as u16,
                        });
                    }
                }
            }
        }
        routes
    }
}

fn external_pair(client: &Peer, server: &Peer, host: &str, port: u16, speaks: Protocol) -> Pair {
    Pair {
        client: client.clone(),
        server: server.clone(),
        service: host.to_string(),
        namespace: server.namespace().unwrap_or_default().to_string(),
        port,
        subset: String::new(),
        request: None,
        origin: "lab".into(),
        protocols: [(port, speaks)].into_iter().collect(),
        onward: Vec::new(),
    }
}

// Conversions from the policy model to the lab's Envoy types.

fn service(s: &SvcInfo) -> Service {
    Service {
        name: s.name.clone(),
        namespace: s.namespace.clone(),
        headless: s.headless,
        ports: s
            .ports
            .iter()
            .map(|p| ServicePort {
                port: p.port,
                target: match &p.target {
                    IntOrString::Int(n) => Target::Number(u16::try_from(*n).unwrap_or(p.port)),
                    IntOrString::String(name) => Target::Name(name.clone()),
                },
            })
            .collect(),
    }
}

/// The Envoy chain choice for a PeerAuthentication mode.
pub fn inbound_mode(mode: MtlsMode) -> InboundMode {
    match mode {
        MtlsMode::Strict => InboundMode::Strict,
        MtlsMode::Permissive => InboundMode::Permissive,
        MtlsMode::Disable => InboundMode::Disable,
    }
}

/// The RBAC rules of the policies on one port, `None` when no policy applies. AUDIT and
/// CUSTOM policies are listed as sources but add no rules: they change nothing on the data
/// path the lab models.
pub fn authz(policies: &[AppliedPolicy], port: u16) -> Option<Authz> {
    if policies.is_empty() {
        return None;
    }
    let mut out = Authz::default();
    for p in policies {
        out.sources.push(p.name.clone());
        let rules = p.rules.iter().filter_map(|r| authz_rule(r, port));
        match p.action {
            AuthzAction::Deny => out.deny.extend(rules),
            AuthzAction::Allow => out.allow.get_or_insert_with(Vec::new).extend(rules),
            AuthzAction::Audit | AuthzAction::Custom => {}
        }
    }
    Some(out)
}

/// One rule as the lab's RBAC filter checks it, or `None` when no operation of the rule
/// covers `port`: Envoy's per-port filter never matches such a rule. The lab programs
/// methods, paths, principals and namespaces; other fields are not checked.
pub fn authz_rule(r: &Rule, port: u16) -> Option<AuthzRule> {
    let port = port.to_string();
    let covers = |ports: &[String], not_ports: &[String]| {
        (ports.is_empty() || ports.contains(&port)) && !not_ports.contains(&port)
    };
    let operations: Vec<_> =
        r.to.iter()
            .map(|t| &t.operation)
            .filter(|o| covers(&o.ports, &o.not_ports))
            .collect();
    if !r.to.is_empty() && operations.is_empty() {
        return None;
    }
    let mut out = AuthzRule::default();
    for o in operations {
        out.methods.extend(o.methods.iter().cloned());
        out.paths.extend(o.paths.iter().cloned());
    }
    for f in &r.from {
        out.principals.extend(f.source.principals.iter().cloned());
        out.namespaces.extend(f.source.namespaces.iter().cloned());
    }
    Some(out)
}

fn text<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "mesh_tests.rs"]
mod tests;
