//! Running one phase's steps on a lab, turning each into judged checks.

use std::collections::BTreeMap;

use crate::expect::{judge_capture, judge_model, judge_probe};
use crate::manifest::Document;
use crate::provider::{Lab, ProviderError, RunContext, StepOutcome};
use crate::reporter::Reporter;
use crate::scenario::{
    CaptureStep, HpaStep, Phase, Probe, Scenario, Step, WaitFor, parse_duration,
};
use crate::verdict::{CheckKind, Judgement, Verdict};

use super::{Cancel, render_probe};

/// Drives one lab through steps. Owns the lab until [`Driver::into_lab`].
pub(super) struct Driver<'a> {
    scenario: &'a Scenario,
    lab: Box<dyn Lab>,
    ctx: &'a RunContext,
    reporter: &'a dyn Reporter,
    cancel: Cancel,
    counter: usize,
}

impl<'a> Driver<'a> {
    pub(super) fn new(
        scenario: &'a Scenario,
        lab: Box<dyn Lab>,
        ctx: &'a RunContext,
        reporter: &'a dyn Reporter,
        cancel: Cancel,
    ) -> Self {
        Driver {
            scenario,
            lab,
            ctx,
            reporter,
            cancel,
            counter: 0,
        }
    }

    pub(super) fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(super) fn into_lab(self) -> Box<dyn Lab> {
        self.lab
    }

    /// Runs every step of a phase. With `judged` false, probes and captures are skipped
    /// (the phase only prepares state for a later, selected one).
    pub(super) async fn run_phase(&mut self, phase: &Phase, judged: bool) -> Vec<Judgement> {
        let mut checks = Vec::new();
        for step in &phase.steps {
            if self.cancelled() {
                checks.push(Judgement::bare(
                    "cancelled",
                    CheckKind::Step,
                    Verdict::Error,
                    "interrupted before this step",
                ));
                break;
            }
            let observing = matches!(step, Step::Probe(_) | Step::Capture(_) | Step::Hpa(_));
            if observing && !judged {
                checks.push(Judgement::bare(
                    &label(step),
                    CheckKind::Step,
                    Verdict::Skip,
                    "not the selected phase",
                ));
                continue;
            }
            let new = self.step(&phase.name.value, step).await;
            let stop = new
                .iter()
                .any(|j| j.kind == CheckKind::Step && j.verdict == Verdict::Error);
            checks.extend(new);
            if stop {
                break;
            }
        }
        checks
    }

    async fn step(&mut self, phase: &str, step: &Step) -> Vec<Judgement> {
        self.counter += 1;
        let id = format!("{}/{phase}/{}", self.scenario.name(), self.counter);
        let name = label(step);
        self.reporter.started(&id, &name);
        let mut cancel = self.cancel.clone();
        let observe = async {
            match step {
                Step::Probe(probes) => Some(Ok(self.probes(probes).await)),
                Step::Capture(capture) => Some(self.capture(phase, capture).await),
                _ => None,
            }
        };
        // Probes and captures are interrupted too; the lab's teardown stops a running capture.
        let observed = tokio::select! {
            r = observe => r,
            () = cancel.cancelled() => Some(Err(failed("step", "interrupted".into()))),
        };
        let result = match (observed, step) {
            (Some(r), _) => r,
            (None, Step::Hpa(h)) => self.hpa(h).await,
            (None, other) => self
                .change(other)
                .await
                .map(|outcome| vec![outcome_judgement(&name, outcome)]),
        };
        let checks = result.unwrap_or_else(|err| {
            vec![Judgement::bare(
                &name,
                CheckKind::Step,
                Verdict::Error,
                err.to_string(),
            )]
        });
        let worst = crate::verdict::overall(&checks);
        self.reporter.finished(
            &id,
            matches!(worst, Verdict::Pass | Verdict::Skip),
            worst.as_str(),
        );
        checks
    }

    /// Steps that change the lab's state.
    async fn change(&mut self, step: &Step) -> Result<StepOutcome, ProviderError> {
        let mut cancel = self.cancel.clone();
        let work = async {
            match step {
                Step::Apply(files) => self.lab.apply(&self.docs(files), self.reporter).await,
                Step::Delete(files) => self.lab.delete(&self.docs(files), self.reporter).await,
                Step::Label(l) => self.lab.label_namespace(&l.namespace, &l.labels).await,
                Step::Restart(names) => self.lab.restart(&values(names)).await,
                Step::Wait(w) => {
                    let timeout =
                        parse_duration(&w.timeout.value).map_err(|m| failed("wait", m))?;
                    self.lab
                        .wait(w.condition, &values(&w.workloads), timeout)
                        .await
                }
                Step::Probe(_) | Step::Capture(_) | Step::Hpa(_) => unreachable_step(),
            }
        };
        tokio::select! {
            result = work => result,
            () = cancel.cancelled() => Err(failed("step", "interrupted".into())),
        }
    }

    fn docs(&self, files: &[serde_saphyr::Spanned<String>]) -> Vec<Document> {
        files
            .iter()
            .flat_map(|f| self.scenario.documents(&f.value).iter().cloned())
            .collect()
    }

    async fn probes(&mut self, probes: &[Probe]) -> Vec<Judgement> {
        let mut out = Vec::new();
        for p in probes {
            let rendered = render_probe(p, &self.ctx.canary);
            let j = match self.lab.probe(&rendered).await {
                Ok(obs) => judge_probe(p, &obs, &self.ctx.canary),
                Err(err) => Judgement::bare(
                    &p.name.value,
                    CheckKind::Probe,
                    Verdict::Error,
                    err.to_string(),
                ),
            };
            out.push(j);
        }
        out
    }

