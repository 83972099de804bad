//! What the applied manifests mean for the lab's data plane: injection, Services, mTLS
//! modes, client TLS, authorization and gateway routes.
//!
//! This is the lab's reading of Istio 1.30 semantics, reduced to what programming an Envoy
//! sidecar needs. It reads only the documents the scenario applied, so the generated
//! configuration always follows the manifests. (The project's policy model, `policy::`, is
//! the reference for these rules; the lab switches to its `inbound`/`outbound` API when it
//! is available, and the unit tests here pin the cases the lab depends on.)

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::envoy::{Authz, AuthzRule, InboundMode};
use crate::manifest::Document;

/// The mesh's root namespace.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// A read-only view of the applied documents.
#[derive(Debug, Clone, Copy)]
pub struct Mesh<'a> {
    docs: &'a [Document],
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

fn mode_of(v: Option<&Value>) -> Option<InboundMode> {
    match v.and_then(Value::as_str)? {
        "STRICT" => Some(InboundMode::Strict),
        "PERMISSIVE" => Some(InboundMode::Permissive),
        "DISABLE" => Some(InboundMode::Disable),
        _ => None, // UNSET inherits.
    }
}

impl<'a> Mesh<'a> {
    /// A view of these documents.
    pub fn new(docs: &'a [Document]) -> Mesh<'a> {
        Mesh { docs }
    }

    fn of_kind(&self, kind: &'a str) -> impl Iterator<Item = &'a Document> + 'a {
        self.docs.iter().filter(move |d| d.kind == kind)
    }

    /// The pod template of a Deployment or StatefulSet.
    pub fn pod_template(&self, namespace: &str, name: &str) -> Option<&'a Value> {
        self.docs
            .iter()
            .find(|d| {
                matches!(d.kind.as_str(), "Deployment" | "StatefulSet")
                    && d.name == name
                    && d.namespace_or_default() == namespace
            })
            .and_then(|d| d.value.pointer("/spec/template"))
    }

    /// Whether the workload's manifest has been applied (its pods should exist).
    pub fn has_workload(&self, namespace: &str, name: &str) -> bool {
        self.pod_template(namespace, name).is_some()
    }

    /// The pod labels of a workload.
    pub fn pod_labels(&self, namespace: &str, name: &str) -> BTreeMap<String, String> {
        string_map(
            self.pod_template(namespace, name)
                .and_then(|t| t.pointer("/metadata/labels")),
        )
    }

    fn pod_annotation(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let annotations = string_map(
            self.pod_template(namespace, name)
                .and_then(|t| t.pointer("/metadata/annotations")),
        );
        annotations.get(key).cloned()
    }

    /// Whether a pod created now gets a sidecar: the namespace is labelled for injection
    /// and the pod does not opt out (the pod label wins, as in Istio's webhook).
    pub fn injected(&self, namespace: &str, name: &str) -> bool {
        let labels = self.pod_labels(namespace, name);
        match labels.get("sidecar.istio.io/inject").map(String::as_str) {
            Some("false") => return false,
            Some("true") => return true,
            _ => {}
        }
        if self
            .pod_annotation(namespace, name, "sidecar.istio.io/inject")
            .as_deref()
            == Some("false")
        {
            return false;
        }
        let ns = self.of_kind("Namespace").find(|d| d.name == namespace);
        let ns_labels = string_map(ns.and_then(|d| d.value.pointer("/metadata/labels")));
        ns_labels.get("istio-injection").map(String::as_str) == Some("enabled")
            || ns_labels.contains_key("istio.io/rev")
    }

    /// Ports listed in a `traffic.sidecar.istio.io/exclude{Inbound,Outbound}Ports` annotation.
    pub fn excluded_ports(&self, namespace: &str, name: &str, inbound: bool) -> BTreeSet<u16> {
        let key = if inbound {
            "traffic.sidecar.istio.io/excludeInboundPorts"
        } else {
            "traffic.sidecar.istio.io/excludeOutboundPorts"
        };
        self.pod_annotation(namespace, name, key)
            .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The container port numbers by name, for `targetPort: <name>`.
    pub fn container_port(&self, namespace: &str, workload: &str, target: &Target) -> Option<u16> {
        match target {
            Target::Number(n) => Some(*n),
            Target::Name(name) => {
                let containers = self
                    .pod_template(namespace, workload)?
                    .pointer("/spec/containers")?
                    .as_array()?;
                containers
                    .iter()
                    .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                    .find_map(|p| {
                        (p["name"].as_str() == Some(name))
                            .then(|| p["containerPort"].as_u64().map(|n| n as u16))
                            .flatten()
                    })
            }
        }
    }

    /// A Service by namespace and name.
    pub fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        let d = self
            .of_kind("Service")
            .find(|d| d.name == name && d.namespace_or_default() == namespace)?;
        let ports = d
            .value
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let ports = ports
            .iter()
            .filter_map(|p| {
                let port = p["port"].as_u64()? as u16;
                let target = match &p["targetPort"] {
                    Value::Number(n) => Target::Number(n.as_u64()? as u16),
                    Value::String(s) => Target::Name(s.clone()),
                    _ => Target::Number(port),
                };
                Some(ServicePort { port, target })
            })
            .collect();
        Some(Service {
            name: d.name.clone(),
            namespace: namespace.to_string(),
            headless: text(&d.value, "/spec/clusterIP") == Some("None"),
            ports,
        })
    }

