//! The running kind lab: every scenario step as API calls, probes by exec, teardown.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{Api, Patch, PatchParams};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;

use super::images::{is_local, scenario_images};
use super::metallb::Pool;
use super::provision::kind_cmd;
use super::{KindError, KindNetwork};
use crate::exec::Exec;
use crate::kube::{Kube, WorkloadRef};
use crate::ledger::Ledger;
use crate::manifest::Document;
use crate::provider::{CaptureResult, Lab, Observation, ProviderError, RunContext, StepOutcome};
use crate::reporter::Reporter;
use crate::scenario::{Probe, Scenario, WaitFor, WorkloadKind};
use crate::tools::{Toolset, Versions};

/// Everything a lab is made of, gathered by provisioning.
pub struct LabParts {
    pub root: PathBuf,
    pub scenario: Scenario,
    pub ctx: RunContext,
    pub kube: Kube,
    pub exec: Exec,
    pub tools: Toolset,
    pub cluster: String,
    pub created: bool,
    /// A user's cluster (`--provider existing`): nothing kind-specific, and teardown
    /// removes only what the scenario applied.
    pub existing: bool,
    pub kubeconfig: PathBuf,
    pub ledger: Ledger,
    pub network: Option<KindNetwork>,
    pub versions: Versions,
    pub docker: bollard::Docker,
}

/// A kind cluster prepared for one scenario.
pub struct KindLab {
    p: LabParts,
    pool: Option<Pool>,
    gateway_ip: Option<IpAddr>,
    torn_down: bool,
    capture: Option<Capturing>,
}

/// The capture in progress, by provider flavour.
enum Capturing {
    /// Bridge or node-namespace capture on kind.
    Kind(super::live_capture::Running),
    /// Capture pods on an existing cluster.
    Existing(crate::provider::existing::capture::Running),
}

impl Drop for KindLab {
    /// A lab dropped without teardown means a panic unwound past the runner: delete the
    /// cluster anyway, from a thread of its own because no async runtime can be entered
    /// from inside one that is unwinding.
    fn drop(&mut self) {
        if self.torn_down || self.p.ctx.keep || self.p.existing || !self.p.created {
            return;
        }
        let cmd = kind_cmd(
            &self.p.tools,
            &["delete", "cluster", "--name", &self.p.cluster],
        )
        .timeout(Duration::from_secs(300));
        let exec = self.p.exec.clone();
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

impl KindLab {
    pub(crate) fn new(parts: LabParts) -> KindLab {
        KindLab {
            p: parts,
            pool: None,
            gateway_ip: None,
            torn_down: false,
            capture: None,
        }
    }

    pub(crate) fn kube(&self) -> &Kube {
        &self.p.kube
    }
    pub(crate) fn exec(&self) -> &Exec {
        &self.p.exec
    }
    pub(crate) fn tools(&self) -> &Toolset {
        &self.p.tools
    }
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.p.ledger
    }
    pub(crate) fn versions(&self) -> &Versions {
        &self.p.versions
    }
    pub(crate) fn network(&self) -> Result<&KindNetwork, KindError> {
        self.p.network.as_ref().ok_or_else(|| KindError::Network {
            network: "kind".into(),
            message: "is unknown for this lab".into(),
        })
    }
    pub(crate) fn root(&self) -> &Path {
        &self.p.root
    }
    pub(crate) fn run_id(&self) -> String {
        self.p.ctx.run_id.clone()
    }
    pub(crate) fn artifacts(&self) -> &Path {
        &self.p.ctx.artifacts
    }
    pub(crate) fn kubeconfig_arg(&self) -> String {
        self.p.kubeconfig.display().to_string()
    }
    pub(crate) fn set_pool(&mut self, pool: Pool) {
        self.pool = Some(pool);
    }
    pub(crate) fn set_gateway_ip(&mut self, ip: &str) {
        self.gateway_ip = ip.parse().ok();
    }

    /// Loads locally built images into the nodes; other images are pulled by the nodes.
    pub(super) async fn load_images(&self) -> Result<(), KindError> {
        if self.p.existing {
            return Ok(()); // A user's nodes pull from their registries.
        }
        for image in scenario_images(&self.p.scenario)
            .into_iter()
            .filter(|i| is_local(i))
        {
            let cmd = kind_cmd(
                &self.p.tools,
                &["load", "docker-image", &image, "--name", &self.p.cluster],
            )
            .timeout(Duration::from_secs(600));
            self.p.exec.run(&cmd).await?;
        }
        Ok(())
    }

    /// Deletes the cluster unless kept or reused.
    pub(super) async fn teardown_now(
        mut self: Box<Self>,
        reporter: &dyn Reporter,
    ) -> Result<(), KindError> {
        self.torn_down = true;
        if self.p.ctx.keep {
            reporter.info(&format!(
                "{} kept (--keep); remove it with `cargo xtask gc`",
                self.p.cluster
            ));
            return Ok(());
        }
        if self.p.existing {
            // Only what the scenario applied is removed; the cluster and its mesh stay.
            let docs: Vec<Document> = self
                .p
                .scenario
                .manifests
                .values()
                .flatten()
                .cloned()
                .collect();
            let docs = self.p.kube.in_apply_order(&docs);
            let deleted = self.p.kube.delete(&docs).await?;
            reporter.info(&format!(
                "deleted {} scenario object(s) from {}",
                deleted.len(),
                self.p.cluster
            ));
            return Ok(());
        }
        if !self.p.created {
            reporter.info(&format!("kind cluster {} kept (--reuse)", self.p.cluster));
            return Ok(());
        }
        let cmd = kind_cmd(
            &self.p.tools,
            &["delete", "cluster", "--name", &self.p.cluster],
        )
        .timeout(Duration::from_secs(300));
        self.p.exec.run(&cmd).await?;
        Ok(())
    }

    fn workload(&self, name: &str) -> Result<(&str, WorkloadKind), ProviderError> {
        let w = self
            .p
            .scenario
            .workload(name)
            .ok_or_else(|| failed("workload", format!("scenario has no workload {name}")))?;
        Ok((w.namespace.as_str(), w.kind))
    }
}

fn failed(operation: &str, message: String) -> ProviderError {
    ProviderError::Failed {
        operation: operation.to_string(),
        message,
    }
}

fn kube_err(e: crate::kube::KubeError) -> ProviderError {
    KindError::from(e).into()
}

/// The `kubectl rollout restart` patch: a new template annotation makes a new rollout.
pub fn restart_patch(now_rfc3339: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now_rfc3339}}}}})
}

