//! The user's cluster under a [`ClusterLab`]: captured by capture pods, never deleted;
//! ending the run removes only what the scenario applied.

use std::path::Path;

use async_trait::async_trait;

use super::capture::{self, Running};
use crate::manifest::Document;
use crate::provider::cluster::{Cluster, ClusterCapture, ClusterError, ClusterLab};
use crate::provider::{CaptureResult, ProviderError};
use crate::reporter::Reporter;

/// A cluster the user owns, picked by kubeconfig context.
pub struct ExistingCluster;

#[async_trait]
impl ClusterCapture for Running {
    async fn stop(self: Box<Self>, lab: &ClusterLab) -> Result<CaptureResult, ProviderError> {
        capture::stop(lab, *self).await
    }
}

#[async_trait]
impl Cluster for ExistingCluster {
    fn notes(&self, lab: &ClusterLab) -> Vec<String> {
        vec![format!(
            "existing cluster, context {} (a cluster you own)",
            lab.name()
        )]
    }

    async fn start_capture(
        &self,
        lab: &ClusterLab,
        name: &str,
        canaries: &[String],
    ) -> Result<Box<dyn ClusterCapture>, ProviderError> {
        Ok(Box::new(capture::start(lab, name, canaries).await?))
    }

    /// Not a kind cluster: there are no node logs to export.
    async fn diagnostics(&self, _lab: &ClusterLab, _dir: &Path) -> Vec<String> {
        Vec::new()
    }

    /// Only what the scenario applied is removed; the cluster and its mesh stay.
    async fn teardown(
        &self,
        lab: &ClusterLab,
        reporter: &dyn Reporter,
    ) -> Result<(), ProviderError> {
        let docs: Vec<Document> = lab
            .scenario()
            .manifests
            .values()
            .flatten()
            .cloned()
            .collect();
        let deleted = lab.kube().delete(&docs).await.map_err(ClusterError::from)?;
        reporter.info(&format!(
            "deleted {} scenario object(s) from {}",
            deleted.len(),
            lab.name()
        ));
        Ok(())
    }

    /// Nothing can be deleted without an async context; `cargo xtask gc` sweeps by label.
    fn abandon(&self, _lab: &ClusterLab) {}
}
