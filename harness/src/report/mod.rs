//! Reports a CI system and a person can read: JSON, JUnit XML and a text summary.
//!
//! The [`RunReport`] is built while the run goes; it is written even when setup fails, so
//! CI always gets a JUnit file (after cilium's connectivity test, which creates its JUnit
//! collector first for the same reason).

mod junit;
mod text;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use junit::to_junit;
pub use text::to_text;

use crate::verdict::{Judgement, Verdict, overall};

/// Errors from writing reports.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be serialized.
    #[error("cannot serialize the report: {0}")]
    Serialize(String),
}

/// A whole run: one or more scenarios on one provider.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run id; every object the run created is labelled with it.
    pub run_id: String,
    /// `kind`, `existing` or `lab`.
    pub provider: String,
    /// The canary searched for in captures (a random test marker, never a secret).
    pub canary: String,
    /// Where artifacts were written.
    pub artifacts: PathBuf,
    /// The analyzer that judged the captures: this crate's version (see
    /// [`ANALYZER_VERSION`]).
    pub analyzer_version: String,
    /// The scenarios, in the order they ran.
    pub scenarios: Vec<ScenarioReport>,
}

/// The version of the analyzer that classifies flows and counts canaries: the
/// `meshproof` crate's version, stated in every report so a verdict can be replayed with
/// the same analyzer.
pub const ANALYZER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Its name.
    pub name: String,
    /// Notes every reader must see (such as the lab's disclaimer).
    pub notes: Vec<String>,
    /// Checks made before any phase: preflight, provisioning, teardown.
    pub setup: Vec<Judgement>,
    /// The phases, in order.
    pub phases: Vec<PhaseReport>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// One phase's results.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// The phase name.
    pub name: String,
    /// Every judged check of the phase, in order.
    pub checks: Vec<Judgement>,
}

impl ScenarioReport {
    /// A report with nothing in it yet.
    pub fn new(name: &str) -> Self {
        ScenarioReport {
            name: name.to_string(),
            notes: vec![],
            setup: vec![],
            phases: vec![],
            seconds: 0.0,
        }
    }

    /// Every check of the scenario, setup first.
    pub fn checks(&self) -> impl Iterator<Item = &Judgement> {
        self.setup
            .iter()
            .chain(self.phases.iter().flat_map(|p| &p.checks))
    }

    /// The scenario's verdict: its worst check.
    pub fn verdict(&self) -> Verdict {
        overall(self.checks())
    }
}

impl RunReport {
    /// The run's verdict: the worst scenario's.
    pub fn verdict(&self) -> Verdict {
        self.scenarios
            .iter()
            .map(ScenarioReport::verdict)
            .fold(Verdict::Pass, Verdict::worst)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String, ReportError> {
        serde_json::to_string_pretty(self).map_err(|e| ReportError::Serialize(e.to_string()))
    }
}

/// Writes `text` to `path` (mode `0600`), creating parent directories (mode `0700`).
pub fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    let io = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::private_fs::create_dir(parent).map_err(io)?;
    }
    use std::io::Write;
    crate::private_fs::create_file(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io)
}

#[cfg(test)]
pub(crate) mod tests;
