//! The running Docker lab: its state, and each scenario step's effect on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;

use super::capture::{self, Capture};
use super::docker::{self, LabNetwork, SweepGuard};
use super::envoy::SidecarConfig;
use super::mesh::Mesh;
use super::pki::LabCa;
use super::pod::{self, PodContext, RunningPod};
use super::topology::{self, GATEWAY_NAMESPACE, GATEWAY_POD, GATEWAY_SERVICE_ACCOUNT, Topology};
use super::{DISCLAIMER, LabError, probes};
use crate::manifest::Document;
use crate::provider::{CaptureResult, Lab, Observation, ProviderError, StepOutcome};
use crate::reporter::Reporter;
use crate::scenario::{Probe, Scenario, WaitFor, Workload};
use crate::workload::Role;

/// How long a pod may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// One pod the lab runs, with what it was started from.
#[derive(Debug, Clone)]
pub(super) struct PodState {
    pub(super) running: RunningPod,
    pub(super) role: Role,
    pub(super) sidecar: Option<SidecarConfig>,
}

/// The Docker lab of one run.
pub struct DockerLab {
    pub(super) docker: Docker,
    pub(super) run_id: String,
    pub(super) keep: bool,
    pub(super) scenario: Scenario,
    pub(super) network: LabNetwork,
    pub(super) ctx: PodContext,
    pub(super) ca: LabCa,
    pub(super) cookie: String,
    /// Applied objects by `kind/namespace/name`, as the cluster would hold them.
    pub(super) objects: BTreeMap<String, Document>,
    /// The keys of `objects` in creation order: the policy model breaks ties between
    /// policies by age, as Istio does, so it must see the oldest first.
    pub(super) created: Vec<String>,
    /// Pods by name; the gateway is under [`GATEWAY_POD`].
    pub(super) pods: BTreeMap<String, PodState>,
    pub(super) capture: Option<Capture>,
    pub(super) guard: SweepGuard,
    /// Where pcaps go (the run's artifacts).
    pub(super) artifacts: std::path::PathBuf,
    pub(super) exec: crate::exec::Exec,
    /// Every pod this run started, by IP, so flows of pods replaced during a capture are
    /// still named (a newer pod on the same IP wins).
    pub(super) history: BTreeMap<std::net::IpAddr, RunningPod>,
    /// A deliberate fault, for the mutation test.
    pub(super) mutation: Option<super::config::Mutation>,
}

impl std::fmt::Debug for DockerLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerLab")
            .field("run_id", &self.run_id)
            .field("pods", &self.pods.keys())
            .finish_non_exhaustive()
    }
}

/// Kinds whose effect the lab has no counterpart for, with the reason.
fn no_lab_meaning(doc: &Document) -> Option<&'static str> {
    match (doc.group(), doc.kind.as_str()) {
        ("metallb.io", _) => Some(
            "MetalLB: the lab has no LoadBalancer; probes reach the gateway container directly",
        ),
        ("autoscaling", _) => Some("HPA: the lab runs fixed replicas and no metrics pipeline"),
        ("", "Node") => Some("nodes: the lab has none"),
        _ => None,
    }
}

impl DockerLab {
    pub(super) fn docs(&self) -> Vec<Document> {
        self.created
            .iter()
            .filter_map(|k| self.objects.get(k))
            .cloned()
            .collect()
    }

    fn has_sidecar_map(&self) -> BTreeMap<String, bool> {
        let mut out = BTreeMap::new();
        for p in self.pods.values() {
            let e = out.entry(p.running.workload.clone()).or_insert(false);
            *e |= p.sidecar.is_some();
        }
        out
    }

    fn workload(&self, name: &str) -> Result<Workload, LabError> {
        self.scenario
            .workload(name)
            .cloned()
            .ok_or_else(|| LabError::Setup(format!("no workload `{name}` in the scenario")))
    }

