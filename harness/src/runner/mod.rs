//! The scenario runner: drives a lab through a scenario's phases and judges what it saw.
//!
//! The runner owns the order of things and the guarantees around them: preflight before
//! provisioning, every step judged, diagnostics collected on failure, and teardown after
//! success, failure or cancellation (Ctrl-C). What a step *means* is the lab's business.

mod steps;

pub use steps::label as steps_label;

use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::watch;

use crate::provider::{Lab, Provider, RunContext};
use crate::report::{PhaseReport, ScenarioReport};
use crate::reporter::Reporter;
use crate::scenario::{Canary, Scenario};
use crate::verdict::{CheckKind, Judgement, Verdict};

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run phases up to and including this one; probes and captures of earlier phases
    /// are skipped (their state-changing steps still run).
    pub phase: Option<String>,
    /// The run's identity, canary and artifacts directory.
    pub context: RunContext,
}

/// Tells a running scenario to stop. Cloning shares the signal.
#[derive(Debug, Clone)]
pub struct Cancel {
    rx: watch::Receiver<bool>,
}

/// The sending side of [`Cancel`].
#[derive(Debug)]
pub struct CancelHandle {
    tx: watch::Sender<bool>,
}

impl Cancel {
    /// A new signal and its trigger.
    pub fn new() -> (CancelHandle, Cancel) {
        let (tx, rx) = watch::channel(false);
        (CancelHandle { tx }, Cancel { rx })
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when cancelled.
    pub async fn cancelled(&mut self) {
        while !*self.rx.borrow_and_update() {
            if self.rx.changed().await.is_err() {
                // The handle is gone without cancelling: never resolve.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl CancelHandle {
    /// Cancels every clone of the [`Cancel`].
    pub fn cancel(&self) {
        let _ = self.tx.send(true);
    }
}

/// Runs one scenario on a provider and returns its report. Never panics on lab errors:
/// they become `error` verdicts, and the lab is torn down whatever happened.
pub async fn run(
    scenario: &Scenario,
    provider: &dyn Provider,
    opts: &RunOptions,
    reporter: &dyn Reporter,
    cancel: Cancel,
) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport::new(scenario.name());
    let ctx = &opts.context;
    let id = format!("{}/setup", scenario.name());
    reporter.started(
        &id,
        &format!("Preflight for {} on {}", scenario.name(), provider.name()),
    );
    if let Err(err) = provider.preflight(scenario, ctx).await {
        reporter.finished(&id, false, &err.to_string());
        report.setup.push(Judgement::bare(
            "preflight",
            CheckKind::Step,
            Verdict::Error,
            err.to_string(),
        ));
        report.seconds = started.elapsed().as_secs_f64();
        return report;
    }
    reporter.finished(&id, true, "ok");
    let lab = match provider.provision(scenario, ctx, reporter).await {
        Ok(lab) => lab,
        Err(err) => {
            report.setup.push(Judgement::bare(
                "provision",
                CheckKind::Step,
                Verdict::Error,
                err.to_string(),
            ));
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    report.setup.push(Judgement::bare(
        "provision",
        CheckKind::Step,
        Verdict::Pass,
        format!("{} lab ready", provider.name()),
    ));
    report.notes = lab.notes();
    for note in &report.notes {
        reporter.info(note);
    }
    let mut driver = steps::Driver::new(scenario, lab, ctx, reporter, cancel);
    run_phases(scenario, opts, &mut driver, &mut report).await;
    finish(
        driver,
        &mut report,
        ctx.artifacts.join(scenario.name()).join("diagnostics"),
        reporter,
    )
    .await;
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn run_phases(
    scenario: &Scenario,
    opts: &RunOptions,
    driver: &mut steps::Driver<'_>,
    report: &mut ScenarioReport,
) {
    let selected = opts.phase.as_deref();
    for phase in &scenario.file.phases {
        let judged = selected.is_none_or(|s| s == phase.name.value);
        let checks = driver.run_phase(phase, judged).await;
        let stop = checks.iter().any(|j| j.verdict == Verdict::Error);
        report.phases.push(PhaseReport {
            name: phase.name.value.clone(),
            checks,
        });
        if stop || driver.cancelled() || selected == Some(phase.name.value.as_str()) {
            break;
        }
    }
}

async fn finish(
    driver: steps::Driver<'_>,
    report: &mut ScenarioReport,
    diagnostics: PathBuf,
    reporter: &dyn Reporter,
) {
    let interrupted = driver.cancelled();
    let mut lab: Box<dyn Lab> = driver.into_lab();
    if interrupted {
        report.setup.push(Judgement::bare(
            "interrupted",
            CheckKind::Step,
            Verdict::Error,
            "the run was interrupted; the lab is being torn down",
        ));
    }
    if matches!(report.verdict(), Verdict::Fail | Verdict::Error) && !interrupted {
        reporter.started("diagnostics", "Collecting diagnostics");
        let outcome = lab.collect_diagnostics(&diagnostics).await;
        reporter.finished(
            "diagnostics",
            outcome.is_ok(),
            &match outcome {
                Ok(()) => format!("written to {}", diagnostics.display()),
                Err(e) => e.to_string(),
            },
        );
    }
    reporter.started("teardown", "Tearing down");
    match lab.teardown(reporter).await {
        Ok(done) => reporter.finished("teardown", true, &done.summary()),
        Err(err) => {
            reporter.finished("teardown", false, &err.to_string());
            report.setup.push(Judgement::bare(
                "teardown",
                CheckKind::Step,
                Verdict::Error,
                err.to_string(),
            ));
        }
    }
}

/// Renders `{{canary}}` into every payload and expectation string of a probe.
pub fn render_probe(probe: &crate::scenario::Probe, canary: &Canary) -> crate::scenario::Probe {
    use crate::scenario::render;
    let mut p = probe.clone();
    if let Some(http) = &mut p.http {
        http.path = render(&http.path, canary);
        http.form.values_mut().for_each(|v| *v = render(v, canary));
        http.headers
            .values_mut()
            .for_each(|v| *v = render(v, canary));
        if let Some(body) = &mut http.body {
            *body = render(body, canary);
        }
    }
    if let Some(tcp) = &mut p.tcp {
        tcp.send = render(&tcp.send, canary);
    }
    if let Some(mysql) = &mut p.mysql {
        mysql.query = render(&mysql.query, canary);
    }
    if let Some(amqp) = &mut p.amqp {
        amqp.publish = render(&amqp.publish, canary);
    }
    if let Some(mongodb) = &mut p.mongodb {
        mongodb
            .insert
            .iter_mut()
            .chain(mongodb.find.as_mut())
            .for_each(|v| render_json(v, canary));
    }
    if let Some(body) = &mut p.expect.body_contains {
        *body = render(body, canary);
    }
    p
}

/// Renders `{{canary}}` into every string (keys and values) of a JSON document.
fn render_json(v: &mut serde_json::Value, canary: &Canary) {
    use serde_json::Value;
    match v {
        Value::String(s) => *s = crate::scenario::render(s, canary),
        Value::Array(items) => items.iter_mut().for_each(|i| render_json(i, canary)),
        Value::Object(map) => {
            let rendered: serde_json::Map<String, Value> = std::mem::take(map)
                .into_iter()
                .map(|(k, mut v)| {
                    render_json(&mut v, canary);
                    (crate::scenario::render(&k, canary), v)
                })
                .collect();
            *map = rendered;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
