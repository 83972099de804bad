//! The pod an HPA really scales: the workload's template plus what admission adds.
//!
//! The HPA controller divides by the requests of the pods that run, not of the template
//! in Git. Between the two sit Kubernetes defaulting (a limit without a request becomes
//! the request), LimitRange defaults, and Istio's sidecar injector, which adds an
//! `istio-proxy` container (a native sidecar in `initContainers` on Kubernetes 1.33+)
//! with the mesh's proxy resources or the pod's `sidecar.istio.io/proxyCPU`-style
//! annotations. This module builds that effective pod from manifests, without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, LimitRange, PodTemplateSpec};
use serde::Serialize;

use super::HpaError;
use super::quantity::Cpu;
use crate::manifest::Document;
use crate::scenario::ProxyResources;

/// The sidecar container Istio injects.
pub const PROXY_CONTAINER: &str = "istio-proxy";

/// Per-pod annotations that override the mesh's proxy resources.
pub mod annotations {
    /// CPU request of the injected proxy.
    pub const PROXY_CPU: &str = "sidecar.istio.io/proxyCPU";
    /// CPU limit of the injected proxy.
    pub const PROXY_CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";
    /// Memory request of the injected proxy.
    pub const PROXY_MEMORY: &str = "sidecar.istio.io/proxyMemory";
    /// Memory limit of the injected proxy.
    pub const PROXY_MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";
    /// Pod opt-in or opt-out of injection (label; the annotation form only opts out).
    pub const INJECT: &str = "sidecar.istio.io/inject";
    /// The container `kubectl exec` and logs pick by default: the app.
    pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
}

/// What a container is for, as far as autoscaling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Application work: what the HPA is meant to follow.
    App,
    /// The mesh's proxy (`istio-proxy`), declared or injected.
    MeshProxy,
}

/// Where a container's CPU request comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "from", content = "detail")]
pub enum Origin {
    /// Written in the manifest.
    Declared,
    /// No request, but a limit: Kubernetes defaults the request to the limit.
    Limit,
    /// Filled in by a LimitRange in the namespace.
    LimitRange(String),
    /// The mesh's install values (`values.global.proxy.resources`).
    MeshValues,
    /// A `sidecar.istio.io/proxy*` annotation on the pod.
    Annotation(String),
    /// Nobody sets one.
    Missing,
}

/// One container of the effective pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerModel {
    /// The container name.
    pub name: String,
    /// App or mesh proxy.
    pub role: Role,
    /// A restartable init container (`restartPolicy: Always`), i.e. a native sidecar.
    pub native_sidecar: bool,
    /// Added by the injector rather than written in the manifest.
    pub injected: bool,
    /// The CPU request, after defaulting.
    pub request: Option<Cpu>,
    /// Where the request comes from.
    pub request_origin: Origin,
    /// The CPU limit, if any.
    pub limit: Option<Cpu>,
}

/// Whether and why the injector adds a sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Injection {
    /// The injector adds `istio-proxy`.
    pub injected: bool,
    /// Which label or setting decided, in words.
    pub reason: String,
}

/// How to decide injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectionMode {
    /// From namespace and pod labels, as Istio's webhook does.
    #[default]
    Auto,
    /// Assume every pod gets a sidecar.
    Always,
    /// Assume no pod gets one (no mesh).
    Never,
}

/// The effective pod behind a workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodModel {
    /// `Deployment xnat/xnat-web`.
    pub workload: String,
    /// Regular containers, then native sidecars, then the injected proxy.
    pub containers: Vec<ContainerModel>,
    /// A pod-level CPU request (`spec.resources`), which the HPA uses instead of the sum.
    pub pod_request: Option<Cpu>,
    /// The injection decision.
    pub injection: Injection,
}

impl PodModel {
    /// A container by name.
    pub fn container(&self, name: &str) -> Option<&ContainerModel> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The app containers.
    pub fn apps(&self) -> impl Iterator<Item = &ContainerModel> {
        self.containers.iter().filter(|c| c.role == Role::App)
    }

    /// The mesh proxies (normally one).
    pub fn proxies(&self) -> impl Iterator<Item = &ContainerModel> {
        self.containers.iter().filter(|c| c.role == Role::MeshProxy)
    }

