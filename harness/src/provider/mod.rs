//! Providers and the labs they provision.
//!
//! A [`Provider`] turns a scenario's requirements into a running [`Lab`]: a kind cluster,
//! a user's existing cluster, or the offline Docker lab. The scenario runner drives every
//! lab through the same [`Lab`] operations, so a scenario runs unchanged on each.
//! A lab that cannot give an operation meaning (the Docker lab has no MetalLB and no HPA)
//! answers [`StepOutcome::Skipped`] with a reason; it never pretends to pass.

pub mod lab;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use crate::manifest::Document;
use crate::reporter::Reporter;
use crate::scenario::{Scenario, WaitFor};
use crate::wire::Analysis;

pub mod cluster;
pub mod cni;
pub mod existing;
pub mod kind;
pub mod outside;

/// Errors from provisioning or driving a lab. Each carries enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A precondition is missing (a tool, a daemon, a capability).
    #[error("preflight failed: {problem}\nhint: {hint}")]
    Preflight {
        /// What is wrong.
        problem: String,
        /// How to fix it.
        hint: String,
    },
    /// A process the provider ran failed.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    /// The cluster's API failed; the error names the operation, and the API's answer
    /// or the server it could not reach.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    /// Anything else, with the operation that failed.
    #[error("{operation}: {message}")]
    Failed {
        /// What the provider was doing.
        operation: String,
        /// What went wrong.
        message: String,
    },
}

/// What the runner needs to know to provision a lab.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// A unique id for this run; names and labels everything created.
    pub run_id: String,
    /// Where captures, logs and reports go.
    pub artifacts: PathBuf,
    /// The run's canary.
    pub canary: crate::scenario::Canary,
    /// Keep the lab after the run.
    pub keep: bool,
    /// Reuse this existing cluster (kind) instead of creating one.
    pub reuse: Option<String>,
    /// Kubeconfig context (existing provider).
    pub context: Option<String>,
}

/// How a step ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did what it says.
    Done(String),
    /// It has no meaning for this lab; the reason says why.
    Skipped(String),
}

/// What a probe observed. A probe never judges: the runner compares this with the
/// probe's `expect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Observation {
    /// A connection was made and an answer read.
    pub answered: bool,
    /// The HTTP status, for HTTP probes.
    pub status: Option<u16>,
    /// The response body (first 4 KiB), or the protocol's answer in text.
    pub body: String,
    /// The connection was reset or closed before an answer.
    pub reset: bool,
    /// Connection attempts made.
    pub attempts: u32,
    /// A transport error, when nothing was answered.
    pub error: Option<String>,
    /// The client's address as seen on the wire, when known.
    pub client_addr: Option<String>,
}

/// The names behind addresses, so reports say `httpd-server (worker)`, not an IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMap {
    /// Address to peer.
    pub peers: BTreeMap<IpAddr, Peer>,
}

/// One addressable thing in a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The workload name from the scenario, or a builtin (`host`, `ingress-gateway`).
    pub workload: String,
    /// The pod or container name.
    pub instance: String,
    /// The node it runs on.
    pub node: String,
}

/// What one capture produced.
#[derive(Debug, Clone)]
pub struct CaptureResult {
    /// The pcap file written.
    pub pcap: PathBuf,
    /// The analysis of every packet captured.
    pub analysis: Analysis,
    /// Who was who during the capture.
    pub peers: PeerMap,
    /// Where the packets were taken (`br-1a2b3c4d5e6f`, `node tcpdump`).
    pub point: String,
    /// Packets the capture lost, or `None` when the capturing tool could not say
    /// (a tcpdump killed before it printed its statistics).
    pub drops: Option<crate::capture::DropCounts>,
}

/// What a teardown really did: the things it removed and the things it kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teardown {
    /// Each thing removed (`kind cluster mp-1`, `Namespace/meshproof-capture`).
    pub removed: Vec<String>,
    /// Each thing left standing on purpose, with why (`--keep`, `--reuse`).
    pub kept: Vec<String>,
}

impl Teardown {
    /// The teardown line of a run, from what was really removed and kept.
    pub fn summary(&self) -> String {
        let list = |items: &[String]| {
            if items.len() > 4 {
                format!("{} and {} more", items[..4].join(", "), items.len() - 4)
            } else {
                items.join(", ")
            }
        };
        match (self.removed.is_empty(), self.kept.is_empty()) {
            (true, true) => "nothing to remove".into(),
            (false, true) => format!("removed {}", list(&self.removed)),
            (true, false) => format!("kept {}", list(&self.kept)),
            (false, false) => format!("removed {}; kept {}", list(&self.removed), list(&self.kept)),
        }
    }
}

/// Provisions labs.
#[async_trait]
pub trait Provider: Send + Sync {
    /// `kind`, `existing` or `lab`.
    fn name(&self) -> &'static str;

    /// The provider-specific part of the dry-run plan: tools, cluster config, installs.
    fn plan(&self, scenario: &Scenario, ctx: &RunContext) -> Result<Vec<PlanEntry>, ProviderError>;

