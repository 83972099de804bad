//! Static analysis of one HPA against the effective pod of its target.
//!
//! The arithmetic follows the HPA controller (`pkg/controller/podautoscaler`):
//! utilization is `floor(100 * usage / requests)` in millicores, the controller acts
//! only when `utilization / target` leaves `[1 - tolerance, 1 + tolerance]` (10% by
//! default), a pod-level `Resource` metric sums every container including native
//! sidecars (or uses the pod-level request when one is set), and a `ContainerResource`
//! metric reads one container. Two points are reported for each metric: the *target
//! point* (usage exactly at the target, the seed's 140m) and the *trigger* (the first
//! usage the controller acts on, beyond the tolerance).

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec};
use serde::Serialize;

use super::HpaError;
use super::findings::metric_findings;
use super::fix::{self, Fix};
use super::metric::analyze_metric;
pub use super::metric::{utilization_points, value_trigger, within_tolerance};
use super::pod::{InjectionMode, PodContext, PodModel, pod_model};
use super::quantity::Cpu;
use crate::manifest::{Document, SourceRef};
use crate::scenario::ProxyResources;

/// The controller's default tolerance (`--horizontal-pod-autoscaler-tolerance`).
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// The idle proxy usage the seed measured, used when nothing better is known.
pub const DEFAULT_PROXY_USAGE: Cpu = Cpu::millis(10);

/// What the analysis assumes about things manifests cannot say.
#[derive(Debug, Clone, Serialize)]
pub struct Assumptions {
    /// CPU each mesh proxy uses while the app is under load (assumed or measured).
    pub proxy_usage: Cpu,
    /// How injection is decided.
    #[serde(skip)]
    pub inject: InjectionMode,
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            proxy_usage: DEFAULT_PROXY_USAGE,
            inject: InjectionMode::Auto,
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// The HPA works, but not as its author meant.
    Warning,
    /// The HPA cannot scale out on this metric.
    Error,
}

/// One thing the analysis found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// One or two sentences.
    pub message: String,
}

impl Finding {
    /// A finding.
    pub fn new(severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            severity,
            message: message.into(),
        }
    }
}

/// The analysis of one HPA.
#[derive(Debug, Clone, Serialize)]
pub struct HpaAnalysis {
    /// `namespace/name`.
    pub hpa: String,
    /// Where the HPA document is.
    #[serde(serialize_with = "display")]
    pub at: SourceRef,
    /// When it applies (`phase hpa, hpa step sidecar-skew (skewed)`).
    pub context: String,
    /// `Deployment xnat/xnat-web`.
    pub target: String,
    /// The effective pod, when the target is in the manifests.
    pub pod: Option<PodModel>,
    /// One entry per metric, in spec order.
    pub metrics: Vec<MetricAnalysis>,
    /// What is wrong or noteworthy.
    pub findings: Vec<Finding>,
    /// Ready-to-apply fixes, validated.
    pub fixes: Vec<Fix>,
}

fn display<S: serde::Serializer>(at: &SourceRef, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_string())
}

/// What a metric measures, as far as CPU scaling is concerned.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum MetricKind {
    /// `Resource cpu` with `averageUtilization`: pod usage over pod requests.
    PodUtilization {
        /// Target percentage.
        target: u32,
    },
    /// `Resource cpu` with `averageValue`: pod usage against an absolute value.
    PodAverageValue {
        /// Target per pod.
        target: Cpu,
    },
    /// `ContainerResource cpu` with `averageUtilization`.
    ContainerUtilization {
        /// The container.
        container: String,
        /// Target percentage.
        target: u32,
    },
    /// `ContainerResource cpu` with `averageValue`.
    ContainerAverageValue {
        /// The container.
        container: String,
        /// Target per container.
        target: Cpu,
    },
    /// Anything that does not depend on CPU requests (memory, Pods, Object, External).
    Other {
        /// What it is.
        description: String,
    },
}

