//! Turning one metric's numbers into findings a person can act on.
//!
//! Every message states the numbers it rests on (requests, target, proxy usage,
//! limit), so a reader can redo the arithmetic without meshproof.

use super::analysis::{Assumptions, Finding, MetricAnalysis, MetricKind, Reach, Severity};
use super::pod::{Origin, PodModel, Role};
use super::quantity::Cpu;

/// Millicores with at most one decimal: `130m`, `108.5m`.
pub fn millis(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}m", value.round() as i64)
    } else {
        format!("{value:.1}m")
    }
}

/// Findings for one metric: missing requests, the sidecar skew, reachability.
pub fn metric_findings(m: &MetricAnalysis, pod: &PodModel, a: &Assumptions) -> Vec<Finding> {
    let mut out = Vec::new();
    match &m.kind {
        MetricKind::PodUtilization { target } => {
            if m.denominator.is_none() {
                out.push(missing_requests(pod, &pod.missing_requests()));
                return out;
            }
            out.extend(skew(m, pod, a, *target));
        }
        MetricKind::ContainerUtilization { container, .. }
        | MetricKind::ContainerAverageValue { container, .. } => match pod.container(container) {
            None => {
                let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
                out.push(Finding::new(Severity::Error, format!(
                        "container {container} is not in the pod (containers: {}); the controller reports `container {container} not found` and never scales",
                        names.join(", ")
                    )));
                return out;
            }
            Some(c) if c.role == Role::MeshProxy => out.push(Finding::new(
                Severity::Warning,
                format!("this metric follows the mesh proxy's CPU ({container}), not the app's"),
            )),
            Some(c)
                if c.request.is_none()
                    && matches!(m.kind, MetricKind::ContainerUtilization { .. }) =>
            {
                out.push(missing_requests(pod, &[c.name.as_str()]));
                return out;
            }
            Some(_) => {}
        },
        MetricKind::PodAverageValue { target } => {
            let proxies = pod.proxies().count();
            if proxies > 0 {
                out.push(Finding::new(Severity::Info, format!(
                    "an averageValue of {target} counts the proxy's usage (assumed {} each) but not its request: the app scales out at about {}",
                    a.proxy_usage,
                    millis(m.app_at_target.unwrap_or_default())
                )));
            }
        }
        MetricKind::Other { description } => {
            out.push(Finding::new(
                Severity::Info,
                format!("not analysed: {description}"),
            ));
            return out;
        }
    }
    out.extend(reach_finding(m));
    out
}

fn missing_requests(pod: &PodModel, names: &[&str]) -> Finding {
    let mut message = format!(
        "the HPA is inactive: {} no CPU request, so the controller reports `missing request for cpu in container {}` (ScalingActive=False) and never scales",
        match names {
            [one] => format!("container {one} has"),
            many => format!("containers {} have", many.join(", ")),
        },
        names.first().copied().unwrap_or_default()
    );
    let proxy_without_request = pod
        .proxies()
        .any(|c| c.injected && c.request_origin == Origin::Missing);
    if proxy_without_request {
        message.push_str(
            "; Istio writes the proxy's resources from the pod's sidecar.istio.io/proxy* annotations alone as soon as one is set, so add sidecar.istio.io/proxyCPU",
        );
    }
    Finding::new(Severity::Error, message)
}

/// The sidecar skew of a pod-level utilization metric.
fn skew(m: &MetricAnalysis, pod: &PodModel, a: &Assumptions, target: u32) -> Option<Finding> {
    let proxies: Vec<_> = pod.proxies().filter(|c| c.request.is_some()).collect();
    if proxies.is_empty() || pod.pod_request.is_some() {
        return None;
    }
    let (denominator, point, app_at_target) = (m.denominator?, m.target_point?, m.app_at_target?);
    let app_request = m.app_request?;
    let intended = m.intended_at_target?;
    let parts: Vec<String> = pod
        .containers
        .iter()
        .map(|c| format!("{} {}", c.name, c.request.unwrap_or_default()))
        .collect();
    let pct = match app_request.as_millis() {
        0 => String::new(),
        r => format!(
            ", {:.0}% of its {app_request} request",
            app_at_target / r as f64 * 100.0
        ),
    };
    let message = format!(
        "the sidecar skews the scale-out point: at {target}% the pod must use {} ({target}% of {denominator}: {}); with {} at {} the app must reach {}{pct}, instead of {} without the mesh",
        millis(point),
        parts.join(" + "),
        names(&proxies),
        a.proxy_usage,
        millis(app_at_target),
        millis(intended),
    );
    Some(Finding::new(Severity::Warning, message))
}

fn names(containers: &[&super::pod::ContainerModel]) -> String {
    containers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn reach_finding(m: &MetricAnalysis) -> Option<Finding> {
    let trigger = m.app_at_trigger?;
    let act = match m.trigger_utilization {
        Some(pct) => format!(
            "the controller acts only at {} and above (utilization {pct}% or more, tolerance {:.0}%)",
            pod_trigger(m),
            m.tolerance * 100.0
        ),
        None => format!(
            "the controller acts only at {} and above (tolerance {:.0}%)",
            pod_trigger(m),
            m.tolerance * 100.0
        ),
    };
    match m.reach.as_ref()? {
        Reach::Unreachable { limit, needed } => Some(Finding::new(
            Severity::Error,
            format!(
                "the app can never get there: {act}, which needs {needed} from the app, above its CPU limit {limit}; this HPA never scales out on CPU"
            ),
        )),
        Reach::Unbounded if m.app_request.is_some_and(|r| trigger > r) => Some(Finding::new(
            Severity::Info,
            format!(
                "{act}: the app must burst to {trigger}, above its request, and has no CPU limit, so it depends on idle CPU on the node"
            ),
        )),
        Reach::Reachable { limit } if m.app_request.is_some_and(|r| trigger > r) => {
            Some(Finding::new(
                Severity::Info,
                format!(
                    "{act}: the app must burst to {trigger}, above its request but within its CPU limit {limit}"
                ),
            ))
        }
        _ => None,
    }
}

fn pod_trigger(m: &MetricAnalysis) -> String {
    m.trigger.map_or_else(|| "?".into(), |t: Cpu| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_shows_fractions_only_when_needed() {
        assert_eq!(millis(140.0), "140m");
        assert_eq!(millis(108.5), "108.5m");
        assert_eq!(millis(0.0), "0m");
    }
}
