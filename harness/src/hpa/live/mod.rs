//! The live HPA check of an `hpa:` step: prove on a cluster that the skewed HPA does not
//! scale at an app load where the app alone would, and that the fixed HPA does.
//!
//! [`LiveCheck::from_step`] turns a scenario step into everything the check needs (the
//! two HPAs with a fast `behavior`, the app container's request, the target), using the
//! static analysis; it is pure. [`run`] drives a cluster through `kube::Client`: it
//! applies the skewed HPA, starts a bounded busy loop in the app container of every pod
//! (so the load never crosses the sidecar and is set by the container's CPU limit),
//! samples the HPA status and metrics-server, and lets a [`judge::Judge`] decide each
//! half. The time series and an SVG plot are written next to the run's other artifacts.

mod cluster;
pub mod judge;
pub mod series;
pub mod svg;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
};

pub use cluster::run;
pub use judge::{ArmSpec, Decision, Expect, Judge, MetricSelector, Sample};
pub use series::{Point, Series};

use super::analysis::{self, Assumptions, MetricKind, Reach};
use super::pod::Role;
use super::quantity::Cpu;
use crate::manifest::Document;
use crate::scenario::{HpaStep, Scenario, Step, WorkloadKind, parse_duration};
use crate::verdict::{CheckKind, Judgement, Verdict};

/// Errors that keep the live check from running. A check that runs and does not hold is
/// a [`Decision`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The step cannot be turned into a check (wrong HPA shapes, unknown container).
    #[error("hpa step: {0}")]
    Config(String),
    /// The static analysis of the step's manifests failed.
    #[error(transparent)]
    Analysis(#[from] super::HpaError),
    /// The Kubernetes API refused or failed a request.
    #[error("{operation}: {source}")]
    Kube {
        /// What meshproof was doing.
        operation: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The cluster serves no `metrics.k8s.io` API, so no HPA can read CPU.
    #[error(
        "the cluster serves no metrics.k8s.io/v1beta1 API ({0}); install metrics-server (requires.metricsServer: true)"
    )]
    NoMetricsApi(String),
    /// The workload has no ready pod to load.
    #[error("{0}")]
    NoPods(String),
    /// A command in a container failed.
    #[error("exec in pod {pod}, container {container}: {message}")]
    Exec {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// What went wrong.
        message: String,
    },
    /// The API server did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// An artifact could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
}

/// Everything the live check of one `hpa:` step needs.
#[derive(Debug, Clone)]
pub struct LiveCheck {
    /// The step's name.
    pub name: String,
    /// The workload's namespace (the HPAs live there too).
    pub namespace: String,
    /// `Deployment` or `StatefulSet`.
    pub workload_kind: WorkloadKind,
    /// The workload's name.
    pub workload: String,
    /// The app container the busy loop runs in.
    pub container: String,
    /// The skewed HPA, with the check's fast `behavior`.
    pub skewed: HorizontalPodAutoscaler,
    /// The fixed HPA, with the check's fast `behavior`.
    pub fixed: HorizontalPodAutoscaler,
    /// The skewed arm's spec (start replicas are filled in at run time).
    pub skewed_arm: ArmSpec,
    /// The fixed arm's spec.
    pub fixed_arm: ArmSpec,
    /// Time limit of each arm.
    pub timeout: Duration,
    /// How often the HPA is sampled.
    pub poll: Duration,
    /// How long the busy loop runs at most, whatever happens to meshproof.
    pub load_bound: Duration,
    /// What the static analysis predicts for the skewed HPA, for the report.
    pub prediction: String,
    /// Where the time series and plot go.
    pub artifacts: PathBuf,
}

/// The outcome of a live check that ran.
#[derive(Debug, Clone)]
pub struct LiveOutcome {
    /// Every sample of both arms.
    pub series: Series,
    /// The files written.
    pub artifacts: Vec<PathBuf>,
}