    /// Containers the HPA counts that have no CPU request.
    pub fn missing_requests(&self) -> Vec<&str> {
        self.containers
            .iter()
            .filter(|c| c.request.is_none())
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// What the pod builder needs besides the workload.
#[derive(Debug, Clone)]
pub struct PodContext<'a> {
    /// Every document known (namespaces and LimitRanges are read from here).
    pub docs: &'a [Document],
    /// The mesh's proxy resources, or `None` when no Istio is installed.
    pub mesh_proxy: Option<&'a ProxyResources>,
    /// How to decide injection.
    pub mode: InjectionMode,
}

/// Builds the effective pod of a Deployment, StatefulSet or ReplicaSet document.
pub fn pod_model(workload: &Document, ctx: &PodContext) -> Result<PodModel, HpaError> {
    let template: PodTemplateSpec = template_of(workload)?;
    let meta = template.metadata.unwrap_or_default();
    let spec = template.spec.unwrap_or_default();
    let namespace = workload.namespace_or_default();
    let ranges = limit_ranges(ctx.docs, namespace)?;
    let quantity = |field: String, text: &str| parse_at(workload, &field, text);
    let mut containers = Vec::new();
    for c in &spec.containers {
        containers.push(declared(c, false, &ranges, &quantity)?);
    }
    for c in spec.init_containers.iter().flatten() {
        if c.restart_policy.as_deref() == Some("Always") {
            containers.push(declared(c, true, &ranges, &quantity)?);
        }
    }
    let labels = meta.labels.unwrap_or_default();
    let notes = meta.annotations.unwrap_or_default();
    let injection = decide_injection(ctx, namespace, &labels, &notes);
    let declared_proxy = containers.iter().any(|c| c.role == Role::MeshProxy);
    if injection.injected && !declared_proxy {
        let values = ctx.mesh_proxy.cloned().unwrap_or_default();
        containers.push(injected_proxy(&values, &notes, &quantity)?);
    }
    let pod_request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("cpu"))
        .map(|q| quantity("spec.template.spec.resources.requests.cpu".into(), &q.0))
        .transpose()?;
    let kind_name = format!("{} {}/{}", workload.kind, namespace, workload.name);
    Ok(PodModel {
        workload: kind_name,
        containers,
        pod_request,
        injection,
    })
}

fn template_of(workload: &Document) -> Result<PodTemplateSpec, HpaError> {
    let value = workload
        .value
        .pointer("/spec/template")
        .cloned()
        .ok_or_else(|| HpaError::Shape {
            at: workload.at.clone(),
            message: format!("{} {} has no spec.template", workload.kind, workload.name),
        })?;
    serde_json::from_value(value).map_err(|e| HpaError::Shape {
        at: workload.at.clone(),
        message: format!(
            "spec.template of {} {} does not parse: {e}",
            workload.kind, workload.name
        ),
    })
}

fn parse_at(doc: &Document, field: &str, text: &str) -> Result<Cpu, HpaError> {
    Cpu::parse(text).map_err(|problem| HpaError::Quantity {
        at: doc.at.clone(),
        field: field.to_string(),
        problem,
    })
}

/// LimitRange defaults for containers in a namespace: (request, limit, LimitRange name).
#[derive(Debug, Default)]
struct RangeDefaults {
    request: Option<(Cpu, String)>,
    limit: Option<(Cpu, String)>,
}

fn limit_ranges(docs: &[Document], namespace: &str) -> Result<RangeDefaults, HpaError> {
    let mut out = RangeDefaults::default();
    for doc in docs
        .iter()
        .filter(|d| d.kind == "LimitRange" && d.namespace_or_default() == namespace)
    {
        let range: LimitRange = doc.typed().map_err(HpaError::Manifest)?;
        let items = range.spec.map(|s| s.limits).unwrap_or_default();
        for item in items.iter().filter(|i| i.type_ == "Container") {
            let default_limit = item.default.as_ref().and_then(|m| m.get("cpu"));
            // The API server defaults defaultRequest to default (the limit) when unset.
            let default_request = item
                .default_request
                .as_ref()
                .and_then(|m| m.get("cpu"))
                .or(default_limit);
            if let Some(q) = default_request {
                out.request = Some((
                    parse_at(doc, "spec.limits[].defaultRequest.cpu", &q.0)?,
                    doc.name.clone(),
                ));
            }
            if let Some(q) = default_limit {
                out.limit = Some((
                    parse_at(doc, "spec.limits[].default.cpu", &q.0)?,
                    doc.name.clone(),
                ));
            }
        }
    }
    Ok(out)
}

fn declared(
    c: &Container,
    native: bool,
    ranges: &RangeDefaults,
    quantity: &dyn Fn(String, &str) -> Result<Cpu, HpaError>,
) -> Result<ContainerModel, HpaError> {
    let list = if native {
        "initContainers"
    } else {
        "containers"
    };
    let field = |kind: &str| format!("spec.template.spec.{list}[{}].resources.{kind}.cpu", c.name);
    let resources = c.resources.as_ref();
    let request = resources
        .and_then(|r| r.requests.as_ref())
        .and_then(|m| m.get("cpu"));
    let request = request
        .map(|q| quantity(field("requests"), &q.0))
        .transpose()?;
    let limit = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|m| m.get("cpu"));
    let mut limit = limit.map(|q| quantity(field("limits"), &q.0)).transpose()?;
    let (request, request_origin) = match (request, limit) {
        (Some(r), _) => (Some(r), Origin::Declared),
        (None, Some(l)) => (Some(l), Origin::Limit),
        (None, None) => match &ranges.request {
            Some((r, name)) => (Some(*r), Origin::LimitRange(name.clone())),
            None => (None, Origin::Missing),
        },
    };
    if limit.is_none() {
        limit = ranges.limit.as_ref().map(|(l, _)| *l);
    }
    let role = if c.name == PROXY_CONTAINER {
        Role::MeshProxy
    } else {
        Role::App
    };
    Ok(ContainerModel {
        name: c.name.clone(),
        role,
        native_sidecar: native,
        injected: false,
        request,
        request_origin,
        limit,
    })
}

