//! Ready-to-apply fixes for a skewed HPA, each validated before it is shown.
//!
//! Two fixes restore the scale-out point the HPA's author meant (the app alone at its
//! target utilization):
//! - `ContainerResource` (GA in Kubernetes 1.30): the same utilization target, measured
//!   on the app container only, so the proxy's request and usage no longer count;
//! - `AverageValue`, as in the seed: a per-pod usage target equal to the app's intended
//!   point plus the proxy's usage (`70% of 100m + 10m = 80m`).
//!
//! A fix is the whole HPA in `autoscaling/v2` with only its metrics changed. Before it is
//! returned, its YAML is parsed back with [`crate::manifest::parse_str`] into
//! `autoscaling/v2` types, compared field by field with what was meant (k8s-openapi
//! ignores unknown fields, so a typo would otherwise pass), and analysed again to show
//! the app's scale-out point after the fix.

use std::path::Path;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler as HpaV1;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricSource, CrossVersionObjectReference, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::HpaError;
use super::analysis::{self, Assumptions, MetricAnalysis, MetricKind, utilization_points};
use super::pod::PodModel;
use super::quantity::Cpu;
use crate::manifest::{self, Document};

/// Which fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FixKind {
    /// `type: ContainerResource` on each app container.
    ContainerResource,
    /// `type: Resource` with an `AverageValue` target that includes the proxy's usage.
    AverageValue,
}

/// One validated fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    /// Which fix.
    pub kind: FixKind,
    /// What it does, in one sentence.
    pub summary: String,
    /// The whole HPA manifest, ready for `kubectl apply -f -`.
    pub yaml: String,
    /// What the analysis says after the fix, one line per CPU metric.
    pub after: Vec<String>,
}

/// `Resource cpu` at a utilization target.
pub fn cpu_resource_utilization(percent: i32) -> ResourceMetricSource {
    ResourceMetricSource {
        name: "cpu".into(),
        target: MetricTarget {
            type_: "Utilization".into(),
            average_utilization: Some(percent),
            ..MetricTarget::default()
        },
    }
}

/// Converts an `autoscaling/v1` HPA to `autoscaling/v2`, as the API server does.
pub fn from_v1(v1: HpaV1) -> HorizontalPodAutoscaler {
    let spec = v1.spec;
    // autoscaling/v1 defaults a missing targetCPUUtilizationPercentage to 80.
    let percent = spec.target_cpu_utilization_percentage.unwrap_or(80);
    let r = spec.scale_target_ref;
    HorizontalPodAutoscaler {
        metadata: v1.metadata,
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: r.api_version,
                kind: r.kind,
                name: r.name,
            },
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(cpu_resource_utilization(percent)),
                ..MetricSpec::default()
            }]),
            behavior: None,
        },
        status: None,
    }
}

/// The fixes for an HPA whose pod-level CPU utilization is skewed by a mesh proxy.
pub fn fixes(
    hpa: &HorizontalPodAutoscaler,
    doc: &Document,
    pod: &PodModel,
    metrics: &[MetricAnalysis],
    a: &Assumptions,
) -> Result<Vec<Fix>, HpaError> {
    let skewed = metrics
        .iter()
        .any(|m| matches!(m.kind, MetricKind::PodUtilization { .. }) && m.denominator.is_some());
    let proxied = pod.pod_request.is_none() && pod.proxies().any(|p| p.request.is_some());
    let apps: Vec<(&str, Cpu)> = pod
        .apps()
        .filter_map(|c| c.request.map(|r| (c.name.as_str(), r)))
        .collect();
    if !skewed || !proxied || apps.is_empty() || apps.len() != pod.apps().count() {
        return Ok(Vec::new());
    }
    let spec = hpa.spec.clone();
    let proxy_usage = Cpu::millis(a.proxy_usage.as_millis() * pod.proxies().count() as u64);
    let app_request: Cpu = apps.iter().map(|(_, r)| *r).sum();
    let mut out = Vec::new();
    for kind in [FixKind::ContainerResource, FixKind::AverageValue] {
        let new_metrics: Vec<MetricSpec> = spec
            .metrics
            .iter()
            .flatten()
            .flat_map(|m| match pod_utilization(m) {
                Some(target) => replacement(kind, target, &apps, app_request, proxy_usage),
                None => vec![m.clone()],
            })
            .collect();
        let fixed = with_metrics(hpa, new_metrics);
        let summary = summary(kind, &apps, proxy_usage, &spec);
        let yaml = to_yaml(&fixed, kind, doc)?;
        let after = validate(&yaml, &fixed, doc, pod, a)?;
        out.push(Fix {
            kind,
            summary,
            yaml,
            after,
        });
    }
    Ok(out)
}

/// The target of a pod-level `Resource cpu` utilization metric.
fn pod_utilization(m: &MetricSpec) -> Option<i32> {
    let r = m.resource.as_ref().filter(|_| m.type_ == "Resource")?;
    (r.name == "cpu" && r.target.type_ == "Utilization")
        .then_some(r.target.average_utilization.unwrap_or(0))
}

