//! The running lab on a Kubernetes cluster: every scenario step as API calls, probes by
//! exec, capture and teardown through the provisioner's [`Cluster`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{Api, Patch, PatchParams};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;

use super::{Cluster, ClusterCapture, INGRESS_GATEWAY, ISTIO_NAMESPACE};
use crate::exec::Exec;
use crate::kube::{Kube, WorkloadRef};
use crate::ledger::Ledger;
use crate::manifest::Document;
use crate::provider::{
    CaptureResult, Lab, Observation, ProviderError, RunContext, StepOutcome, Teardown,
};
use crate::reporter::Reporter;
use crate::scenario::{Probe, Scenario, WaitFor, WorkloadKind};
use crate::tools::{Toolset, Versions};

/// Everything a lab is made of, gathered by provisioning.
pub struct ClusterParts {
    /// The repository root (fixtures, the workload binary).
    pub root: PathBuf,
    /// The scenario the lab runs.
    pub scenario: Scenario,
    /// The run's id, artifacts directory and options.
    pub ctx: RunContext,
    /// The cluster's API.
    pub kube: Kube,
    /// Runs and journals every tool.
    pub exec: Exec,
    /// The resolved kubectl, istioctl and kind.
    pub tools: Toolset,
    /// The kind cluster's name, or the existing cluster's kubeconfig context.
    pub name: String,
    /// The kubeconfig tools are pointed at.
    pub kubeconfig: PathBuf,
    /// What the run created.
    pub ledger: Ledger,
    /// The pinned versions and images.
    pub versions: Versions,
}

/// A Kubernetes cluster prepared for one scenario.
pub struct ClusterLab {
    p: ClusterParts,
    cluster: Box<dyn Cluster>,
    gateway_ip: Option<IpAddr>,
    torn_down: bool,
    capture: Option<Box<dyn ClusterCapture>>,
}

impl Drop for ClusterLab {
    /// A lab dropped without teardown means a panic unwound past the runner: the cluster
    /// cleans up what it can without an async context.
    fn drop(&mut self) {
        if self.torn_down || self.p.ctx.keep {
            return;
        }
        self.cluster.abandon(self);
    }
}

impl ClusterLab {
    /// A lab on `cluster`, made of `parts`.
    pub(crate) fn new(parts: ClusterParts, cluster: Box<dyn Cluster>) -> ClusterLab {
        ClusterLab {
            p: parts,
            cluster,
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
    pub(crate) fn set_gateway_ip(&mut self, ip: &str) {
        self.gateway_ip = ip.parse().ok();
    }

    /// Ends the run through the cluster, which removes what the run created (what it
    /// may, with `--keep`) and says what it removed and kept.
    async fn end(mut self: Box<Self>, reporter: &dyn Reporter) -> Result<Teardown, ProviderError> {
        self.torn_down = true;
        let keep = self.p.ctx.keep;
        if keep {
            reporter.info(&format!(
                "{} kept (--keep); remove it with `cargo xtask gc`",
                self.p.name
            ));
        }
        self.cluster.teardown(&self, keep, reporter).await
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
    super::ClusterError::from(e).into()
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
impl Lab for ClusterLab {
    fn notes(&self) -> Vec<String> {
        self.cluster.notes(self)
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
                .service_ip(ISTIO_NAMESPACE, INGRESS_GATEWAY, timeout)
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
        self.capture = Some(self.cluster.start_capture(self, name, canaries).await?);
        Ok(())
    }

    async fn stop_capture(&mut self) -> Result<CaptureResult, ProviderError> {
        match self.capture.take() {
            Some(running) => running.stop(self).await,
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
        super::diagnostics::collect(self, self.cluster.as_ref(), dir).await
    }

    async fn teardown(self: Box<Self>, reporter: &dyn Reporter) -> Result<Teardown, ProviderError> {
        self.end(reporter).await
    }
}

impl ClusterLab {
    pub(crate) fn scenario(&self) -> &Scenario {
        &self.p.scenario
    }
    /// The kind cluster's name, or the existing cluster's kubeconfig context.
    pub(crate) fn name(&self) -> &str {
        &self.p.name
    }
    pub(crate) fn kubeconfig(&self) -> &Path {
        &self.p.kubeconfig
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