    /// Starts every pod of `w`, with a sidecar when injection applies now.
    async fn create_pods(
        &mut self,
        w: &Workload,
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, LabError> {
        let docs = self.docs();
        let mesh = Mesh::for_scenario(&self.scenario, &docs);
        let sidecar = mesh.injected(&w.namespace, &w.name.value);
        let topo = Topology::new(&self.scenario, mesh);
        let mut names = Vec::new();
        for instance in topology::instances(w) {
            let role = topo.role(w, &instance, sidecar, &self.cookie);
            let running =
                pod::start_app(&self.docker, &self.ctx, &role, topo.aliases(w, &instance)).await?;
            reporter.debug(&format!(
                "pod {instance} at {} ({})",
                running.ip,
                if sidecar {
                    "with sidecar"
                } else {
                    "no sidecar"
                }
            ));
            // Which peers have sidecars is known only once every pod runs; until the
            // configs are rebuilt with that, this one treats every peer as plain.
            let provisional = sidecar.then(|| topo.sidecar(w, &instance, running.ip, &|_| false));
            self.history.insert(running.ip, running.clone());
            self.pods.insert(
                instance.clone(),
                PodState {
                    running,
                    role,
                    sidecar: provisional,
                },
            );
            names.push(instance);
        }
        Ok(names)
    }

    async fn remove_pods(&mut self, workload: &str) -> Result<(), LabError> {
        let names: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| p.running.workload == workload)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            if let Some(p) = self.pods.remove(&name) {
                pod::remove(&self.docker, &p.running).await?;
            }
        }
        Ok(())
    }

    /// The role of a gateway pod: an Envoy in front of no app, so no listeners or upstreams
    /// of its own.
    pub(super) fn gateway_role(&self, workload: &str, pod: &str) -> Role {
        Role {
            workload: workload.into(),
            instance: pod.into(),
            node: format!("gateway@{pod}"),
            cookie: self.cookie.clone(),
            listeners: vec![],
            upstreams: vec![],
            cluster_interval_ms: topology::CLUSTER_INTERVAL_MS,
            data: Default::default(),
        }
    }

    /// Starts the ingress gateway pod: an Envoy with no sidecar app, like Istio's gateway.
    pub(super) async fn create_gateway(&mut self) -> Result<(), LabError> {
        let role = self.gateway_role(crate::scenario::peers::INGRESS_GATEWAY, GATEWAY_POD);
        let running = pod::start_app(
            &self.docker,
            &self.ctx,
            &role,
            vec![format!(
                "istio-ingressgateway.{GATEWAY_NAMESPACE}.svc.cluster.local"
            )],
        )
        .await?;
        self.history.insert(running.ip, running.clone());
        let docs = self.docs();
        let cfg = Topology::new(&self.scenario, Mesh::for_scenario(&self.scenario, &docs))
            .gateway(running.ip, &|_| false);
        self.pods.insert(
            GATEWAY_POD.into(),
            PodState {
                running,
                role,
                sidecar: Some(cfg),
            },
        );
        Ok(())
    }

    /// Recomputes every sidecar's configuration from the current objects and replaces the
    /// sidecars whose configuration changed, as istiod pushes new config; then waits for
    /// the pods it touched.
    async fn reprogram(&mut self, force: &BTreeSet<String>) -> Result<Vec<String>, LabError> {
        let docs = self.docs();
        let sidecars = self.has_sidecar_map();
        let has = |w: &str| sidecars.get(w).copied().unwrap_or(false);
        let topo = Topology::new(&self.scenario, Mesh::for_scenario(&self.scenario, &docs));
        let mut changed = Vec::new();
        for (name, state) in &self.pods {
            if state.sidecar.is_none() {
                continue;
            }
            let cfg = if name == GATEWAY_POD {
                topo.gateway(state.running.ip, &has)
            } else if name == topology::EGRESS_POD {
                topo.egress_gateway(state.running.ip)
            } else {
                let Some(w) = self.scenario.workload(&state.running.workload) else {
                    continue;
                };
                topo.sidecar(w, name, state.running.ip, &has)
            };
            let mut cfg = cfg;
            if let Some(m) = self.mutation {
                m.apply(&mut cfg);
            }
            if force.contains(name)
                || state.running.sidecar.is_none()
                || state.sidecar.as_ref() != Some(&cfg)
            {
                changed.push((name.clone(), cfg));
            }
        }
        let root = self.ca.root_pem();
        for (name, cfg) in &changed {
            let id = if name == GATEWAY_POD {
                super::pki::SpiffeId {
                    namespace: GATEWAY_NAMESPACE.into(),
                    service_account: GATEWAY_SERVICE_ACCOUNT.into(),
                }
            } else if name == topology::EGRESS_POD {
                topology::egress_identity()
            } else {
                topology::identity(&self.workload(&cfg.workload)?)
            };
            let cert = self.ca.issue(&id)?;
            let Some(state) = self.pods.get_mut(name) else {
                continue;
            };
            pod::start_sidecar(
                &self.docker,
                &self.ctx,
                &mut state.running,
                cfg,
                &cert,
                &root,
            )
            .await?;
            state.sidecar = Some(cfg.clone());
        }
        let names: Vec<String> = changed.into_iter().map(|(n, _)| n).collect();
        for name in &names {
            self.wait_pod(name).await?;
        }
        Ok(names)
    }

    async fn wait_pod(&self, name: &str) -> Result<(), LabError> {
        let state = self
            .pods
            .get(name)
            .ok_or_else(|| LabError::Setup(format!("no pod {name}")))?;
        pod::wait_ready(&self.docker, &state.running, &state.role, READY_LIMIT).await
    }

    fn pods_of(&self, workload: &str) -> Vec<&PodState> {
        self.pods
            .values()
            .filter(|p| p.running.workload == workload)
            .collect()
    }

    async fn do_apply(
        &mut self,
        docs: &[Document],
        reporter: &dyn Reporter,
    ) -> Result<StepOutcome, LabError> {
        let skipped: Vec<&str> = docs.iter().filter_map(no_lab_meaning).collect();
        if !docs.is_empty() && skipped.len() == docs.len() {
            return Ok(StepOutcome::Skipped(skipped.join("; ")));
        }
        let before: BTreeSet<String> = self
            .pods
            .values()
            .map(|p| p.running.workload.clone())
            .collect();
        for d in docs.iter().filter(|d| no_lab_meaning(d).is_none()) {
            if self.objects.insert(d.key(), d.clone()).is_none() {
                self.created.push(d.key());
            }
        }
        let objects = self.docs();
        let present: Vec<Workload> =
            Topology::new(&self.scenario, Mesh::for_scenario(&self.scenario, &objects))
                .present()
                .into_iter()
                .cloned()
                .collect();
        let mut created = Vec::new();
        for w in present.iter().filter(|w| !before.contains(&w.name.value)) {
            created.extend(self.create_pods(w, reporter).await?);
        }
        let reprogrammed = self.reprogram(&BTreeSet::new()).await?;
        for name in created.iter().filter(|n| !reprogrammed.contains(n)) {
            self.wait_pod(name).await?;
        }
        let mut summary = format!("{} objects applied", docs.len() - skipped.len());
        if !created.is_empty() {
            summary.push_str(&format!("; pods started: {}", created.join(", ")));
        }
        if !reprogrammed.is_empty() {
            summary.push_str(&format!(
                "; Envoy reprogrammed: {}",
                reprogrammed.join(", ")
            ));
        }
        if !skipped.is_empty() {
            summary.push_str(&format!("; without lab meaning: {}", skipped.join("; ")));
        }
        Ok(StepOutcome::Done(summary))
    }

    async fn do_delete(&mut self, docs: &[Document]) -> Result<StepOutcome, LabError> {
        for d in docs {
            self.objects.remove(&d.key());
            self.created.retain(|k| *k != d.key());
        }
        let objects = self.docs();
        let present: BTreeSet<String> =
            Topology::new(&self.scenario, Mesh::for_scenario(&self.scenario, &objects))
                .present()
                .iter()
                .map(|w| w.name.value.clone())
                .collect();
        let gone: BTreeSet<String> = self
            .pods
            .values()
            .map(|p| p.running.workload.clone())
            .filter(|w| !self.outside_manifests(w) && !present.contains(w))
            .collect();
        for w in &gone {
            self.remove_pods(w).await?;
        }
        let reprogrammed = self.reprogram(&BTreeSet::new()).await?;
        Ok(StepOutcome::Done(format!(
            "{} objects deleted; pods removed for: {}; Envoy reprogrammed: {}",
            docs.len(),
            gone.into_iter().collect::<Vec<_>>().join(", "),
            reprogrammed.join(", ")
        )))
    }

    fn do_label(
        &mut self,
        namespace: &str,
        labels: &BTreeMap<String, Option<String>>,
    ) -> StepOutcome {
        let key = format!("Namespace/-/{namespace}");
        if !self.objects.contains_key(&key) {
            self.created.push(key.clone());
        }
        let doc = self.objects.entry(key).or_insert_with(|| Document {
            at: crate::manifest::SourceRef { path: "label step".into(), line: 0, column: 0 },
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: namespace.to_string(),
            namespace: None,
            value: serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        });
        let meta = &mut doc.value["metadata"];
        if !meta["labels"].is_object() {
            meta["labels"] = serde_json::json!({});
        }
        for (k, v) in labels {
            match v {
                Some(v) => meta["labels"][k] = serde_json::Value::String(v.clone()),
                None => {
                    if let Some(m) = meta["labels"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        StepOutcome::Done(format!(
            "namespace {namespace} labelled; injection applies to pods created from now on"
        ))
    }

    async fn do_restart(
        &mut self,
        workloads: &[String],
        reporter: &dyn Reporter,
    ) -> Result<StepOutcome, LabError> {
        let mut started = Vec::new();
        for name in workloads {
            let w = self.workload(name)?;
            self.remove_pods(name).await?;
            started.extend(self.create_pods(&w, reporter).await?);
        }
        let reprogrammed = self.reprogram(&BTreeSet::new()).await?;
        for name in started.iter().filter(|n| !reprogrammed.contains(n)) {
            self.wait_pod(name).await?;
        }
        let with: Vec<String> = started
            .iter()
            .filter(|n| self.pods.get(*n).is_some_and(|p| p.sidecar.is_some()))
            .cloned()
            .collect();
        Ok(StepOutcome::Done(format!(
            "recreated {}; with sidecar: {}",
            started.join(", "),
            with.join(", ")
        )))
    }

    async fn do_wait(
        &mut self,
        condition: WaitFor,
        workloads: &[String],
    ) -> Result<StepOutcome, LabError> {
        if condition == WaitFor::GatewayAddress {
            let ip = self
                .pods
                .get(GATEWAY_POD)
                .map(|p| p.running.ip.to_string())
                .unwrap_or_else(|| "none".into());
            return Ok(StepOutcome::Skipped(format!(
                "no LoadBalancer in the lab: the ingress gateway is a container on the lab network at {ip}"
            )));
        }
        for name in workloads {
            let pods = self.pods_of(name);
            if pods.is_empty() {
                return Err(LabError::Setup(format!(
                    "workload {name} has no pods: its manifest was not applied"
                )));
            }
            if condition == WaitFor::SidecarInjected
                && let Some(p) = pods.iter().find(|p| p.sidecar.is_none())
            {
                return Err(LabError::Setup(format!(
                    "pod {} has no sidecar: its namespace is not labelled for injection, or it was not restarted",
                    p.running.name
                )));
            }
            let names: Vec<String> = pods.iter().map(|p| p.running.name.clone()).collect();
            for n in names {
                self.wait_pod(&n).await?;
            }
        }
        Ok(StepOutcome::Done(format!("{} ready", workloads.join(", "))))
    }
}

#[async_trait]
impl Lab for DockerLab {
    fn notes(&self) -> Vec<String> {
        let mut notes = vec![
            DISCLAIMER.to_string(),
            format!(
                "lab run {}: network {} (bridge {}), image {}",
                self.run_id, self.network.name, self.network.bridge, self.ctx.image
            ),
        ];
        if let Some(m) = self.mutation {
            notes.push(format!("FAULT INJECTED for a mutation test: {m:?}"));
        }
        notes
    }

    async fn apply(
        &mut self,
        docs: &[Document],
        reporter: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError> {
        Ok(self.do_apply(docs, reporter).await?)
    }

    async fn delete(
        &mut self,
        docs: &[Document],
        _reporter: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError> {
        Ok(self.do_delete(docs).await?)
    }

    async fn label_namespace(
        &mut self,
        namespace: &str,
        labels: &BTreeMap<String, Option<String>>,
    ) -> Result<StepOutcome, ProviderError> {
        Ok(self.do_label(namespace, labels))
    }

    async fn restart(&mut self, workloads: &[String]) -> Result<StepOutcome, ProviderError> {
        Ok(self
            .do_restart(workloads, &crate::reporter::NullReporter)
            .await?)
    }

    async fn wait(
        &mut self,
        condition: WaitFor,
        workloads: &[String],
        timeout: Duration,
    ) -> Result<StepOutcome, ProviderError> {
        let what = format!("{condition:?} of {}", workloads.join(", "));
        match tokio::time::timeout(timeout, self.do_wait(condition, workloads)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(LabError::Timeout {
                what,
                after: timeout,
            }
            .into()),
        }
    }

    async fn probe(&mut self, probe: &Probe) -> Result<Observation, ProviderError> {
        Ok(probes::run(self, probe).await?)
    }

    async fn start_capture(
        &mut self,
        name: &str,
        canaries: &[String],
    ) -> Result<(), ProviderError> {
        let dir = self.artifacts.join("captures");
        let cap = capture::start(&self.exec, &self.network, &dir, name, canaries).await?;
        self.capture = Some(cap);
        Ok(())
    }

    async fn stop_capture(&mut self) -> Result<CaptureResult, ProviderError> {
        let cap = self
            .capture
            .take()
            .ok_or_else(|| LabError::Capture("no capture is running".into()))?;
        let mut known = self.history.clone();
        known.extend(
            self.pods
                .values()
                .map(|p| (p.running.ip, p.running.clone())),
        );
        let peers = capture::peer_map(&self.network, known.values());
        Ok(capture::stop(cap, peers, &self.network).await?)
    }

    async fn collect_diagnostics(&mut self, dir: &Path) -> Result<(), ProviderError> {
        Ok(super::diagnostics::collect(self, dir).await?)
    }

    async fn teardown(
        mut self: Box<Self>,
        reporter: &dyn Reporter,
    ) -> Result<crate::provider::Teardown, ProviderError> {
        if let Some(cap) = self.capture.take() {
            // An interrupted capture still ends its tcpdump; its pcap stays in the artifacts.
            let _ = capture::stop(cap, Default::default(), &self.network).await;
        }
        if self.keep {
            self.guard.disarm();
            reporter.info(&format!(
                "keeping the lab: remove it with `cargo xtask gc` (run {})",
                self.run_id
            ));
            return Ok(crate::provider::Teardown {
                removed: Vec::new(),
                kept: vec![format!("Docker lab of run {} (--keep)", self.run_id)],
            });
        }
        let removed = docker::sweep(&self.docker, &self.run_id).await?;
        let left = docker::leftovers(&self.docker, &self.run_id).await?;
        self.guard.disarm();
        if left > 0 {
            return Err(LabError::Setup(format!(
                "{left} lab objects are still there after teardown; run `cargo xtask gc`"
            ))
            .into());
        }
        reporter.debug(&format!("removed {removed} lab objects"));
        Ok(crate::provider::Teardown {
            removed: vec![format!(
                "{removed} Docker lab object(s) of run {}",
                self.run_id
            )],
            kept: Vec::new(),
        })
    }
}
