//! An index of the manifests: namespaces, pods (from their workload objects), Services and
//! the typed mesh resources, in creation order.
//!
//! Istio breaks ties between policies by creation time ("the oldest wins"), so the order
//! of the documents handed to the model is meaningful: it is the order the objects were
//! created in.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::consul::{ServiceDefaults, ServiceIntentions};
use crate::crd::networking::{DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService};
use crate::crd::security::{AuthorizationPolicy, PeerAuthentication};
use crate::crd::{self, CrdError};
use crate::manifest::Document;

/// A pod template, as the mesh sees it.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    /// The workload object's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// The ServiceAccount (`default` when unset).
    pub service_account: String,
    /// Container ports: name (if any) and number.
    pub ports: Vec<(Option<String>, u16)>,
    /// Runs in the node's network namespace (never injected).
    pub host_network: bool,
}

impl PodInfo {
    /// The container port a Service `targetPort` names, if any.
    pub fn resolve_target(&self, target: &IntOrString) -> Option<u16> {
        match target {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => self
                .ports
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name.as_str()))
                .map(|(_, p)| *p),
        }
    }
}

/// A Service port.
#[derive(Debug, Clone)]
pub struct SvcPort {
    /// The port's name.
    pub name: Option<String>,
    /// The Service port.
    pub port: u16,
    /// `targetPort`, defaulting to the port.
    pub target: IntOrString,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
}

/// A Kubernetes Service.
#[derive(Debug, Clone)]
pub struct SvcInfo {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `clusterIP: None`.
    pub headless: bool,
    /// The pod selector, if any.
    pub selector: Option<BTreeMap<String, String>>,
    /// Ports.
    pub ports: Vec<SvcPort>,
}

impl SvcInfo {
    /// The port entry for a Service port number.
    pub fn port(&self, port: u16) -> Option<&SvcPort> {
        self.ports.iter().find(|p| p.port == port)
    }

    /// True when the Service selects a pod with these labels in its namespace.
    pub fn selects(&self, pod: &PodInfo) -> bool {
        pod.namespace == self.namespace
            && self.selector.as_ref().is_some_and(|s| {
                !s.is_empty() && s.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
            })
    }
}

/// A typed mesh resource with its rank in creation order.
#[derive(Debug, Clone)]
pub struct Ranked<T> {
    /// Position in creation order (lower is older).
    pub rank: usize,
    /// The object.
    pub object: T,
}

/// Everything the model reads from the manifests.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Namespace labels by namespace.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Pod templates, keyed `namespace/name`.
    pub pods: BTreeMap<String, PodInfo>,
    /// Services, keyed `namespace/name`.
    pub services: BTreeMap<String, SvcInfo>,
    /// PeerAuthentications.
    pub peer_authentications: Vec<Ranked<PeerAuthentication>>,
    /// AuthorizationPolicies.
    pub authorization_policies: Vec<Ranked<AuthorizationPolicy>>,
    /// DestinationRules.
    pub destination_rules: Vec<Ranked<DestinationRule>>,
    /// Gateways.
    pub gateways: Vec<Ranked<Gateway>>,
    /// VirtualServices.
    pub virtual_services: Vec<Ranked<VirtualService>>,
    /// ServiceEntries.
    pub service_entries: Vec<Ranked<ServiceEntry>>,
    /// Sidecars.
    pub sidecars: Vec<Ranked<Sidecar>>,
    /// Consul ServiceIntentions.
    pub intentions: Vec<Ranked<ServiceIntentions>>,
    /// Consul ServiceDefaults.
    pub service_defaults: Vec<Ranked<ServiceDefaults>>,
    /// Documents that could not be read or that istiod rejects: their apply fails.
    pub problems: Vec<CrdError>,
}

impl Cluster {
    /// Indexes documents given in creation order. An object istiod's validation webhook
    /// rejects ([`crd::rejections`]) never exists: it is a problem, not an object.
    pub fn new(docs: &[Document]) -> Cluster {
        let mut c = Cluster::default();
        for (rank, doc) in docs.iter().enumerate() {
            let rejected = crd::rejections(doc);
            if !rejected.is_empty() {
                c.problems.extend(rejected);
                continue;
            }
            if let Err(e) = c.add(rank, doc) {
                c.problems.push(e);
            }
        }
        c
    }

