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
    let spec = hpa.spec.clone();
    let target_ref = &spec.scale_target_ref;
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
    let mut specs: Vec<MetricSpec> = hpa.spec.metrics.iter().flatten().cloned().collect();
    let mut findings = Vec::new();
    if specs.is_empty() {
        // autoscaling/v2 defaults an HPA without metrics to 80% CPU utilization.
        specs.push(MetricSpec {
            type_: "Resource".into(),
            resource: Some(fix::cpu_resource_utilization(80)),
            ..MetricSpec::default()
        });
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

fn analyze_metric(
    metric: &MetricSpec,
    pod: &PodModel,
    a: &Assumptions,
    tolerance: f64,
    doc: &Document,
) -> Result<MetricAnalysis, HpaError> {
    let kind = metric_kind(metric, doc)?;
    let mut m = MetricAnalysis {
        kind: kind.clone(),
        tolerance,
        denominator: None,
        target_point: None,
        trigger: None,
        trigger_utilization: None,
        shares: Vec::new(),
        app_at_target: None,
        app_at_trigger: None,
        app_request: sum_requests(pod.apps()),
        intended_at_target: None,
        reach: None,
    };
    let proxy_usage = Cpu::millis(a.proxy_usage.as_millis() * pod.proxies().count() as u64);
    match &kind {
        MetricKind::PodUtilization { target } => {
            let denominator = pod
                .pod_request
                .or_else(|| sum_requests(pod.containers.iter()));
            let Some(denominator) = denominator else {
                return Ok(m);
            };
            let (point, trigger, pct) = utilization_points(denominator, *target, tolerance);
            m.denominator = Some(denominator);
            m.target_point = Some(point);
            m.trigger = Some(trigger);
            m.trigger_utilization = Some(pct);
            if pod.pod_request.is_none() {
                m.shares = pod
                    .containers
                    .iter()
                    .map(|c| share(&c.name, c.request, *target))
                    .collect();
            }
            m.app_at_target = Some((point - proxy_usage.as_millis() as f64).max(0.0));
            m.app_at_trigger = Some(trigger.saturating_sub(proxy_usage));
            m.intended_at_target = m.app_request.map(|r| r.percent_exact(*target));
        }
        MetricKind::PodAverageValue { target } => {
            let trigger = value_trigger(*target, tolerance);
            m.target_point = Some(target.as_millis() as f64);
            m.trigger = Some(trigger);
            m.app_at_target = Some(target.saturating_sub(proxy_usage).as_millis() as f64);
            m.app_at_trigger = Some(trigger.saturating_sub(proxy_usage));
        }
        MetricKind::ContainerUtilization { container, target } => {
            let Some(request) = pod.container(container).and_then(|c| c.request) else {
                return Ok(m);
            };
            let (point, trigger, pct) = utilization_points(request, *target, tolerance);
            m.denominator = Some(request);
            m.target_point = Some(point);
            m.trigger = Some(trigger);
            m.trigger_utilization = Some(pct);
            m.shares = vec![share(container, Some(request), *target)];
            if is_app(pod, container) {
                m.app_request = Some(request);
                m.app_at_target = Some(point);
                m.app_at_trigger = Some(trigger);
                m.intended_at_target = Some(point);
            }
        }
        MetricKind::ContainerAverageValue { container, target } => {
            let trigger = value_trigger(*target, tolerance);
            m.target_point = Some(target.as_millis() as f64);
            m.trigger = Some(trigger);
            if is_app(pod, container) {
                m.app_request = pod.container(container).and_then(|c| c.request);
                m.app_at_target = Some(target.as_millis() as f64);
                m.app_at_trigger = Some(trigger);
            }
        }
        MetricKind::Other { .. } => return Ok(m),
    }
    m.reach = m.app_at_trigger.map(|needed| reach(pod, &kind, needed));
    Ok(m)
}

fn is_app(pod: &PodModel, container: &str) -> bool {
    pod.container(container)
        .is_some_and(|c| c.role == super::pod::Role::App)
}

fn share(container: &str, request: Option<Cpu>, target: u32) -> Share {
    Share {
        container: container.to_string(),
        at_target: request.map_or(0.0, |r| r.percent_exact(target)),
    }
}

fn sum_requests<'a>(
    mut containers: impl Iterator<Item = &'a super::pod::ContainerModel>,
) -> Option<Cpu> {
    containers.try_fold(Cpu::ZERO, |acc, c| c.request.map(|r| acc.saturating_add(r)))
}

