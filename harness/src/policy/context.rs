//! The evaluation context: the indexed manifests, the DestinationRule index and the mesh
//! options, plus the built-in peers (gateways) as pods.

use std::collections::BTreeMap;

use super::MeshOptions;
use super::cluster::{Cluster, PodInfo, SvcInfo};
use super::destination::RuleIndex;
use super::inject_webhook::{self, PodAdmission};
use super::injection::{self, Injection, Interception};
use super::types::Peer;
use crate::manifest::Document;

/// Everything evaluation reads, built once per call.
pub struct Ctx {
    /// The manifests.
    pub cluster: Cluster,
    /// DestinationRules, indexed.
    pub rules: RuleIndex,
    /// Mesh install options.
    pub mesh: MeshOptions,
    /// Workloads whose pods already run, keyed `namespace/name`, with whether they run a
    /// mesh proxy. Injection happens when a pod is created, so running pods keep what they
    /// were created with until they are restarted; workloads not listed are as their
    /// manifests say.
    pub running: BTreeMap<String, bool>,
}

/// A peer resolved to what the mesh sees of it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The pod template (synthesized for gateways; `None` for the host and externals).
    pub pod: Option<PodInfo>,
    /// Whether a mesh proxy runs next to it, and why.
    pub injection: Injection,
    /// Which ports that proxy intercepts.
    pub interception: Interception,
    /// The peer is itself an Envoy (a gateway): it always speaks through the mesh.
    pub is_gateway: bool,
}

impl Ctx {
    /// Indexes documents given in creation order.
    pub fn new(docs: &[Document], mesh: &MeshOptions) -> Ctx {
        let cluster = Cluster::new(docs);
        let rules = RuleIndex::new(&cluster, &mesh.root_namespace, &mesh.domain);
        Ctx {
            cluster,
            rules,
            mesh: mesh.clone(),
            running: BTreeMap::new(),
        }
    }

    /// The mesh's view of a peer; `None` for a workload with no manifest.
    pub fn endpoint(&self, peer: &Peer) -> Option<Endpoint> {
        match peer {
            Peer::Host => Some(outside("outside the cluster")),
            Peer::IngressGateway => Some(gateway(
                &self.mesh,
                "istio-ingressgateway",
                "ingressgateway",
            )),
            Peer::EgressGateway => {
                Some(gateway(&self.mesh, "istio-egressgateway", "egressgateway"))
            }
            Peer::Workload { name, namespace } => {
                let pod = self.cluster.pod(name, namespace)?.clone();
                let (injection, interception) = self.proxy(&pod);
                Some(Endpoint {
                    pod: Some(pod),
                    injection,
                    interception,
                    is_gateway: false,
                })
            }
        }
    }

    /// Whether the pod runs a mesh proxy, and its interception: what the configured mesh
    /// injects, unless [`Ctx::running`] says the running pods were created otherwise.
    pub fn proxy(&self, pod: &PodInfo) -> (Injection, Interception) {
        let (injection, interception) = self.proxy_by_manifest(pod);
        let key = format!("{}/{}", pod.namespace, pod.name);
        match self.running.get(&key) {
            Some(&running) if running != injection.injected => {
                let reason = if running {
                    "the running pods were created with a proxy and keep it until restarted"
                } else {
                    "the running pods were created without a proxy and get one when restarted"
                };
                let injection = Injection {
                    injected: running,
                    reason: reason.into(),
                };
                (injection, interception)
            }
            _ => (injection, interception),
        }
    }

    /// Whether pods of this template get created: Istio's injector validates the
    /// annotations of a pod it injects, and the webhook then rejects an invalid pod
    /// ([`inject_webhook::admission`]). Pods already running exist whatever they carry.
    pub fn admission(&self, pod: &PodInfo) -> PodAdmission {
        let running = self
            .running
            .contains_key(&format!("{}/{}", pod.namespace, pod.name));
        if self.mesh.kind != super::MeshKind::Istio || running {
            return PodAdmission::Created;
        }
        if !self.proxy_by_manifest(pod).0.injected {
            return PodAdmission::Created;
        }
        inject_webhook::admission(&pod.annotations)
    }

    /// What the configured mesh's injector decides for pods created now.
    fn proxy_by_manifest(&self, pod: &PodInfo) -> (Injection, Interception) {
        let ns = self.cluster.namespace_labels(&pod.namespace);
        match self.mesh.kind {
            super::MeshKind::Istio => (
                injection::istio_sidecar(&ns, pod),
                injection::istio_interception(pod),
            ),
            super::MeshKind::Consul => (
                injection::consul_injected(pod, self.mesh.consul),
                Interception::default(),
            ),
            super::MeshKind::None => (
                Injection {
                    injected: false,
                    reason: "no mesh is installed".into(),
                },
                Interception::default(),
            ),
        }
    }

    /// The Istio identity of a pod: `<trust domain>/ns/<ns>/sa/<sa>`.
    pub fn principal(&self, pod: &PodInfo) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.mesh.trust_domain, pod.namespace, pod.service_account
        )
    }

    /// The Service's fully qualified host.
    pub fn fqdn(&self, service: &str, namespace: &str) -> String {
        format!("{service}.{namespace}.svc.{}", self.mesh.domain)
    }

    /// Pods behind a Service, with whether each has a mesh proxy.
    pub fn service_endpoints(&self, svc: &SvcInfo) -> Vec<(PodInfo, bool)> {
        self.cluster
            .endpoints(svc)
            .map(|p| (p.clone(), self.proxy(p).0.injected))
            .collect()
    }
}

fn outside(reason: &str) -> Endpoint {
    Endpoint {
        pod: None,
        injection: Injection {
            injected: false,
            reason: reason.to_string(),
        },
        interception: Interception::default(),
        is_gateway: false,
    }
}

/// An Istio gateway deployment from the default install, as a pod.
fn gateway(mesh: &MeshOptions, name: &str, istio_label: &str) -> Endpoint {
    let labels: BTreeMap<String, String> = [("istio", istio_label), ("app", name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let pod = PodInfo {
        name: name.to_string(),
        namespace: mesh.root_namespace.clone(),
        labels,
        service_account: format!("{name}-service-account"),
        ports: vec![(Some("http2".into()), 8080), (Some("https".into()), 8443)],
        ..PodInfo::default()
    };
    let available = mesh.kind == super::MeshKind::Istio;
    Endpoint {
        pod: Some(pod),
        injection: Injection {
            injected: available,
            reason: if available {
                "the gateway is an Envoy"
            } else {
                "no Istio gateway without Istio"
            }
            .into(),
        },
        interception: Interception::default(),
        is_gateway: true,
    }
}

/// The gateway Service's port map in Istio's default install: 80 -> 8080, 443 -> 8443.
pub fn gateway_target_port(port: u16) -> u16 {
    match port {
        80 => 8080,
        443 => 8443,
        other => other,
    }
}
