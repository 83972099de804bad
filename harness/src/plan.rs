//! The dry-run plan: everything a run would do, in order, without touching anything.
//!
//! The provider contributes its own part (tools and versions, cluster config, installs);
//! the scenario contributes the rest (each manifest applied, probes, captures,
//! expectations). `cargo xtask e2e NAME --dry-run` prints it.

use serde::Serialize;

use crate::provider::{PlanEntry, Provider, ProviderError, RunContext};
use crate::runner::steps_label;
use crate::scenario::{CanaryRule, CaptureStep, Probe, Scenario, Step, WireExpectation};

/// A whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The scenario.
    pub scenario: String,
    /// The provider.
    pub provider: String,
    /// The entries, in execution order.
    pub entries: Vec<PlanEntry>,
}

/// Builds the plan for a scenario on a provider.
pub fn build(
    scenario: &Scenario,
    provider: &dyn Provider,
    ctx: &RunContext,
) -> Result<Plan, ProviderError> {
    let mut entries = vec![entry("scenario", requirements(scenario), None)];
    entries.extend(provider.plan(scenario, ctx)?);
    for phase in &scenario.file.phases {
        let section = format!("phase {}", phase.name.value);
        for step in &phase.steps {
            entries.extend(step_entries(scenario, &section, step));
        }
    }
    entries.push(entry("teardown", teardown_text(ctx), None));
    Ok(Plan {
        scenario: scenario.name().to_string(),
        provider: provider.name().to_string(),
        entries,
    })
}

fn entry(section: &str, text: String, detail: Option<String>) -> PlanEntry {
    PlanEntry {
        section: section.to_string(),
        text,
        detail,
    }
}

fn requirements(s: &Scenario) -> String {
    let r = &s.file.requires;
    let mut parts = vec![format!("{} worker node(s)", r.workers)];
    if r.load_balancer.is_some() {
        parts.push("MetalLB".into());
    }
    if let Some(mesh) = &r.mesh {
        let mut m = format!(
            "{:?} (profile {}, outbound {:?}",
            mesh.name, mesh.profile, mesh.outbound_traffic_policy
        )
        .to_lowercase();
        if mesh.ingress_gateway {
            m.push_str(", ingress gateway");
        }
        if mesh.egress_gateway {
            m.push_str(", egress gateway");
        }
        m.push_str(&format!(
            ", proxy requests {} / {})",
            mesh.proxy.cpu_request, mesh.proxy.memory_request
        ));
        parts.push(m);
    }
    if r.metrics_server {
        parts.push("metrics-server".into());
    }
    format!("requires {}", parts.join(", "))
}

fn teardown_text(ctx: &RunContext) -> String {
    if ctx.keep {
        "keep the lab (--keep); remove it later with `cargo xtask gc`".into()
    } else {
        format!(
            "tear down everything labelled meshproof.dev/run={} (also on failure and Ctrl-C)",
            ctx.run_id
        )
    }
}

fn step_entries(s: &Scenario, section: &str, step: &Step) -> Vec<PlanEntry> {
    match step {
        Step::Apply(files) | Step::Delete(files) => {
            let verb = if matches!(step, Step::Apply(_)) {
                "apply"
            } else {
                "delete"
            };
            files
                .iter()
                .map(|f| {
                    let docs = s.documents(&f.value);
                    let objects: Vec<String> = docs.iter().map(|d| d.key()).collect();
                    let path = s.fixtures.join(&f.value);
                    entry(
                        section,
                        format!("{verb} {} ({} object(s))", path.display(), docs.len()),
                        Some(objects.join("\n")),
                    )
                })
                .collect()
        }
        Step::Capture(c) => capture_entries(section, c),
        Step::Probe(probes) => probes
            .iter()
            .map(|p| entry(section, probe_text(p), None))
            .collect(),
        Step::Hpa(h) => vec![entry(
            section,
            steps_label(step),
            Some(crate::hpa::live::plan_detail(h)),
        )],
        other => vec![entry(section, steps_label(other), None)],
    }
}

fn capture_entries(section: &str, c: &CaptureStep) -> Vec<PlanEntry> {
    let mut out = vec![entry(
        section,
        format!(
            "start capture {} between nodes and check it is live",
            c.name.value
        ),
        None,
    )];
    if !c.restart.is_empty() {
        let names: Vec<&str> = c.restart.iter().map(|n| n.value.as_str()).collect();
        out.push(entry(
            section,
            format!("restart {} inside the capture window", names.join(", ")),
            None,
        ));
    }
    out.extend(c.probes.iter().map(|p| entry(section, probe_text(p), None)));
    out.push(entry(
        section,
        format!("stop capture {} and classify every flow", c.name.value),
        None,
    ));
    out.extend(
        c.controls
            .iter()
            .map(|e| entry(section, expectation_text("control", e), None)),
    );
    out.extend(
        c.expect
            .iter()
            .map(|e| entry(section, expectation_text("expect", e), None)),
    );
    out
}

/// One line describing a probe.
pub fn probe_text(p: &Probe) -> String {
    let what = if let Some(h) = &p.http {
        let host = h
            .host
            .as_deref()
            .map(|h| format!(" Host {h}"))
            .unwrap_or_default();
        format!("HTTP {} {}{host}", h.method, h.path)
    } else if let Some(t) = &p.tcp {
        format!("TCP send {:?}", t.send)
    } else if let Some(m) = &p.mysql {
        format!("MySQL query {:?}", m.query)
    } else if let Some(a) = &p.amqp {
        format!(
            "AMQP publish to queue {}{}",
            a.queue,
            if a.consume { " and consume" } else { "" }
        )
    } else if let Some(m) = &p.mongodb {
        let mut ops = vec!["hello".to_string()];
        if !m.insert.is_empty() {
            ops.push(format!("insert {} into", m.insert.len()));
        }
        if let Some(f) = &m.find {
            ops.push(format!("find {f} in"));
        }
        let tls = if m.tls { " over the app's TLS" } else { "" };
        format!(
            "MongoDB {} {}.{}{tls}",
            ops.join(", "),
            m.database,
            m.collection
        )
    } else {
        "no traffic".into()
    };
    let mut expect = Vec::new();
    if let Some(s) = p.expect.status {
        expect.push(format!("status {s}"));
    }
    if let Some(b) = &p.expect.body_contains {
        expect.push(format!("body contains {b:?}"));
    }
    if p.expect.reset == Some(true) {
        expect.push("connection refused or reset".into());
    }
    let expect = if expect.is_empty() {
        String::new()
    } else {
        format!("; expect {}", expect.join(", "))
    };
    format!(
        "probe {}: {} → {}:{} {what}{expect}",
        p.name.value, p.from.value, p.to.workload.value, p.to.port
    )
}

fn expectation_text(kind: &str, e: &WireExpectation) -> String {
    if e.reached == Some(false) {
        return format!(
            "{kind} {}: no connection {} → {}:{} at all",
            e.name.value, e.flow.from.value, e.flow.to.value, e.flow.port
        );
    }
    let class = e.class.map(|c| format!(" is {c}")).unwrap_or_default();
    let canary = match e.canary {
        Some(CanaryRule::Present) => ", canary in clear",
        Some(CanaryRule::Absent) => ", canary absent",
        None => "",
    };
    format!(
        "{kind} {}: {} → {}:{}{class}{canary}",
        e.name.value, e.flow.from.value, e.flow.to.value, e.flow.port
    )
}
