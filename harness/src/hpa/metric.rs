//! The numbers of one CPU metric: the target point, the controller's trigger, the app's
//! share of them given the proxy's usage, and whether the app's limit allows it.
//!
//! `utilization_points` and `value_trigger` reproduce the controller's comparison in
//! float64 on integer utilizations, so a boundary such as 55 / 50 (exactly 1 + 0.1)
//! stays within tolerance as it does in Kubernetes.

use k8s_openapi::api::autoscaling::v2::MetricSpec;

use super::HpaError;
use super::analysis::{Assumptions, MetricAnalysis, MetricKind, Reach, Share};
use super::pod::{ContainerModel, PodModel, Role};
use super::quantity::Cpu;
use crate::manifest::Document;

pub(super) fn analyze_metric(
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
        .is_some_and(|c| c.role == Role::App)
}

fn share(container: &str, request: Option<Cpu>, target: u32) -> Share {
    Share {
        container: container.to_string(),
        at_target: request.map_or(0.0, |r| r.percent_exact(target)),
    }
}

fn sum_requests<'a>(mut containers: impl Iterator<Item = &'a ContainerModel>) -> Option<Cpu> {
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