    /// The Services in the workload's namespace whose selector matches its pods.
    pub fn services_for(&self, namespace: &str, workload: &str) -> Vec<Service> {
        let labels = self.pod_labels(namespace, workload);
        self.of_kind("Service")
            .filter(|d| d.namespace_or_default() == namespace)
            .filter(|d| {
                let selector = string_map(d.value.pointer("/spec/selector"));
                !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .filter_map(|d| self.service(namespace, &d.name))
            .collect()
    }

    fn selects(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
        let wanted = string_map(selector.and_then(|s| s.get("matchLabels")));
        wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// The effective inbound mTLS mode of a container port: workload policy (port-level,
    /// then its own mode) over namespace policy over the mesh policy, PERMISSIVE by default.
    pub fn inbound_mode(
        &self,
        namespace: &str,
        workload: &str,
        port: u16,
    ) -> (InboundMode, String) {
        let labels = self.pod_labels(namespace, workload);
        let policies: Vec<&Document> = self.of_kind("PeerAuthentication").collect();
        let workload_policy = policies.iter().find(|d| {
            d.namespace_or_default() == namespace
                && d.value.pointer("/spec/selector").is_some()
                && Self::selects(d.value.pointer("/spec/selector"), &labels)
        });
        if let Some(d) = workload_policy {
            let port_mode = d.value.pointer(&format!("/spec/portLevelMtls/{port}/mode"));
            if let Some(mode) =
                mode_of(port_mode).or_else(|| mode_of(d.value.pointer("/spec/mtls/mode")))
            {
                return (mode, format!("{}/{}", d.name, namespace));
            }
        }
        let scoped = |ns: &str| {
            policies.iter().find(|d| {
                d.namespace_or_default() == ns && d.value.pointer("/spec/selector").is_none()
            })
        };
        for ns in [namespace, ROOT_NAMESPACE] {
            if let Some(d) = scoped(ns)
                && let Some(mode) = mode_of(d.value.pointer("/spec/mtls/mode"))
            {
                return (mode, format!("{}/{}", d.name, ns));
            }
        }
        (InboundMode::Permissive, "mesh default".into())
    }

    /// The client's TLS decision for a service port: a DestinationRule's port-level or
    /// default `tls.mode` wins; otherwise auto mTLS, which originates Istio mTLS exactly
    /// when the server has a sidecar and does not DISABLE mTLS on the target port.
    pub fn client_mtls(
        &self,
        service: &Service,
        port: u16,
        server_sidecar: bool,
        server_mode: InboundMode,
    ) -> bool {
        let fqdn = service.fqdn();
        let short = [
            service.name.clone(),
            format!("{}.{}", service.name, service.namespace),
            fqdn.clone(),
        ];
        let rule = self
            .of_kind("DestinationRule")
            .find(|d| text(&d.value, "/spec/host").is_some_and(|h| short.iter().any(|s| s == h)));
        if let Some(d) = rule {
            let levels = d
                .value
                .pointer("/spec/trafficPolicy/portLevelSettings")
                .and_then(Value::as_array);
            let at_port = levels.into_iter().flatten().find(|s| {
                s.pointer("/port/number").and_then(Value::as_u64) == Some(u64::from(port))
            });
            let mode = at_port
                .and_then(|s| text(s, "/tls/mode"))
                .or_else(|| text(&d.value, "/spec/trafficPolicy/tls/mode"));
            if let Some(mode) = mode {
                return mode == "ISTIO_MUTUAL";
            }
        }
        server_sidecar && server_mode != InboundMode::Disable
    }

    /// The AuthorizationPolicies on a workload's port: DENY and ALLOW rules from the root
    /// namespace and the workload's namespace whose selector matches and whose `to.ports`
    /// (if any) include the port. `None` when no policy applies.
    pub fn authz(&self, namespace: &str, workload: &str, port: u16) -> Option<Authz> {
        let labels = self.pod_labels(namespace, workload);
        let mut out = Authz::default();
        let mut any = false;
        for d in self.of_kind("AuthorizationPolicy") {
            let ns = d.namespace_or_default();
            if (ns != namespace && ns != ROOT_NAMESPACE)
                || !Self::selects(d.value.pointer("/spec/selector"), &labels)
            {
                continue;
            }
            let action = text(&d.value, "/spec/action").unwrap_or("ALLOW");
            let rules: Vec<AuthzRule> = d
                .value
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| rule(r, port))
                .collect();
            any = true;
            out.sources.push(format!("{}/{}", d.name, ns));
            match action {
                "DENY" => out.deny.extend(rules),
                "ALLOW" => out.allow.get_or_insert_with(Vec::new).extend(rules),
                _ => {} // AUDIT and CUSTOM change nothing on the data path the lab models.
            }
        }
        any.then_some(out)
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

/// One AuthorizationPolicy rule, or `None` when its `to.ports` exclude `port`.
fn rule(r: &Value, port: u16) -> Option<AuthzRule> {
    let mut out = AuthzRule::default();
    let mut ports = Vec::new();
    for to in r.get("to").and_then(Value::as_array).into_iter().flatten() {
        out.methods
            .extend(strings(to.pointer("/operation/methods")));
        out.paths.extend(strings(to.pointer("/operation/paths")));
        ports.extend(strings(to.pointer("/operation/ports")));
    }
    for from in r
        .get("from")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.principals
            .extend(strings(from.pointer("/source/principals")));
        out.namespaces
            .extend(strings(from.pointer("/source/namespaces")));
    }
    (ports.is_empty() || ports.iter().any(|p| p == &port.to_string())).then_some(out)
}

#[cfg(test)]
#[path = "mesh_tests.rs"]
mod tests;