    async fn capture(
        &mut self,
        phase: &str,
        step: &CaptureStep,
    ) -> Result<Vec<Judgement>, ProviderError> {
        let canaries = [self.ctx.canary.as_str().to_string()];
        self.lab.start_capture(&step.name.value, &canaries).await?;
        let mut checks = Vec::new();
        if !step.restart.is_empty() {
            let names = values(&step.restart);
            let restarted = async {
                self.lab.restart(&names).await?;
                self.lab
                    .wait(
                        WaitFor::Rollout,
                        &names,
                        std::time::Duration::from_secs(600),
                    )
                    .await
            }
            .await;
            checks.push(match restarted {
                Ok(outcome) => outcome_judgement(
                    &format!("restart {} inside the capture", names.join(", ")),
                    outcome,
                ),
                Err(err) => Judgement::bare(
                    "restart inside the capture",
                    CheckKind::Step,
                    Verdict::Error,
                    err.to_string(),
                ),
            });
        }
        checks.extend(self.probes(&step.probes).await);
        let result = self.lab.stop_capture().await?;
        let verdicts: BTreeMap<String, Verdict> =
            checks.iter().map(|j| (j.name.clone(), j.verdict)).collect();
        self.save_analysis(&step.name.value, &result.analysis);
        checks.extend(judge_capture(step, &result, &verdicts));
        checks.extend(self.model_checks(phase, step, &result));
        Ok(checks)
    }

    /// The policy model's predictions for this phase, checked against the same capture.
    /// A scenario the model cannot evaluate gets one `skip` saying why, never a pass.
    fn model_checks(
        &self,
        phase: &str,
        step: &CaptureStep,
        result: &crate::provider::CaptureResult,
    ) -> Vec<Judgement> {
        match crate::policy::Matrix::for_scenario(self.scenario, Some(phase)) {
            Ok(matrix) => judge_model(step, &crate::policy::expected_flows(&matrix), result),
            Err(err) => vec![Judgement::bare(
                "policy model",
                CheckKind::Model,
                Verdict::Skip,
                format!("the policy model cannot evaluate this phase: {err}"),
            )],
        }
    }

    /// The live HPA check: built from the step (pure), run by the lab, cancellable.
    async fn hpa(&mut self, step: &HpaStep) -> Result<Vec<Judgement>, ProviderError> {
        let artifacts = self.ctx.artifacts.join(self.scenario.name());
        let check = crate::hpa::live::LiveCheck::from_step(self.scenario, step, &artifacts)
            .map_err(|e| failed("hpa", e.to_string()))?;
        let mut cancel = self.cancel.clone();
        tokio::select! {
            result = self.lab.hpa(&check, self.reporter) => result,
            () = cancel.cancelled() => Err(failed("hpa", "interrupted; the busy loops end on their own bound".into())),
        }
    }

    /// Keeps the full analysis beside the pcap, so a reader can see every flow, not only
    /// the ones expectations selected.
    fn save_analysis(&self, name: &str, analysis: &crate::wire::Analysis) {
        let path = self
            .ctx
            .artifacts
            .join(self.scenario.name())
            .join(format!("{name}.flows.json"));
        match serde_json::to_string_pretty(analysis) {
            Ok(json) => {
                if let Err(err) = crate::report::write(&path, &json) {
                    self.reporter.warn(&err.to_string());
                }
            }
            Err(err) => self
                .reporter
                .warn(&format!("cannot serialize the analysis of {name}: {err}")),
        }
    }
}

fn outcome_judgement(name: &str, outcome: StepOutcome) -> Judgement {
    match outcome {
        StepOutcome::Done(detail) => Judgement::bare(name, CheckKind::Step, Verdict::Pass, detail),
        StepOutcome::Skipped(reason) => {
            Judgement::bare(name, CheckKind::Step, Verdict::Skip, reason)
        }
    }
}

fn values(names: &[serde_saphyr::Spanned<String>]) -> Vec<String> {
    names.iter().map(|n| n.value.clone()).collect()
}

fn failed(operation: &str, message: String) -> ProviderError {
    ProviderError::Failed {
        operation: operation.to_string(),
        message,
    }
}

fn unreachable_step() -> Result<StepOutcome, ProviderError> {
    Err(failed(
        "step",
        "probes and captures are not state changes".into(),
    ))
}

/// A short, readable label for a step.
pub fn label(step: &Step) -> String {
    let join = |names: &[serde_saphyr::Spanned<String>]| values(names).join(", ");
    match step {
        Step::Apply(files) => format!("apply {}", join(files)),
        Step::Delete(files) => format!("delete {}", join(files)),
        Step::Label(l) => {
            let labels: Vec<String> = l
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("-")))
                .collect();
            format!("label namespace {} {}", l.namespace, labels.join(","))
        }
        Step::Restart(names) => format!("restart {}", join(names)),
        Step::Wait(w) => {
            let what = match w.condition {
                WaitFor::Rollout => "rollout of",
                WaitFor::PodsReady => "ready pods of",
                WaitFor::SidecarInjected => "sidecars in",
                WaitFor::GatewayAddress => "the ingress gateway's address",
            };
            format!("wait for {what} {}", join(&w.workloads))
                .trim_end()
                .to_string()
        }
        Step::Probe(probes) => format!(
            "probe {}",
            probes
                .iter()
                .map(|p| p.name.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Step::Capture(c) => format!("capture {}", c.name.value),
        Step::Hpa(h) => format!(
            "hpa {}: {} holds under load where {} alone would scale, {} scales out",
            h.name.value, h.skewed.value, h.container.value, h.fixed.value
        ),
    }
}
