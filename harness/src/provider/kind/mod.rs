//! The kind provider: a throw-away multi-node kind cluster with MetalLB and Istio.
//!
//! Thin glue over the official tools: `kind` creates the cluster from a generated config,
//! `istioctl` installs Istio from a generated IstioOperator, MetalLB and metrics-server
//! come from their pinned upstream manifests (downloaded, checked against
//! `fixtures/tools.lock`), and everything inside the cluster goes through kube's API.

mod capture;
mod cluster;
mod config;
pub mod images;
pub(crate) mod istio;
mod live_capture;
pub(crate) mod metallb;
mod network;
pub mod placement;
mod plan;
pub(crate) mod provision;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use capture::{
    CapturePoint, CaptureSetup, bpf_filter, bridge_visible, choose_point, pcap_path,
};
pub use cluster::KindCluster;
pub use config::{
    KindConfig, MAX_WORKERS, POD_SUBNET, RUN_LABEL, SLOT_LABEL, cluster_name, for_scenario, slot,
};
pub use istio::{EGRESS_GATEWAY, INGRESS_GATEWAY, IstioOperator, operator};
pub use metallb::{Pool, pool_for};
pub use network::{Ipv4Net, KindNetwork};

use crate::provider::{Lab, PlanEntry, Provider, ProviderError, RunContext};
use crate::reporter::Reporter;
use crate::scenario::Scenario;

/// Errors of the kind provider.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    /// The kind Docker network is missing or unusable.
    #[error("Docker network {network} {message}")]
    Network {
        /// The network (or subnet) concerned.
        network: String,
        /// What is wrong with it.
        message: String,
    },
    /// A config or manifest could not be generated.
    #[error("cannot generate config: {0}")]
    Generate(String),
    /// A tool or manifest is missing or failed verification.
    #[error(transparent)]
    Tools(#[from] crate::tools::ToolsError),
    /// The project's workload image (or its binary) could not be built.
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// The cluster's API failed.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    /// A cluster-generic step failed.
    #[error(transparent)]
    Cluster(#[from] crate::provider::cluster::ClusterError),
    /// A tool run failed.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    /// Docker failed.
    #[error("Docker: {0}")]
    Docker(#[from] bollard::errors::Error),
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

impl From<KindError> for ProviderError {
    fn from(e: KindError) -> Self {
        match e {
            KindError::Exec(e) => ProviderError::Exec(e),
            // Not "kind:": the same API errors come from existing clusters.
            KindError::Kube(e) => ProviderError::Kube(e),
            KindError::Cluster(e) => e.into(),
            other => ProviderError::Failed {
                operation: "kind".into(),
                message: other.to_string(),
            },
        }
    }
}

/// Creates kind clusters.
#[derive(Debug, Clone)]
pub struct KindProvider {
    root: PathBuf,
    use_path_tools: bool,
}

impl KindProvider {
    /// A provider for the repository at `root`.
    pub fn new(root: &Path) -> KindProvider {
        KindProvider {
            root: root.to_path_buf(),
            use_path_tools: false,
        }
    }

    /// Uses kind, kubectl and istioctl from `PATH` whatever their version.
    pub fn use_path_tools(mut self, yes: bool) -> KindProvider {
        self.use_path_tools = yes;
        self
    }

    /// The repository root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl Provider for KindProvider {
    fn name(&self) -> &'static str {
        "kind"
    }

    fn plan(&self, scenario: &Scenario, ctx: &RunContext) -> Result<Vec<PlanEntry>, ProviderError> {
        plan::entries(self, scenario, ctx).map_err(Into::into)
    }

    async fn preflight(&self, scenario: &Scenario, ctx: &RunContext) -> Result<(), ProviderError> {
        provision::preflight(self, scenario, ctx).await
    }

    async fn provision(
        &self,
        scenario: &Scenario,
        ctx: &RunContext,
        reporter: &dyn Reporter,
    ) -> Result<Box<dyn Lab>, ProviderError> {
        let lab = provision::provision(self, scenario, ctx, reporter).await?;
        Ok(Box::new(lab))
    }
}

#[cfg(test)]
mod live_tests;

/// Kept for tests outside the providers that still import the helper from here.
#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use crate::testsupport::scenario;
}