/// The numbers behind one CPU metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricAnalysis {
    /// What the metric is.
    pub kind: MetricKind,
    /// The scale-up tolerance used.
    pub tolerance: f64,
    /// The requests the utilization is relative to (sum, pod-level or one container).
    pub denominator: Option<Cpu>,
    /// Usage per pod (or container) exactly at the target, in millicores.
    pub target_point: Option<f64>,
    /// The smallest usage the controller scales out on.
    pub trigger: Option<Cpu>,
    /// The utilization the trigger corresponds to, for utilization targets.
    pub trigger_utilization: Option<u64>,
    /// Each counted container's share of the target point (utilization targets).
    pub shares: Vec<Share>,
    /// Usage of all app containers together at the target point, given the proxy usage.
    pub app_at_target: Option<f64>,
    /// Usage of all app containers together at the trigger.
    pub app_at_trigger: Option<Cpu>,
    /// The app containers' summed request.
    pub app_request: Option<Cpu>,
    /// What the app alone would need at the target without the mesh proxy.
    pub intended_at_target: Option<f64>,
    /// Whether the app can reach the trigger below its CPU limit.
    pub reach: Option<Reach>,
}

/// One container's part of a scale-out point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// The container.
    pub container: String,
    /// Its share of the target point, in millicores.
    pub at_target: f64,
}

/// Can the app reach the trigger?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Reach {
    /// Yes, below the app containers' CPU limits.
    Reachable {
        /// The summed limit.
        limit: Cpu,
    },
    /// No CPU limit: only if the node has idle CPU to burst into.
    Unbounded,
    /// No: the trigger is above what the limits allow.
    Unreachable {
        /// The summed limit.
        limit: Cpu,
        /// What the app would need.
        needed: Cpu,
    },
}

/// Analyses one HPA document against `docs` (the objects that exist alongside it).
pub fn analyze(
    doc: &Document,
    docs: &[Document],
    mesh: Option<&ProxyResources>,
    assumptions: &Assumptions,
    context: &str,
) -> Result<HpaAnalysis, HpaError> {
    let (hpa, mut findings) = parse_hpa(doc)?;
    let target_ref = &hpa.spec.scale_target_ref;
    let namespace = doc.namespace_or_default().to_string();
    let target = format!("{} {namespace}/{}", target_ref.kind, target_ref.name);
    let mut out = HpaAnalysis {
        hpa: format!("{namespace}/{}", doc.name),
        at: doc.at.clone(),
        context: context.to_string(),
        target: target.clone(),
        pod: None,
        metrics: Vec::new(),
        findings: Vec::new(),
        fixes: Vec::new(),
    };
    let workload = docs.iter().find(|d| {
        d.kind == target_ref.kind
            && d.name == target_ref.name
            && d.namespace_or_default() == namespace
    });
    let Some(workload) = workload else {
        findings.push(Finding::new(
            Severity::Warning,
            format!("{target} is not in the manifests, so its pods cannot be analysed"),
        ));
        out.findings = findings;
        return Ok(out);
    };
    findings.extend(competing_hpas(
        doc,
        docs,
        &target_ref.kind,
        &target_ref.name,
        &namespace,
    ));
    let ctx = PodContext {
        docs,
        mesh_proxy: mesh,
        mode: assumptions.inject,
    };
    let pod = pod_model(workload, &ctx)?;
    let (metrics, metric_notes) = metric_analyses(&hpa, doc, &pod, assumptions)?;
    findings.extend(metric_notes);
    out.metrics = metrics;
    out.fixes = fix::fixes(&hpa, doc, &pod, &out.metrics, assumptions)?;
    out.findings = findings;
    out.pod = Some(pod);
    Ok(out)
}

/// Analyses the CPU metrics of an HPA document against a given pod, without fixes:
/// how a fix is checked against the pod of the HPA it replaces.
pub fn analyze_without_fixes(
    doc: &Document,
    assumptions: &Assumptions,
    pod: &PodModel,
) -> Result<Vec<MetricAnalysis>, HpaError> {
    let (hpa, _) = parse_hpa(doc)?;
    Ok(metric_analyses(&hpa, doc, pod, assumptions)?.0)
}