    fn add(&mut self, rank: usize, doc: &Document) -> Result<(), CrdError> {
        match (doc.group(), doc.kind.as_str()) {
            ("", "Namespace") => {
                let ns: Namespace = crd::parse(doc)?;
                self.namespaces
                    .insert(doc.name.clone(), ns.metadata.labels.unwrap_or_default());
            }
            ("", "Service") => {
                let svc: Service = crd::parse(doc)?;
                self.services.insert(key(doc), svc_info(doc, svc));
            }
            ("apps", "Deployment") => {
                self.add_pod(doc, crd::parse::<Deployment>(doc)?.spec.map(|s| s.template))
            }
            ("apps", "StatefulSet") => self.add_pod(
                doc,
                crd::parse::<StatefulSet>(doc)?.spec.map(|s| s.template),
            ),
            ("apps", "DaemonSet") => {
                self.add_pod(doc, crd::parse::<DaemonSet>(doc)?.spec.map(|s| s.template))
            }
            ("", "Pod") => {
                let pod: Pod = crd::parse(doc)?;
                let template = PodTemplateSpec {
                    metadata: Some(pod.metadata),
                    spec: pod.spec,
                };
                self.add_pod(doc, Some(template));
            }
            ("security.istio.io", "PeerAuthentication") => {
                push(&mut self.peer_authentications, rank, doc)?
            }
            ("security.istio.io", "AuthorizationPolicy") => {
                push(&mut self.authorization_policies, rank, doc)?
            }
            ("networking.istio.io", "DestinationRule") => {
                push(&mut self.destination_rules, rank, doc)?
            }
            ("networking.istio.io", "Gateway") => push(&mut self.gateways, rank, doc)?,
            ("networking.istio.io", "VirtualService") => {
                push(&mut self.virtual_services, rank, doc)?
            }
            ("networking.istio.io", "ServiceEntry") => push(&mut self.service_entries, rank, doc)?,
            ("networking.istio.io", "Sidecar") => push(&mut self.sidecars, rank, doc)?,
            ("consul.hashicorp.com", "ServiceIntentions") => push(&mut self.intentions, rank, doc)?,
            ("consul.hashicorp.com", "ServiceDefaults") => {
                push(&mut self.service_defaults, rank, doc)?
            }
            _ => {}
        }
        Ok(())
    }

    fn add_pod(&mut self, doc: &Document, template: Option<PodTemplateSpec>) {
        let template = template.unwrap_or_default();
        let meta = template.metadata.unwrap_or_default();
        let spec = template.spec.unwrap_or_default();
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| Some((p.name.clone(), u16::try_from(p.container_port).ok()?)))
            .collect();
        let pod = PodInfo {
            name: doc.name.clone(),
            namespace: doc.namespace_or_default().to_string(),
            labels: meta.labels.unwrap_or_default(),
            annotations: meta.annotations.unwrap_or_default(),
            service_account: spec
                .service_account_name
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".to_string()),
            ports,
            host_network: spec.host_network.unwrap_or(false),
        };
        self.pods.insert(key(doc), pod);
    }

    /// The pod template of a workload.
    pub fn pod(&self, name: &str, namespace: &str) -> Option<&PodInfo> {
        self.pods.get(&format!("{namespace}/{name}"))
    }

    /// A Service.
    pub fn service(&self, name: &str, namespace: &str) -> Option<&SvcInfo> {
        self.services.get(&format!("{namespace}/{name}"))
    }

    /// Labels of a namespace (empty if it is not in the manifests).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespaces.get(namespace).cloned().unwrap_or_default()
    }

    /// The first Service (by namespace and name) that selects a pod.
    pub fn service_of(&self, pod: &PodInfo) -> Option<&SvcInfo> {
        self.services.values().find(|s| s.selects(pod))
    }

    /// Every pod a Service selects.
    pub fn endpoints<'a>(&'a self, svc: &'a SvcInfo) -> impl Iterator<Item = &'a PodInfo> + 'a {
        self.pods.values().filter(move |p| svc.selects(p))
    }
}

fn key(doc: &Document) -> String {
    format!("{}/{}", doc.namespace_or_default(), doc.name)
}

fn push<T: serde::de::DeserializeOwned>(
    list: &mut Vec<Ranked<T>>,
    rank: usize,
    doc: &Document,
) -> Result<(), CrdError> {
    list.push(Ranked {
        rank,
        object: crd::parse(doc)?,
    });
    Ok(())
}

fn svc_info(doc: &Document, svc: Service) -> SvcInfo {
    let spec = svc.spec.unwrap_or_default();
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            Some(SvcPort {
                name: p.name,
                port,
                target: p.target_port.unwrap_or(IntOrString::Int(p.port)),
                app_protocol: p.app_protocol,
            })
        })
        .collect();
    SvcInfo {
        name: doc.name.clone(),
        namespace: doc.namespace_or_default().to_string(),
        headless: spec.cluster_ip.as_deref() == Some("None"),
        selector: spec.selector,
        ports,
    }
}
