//! The live check's judge: a pure state machine over HPA status samples.
//!
//! One [`Judge`] watches one half ("arm") of the experiment. The skewed arm must *hold*:
//! the HPA reports its metric and stays at its replica count for `hold` seconds while
//! the app container's own usage is high enough that the app alone would scale. The fixed
//! arm must *scale out* before its timeout. Anything that leaves the claim unproven (no
//! metrics, the load never arrived) is inconclusive, never a pass: an HPA that does not
//! scale because metrics-server is missing proves nothing about the sidecar.

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscalerStatus, MetricStatus};
use serde::{Deserialize, Serialize};

use crate::hpa::analysis::utilization_points;
use crate::hpa::quantity::Cpu;

/// Which metric of the HPA's status the judge reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum MetricSelector {
    /// `Resource cpu` (pod-level).
    Resource,
    /// `ContainerResource cpu` of one container.
    ContainerResource {
        /// The container.
        container: String,
    },
}

/// What an arm must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// No scale-out while the app alone would scale.
    Hold,
    /// A scale-out.
    ScaleOut,
}

/// Everything an arm is judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSpec {
    /// `skewed` or `fixed`.
    pub name: String,
    /// Hold or scale out.
    pub expect: Expect,
    /// The metric to read from the status.
    pub metric: MetricSelector,
    /// Replicas when the arm started.
    pub start_replicas: i32,
    /// The app container's CPU request.
    pub app_request: Cpu,
    /// The target utilization the HPA's author meant for the app.
    pub target: u32,
    /// The controller's scale-up tolerance.
    pub tolerance: f64,
    /// Seconds the skewed HPA must hold still under load.
    pub hold: f64,
}

impl ArmSpec {
    /// The app utilization above which the app alone would make the controller act.
    pub fn app_trigger_utilization(&self) -> u64 {
        utilization_points(self.app_request, self.target, self.tolerance).2
    }
}

/// One observation: the HPA's status and what metrics-server says about the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the arm started.
    pub t: f64,
    /// The HPA's status as the API server returned it.
    pub status: Option<HorizontalPodAutoscalerStatus>,
    /// The app container's usage, averaged over the loaded pods.
    pub app_usage: Option<Cpu>,
    /// The proxy's usage, averaged over the loaded pods.
    pub proxy_usage: Option<Cpu>,
}

/// How an arm ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "reason")]
pub enum Decision {
    /// The arm showed what it had to, for the reason given.
    Pass(String),
    /// It showed the opposite.
    Fail(String),
    /// It could not show either.
    Inconclusive(String),
}

/// What the HPA reported for its metric in one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    /// `current.averageUtilization`, for utilization targets.
    pub utilization: Option<i32>,
    /// `current.averageValue`, for value targets (and alongside utilization).
    pub value: Option<Cpu>,
}

/// The judge of one arm.
#[derive(Debug, Clone)]
pub struct Judge {
    spec: ArmSpec,
    decided: Option<Decision>,
    /// When the HPA first reported metrics while the app was loaded.
    window: Option<f64>,
    window_samples: u32,
    window_loaded: u32,
    seen_active: bool,
    peak_app: Option<Cpu>,
    last_inactive: Option<String>,
    last_reading: Reading,
    last_t: f64,
}

impl Judge {
    /// A judge for one arm.
    pub fn new(spec: ArmSpec) -> Judge {
        Judge {
            spec,
            decided: None,
            window: None,
            window_samples: 0,
            window_loaded: 0,
            seen_active: false,
            peak_app: None,
            last_inactive: None,
            last_reading: Reading::default(),
            last_t: 0.0,
        }
    }

    /// The arm's spec.
    pub fn spec(&self) -> &ArmSpec {
        &self.spec
    }

    /// Feeds one sample; returns the decision once there is one. Samples after the
    /// decision are ignored.
    pub fn observe(&mut self, sample: &Sample) -> Option<Decision> {
        if self.decided.is_some() {
            return self.decided.clone();
        }
        self.last_t = sample.t;
        self.peak_app = self.peak_app.max(sample.app_usage);
        let status = sample.status.as_ref();
        let (active, why) = scaling_active(status);
        let reading = status.and_then(|s| reading(s, &self.spec.metric));
        if let Some(r) = reading {
            self.last_reading = r;
        }
        let measured = active && reading.is_some();
        self.seen_active |= measured;
        if !measured {
            self.last_inactive =
                why.or_else(|| Some("the status has no reading for the metric yet".into()));
        }
        let desired = status.map_or(self.spec.start_replicas, |s| s.desired_replicas);
        let current = status
            .and_then(|s| s.current_replicas)
            .unwrap_or(self.spec.start_replicas);
        let scaled = desired > self.spec.start_replicas || current > self.spec.start_replicas;
        let loaded = self.loaded(sample.app_usage);
        let decision = match self.spec.expect {
            Expect::ScaleOut if scaled => Some(Decision::Pass(format!(
                "scaled out: desired {desired}, current {current} replicas (from {}) at t={:.0}s, {}",
                self.spec.start_replicas,
                sample.t,
                self.describe(reading, sample.app_usage)
            ))),
            Expect::ScaleOut => None,
            Expect::Hold if scaled => Some(Decision::Fail(format!(
                "scaled out after all: desired {desired}, current {current} replicas (from {}) at t={:.0}s, {}",
                self.spec.start_replicas,
                sample.t,
                self.describe(reading, sample.app_usage)
            ))),
            Expect::Hold => self.hold_step(sample, measured && loaded, reading),
        };
        self.decided = decision.clone();
        decision
    }