impl LiveCheck {
    /// Builds the check of step `step` of `scenario`; artifacts go to `artifacts`.
    pub fn from_step(
        scenario: &Scenario,
        step: &HpaStep,
        artifacts: &Path,
    ) -> Result<LiveCheck, LiveError> {
        let config = |m: String| LiveError::Config(m);
        let workload = scenario
            .workload(&step.workload.value)
            .ok_or_else(|| config(format!("workload {} is not declared", step.workload.value)))?;
        if workload.kind == WorkloadKind::External {
            return Err(config(format!(
                "workload {} runs outside the cluster and has no HPA",
                workload.name.value
            )));
        }
        let phase = scenario
            .file
            .phases
            .iter()
            .find(|p| {
                p.steps
                    .iter()
                    .any(|s| matches!(s, Step::Hpa(h) if h.name.value == step.name.value))
            })
            .map(|p| p.name.value.clone());
        let state = scenario.state_after(phase.as_deref());
        let mesh = super::mesh_proxy(scenario);
        let a = Assumptions::default();
        let skewed_doc = one_hpa(scenario.documents(&step.skewed.value), &step.skewed.value)?;
        let fixed_doc = one_hpa(scenario.documents(&step.fixed.value), &step.fixed.value)?;
        let skewed = analysis::analyze(skewed_doc, &state, mesh, &a, "live check (skewed)")?;
        let fixed = analysis::analyze(fixed_doc, &state, mesh, &a, "live check (fixed)")?;
        let pod = skewed.pod.as_ref().ok_or_else(|| {
            config(format!(
                "{} is not in the scenario's manifests",
                skewed.target
            ))
        })?;
        let container = &step.container.value;
        let app = pod
            .container(container)
            .filter(|c| c.role == Role::App)
            .ok_or_else(|| {
                config(format!(
                    "{container} is not an app container of {}",
                    pod.workload
                ))
            })?;
        let app_request = app
            .request
            .ok_or_else(|| config(format!("container {container} has no CPU request")))?;
        let (target, tolerance, reach) = skewed
            .metrics
            .iter()
            .find_map(|m| match m.kind {
                MetricKind::PodUtilization { target } => {
                    Some((target, m.tolerance, m.reach.clone()))
                }
                _ => None,
            })
            .ok_or_else(|| {
                config(format!(
                    "the skewed HPA in {} has no pod-level Resource cpu utilization metric",
                    step.skewed.value
                ))
            })?;
        let fixed_metric = fixed
            .metrics
            .iter()
            .find_map(|m| match &m.kind {
                MetricKind::ContainerUtilization { container: c, .. } if c == container => {
                    Some(MetricSelector::ContainerResource { container: c.clone() })
                }
                MetricKind::PodAverageValue { .. } => Some(MetricSelector::Resource),
                _ => None,
            })
            .ok_or_else(|| config(format!("the fixed HPA in {} measures neither ContainerResource cpu of {container} nor an averageValue", step.fixed.value)))?;
        let hold = duration(&step.hold.value)?;
        let timeout = duration(&step.timeout.value)?;
        let arm = |name: &str, expect, metric| ArmSpec {
            name: name.into(),
            expect,
            metric,
            start_replicas: 1,
            app_request,
            target,
            tolerance,
            hold: hold.as_secs_f64(),
        };
        Ok(LiveCheck {
            name: step.name.value.clone(),
            namespace: workload.namespace.clone(),
            workload_kind: workload.kind,
            workload: workload.name.value.clone(),
            container: container.clone(),
            skewed: fast(skewed_doc.typed().map_err(super::HpaError::from)?),
            fixed: fast(fixed_doc.typed().map_err(super::HpaError::from)?),
            skewed_arm: arm("skewed", Expect::Hold, MetricSelector::Resource),
            fixed_arm: arm("fixed", Expect::ScaleOut, fixed_metric),
            timeout,
            poll: Duration::from_secs(5),
            load_bound: timeout * 2 + Duration::from_secs(120),
            prediction: prediction(reach.as_ref(), app.limit),
            artifacts: artifacts.to_path_buf(),
        })
    }
}

