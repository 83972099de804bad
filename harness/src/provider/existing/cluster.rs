//! The user's cluster under a [`ClusterLab`]: captured by capture pods, never deleted;
//! ending the run removes what the scenario applied (unless `--keep`) and, always, the
//! privileged capture pods and their namespace.

use std::path::Path;

use async_trait::async_trait;

use super::capture::{self, Running};
use crate::manifest::Document;
use crate::provider::cluster::{Cluster, ClusterCapture, ClusterError, ClusterLab};
use crate::provider::{CaptureResult, ProviderError, Teardown};
use crate::reporter::Reporter;

/// A cluster the user owns, picked by kubeconfig context.
pub struct ExistingCluster {
    /// The capture pods' image (`--capture-image`, else the pinned one).
    pub capture_image: String,
}

/// What ending a run deletes from a user's cluster, in the order it is deleted: the
/// scenario's objects unless the run keeps them, then the capture namespace whatever
/// happens, because privileged hostNetwork pods must never outlive a run.
pub fn teardown_docs(
    scenario: &[Document],
    keep: bool,
    run: &str,
) -> Result<Vec<Vec<Document>>, ProviderError> {
    let mut batches = Vec::new();
    if !keep {
        batches.push(scenario.to_vec());
    }
    batches.push(vec![capture::namespace_doc(run)?]);
    Ok(batches)
}

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
        Ok(Box::new(
            capture::start(lab, &self.capture_image, name, canaries).await?,
        ))
    }

    /// Not a kind cluster: there are no node logs to export.
    async fn diagnostics(&self, _lab: &ClusterLab, _dir: &Path) -> Vec<String> {
        Vec::new()
    }

    /// The cluster and its mesh stay; every batch is tried even when one fails, and the
    /// summary lists only what the API server really deleted.
    async fn teardown(
        &self,
        lab: &ClusterLab,
        keep: bool,
        reporter: &dyn Reporter,
    ) -> Result<Teardown, ProviderError> {
        let docs: Vec<Document> = lab
            .scenario()
            .manifests
            .values()
            .flatten()
            .cloned()
            .collect();
        // Deleted newest first among what was really applied, so dependants go first.
        let docs = lab.kube().in_apply_order(&docs);
        let mut done = Teardown::default();
        if keep {
            done.kept.push(format!(
                "{} scenario object(s) in context {} (--keep)",
                docs.len(),
                lab.name()
            ));
        }
        let mut failures = Vec::new();
        for batch in teardown_docs(&docs, keep, &lab.run_id())? {
            match lab.kube().delete(&batch).await {
                Ok(keys) => done.removed.extend(keys),
                Err(e) => failures.push(ClusterError::from(e).to_string()),
            }
        }
        reporter.info(&format!(
            "deleted {} object(s) from {}",
            done.removed.len(),
            lab.name()
        ));
        if failures.is_empty() {
            return Ok(done);
        }
        Err(ProviderError::Failed {
            operation: format!("teardown of context {}", lab.name()),
            message: format!("{}; {}", failures.join("; "), done.summary()),
        })
    }

    /// Nothing can be deleted without an async context; `cargo xtask gc` sweeps by label.
    fn abandon(&self, _lab: &ClusterLab) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    fn docs() -> Vec<Document> {
        scenario("pii-demo")
            .manifests
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    #[test]
    fn capture_namespace_is_deleted_even_when_the_run_is_kept() {
        let kept = teardown_docs(&docs(), true, "mp-1").unwrap();
        assert_eq!(kept.len(), 1, "only the capture namespace: {kept:?}");
        let ns = &kept[0][0];
        assert_eq!(
            (ns.kind.as_str(), ns.name.as_str()),
            ("Namespace", "meshproof-capture")
        );
        assert_eq!(
            ns.value
                .pointer("/metadata/labels/meshproof.dev~1run")
                .unwrap(),
            "mp-1"
        );
    }

    #[test]
    fn scenario_objects_go_first_then_the_capture_namespace() {
        let all = teardown_docs(&docs(), false, "mp-1").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].len(), docs().len());
        assert_eq!(all[1][0].name, "meshproof-capture");
    }

    #[test]
    fn teardown_line_names_what_was_removed_and_kept() {
        let t = Teardown {
            removed: vec!["v1/Namespace/meshproof-capture".into()],
            kept: vec!["7 scenario object(s) in context c (--keep)".into()],
        };
        assert_eq!(
            t.summary(),
            "removed v1/Namespace/meshproof-capture; kept 7 scenario object(s) in context c (--keep)"
        );
        assert_eq!(Teardown::default().summary(), "nothing to remove");
    }
}