/// Every metric's analysis and findings; an HPA without metrics gets the API default.
fn metric_analyses(
    hpa: &HorizontalPodAutoscaler,
    doc: &Document,
    pod: &PodModel,
    assumptions: &Assumptions,
) -> Result<(Vec<MetricAnalysis>, Vec<Finding>), HpaError> {
    let tolerance = scale_up_tolerance(hpa, doc)?;
    let specs = effective_metrics(hpa);
    let mut findings = Vec::new();
    if hpa.spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        findings.push(Finding::new(
            Severity::Info,
            "no metrics given: Kubernetes defaults to CPU utilization 80%",
        ));
    }
    let mut out = Vec::new();
    for metric in &specs {
        let analysis = analyze_metric(metric, pod, assumptions, tolerance, doc)?;
        findings.extend(metric_findings(&analysis, pod, assumptions));
        out.push(analysis);
    }
    Ok((out, findings))
}

/// The metrics the controller uses: the spec's, or the API default of 80% CPU
/// utilization when there are none.
pub fn effective_metrics(hpa: &HorizontalPodAutoscaler) -> Vec<MetricSpec> {
    match hpa.spec.metrics.as_deref() {
        Some(metrics) if !metrics.is_empty() => metrics.to_vec(),
        _ => vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(fix::cpu_resource_utilization(80)),
            ..MetricSpec::default()
        }],
    }
}

/// Reads an HPA in any served version as `autoscaling/v2`.
pub fn parse_hpa(doc: &Document) -> Result<(HorizontalPodAutoscaler, Vec<Finding>), HpaError> {
    match doc.api_version.as_str() {
        "autoscaling/v2" => Ok((doc.typed()?, Vec::new())),
        "autoscaling/v1" => {
            let v1: k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler = doc.typed()?;
            let note = Finding::new(
                Severity::Info,
                "autoscaling/v1 HPA read as autoscaling/v2 (targetCPUUtilizationPercentage is a Resource cpu metric)",
            );
            Ok((fix::from_v1(v1), vec![note]))
        }
        other => Err(HpaError::UnsupportedVersion {
            at: doc.at.clone(),
            name: doc.name.clone(),
            api_version: other.to_string(),
        }),
    }
}

/// The scale-up tolerance: `behavior.scaleUp.tolerance` when set, else the default.
fn scale_up_tolerance(hpa: &HorizontalPodAutoscaler, doc: &Document) -> Result<f64, HpaError> {
    let set = hpa
        .spec
        .behavior
        .as_ref()
        .and_then(|b| b.scale_up.as_ref())
        .and_then(|r| r.tolerance.as_ref());
    match set {
        // A quantity read in millis: "0.05" and "50m" are both 50, i.e. 5%.
        Some(q) => Cpu::parse(&q.0)
            .map(|m| m.as_millis() as f64 / 1000.0)
            .map_err(|source| HpaError::Quantity {
                at: doc.at.clone(),
                field: "spec.behavior.scaleUp.tolerance".into(),
                problem: source,
            }),
        None => Ok(DEFAULT_TOLERANCE),
    }
}

fn competing_hpas(
    doc: &Document,
    docs: &[Document],
    kind: &str,
    name: &str,
    namespace: &str,
) -> Vec<Finding> {
    docs.iter()
        .filter(|d| super::is_hpa(d) && d.name != doc.name && d.namespace_or_default() == namespace)
        .filter(|d| d.value.pointer("/spec/scaleTargetRef/kind").and_then(|v| v.as_str()) == Some(kind))
        .filter(|d| d.value.pointer("/spec/scaleTargetRef/name").and_then(|v| v.as_str()) == Some(name))
        .map(|d| Finding::new(Severity::Error, format!("HPA {} targets the same workload; the controller refuses to act on either (AmbiguousSelector)", d.name)))
        .collect()
}