fn replacement(
    kind: FixKind,
    target: i32,
    apps: &[(&str, Cpu)],
    app_request: Cpu,
    proxy_usage: Cpu,
) -> Vec<MetricSpec> {
    match kind {
        FixKind::ContainerResource => apps
            .iter()
            .map(|(name, _)| MetricSpec {
                type_: "ContainerResource".into(),
                container_resource: Some(ContainerResourceMetricSource {
                    container: (*name).to_string(),
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(target),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            })
            .collect(),
        FixKind::AverageValue => {
            let value = average_value(target, app_request, proxy_usage);
            vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "AverageValue".into(),
                        average_value: Some(Quantity(value.to_string())),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]
        }
    }
}

/// The seed's fix: the app's intended point (`target`% of its request) plus the proxy.
pub fn average_value(target: i32, app_request: Cpu, proxy_usage: Cpu) -> Cpu {
    app_request
        .percent_ceil(u32::try_from(target).unwrap_or(0))
        .saturating_add(proxy_usage)
}

fn with_metrics(
    hpa: &HorizontalPodAutoscaler,
    metrics: Vec<MetricSpec>,
) -> HorizontalPodAutoscaler {
    let mut annotations = hpa.metadata.annotations.clone().unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    let metadata = ObjectMeta {
        name: hpa.metadata.name.clone(),
        namespace: hpa.metadata.namespace.clone(),
        labels: hpa.metadata.labels.clone(),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    };
    let mut spec = hpa.spec.clone();
    spec.metrics = Some(metrics);
    HorizontalPodAutoscaler {
        metadata,
        spec,
        status: None,
    }
}

fn summary(
    kind: FixKind,
    apps: &[(&str, Cpu)],
    proxy_usage: Cpu,
    spec: &HorizontalPodAutoscalerSpec,
) -> String {
    let names: Vec<&str> = apps.iter().map(|(n, _)| *n).collect();
    let target = spec
        .metrics
        .iter()
        .flatten()
        .find_map(pod_utilization)
        .unwrap_or(0);
    match kind {
        FixKind::ContainerResource => format!(
            "measure CPU on the app container{} ({}) only, at the same {target}% (ContainerResource, GA in Kubernetes 1.30)",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ),
        FixKind::AverageValue => {
            let app_request: Cpu = apps.iter().map(|(_, r)| *r).sum();
            format!(
                "target an average of {} per pod: the app's {target}% of {app_request} plus {proxy_usage} for the proxy, as in the seed",
                average_value(target, app_request, proxy_usage)
            )
        }
    }
}

fn to_yaml(
    fixed: &HorizontalPodAutoscaler,
    kind: FixKind,
    doc: &Document,
) -> Result<String, HpaError> {
    let body = serde_saphyr::to_string(fixed).map_err(|e| invalid(doc, e.to_string()))?;
    Ok(format!(
        "# meshproof hpa fix ({kind:?}) for {}, generated from {}\n{body}",
        doc.name, doc.at
    ))
}

fn invalid(doc: &Document, message: String) -> HpaError {
    HpaError::Shape {
        at: doc.at.clone(),
        message: format!(
            "internal error: the fix for HPA {} is invalid: {message}",
            doc.name
        ),
    }
}

/// Parses the fix back into `autoscaling/v2`, checks nothing was lost or invented, and
/// re-analyses it against the same pod.
fn validate(
    yaml: &str,
    meant: &HorizontalPodAutoscaler,
    original: &Document,
    pod: &PodModel,
    a: &Assumptions,
) -> Result<Vec<String>, HpaError> {
    let path = Path::new("fix.yaml");
    let parsed = manifest::parse_str(path, yaml)?;
    let [doc] = parsed.as_slice() else {
        return Err(invalid(
            original,
            format!("expected one document, got {}", parsed.len()),
        ));
    };
    if doc.api_version != "autoscaling/v2" || !super::is_hpa(doc) {
        return Err(invalid(
            original,
            format!("parsed as {} {}", doc.api_version, doc.kind),
        ));
    }
    let typed: HorizontalPodAutoscaler = doc.typed()?;
    let round_trip = serde_json::to_value(&typed).map_err(|e| invalid(original, e.to_string()))?;
    if round_trip != doc.value || &typed != meant {
        return Err(invalid(
            original,
            "the YAML does not round-trip through autoscaling/v2".into(),
        ));
    }
    let again = analysis::analyze_without_fixes(doc, a, pod)?;
    Ok(again.iter().filter_map(|m| after_line(m, pod)).collect())
}

fn after_line(m: &MetricAnalysis, pod: &PodModel) -> Option<String> {
    let trigger = m.app_at_trigger?;
    let what = match &m.kind {
        MetricKind::ContainerUtilization { container, target } => {
            let request = pod.container(container)?.request?;
            let (_, intended, _) = utilization_points(request, *target, m.tolerance);
            format!(
                "{container} at {target}% of {request}: scales out at {trigger} and above (without the mesh: {intended})"
            )
        }
        MetricKind::PodAverageValue { target } => {
            format!(
                "pod average {target}: the app scales out at {trigger} and above (with the proxy at its assumed usage)"
            )
        }
        _ => return None,
    };
    Some(what)
}