    /// Checks, quickly, that provisioning can work here.
    async fn preflight(&self, scenario: &Scenario, ctx: &RunContext) -> Result<(), ProviderError>;

    /// Creates (or attaches to) a lab that meets the scenario's requirements.
    async fn provision(
        &self,
        scenario: &Scenario,
        ctx: &RunContext,
        reporter: &dyn Reporter,
    ) -> Result<Box<dyn Lab>, ProviderError>;
}

/// One line of a plan: a section (`tools`, `cluster`, `install`) and what will happen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanEntry {
    /// The section it belongs to.
    pub section: String,
    /// One line for a person.
    pub text: String,
    /// Optional detail, such as a generated config file's text.
    pub detail: Option<String>,
}

/// A provisioned lab. Every operation is one scenario step's effect.
#[async_trait]
pub trait Lab: Send {
    /// Notes every report must carry (the Docker lab's disclaimer, the cluster name).
    fn notes(&self) -> Vec<String>;

    /// Applies manifests (the Docker lab applies their data-plane meaning).
    async fn apply(
        &mut self,
        docs: &[Document],
        reporter: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError>;

    /// Deletes the objects in these manifests.
    async fn delete(
        &mut self,
        docs: &[Document],
        reporter: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError>;

    /// Sets or removes namespace labels.
    async fn label_namespace(
        &mut self,
        namespace: &str,
        labels: &BTreeMap<String, Option<String>>,
    ) -> Result<StepOutcome, ProviderError>;

    /// Rolling-restarts workloads.
    async fn restart(&mut self, workloads: &[String]) -> Result<StepOutcome, ProviderError>;

    /// Waits for a condition on workloads.
    async fn wait(
        &mut self,
        condition: WaitFor,
        workloads: &[String],
        timeout: Duration,
    ) -> Result<StepOutcome, ProviderError>;

    /// Runs one probe; `canary` has already been substituted.
    async fn probe(&mut self, probe: &crate::scenario::Probe)
    -> Result<Observation, ProviderError>;

    /// Starts capturing between nodes; returns once the capture is live.
    async fn start_capture(&mut self, name: &str, canaries: &[String])
    -> Result<(), ProviderError>;

    /// Stops the capture and analyses it.
    async fn stop_capture(&mut self) -> Result<CaptureResult, ProviderError>;

    /// Runs the live check of an `hpa:` step (see [`crate::hpa::live`]). Providers with a
    /// cluster return `crate::hpa::live::judged(client, check, reporter).await`. Labs
    /// without Kubernetes, an HPA controller and metrics-server keep this default: a skip
    /// with the reason, never a pass.
    async fn hpa(
        &mut self,
        check: &crate::hpa::live::LiveCheck,
        reporter: &dyn Reporter,
    ) -> Result<Vec<crate::verdict::Judgement>, ProviderError> {
        let _ = reporter;
        Ok(vec![crate::verdict::Judgement::bare(
            &format!("{}: HPA live check", check.name),
            crate::verdict::CheckKind::Autoscale,
            crate::verdict::Verdict::Skip,
            "this lab has no HorizontalPodAutoscaler controller or metrics-server; run it with the kind or existing provider",
        )])
    }

    /// Writes diagnostics (events, logs, proxy config) into `dir` after a failure.
    async fn collect_diagnostics(&mut self, dir: &Path) -> Result<(), ProviderError>;

    /// Removes everything the lab created, unless the run keeps it, and says what it
    /// removed and kept.
    async fn teardown(self: Box<Self>, reporter: &dyn Reporter) -> Result<Teardown, ProviderError>;
}

/// The providers meshproof has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// A kind cluster created for the run (the default).
    Kind,
    /// A cluster the user already has, picked by kubeconfig context.
    Existing,
    /// The offline Docker lab with real Envoy sidecars.
    Lab,
}

impl ProviderKind {
    /// The name used by `--provider` and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Kind => "kind",
            ProviderKind::Existing => "existing",
            ProviderKind::Lab => "lab",
        }
    }
}

/// Choices that shape how a provider provisions, shared by every provider kind.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Accept kind/kubectl/istioctl from `PATH` whatever their version, instead of
    /// the pinned, checksum-verified downloads (kind provider only; the existing
    /// provider always uses the user's own tools and the lab needs none).
    pub use_path_tools: bool,
    /// The image of the existing provider's capture pods, for users who mirror it into
    /// their own registry (default: `[existing] tcpdump_image` in fixtures/versions.toml).
    pub capture_image: Option<String>,
}

/// The provider of that kind, for a repository rooted at `root`.
pub fn for_kind(kind: ProviderKind, root: &Path, options: ProviderOptions) -> Box<dyn Provider> {
    match kind {
        ProviderKind::Kind => {
            Box::new(kind::KindProvider::new(root).use_path_tools(options.use_path_tools))
        }
        ProviderKind::Existing => {
            Box::new(existing::ExistingProvider::new(root).capture_image(options.capture_image))
        }
        ProviderKind::Lab => Box::new(lab::LabProvider::new(root)),
    }
}
