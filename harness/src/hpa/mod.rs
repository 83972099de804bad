//! HPA with sidecars: predict the skew from manifests, prove it live, show the fix.
//!
//! A pod-level `Resource` CPU metric compares the pod's summed usage with its summed
//! requests. Injecting a sidecar adds the proxy's request (Istio: 100m) to the
//! denominator but only the proxy's idle usage (about 10m) to the numerator, so the app
//! must work much harder before the HPA acts: with app 100m, proxy 100m and a 70% target
//! the pod must reach 140m, and the app 130m (seed 003). Below the app's CPU limit that
//! may never happen.
//!
//! - [`analysis`] computes, per HPA and metric, the scale-out point, the app usage
//!   needed, whether the app's limit allows it, and flags missing requests;
//! - [`fix`] writes ready-to-apply HPA manifests (`ContainerResource`, or an
//!   `AverageValue` computed as in the seed) and validates them by parsing them back
//!   into `autoscaling/v2` and re-running the analysis;
//! - [`live`] drives a real cluster: a bounded busy loop in the app container, HPA status
//!   samples judged by a pure state machine, and a time series with an SVG plot.
//!
//! Everything except `live`'s kube glue is pure: manifests in, numbers out.

pub mod analysis;
mod findings;
pub mod fix;
pub mod live;
pub mod pod;
pub mod quantity;
pub mod render;

use std::path::PathBuf;

use serde::Serialize;

use crate::manifest::{self, Document, ManifestError, SourceRef};
use crate::scenario::{MeshName, ProxyResources, Scenario, Step};

pub use analysis::{Assumptions, Finding, HpaAnalysis, MetricAnalysis, Severity};
pub use pod::InjectionMode;
pub use quantity::{Cpu, QuantityError};

/// Errors that stop an HPA analysis: input that Kubernetes itself would reject.
/// Problems with an HPA that Kubernetes accepts are [`Finding`]s, not errors.
#[derive(Debug, thiserror::Error)]
pub enum HpaError {
    /// A manifest could not be read or parsed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A CPU quantity in a manifest or in the mesh values is malformed.
    #[error("{at}: {field}: {problem}")]
    Quantity {
        /// The document it is in.
        at: SourceRef,
        /// The field path, such as `spec.template.spec.containers[web].resources.requests.cpu`.
        field: String,
        /// What is wrong with it (kept in the message, not as a separate cause).
        problem: QuantityError,
    },
    /// A document does not have the shape its kind requires.
    #[error("{at}: {message}")]
    Shape {
        /// The document.
        at: SourceRef,
        /// What is wrong.
        message: String,
    },
    /// An HPA uses an API version meshproof does not read.
    #[error(
        "{at}: HorizontalPodAutoscaler {name} uses {api_version}, which Kubernetes no longer serves"
    )]
    UnsupportedVersion {
        /// The document.
        at: SourceRef,
        /// The HPA's name.
        name: String,
        /// Its `apiVersion`.
        api_version: String,
    },
    /// A `--proxy-usage`-style value given on the command line is malformed.
    #[error("{what}: {problem}")]
    Option {
        /// The option.
        what: String,
        /// What is wrong with it (kept in the message, not as a separate cause).
        problem: QuantityError,
    },
}

/// Every HPA analysed in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was analysed: a scenario name or the manifest files.
    pub subject: String,
    /// The assumptions used.
    pub assumptions: Assumptions,
    /// One entry per HPA document (each version of it, in scenario order).
    pub hpas: Vec<HpaAnalysis>,
}

impl Report {
    /// The worst severity among all findings, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.hpas
            .iter()
            .flat_map(|h| &h.findings)
            .map(|f| f.severity)
            .max()
    }
}

/// The mesh proxy resources a scenario installs, when its mesh is Istio.
pub fn mesh_proxy(scenario: &Scenario) -> Option<&ProxyResources> {
    scenario
        .file
        .requires
        .mesh
        .as_ref()
        .filter(|m| m.name == MeshName::Istio)
        .map(|m| &m.proxy)
}

/// Analyses every HPA a scenario ever applies, each against the objects that exist at
/// that point: HPAs from `apply:` steps after their phase, and the skewed and fixed HPAs
/// of `hpa:` steps against the state of their phase.
pub fn check_scenario(scenario: &Scenario, assumptions: &Assumptions) -> Result<Report, HpaError> {
    let mesh = mesh_proxy(scenario);
    let mut hpas = Vec::new();
    let mut seen = Vec::<SourceRef>::new();
    for phase in &scenario.file.phases {
        let name = &phase.name.value;
        let state = scenario.state_after(Some(name));
        for doc in state.iter().filter(|d| is_hpa(d)) {
            if !seen.contains(&doc.at) {
                seen.push(doc.at.clone());
                let context = format!("after phase {name}");
                hpas.push(analysis::analyze(doc, &state, mesh, assumptions, &context)?);
            }
        }
        for step in &phase.steps {
            if let Step::Hpa(h) = step {
                for (role, file) in [("skewed", &h.skewed), ("fixed", &h.fixed)] {
                    for doc in scenario.documents(&file.value).iter().filter(|d| is_hpa(d)) {
                        let context = format!("phase {name}, hpa step {} ({role})", h.name.value);
                        hpas.push(analysis::analyze(doc, &state, mesh, assumptions, &context)?);
                    }
                }
            }
        }
    }
    Ok(Report {
        subject: format!("scenario {}", scenario.name()),
        assumptions: assumptions.clone(),
        hpas,
    })
}

/// Analyses every HPA in plain manifest files, assuming Istio with `proxy` resources.
pub fn check_files(
    files: &[PathBuf],
    proxy: &ProxyResources,
    assumptions: &Assumptions,
) -> Result<Report, HpaError> {
    let mut docs = Vec::new();
    for file in files {
        docs.extend(manifest::load_file(file)?);
    }
    let mut hpas = Vec::new();
    for doc in docs.iter().filter(|d| is_hpa(d)) {
        hpas.push(analysis::analyze(
            doc,
            &docs,
            Some(proxy),
            assumptions,
            "manifests",
        )?);
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Ok(Report {
        subject: names.join(", "),
        assumptions: assumptions.clone(),
        hpas,
    })
}

/// Whether a document is a HorizontalPodAutoscaler.
pub fn is_hpa(doc: &Document) -> bool {
    doc.kind == "HorizontalPodAutoscaler" && doc.group() == "autoscaling"
}

#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod tests;