/// Whether the controller leaves the replica count alone at this usage ratio.
pub fn within_tolerance(ratio: f64, tolerance: f64) -> bool {
    (1.0 - tolerance) <= ratio && ratio <= (1.0 + tolerance)
}

/// For a utilization target: the usage at the target, the first usage the controller
/// scales out on, and the integer utilization that corresponds to.
pub fn utilization_points(requests: Cpu, target: u32, tolerance: f64) -> (f64, Cpu, u64) {
    let point = requests.percent_exact(target);
    let target_f = f64::from(target.max(1));
    // The controller compares float64(utilization) / float64(target) with 1 + tolerance,
    // so walk the integer utilizations up from the target exactly as it would see them.
    let mut pct = u64::from(target);
    while pct as f64 / target_f <= 1.0 || within_tolerance(pct as f64 / target_f, tolerance) {
        pct += 1;
    }
    // The smallest usage u with floor(100 * u / requests) >= pct.
    let trigger = (u128::from(pct) * u128::from(requests.as_millis())).div_ceil(100);
    (
        point,
        Cpu::millis(trigger.min(u128::from(u64::MAX)) as u64),
        pct,
    )
}

/// For an average-value target: the first per-pod usage the controller scales out on.
pub fn value_trigger(target: Cpu, tolerance: f64) -> Cpu {
    let t = target.as_millis().max(1) as f64;
    let mut usage = ((target.as_millis() as f64) * (1.0 + tolerance)).floor() as u64;
    while usage as f64 / t <= 1.0 || within_tolerance(usage as f64 / t, tolerance) {
        usage += 1;
    }
    while usage > 0 {
        let below = (usage - 1) as f64 / t;
        if below <= 1.0 || within_tolerance(below, tolerance) {
            break;
        }
        usage -= 1;
    }
    Cpu::millis(usage)
}

fn reach(pod: &PodModel, kind: &MetricKind, needed: Cpu) -> Reach {
    let limits: Option<Cpu> = match kind {
        MetricKind::ContainerUtilization { container, .. }
        | MetricKind::ContainerAverageValue { container, .. } => {
            pod.container(container).and_then(|c| c.limit)
        }
        _ => pod.apps().map(|c| c.limit).sum::<Option<Cpu>>(),
    };
    match limits {
        None => Reach::Unbounded,
        Some(limit) if needed <= limit => Reach::Reachable { limit },
        Some(limit) => Reach::Unreachable { limit, needed },
    }
}

fn metric_kind(metric: &MetricSpec, doc: &Document) -> Result<MetricKind, HpaError> {
    let other = |description: String| Ok(MetricKind::Other { description });
    let (name, target, container) = match metric.type_.as_str() {
        "Resource" => match &metric.resource {
            Some(r) => (&r.name, &r.target, None),
            None => return other("Resource metric without `resource`".into()),
        },
        "ContainerResource" => match &metric.container_resource {
            Some(r) => (&r.name, &r.target, Some(r.container.clone())),
            None => return other("ContainerResource metric without `containerResource`".into()),
        },
        kind => return other(format!("{kind} metric (does not depend on CPU requests)")),
    };
    if name != "cpu" {
        return other(format!(
            "{} {name} metric (only CPU is analysed)",
            metric.type_
        ));
    }
    let value = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        Cpu::parse(&q.0).map_err(|source| HpaError::Quantity {
            at: doc.at.clone(),
            field: "spec.metrics[].target.averageValue".into(),
            problem: source,
        })
    };
    let kind = match (target.type_.as_str(), container) {
        ("Utilization", None) => MetricKind::PodUtilization {
            target: percent(target.average_utilization),
        },
        ("Utilization", Some(container)) => MetricKind::ContainerUtilization {
            container,
            target: percent(target.average_utilization),
        },
        ("AverageValue", None) => match &target.average_value {
            Some(q) => MetricKind::PodAverageValue { target: value(q)? },
            None => return other("AverageValue target without averageValue".into()),
        },
        ("AverageValue", Some(container)) => match &target.average_value {
            Some(q) => MetricKind::ContainerAverageValue {
                container,
                target: value(q)?,
            },
            None => return other("AverageValue target without averageValue".into()),
        },
        (t, _) => {
            return other(format!(
                "CPU metric with target type {t} (Resource metrics take Utilization or AverageValue)"
            ));
        }
    };
    Ok(kind)
}

fn percent(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}