fn one_hpa<'a>(docs: &'a [Document], file: &str) -> Result<&'a Document, LiveError> {
    match docs
        .iter()
        .filter(|d| super::is_hpa(d) && d.api_version == "autoscaling/v2")
        .collect::<Vec<_>>()
        .as_slice()
    {
        [one] => Ok(one),
        other => Err(LiveError::Config(format!(
            "{file} must hold exactly one autoscaling/v2 HorizontalPodAutoscaler, not {}",
            other.len()
        ))),
    }
}

fn duration(text: &str) -> Result<Duration, LiveError> {
    parse_duration(text).map_err(LiveError::Config)
}

fn prediction(reach: Option<&Reach>, limit: Option<Cpu>) -> String {
    match (reach, limit) {
        (Some(Reach::Unreachable { limit, needed }), _) => {
            format!(
                "static analysis: the skewed HPA needs {needed} from the app, above its {limit} limit, so it can never scale"
            )
        }
        (Some(Reach::Reachable { .. }), Some(limit)) => {
            format!(
                "static analysis: the skewed HPA can scale below the app's {limit} limit, but only above its intended point"
            )
        }
        _ => "static analysis: the app has no CPU limit, so the load depends on the node".into(),
    }
}

/// The check's `behavior`: scale up at once (no stabilization, up to 4 pods or 100% per
/// 15 s) and never scale down during the check, so each half takes minutes. A
/// tolerance the HPA sets is kept, since the static analysis used it.
fn fast(mut hpa: HorizontalPodAutoscaler) -> HorizontalPodAutoscaler {
    let spec = &mut hpa.spec;
    let tolerance = spec
        .behavior
        .as_ref()
        .and_then(|b| b.scale_up.as_ref())
        .and_then(|r| r.tolerance.clone());
    let policy = |type_: &str, value| HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: 15,
    };
    spec.behavior = Some(HorizontalPodAutoscalerBehavior {
        scale_up: Some(HPAScalingRules {
            stabilization_window_seconds: Some(0),
            select_policy: Some("Max".into()),
            policies: Some(vec![policy("Pods", 4), policy("Percent", 100)]),
            tolerance,
        }),
        scale_down: Some(HPAScalingRules {
            stabilization_window_seconds: Some(3600),
            ..HPAScalingRules::default()
        }),
    });
    hpa.status = None;
    hpa
}

impl LiveOutcome {
    /// One judgement per arm, with the plot and series as evidence in the reason.
    pub fn judgements(&self, check: &LiveCheck) -> Vec<Judgement> {
        let files: Vec<String> = self
            .artifacts
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        self.series
            .arms
            .iter()
            .map(|arm| {
                let (verdict, reason) = match &arm.decision {
                    Decision::Pass(r) => (Verdict::Pass, r.clone()),
                    Decision::Fail(r) => (Verdict::Fail, r.clone()),
                    Decision::Inconclusive(r) => (Verdict::Error, format!("inconclusive: {r}")),
                };
                let claim = match arm.name.as_str() {
                    "skewed" => "the skewed HPA holds still where the app alone would scale",
                    _ => "the fixed HPA scales out under the same load",
                };
                let extra = if arm.name == "skewed" {
                    format!("; {}", check.prediction)
                } else {
                    String::new()
                };
                let name = format!("{}: {claim}", check.name);
                Judgement::bare(
                    &name,
                    CheckKind::Autoscale,
                    verdict,
                    format!("{reason}{extra}; series and plot: {}", files.join(", ")),
                )
            })
            .collect()
    }
}

/// The dry-run plan's detail for an `hpa:` step.
pub fn plan_detail(step: &HpaStep) -> String {
    [
        format!(
            "apply the HPA in {} with a fast behavior (no scale-up stabilization)",
            step.skewed.value
        ),
        format!(
            "start a bounded busy loop in container {} of every pod of {}",
            step.container.value, step.workload.value
        ),
        format!(
            "expect no scale-out for {} while the app alone would scale (timeout {})",
            step.hold.value, step.timeout.value
        ),
        format!(
            "apply the HPA in {} under the same load; expect a scale-out within {}",
            step.fixed.value, step.timeout.value
        ),
        format!(
            "stop the load; write hpa-{}.json, .csv and .svg",
            step.name.value
        ),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests;
