//! A running lab on any Kubernetes cluster: what kind and existing clusters share.
//!
//! [`ClusterLab`] turns every scenario step into API calls (apply, label, restart, waits),
//! runs probes by exec or from the host, collects diagnostics and ends the run. What
//! differs between clusters is behind [`Cluster`], which each provisioner implements:
//! `provider::kind` (a cluster it created, captured on the kind bridge, deleted at the
//! end) and `provider::existing` (a user's cluster, captured by pods, left standing).
//! The provisioners import this module; it imports neither of them.

mod diagnostics;
mod lab;
mod probe;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use lab::{ClusterLab, ClusterParts, label_patch, restart_patch};
pub use probe::{form_encode, observation, pod_command, request};

use crate::env_vars;
use crate::provider::{CaptureResult, ProviderError, Teardown};
use crate::reporter::Reporter;
use crate::tools::{Platform, ToolOptions};

/// The node label scenario workloads select a node by (`meshproof.dev/slot=a|b|...`).
pub const SLOT_LABEL: &str = "meshproof.dev/slot";
/// The namespace Istio's control plane and gateways run in.
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// The ingress gateway's Deployment and Service.
pub const INGRESS_GATEWAY: &str = "istio-ingressgateway";
/// The egress gateway's Deployment and Service.
pub const EGRESS_GATEWAY: &str = "istio-egressgateway";

/// Errors of the cluster providers outside a running lab's steps.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A config or manifest could not be generated.
    #[error("cannot generate config: {0}")]
    Generate(String),
    /// A tool or manifest is missing or failed verification.
    #[error(transparent)]
    Tools(#[from] crate::tools::ToolsError),
    /// The cluster's API failed.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    /// A tool run failed.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    /// The ledger could not be written.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// A file in the artifacts directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
}

impl From<ClusterError> for ProviderError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Exec(e) => ProviderError::Exec(e),
            // Not "cluster:"/"kind:": the error names its operation and the API's answer.
            ClusterError::Kube(e) => ProviderError::Kube(e),
            other => ProviderError::Failed {
                operation: "cluster".into(),
                message: other.to_string(),
            },
        }
    }
}

/// The cluster a [`ClusterLab`] runs on, as its provisioner knows it: how traffic is
/// captured there, what else diagnostics can collect, and what ending the run removes.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// Report lines that say which cluster this is.
    fn notes(&self, lab: &ClusterLab) -> Vec<String>;

    /// Starts a capture at this cluster's capture point.
    async fn start_capture(
        &self,
        lab: &ClusterLab,
        name: &str,
        canaries: &[String],
    ) -> Result<Box<dyn ClusterCapture>, ProviderError>;

    /// Diagnostics only this kind of cluster has, written into `dir`; each failure is
    /// returned as a line for `errors.txt`.
    async fn diagnostics(&self, lab: &ClusterLab, dir: &Path) -> Vec<String>;

    /// Ends the run: removes what it created (with `keep`, what `--keep` cannot keep,
    /// such as privileged capture pods in a user's cluster) and says what it removed
    /// and kept.
    async fn teardown(
        &self,
        lab: &ClusterLab,
        keep: bool,
        reporter: &dyn Reporter,
    ) -> Result<Teardown, ProviderError>;

    /// Last-resort cleanup for a lab dropped without teardown (a panic unwound past the
    /// runner); runs without an async context.
    fn abandon(&self, lab: &ClusterLab);
}

/// A capture in progress on a cluster.
#[async_trait]
pub trait ClusterCapture: Send + Sync {
    /// Stops the capture, analyses it and names every peer.
    async fn stop(self: Box<Self>, lab: &ClusterLab) -> Result<CaptureResult, ProviderError>;
}

/// The tool options for this machine (`use_path_tools`: accept any version on `PATH`).
pub fn tool_options(root: &Path, use_path_tools: bool) -> ToolOptions {
    ToolOptions {
        cache: env_vars::cache_dir(root),
        use_path_tools,
        platform: Platform::current().unwrap_or(Platform {
            os: "linux",
            arch: "amd64",
        }),
        path_dirs: env_vars::path_dirs(),
    }
}