/// The proxy the injector adds. Istio's template uses the mesh values unless any of the
/// four `sidecar.istio.io/proxy*` resource annotations is set; then it writes only what
/// the annotations say, so `proxyMemory` alone leaves the proxy without a CPU request.
fn injected_proxy(
    values: &ProxyResources,
    notes: &BTreeMap<String, String>,
    quantity: &dyn Fn(String, &str) -> Result<Cpu, HpaError>,
) -> Result<ContainerModel, HpaError> {
    use annotations::*;
    let any_annotation = [PROXY_CPU, PROXY_CPU_LIMIT, PROXY_MEMORY, PROXY_MEMORY_LIMIT]
        .iter()
        .any(|k| notes.contains_key(*k));
    let annotation = |key: &str| {
        notes
            .get(key)
            .map(|v| quantity(format!("spec.template.metadata.annotations[{key}]"), v))
            .transpose()
    };
    let (request, limit, origin) = if any_annotation {
        let request = annotation(PROXY_CPU)?;
        let limit = annotation(PROXY_CPU_LIMIT)?;
        match (request, limit) {
            (Some(r), l) => (Some(r), l, Origin::Annotation(PROXY_CPU.into())),
            (None, Some(l)) => (Some(l), Some(l), Origin::Limit),
            (None, None) => (None, None, Origin::Missing),
        }
    } else {
        let value = |text: &str, field: &str| {
            let text = text.trim();
            (!text.is_empty())
                .then(|| quantity(format!("requires.mesh.proxy.{field}"), text))
                .transpose()
        };
        let request = value(&values.cpu_request, "cpuRequest")?;
        let limit = value(&values.cpu_limit, "cpuLimit")?;
        match (request, limit) {
            (Some(r), l) => (Some(r), l, Origin::MeshValues),
            (None, Some(l)) => (Some(l), Some(l), Origin::Limit),
            (None, None) => (None, None, Origin::Missing),
        }
    };
    Ok(ContainerModel {
        name: PROXY_CONTAINER.into(),
        role: Role::MeshProxy,
        native_sidecar: true,
        injected: true,
        request,
        request_origin: origin,
        limit,
    })
}

/// Istio's default-revision webhooks, in the order they can decide.
fn decide_injection(
    ctx: &PodContext,
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
    pod_annotations: &BTreeMap<String, String>,
) -> Injection {
    let yes = |reason: String| Injection {
        injected: true,
        reason,
    };
    let no = |reason: String| Injection {
        injected: false,
        reason,
    };
    match ctx.mode {
        InjectionMode::Always => return yes("injection assumed (--inject always)".into()),
        InjectionMode::Never => return no("injection ruled out (--inject never)".into()),
        InjectionMode::Auto => {}
    }
    if ctx.mesh_proxy.is_none() {
        return no("the scenario installs no Istio".into());
    }
    let inject = annotations::INJECT;
    if pod_labels.get(inject).map(String::as_str) == Some("false") {
        return no(format!("pod label {inject}=false"));
    }
    if pod_annotations.get(inject).map(String::as_str) == Some("false") {
        return no(format!("pod annotation {inject}: \"false\""));
    }
    let ns_labels = namespace_labels(ctx.docs, namespace);
    if let Some(value) = ns_labels.get("istio-injection") {
        return if value == "enabled" {
            yes(format!("namespace {namespace} has istio-injection=enabled"))
        } else {
            no(format!("namespace {namespace} has istio-injection={value}"))
        };
    }
    if let Some(rev) = ns_labels.get("istio.io/rev") {
        return yes(format!("namespace {namespace} has istio.io/rev={rev}"));
    }
    if pod_labels.get(inject).map(String::as_str) == Some("true") {
        return yes(format!("pod label {inject}=true"));
    }
    if let Some(rev) = pod_labels.get("istio.io/rev") {
        return yes(format!("pod label istio.io/rev={rev}"));
    }
    no(format!(
        "neither namespace {namespace} nor the pod has an injection label"
    ))
}

fn namespace_labels(docs: &[Document], namespace: &str) -> BTreeMap<String, String> {
    docs.iter()
        .find(|d| d.kind == "Namespace" && d.name == namespace)
        .and_then(|d| d.value.pointer("/metadata/labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