    /// The decision when time is up (or the decision already reached).
    pub fn finish(&mut self) -> Decision {
        if let Some(d) = &self.decided {
            return d.clone();
        }
        let peak = self
            .peak_app
            .map_or("no usage reported".into(), |p| p.to_string());
        let needed = self.spec.app_trigger_utilization();
        let decision = if !self.seen_active {
            Decision::Inconclusive(format!(
                "after {:.0}s the HPA had not reported its metric: {}",
                self.last_t,
                self.last_inactive
                    .clone()
                    .unwrap_or_else(|| "no status".into())
            ))
        } else if !self.loaded(self.peak_app) {
            Decision::Inconclusive(format!(
                "the app never ran above {needed}% of its {} request (peak {peak}), so the app alone would not have scaled either",
                self.spec.app_request
            ))
        } else {
            match self.spec.expect {
                Expect::ScaleOut => Decision::Fail(format!(
                    "no scale-out in {:.0}s although the app ran at up to {peak} ({needed}% of its {} request triggers); last reading: {}",
                    self.last_t,
                    self.spec.app_request,
                    self.reading_text(Some(self.last_reading))
                )),
                Expect::Hold => Decision::Inconclusive(format!(
                    "held under load for only {:.0}s of the {:.0}s required ({} of {} samples loaded)",
                    self.window.map_or(0.0, |w| self.last_t - w),
                    self.spec.hold,
                    self.window_loaded,
                    self.window_samples
                )),
            }
        };
        self.decided = Some(decision.clone());
        decision
    }

    fn loaded(&self, app_usage: Option<Cpu>) -> bool {
        let needed = self.spec.app_trigger_utilization();
        app_usage
            .and_then(|u| u.utilization_of(self.spec.app_request))
            .is_some_and(|u| u >= needed)
    }

    /// The hold arm: open a window at the first loaded, measured sample; pass once it
    /// is `hold` long with at least 80% of its samples loaded and measured.
    fn hold_step(
        &mut self,
        sample: &Sample,
        good: bool,
        reading: Option<Reading>,
    ) -> Option<Decision> {
        if self.window.is_none() && good {
            self.window = Some(sample.t);
        }
        let start = self.window?;
        self.window_samples += 1;
        self.window_loaded += u32::from(good);
        let long_enough = sample.t - start >= self.spec.hold;
        let steady = self.window_loaded * 5 >= self.window_samples * 4;
        (long_enough && steady && good).then(|| {
            Decision::Pass(format!(
                "held at {} replica(s) for {:.0}s while the app ran at {} ({}% of its request would scale it alone); {}",
                self.spec.start_replicas,
                sample.t - start,
                sample.app_usage.unwrap_or_default(),
                self.spec.app_trigger_utilization(),
                self.reading_text(reading)
            ))
        })
    }

    fn describe(&self, reading: Option<Reading>, app: Option<Cpu>) -> String {
        let app = app.map_or("app usage unknown".into(), |a| format!("app at {a}"));
        format!("{app}; {}", self.reading_text(reading))
    }

    fn reading_text(&self, reading: Option<Reading>) -> String {
        match reading {
            Some(Reading {
                utilization: Some(u),
                ..
            }) => format!(
                "the HPA reported {u}% against its target {}%",
                self.spec.target
            ),
            Some(Reading { value: Some(v), .. }) => {
                format!("the HPA reported an average of {v} per pod")
            }
            _ => "the HPA reported no value".into(),
        }
    }
}

/// Whether the HPA computes its metrics, and the condition's message when it does not.
pub fn scaling_active(status: Option<&HorizontalPodAutoscalerStatus>) -> (bool, Option<String>) {
    let condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "ScalingActive"));
    match condition {
        Some(c) if c.status == "True" => (true, None),
        Some(c) => (
            false,
            Some(format!(
                "ScalingActive={} {}: {}",
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )),
        ),
        None => (false, Some("no ScalingActive condition yet".into())),
    }
}

/// The current value of the selected metric in a status.
pub fn reading(
    status: &HorizontalPodAutoscalerStatus,
    selector: &MetricSelector,
) -> Option<Reading> {
    let current = status
        .current_metrics
        .iter()
        .flatten()
        .find_map(|m: &MetricStatus| match selector {
            MetricSelector::Resource => m
                .resource
                .as_ref()
                .filter(|r| r.name == "cpu")
                .map(|r| &r.current),
            MetricSelector::ContainerResource { container } => m
                .container_resource
                .as_ref()
                .filter(|r| r.name == "cpu" && &r.container == container)
                .map(|r| &r.current),
        })?;
    let value = current
        .average_value
        .as_ref()
        .and_then(|q| Cpu::parse(&q.0).ok());
    (current.average_utilization.is_some() || value.is_some()).then_some(Reading {
        utilization: current.average_utilization,
        value,
    })
}
