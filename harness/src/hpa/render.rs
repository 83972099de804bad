//! The text report of `cargo xtask hpa check`: per HPA, the pod, each metric's points,
//! the findings and the fixes. The library builds the text; the command line prints it.

use std::fmt::Write;

use super::Report;
use super::analysis::{HpaAnalysis, MetricAnalysis, MetricKind, Reach, Severity};
use super::findings::millis;
use super::pod::{ContainerModel, Origin, PodModel, Role};

/// The whole report as text.
pub fn text(report: &Report) -> String {
    let mut out = format!(
        "HPA check of {} (assumed proxy usage under load: {})\n",
        report.subject, report.assumptions.proxy_usage
    );
    if report.hpas.is_empty() {
        out.push_str("\nno HorizontalPodAutoscaler found\n");
    }
    for hpa in &report.hpas {
        out.push('\n');
        out.push_str(&one(hpa));
    }
    let count = |s: Severity| {
        report
            .hpas
            .iter()
            .flat_map(|h| &h.findings)
            .filter(|f| f.severity == s)
            .count()
    };
    let _ = writeln!(
        out,
        "\n{} HPA version(s) analysed: {} error(s), {} warning(s)",
        report.hpas.len(),
        count(Severity::Error),
        count(Severity::Warning)
    );
    out
}

/// One HPA as text.
pub fn one(h: &HpaAnalysis) -> String {
    let mut out = format!("HPA {} → {}\n  {} ({})\n", h.hpa, h.target, h.at, h.context);
    if let Some(pod) = &h.pod {
        pod_table(&mut out, pod);
    }
    for (i, m) in h.metrics.iter().enumerate() {
        metric(&mut out, i + 1, m, h.pod.as_ref());
    }
    if !h.findings.is_empty() {
        out.push_str("  findings:\n");
        for f in &h.findings {
            let _ = writeln!(out, "    {}: {}", severity(f.severity), f.message);
        }
    }
    for (i, fix) in h.fixes.iter().enumerate() {
        let _ = writeln!(out, "  fix {} ({:?}): {}", i + 1, fix.kind, fix.summary);
        for line in &fix.after {
            let _ = writeln!(out, "    after the fix: {line}");
        }
        out.push_str("    ---\n");
        for line in fix.yaml.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

fn pod_table(out: &mut String, pod: &PodModel) {
    let verdict = if pod.injection.injected {
        "sidecar injected"
    } else {
        "no sidecar injected"
    };
    let _ = writeln!(out, "  pod: {verdict} ({})", pod.injection.reason);
    let width = pod
        .containers
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(9);
    let roles: Vec<String> = pod.containers.iter().map(role).collect();
    let role_width = roles.iter().map(String::len).max().unwrap_or(0).max(4);
    let _ = writeln!(
        out,
        "    {:width$}  {:role_width$}  {:>8}  {:>8}  request from",
        "container", "role", "request", "limit"
    );
    for (c, role) in pod.containers.iter().zip(&roles) {
        let request = c.request.map_or_else(|| "none".into(), |r| r.to_string());
        let limit = c.limit.map_or_else(|| "none".into(), |l| l.to_string());
        let _ = writeln!(
            out,
            "    {:width$}  {role:role_width$}  {request:>8}  {limit:>8}  {}",
            c.name,
            origin(&c.request_origin)
        );
    }
    if let Some(r) = pod.pod_request {
        let _ = writeln!(
            out,
            "    pod-level request {r} (the HPA divides by it instead of the containers' sum)"
        );
    }
}

fn role(c: &ContainerModel) -> String {
    let mut parts = vec![match c.role {
        Role::App => "app",
        Role::MeshProxy => "mesh proxy",
    }];
    if c.native_sidecar {
        parts.push("native sidecar");
    } else if c.role == Role::MeshProxy {
        parts.push("classic sidecar");
    }
    if c.injected {
        parts.push("injected");
    }
    parts.join(", ")
}

fn origin(o: &Origin) -> String {
    match o {
        Origin::Declared => "manifest".into(),
        Origin::Limit => "its limit (no request set)".into(),
        Origin::LimitRange(name) => format!("LimitRange {name}"),
        Origin::MeshValues => "mesh values (global.proxy.resources)".into(),
        Origin::Annotation(key) => format!("annotation {key}"),
        Origin::Missing => "nobody: no CPU request".into(),
    }
}

fn metric(out: &mut String, index: usize, m: &MetricAnalysis, pod: Option<&PodModel>) {
    let _ = writeln!(out, "  metric {index}: {}", describe(&m.kind, m));
    if matches!(m.kind, MetricKind::Other { .. }) {
        return;
    }
    if let Some(point) = m.target_point {
        let shares: Vec<String> = m
            .shares
            .iter()
            .map(|s| format!("{} {}", s.container, millis(s.at_target)))
            .collect();
        let split = if shares.len() > 1 {
            format!(": {}", shares.join(" + "))
        } else {
            String::new()
        };
        let scope = match &m.kind {
            MetricKind::ContainerUtilization { container, .. }
            | MetricKind::ContainerAverageValue { container, .. } => {
                format!("in container {container}")
            }
            _ => "per pod".into(),
        };
        let _ = writeln!(out, "    target point {} {scope}{split}", millis(point));
    }
    if let Some(trigger) = m.trigger {
        let pct = m
            .trigger_utilization
            .map(|p| format!("utilization {p}% or more, "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    the controller acts at {trigger} and above ({pct}tolerance {:.0}%)",
            m.tolerance * 100.0
        );
    }
    let proxies = pod.map_or(0, |p| p.proxies().count());
    if let (Some(at), Some(trigger)) = (m.app_at_target, m.app_at_trigger) {
        let with = if proxies > 0
            && matches!(
                m.kind,
                MetricKind::PodUtilization { .. } | MetricKind::PodAverageValue { .. }
            ) {
            " (given the proxy's assumed usage)"
        } else {
            ""
        };
        let intended = m
            .intended_at_target
            .map(|i| format!("; without the mesh: {}", millis(i)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    the app needs {} at the target, {trigger} to trigger{with}{intended}",
            millis(at)
        );
    }
    if let Some(reach) = &m.reach {
        let text = match reach {
            Reach::Reachable { limit } => format!("yes, within the app's CPU limit {limit}"),
            Reach::Unbounded => "only by bursting: the app has no CPU limit".into(),
            Reach::Unreachable { limit, needed } => {
                format!("NO: the app's CPU limit {limit} is below the {needed} it needs")
            }
        };
        let _ = writeln!(out, "    reachable: {text}");
    }
}

/// A metric in one phrase.
pub fn describe(kind: &MetricKind, m: &MetricAnalysis) -> String {
    let over = m
        .denominator
        .map(|d| format!(" of {d}"))
        .unwrap_or_default();
    match kind {
        MetricKind::PodUtilization { target } => {
            format!(
                "Resource cpu, averageUtilization {target}% (pod-level: all containers' usage over their requests{over})"
            )
        }
        MetricKind::PodAverageValue { target } => {
            format!("Resource cpu, averageValue {target} per pod (all containers' usage)")
        }
        MetricKind::ContainerUtilization { container, target } => {
            format!(
                "ContainerResource cpu on {container}, averageUtilization {target}%{}",
                if over.is_empty() {
                    String::new()
                } else {
                    format!(" ({container}'s request{over})")
                }
            )
        }
        MetricKind::ContainerAverageValue { container, target } => {
            format!("ContainerResource cpu on {container}, averageValue {target}")
        }
        MetricKind::Other { description } => description.clone(),
    }
}
