//! The kind cluster under a [`ClusterLab`]: captured on the kind bridge (or in a node's
//! network namespace), with kind's node logs in diagnostics, deleted when the run ends.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use super::images::{is_local, scenario_images};
use super::live_capture::{self, Running};
use super::{KindError, KindNetwork};
use crate::exec::Cmd;
use crate::provider::cluster::{Cluster, ClusterCapture, ClusterLab};
use crate::provider::{CaptureResult, ProviderError, Teardown};
use crate::reporter::Reporter;
use crate::tools::Toolset;

/// A kind cluster this run created or reused.
#[derive(Clone)]
pub struct KindCluster {
    /// Created by this run (deleted at the end), not reused with `--reuse`.
    pub created: bool,
    /// The kind Docker network, where captures run.
    pub network: Option<KindNetwork>,
    /// The Docker engine kind runs on.
    pub docker: bollard::Docker,
}

impl KindCluster {
    /// The kind Docker network.
    pub(crate) fn network(&self) -> Result<&KindNetwork, KindError> {
        self.network.as_ref().ok_or_else(|| KindError::Network {
            network: "kind".into(),
            message: "is unknown for this lab".into(),
        })
    }
}

/// A `kind` command for a cluster (used by diagnostics and image loading).
pub(super) fn kind_cmd(tools: &Toolset, args: &[&str]) -> Cmd {
    tools.cmd("kind").args(args.iter().copied())
}

/// Loads locally built images into the nodes; other images are pulled by the nodes.
pub(super) async fn load_images(lab: &ClusterLab) -> Result<(), KindError> {
    for image in scenario_images(lab.scenario())
        .into_iter()
        .filter(|i| is_local(i))
    {
        let cmd = kind_cmd(
            lab.tools(),
            &["load", "docker-image", &image, "--name", lab.name()],
        )
        .timeout(Duration::from_secs(600));
        lab.exec().run(&cmd).await?;
    }
    Ok(())
}

/// What ending a run does to a kind cluster.
#[derive(Debug, PartialEq, Eq)]
enum KindTeardown {
    /// Delete it.
    Delete,
    /// Leave it standing, for this reason.
    Keep(&'static str),
}

/// A cluster this run created is deleted unless the run keeps it; a reused one stays.
fn kind_teardown(created: bool, keep: bool) -> KindTeardown {
    match (created, keep) {
        (_, true) => KindTeardown::Keep("--keep"),
        (false, false) => KindTeardown::Keep("--reuse"),
        (true, false) => KindTeardown::Delete,
    }
}

/// A capture on the kind network, with the cluster it runs on.
struct KindCapture {
    running: Running,
    cluster: KindCluster,
}

#[async_trait]
impl ClusterCapture for KindCapture {
    async fn stop(self: Box<Self>, lab: &ClusterLab) -> Result<CaptureResult, ProviderError> {
        live_capture::stop(lab, &self.cluster, self.running).await
    }
}

#[async_trait]
impl Cluster for KindCluster {
    fn notes(&self, lab: &ClusterLab) -> Vec<String> {
        let how = if self.created {
            "created for this run"
        } else {
            "reused (--reuse)"
        };
        vec![format!(
            "kind cluster {} ({how}), kubeconfig {}",
            lab.name(),
            lab.kubeconfig().display()
        )]
    }

    async fn start_capture(
        &self,
        lab: &ClusterLab,
        name: &str,
        canaries: &[String],
    ) -> Result<Box<dyn ClusterCapture>, ProviderError> {
        let running = live_capture::start(lab, self, name, canaries).await?;
        Ok(Box::new(KindCapture {
            running,
            cluster: self.clone(),
        }))
    }

    async fn diagnostics(&self, lab: &ClusterLab, dir: &Path) -> Vec<String> {
        let export = kind_cmd(
            lab.tools(),
            &[
                "export",
                "logs",
                &dir.join("kind-logs").display().to_string(),
                "--name",
                lab.name(),
            ],
        )
        .timeout(Duration::from_secs(300));
        match lab.exec().run(&export).await {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("kind export logs: {e}")],
        }
    }

    /// Deletes the cluster unless it was reused or is kept.
    async fn teardown(
        &self,
        lab: &ClusterLab,
        keep: bool,
        reporter: &dyn Reporter,
    ) -> Result<Teardown, ProviderError> {
        Ok(match kind_teardown(self.created, keep) {
            KindTeardown::Keep(why) => {
                if !keep {
                    reporter.info(&format!("kind cluster {} kept ({why})", lab.name()));
                }
                Teardown {
                    removed: Vec::new(),
                    kept: vec![format!("kind cluster {} ({why})", lab.name())],
                }
            }
            KindTeardown::Delete => {
                let cmd = kind_cmd(lab.tools(), &["delete", "cluster", "--name", lab.name()])
                    .timeout(Duration::from_secs(300));
                lab.exec().run(&cmd).await?;
                Teardown {
                    removed: vec![format!("kind cluster {}", lab.name())],
                    kept: Vec::new(),
                }
            }
        })
    }

    /// Deletes the cluster from a thread of its own: no async runtime can be entered from
    /// inside one that is unwinding.
    fn abandon(&self, lab: &ClusterLab) {
        if !self.created {
            return;
        }
        let cmd = kind_cmd(lab.tools(), &["delete", "cluster", "--name", lab.name()])
            .timeout(Duration::from_secs(300));
        let exec = lab.exec().clone();
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            rt.map(|rt| rt.block_on(exec.run(&cmd)).is_ok())
                .unwrap_or(false)
        });
        let _ = worker.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cluster_this_run_created_and_does_not_keep_is_deleted() {
        assert_eq!(kind_teardown(true, false), KindTeardown::Delete);
        assert_eq!(kind_teardown(true, true), KindTeardown::Keep("--keep"));
        assert_eq!(kind_teardown(false, false), KindTeardown::Keep("--reuse"));
        assert_eq!(kind_teardown(false, true), KindTeardown::Keep("--keep"));
    }
}
