//! The live check's time series: one point per sample of either arm, written as JSON
//! (for tools), CSV (for spreadsheets) and an SVG plot (for people).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LiveError;
use super::judge::{ArmSpec, Decision, Sample, reading, scaling_active};
use crate::hpa::quantity::Cpu;

/// One sample on the check's common timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the check started.
    pub t: f64,
    /// `skewed` or `fixed`.
    pub arm: String,
    /// `status.currentReplicas`.
    pub current_replicas: Option<i32>,
    /// `status.desiredReplicas`.
    pub desired_replicas: Option<i32>,
    /// The HPA's own metric: `current.averageUtilization` of the metric it scales on.
    pub hpa_utilization: Option<i32>,
    /// `current.averageValue` of that metric.
    pub hpa_value: Option<Cpu>,
    /// The app container's usage (metrics-server), averaged over the loaded pods.
    pub app_usage: Option<Cpu>,
    /// That usage over the app container's request, in percent.
    pub app_utilization: Option<u64>,
    /// The mesh proxy's usage, averaged over the loaded pods.
    pub proxy_usage: Option<Cpu>,
    /// `ScalingActive` was true.
    pub scaling_active: bool,
}

impl Point {
    /// A point from an arm's sample; `offset` is when the arm started on the timeline.
    pub fn from_sample(sample: &Sample, spec: &ArmSpec, offset: f64) -> Point {
        let status = sample.status.as_ref();
        let r = status.and_then(|s| reading(s, &spec.metric));
        Point {
            t: offset + sample.t,
            arm: spec.name.clone(),
            current_replicas: status.and_then(|s| s.current_replicas),
            desired_replicas: status.map(|s| s.desired_replicas),
            hpa_utilization: r.and_then(|r| r.utilization),
            hpa_value: r.and_then(|r| r.value),
            app_usage: sample.app_usage,
            app_utilization: sample
                .app_usage
                .and_then(|u| u.utilization_of(spec.app_request)),
            proxy_usage: sample.proxy_usage,
            scaling_active: scaling_active(status).0,
        }
    }
}

/// One arm's place on the timeline and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmMark {
    /// `skewed` or `fixed`.
    pub name: String,
    /// When it started, in seconds since the check started.
    pub start: f64,
    /// How it ended.
    pub decision: Decision,
    /// The HPA's target utilization in this arm, for the plot.
    pub target: u32,
}

/// The whole check's series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The step's name.
    pub name: String,
    /// Where the data comes from: a cluster, or synthesized for a test.
    pub provenance: String,
    /// The app container's CPU request.
    pub app_request: Cpu,
    /// The app utilization at which the app alone would make the controller act.
    pub app_trigger: u64,
    /// The arms, in order.
    pub arms: Vec<ArmMark>,
    /// Every sample of every arm.
    pub points: Vec<Point>,
}

impl Series {
    /// The series as CSV, one line per point.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "t_seconds,arm,current_replicas,desired_replicas,hpa_utilization_percent,hpa_average_value_millicores,app_usage_millicores,app_utilization_percent,proxy_usage_millicores,scaling_active\n",
        );
        let opt = |v: Option<String>| v.unwrap_or_default();
        for p in &self.points {
            let _ = writeln!(
                out,
                "{:.1},{},{},{},{},{},{},{},{},{}",
                p.t,
                p.arm,
                opt(p.current_replicas.map(|v| v.to_string())),
                opt(p.desired_replicas.map(|v| v.to_string())),
                opt(p.hpa_utilization.map(|v| v.to_string())),
                opt(p.hpa_value.map(|v| v.as_millis().to_string())),
                opt(p.app_usage.map(|v| v.as_millis().to_string())),
                opt(p.app_utilization.map(|v| v.to_string())),
                opt(p.proxy_usage.map(|v| v.as_millis().to_string())),
                p.scaling_active
            );
        }
        out
    }

    /// Writes `hpa-<name>.json`, `.csv` and `.svg` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, LiveError> {
        std::fs::create_dir_all(dir).map_err(|source| LiveError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let json =
            serde_json::to_string_pretty(self).map_err(|e| LiveError::Config(e.to_string()))?;
        let files = [
            ("json", json),
            ("csv", self.to_csv()),
            ("svg", super::svg::plot(self)),
        ];
        let mut written = Vec::new();
        for (ext, text) in files {
            let path = dir.join(format!("hpa-{}.{ext}", self.name));
            std::fs::write(&path, text).map_err(|source| LiveError::Io {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }
}