/// A merge patch that sets labels (and removes those whose value is null).
pub fn label_patch(labels: &BTreeMap<String, Option<String>>) -> serde_json::Value {
    serde_json::json!({"metadata": {"labels": labels}})
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

#[async_trait]
impl Lab for KindLab {
    fn notes(&self) -> Vec<String> {
        if self.p.existing {
            return vec![format!(
                "existing cluster, context {} (a cluster you own)",
                self.p.cluster
            )];
        }
        let how = if self.p.created {
            "created for this run"
        } else {
            "reused (--reuse)"
        };
        vec![format!(
            "kind cluster {} ({how}), kubeconfig {}",
            self.p.cluster,
            self.p.kubeconfig.display()
        )]
    }

    async fn apply(
        &mut self,
        docs: &[Document],
        _r: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError> {
        let keys = self.p.kube.apply(docs).await.map_err(kube_err)?;
        Ok(StepOutcome::Done(format!(
            "server-side applied {} object(s)",
            keys.len()
        )))
    }

    async fn delete(
        &mut self,
        docs: &[Document],
        _r: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError> {
        let keys = self.p.kube.delete(docs).await.map_err(kube_err)?;
        Ok(StepOutcome::Done(format!(
            "deleted {} object(s)",
            keys.len()
        )))
    }

    async fn label_namespace(
        &mut self,
        namespace: &str,
        labels: &BTreeMap<String, Option<String>>,
    ) -> Result<StepOutcome, ProviderError> {
        let api: Api<Namespace> = Api::all(self.p.kube.client().clone());
        api.patch(
            namespace,
            &PatchParams::default(),
            &Patch::Merge(label_patch(labels)),
        )
        .await
        .map_err(
            self.p
                .kube
                .api_error(format!("label namespace {namespace}")),
        )?;
        Ok(StepOutcome::Done(format!("labelled namespace {namespace}")))
    }

    async fn restart(&mut self, workloads: &[String]) -> Result<StepOutcome, ProviderError> {
        let patch = Patch::Merge(restart_patch(&now_rfc3339()));
        for name in workloads {
            let (ns, kind) = self.workload(name)?;
            let client = self.p.kube.client().clone();
            let result = match kind {
                WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client, ns)
                    .patch(name, &PatchParams::default(), &patch)
                    .await
                    .map(|_| ()),
                _ => Api::<Deployment>::namespaced(client, ns)
                    .patch(name, &PatchParams::default(), &patch)
                    .await
                    .map(|_| ()),
            };
            result.map_err(self.p.kube.api_error(format!("restart {ns}/{name}")))?;
        }
        Ok(StepOutcome::Done(format!(
            "restarted {}",
            workloads.join(", ")
        )))
    }

    async fn wait(
        &mut self,
        condition: WaitFor,
        workloads: &[String],
        timeout: Duration,
    ) -> Result<StepOutcome, ProviderError> {
        if condition == WaitFor::GatewayAddress {
            let ip = self
                .p
                .kube
                .service_ip(super::istio::NAMESPACE, super::INGRESS_GATEWAY, timeout)
                .await
                .map_err(kube_err)?;
            self.set_gateway_ip(&ip);
            return Ok(StepOutcome::Done(format!("ingress gateway at {ip}")));
        }
        let targets = workloads
            .iter()
            .map(|name| {
                self.p
                    .scenario
                    .workload(name)
                    .map(WorkloadRef::from)
                    .ok_or_else(|| failed("workload", format!("scenario has no workload {name}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.p
            .kube
            .wait_workloads(condition, &targets, timeout)
            .await
            .map_err(kube_err)?;
        Ok(StepOutcome::Done(format!(
            "{condition:?} for {}",
            workloads.join(", ")
        )))
    }

    async fn probe(&mut self, probe: &Probe) -> Result<Observation, ProviderError> {
        super::probe::run(self, probe).await
    }

    async fn start_capture(
        &mut self,
        name: &str,
        canaries: &[String],
    ) -> Result<(), ProviderError> {
        if self.capture.is_some() {
            return Err(failed("capture", "a capture is already running".into()));
        }
        self.capture = Some(if self.p.existing {
            Capturing::Existing(
                crate::provider::existing::capture::start(self, name, canaries).await?,
            )
        } else {
            Capturing::Kind(super::live_capture::start(self, name, canaries).await?)
        });
        Ok(())
    }

    async fn stop_capture(&mut self) -> Result<CaptureResult, ProviderError> {
        match self.capture.take() {
            Some(Capturing::Kind(running)) => super::live_capture::stop(self, running).await,
            Some(Capturing::Existing(running)) => {
                crate::provider::existing::capture::stop(self, running).await
            }
            None => Err(failed("capture", "no capture is running".into())),
        }
    }

    /// A kind or existing cluster has the HPA controller and metrics-server, so the
    /// live check runs for real (see [`crate::hpa::live`]).
    async fn hpa(
        &mut self,
        check: &crate::hpa::live::LiveCheck,
        reporter: &dyn crate::reporter::Reporter,
    ) -> Result<Vec<crate::verdict::Judgement>, ProviderError> {
        let client = self.p.kube.client().clone();
        Ok(crate::hpa::live::judged(client, check, reporter).await)
    }

    async fn collect_diagnostics(&mut self, dir: &Path) -> Result<(), ProviderError> {
        super::diagnostics::collect(self, dir).await
    }

    async fn teardown(self: Box<Self>, reporter: &dyn Reporter) -> Result<(), ProviderError> {
        self.teardown_now(reporter).await.map_err(Into::into)
    }
}

impl KindLab {
    pub(crate) fn scenario(&self) -> &Scenario {
        &self.p.scenario
    }
    pub(crate) fn cluster(&self) -> &str {
        &self.p.cluster
    }
    pub(crate) fn docker(&self) -> &bollard::Docker {
        &self.p.docker
    }
    pub(crate) fn is_existing(&self) -> bool {
        self.p.existing
    }
    pub(crate) fn gateway_ip(&self) -> Option<IpAddr> {
        self.gateway_ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_have_the_shapes_kubectl_uses() {
        let p = restart_patch("2026-11-23T08:00:00Z");
        assert_eq!(
            p.pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
                .unwrap(),
            "2026-11-23T08:00:00Z"
        );
        let labels = BTreeMap::from([
            ("istio-injection".to_string(), Some("enabled".to_string())),
            ("old".to_string(), None),
        ]);
        let p = label_patch(&labels);
        assert_eq!(
            p.pointer("/metadata/labels/istio-injection").unwrap(),
            "enabled"
        );
        assert!(p.pointer("/metadata/labels/old").unwrap().is_null());
        assert!(now_rfc3339().ends_with('Z'));
    }
}
