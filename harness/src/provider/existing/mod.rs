//! The existing-cluster provider: a cluster the user owns, picked by kubeconfig context.
//!
//! It creates no cluster and installs nothing silently: MetalLB and Istio are detected,
//! and a scenario that needs a missing one stops with the command that would install it.
//! Captures run tcpdump in a privileged hostNetwork pod on each involved node (image
//! pinned in `fixtures/versions.toml`), streamed back through exec. Only point it at
//! clusters you own: meshproof applies manifests, restarts workloads and captures traffic.

pub(crate) mod capture;
pub use capture::remote_command;
mod capture_pod;
mod cluster;
mod contact;
pub mod preflight;

use std::path::{Path, PathBuf};

use ::kube::api::Api;
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;

pub use capture_pod::{CAPTURE_NAMESPACE, capture_pod};

use crate::exec::Exec;
use crate::kube::Kube;
use crate::ledger::Ledger;
use crate::provider::cluster::{self as generic, ClusterError, ClusterLab, ClusterParts};
use crate::provider::{Lab, PlanEntry, Provider, ProviderError, RunContext};
use crate::reporter::Reporter;
use crate::scenario::Scenario;
use crate::tools::{self, Versions};

/// Uses a cluster the user already has.
#[derive(Debug, Clone)]
pub struct ExistingProvider {
    root: PathBuf,
    capture_image: Option<String>,
}

/// What is already installed in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Installed {
    /// MetalLB's controller Deployment exists.
    pub metallb: bool,
    /// istiod exists.
    pub istio: bool,
    /// metrics-server exists.
    pub metrics_server: bool,
}

impl ExistingProvider {
    /// A provider for the repository at `root`.
    pub fn new(root: &Path) -> ExistingProvider {
        ExistingProvider {
            root: root.to_path_buf(),
            capture_image: None,
        }
    }

    /// Uses this image for the capture pods instead of the pinned one (`--capture-image`).
    pub fn capture_image(mut self, image: Option<String>) -> ExistingProvider {
        self.capture_image = image;
        self
    }

    fn image(&self, v: &Versions) -> String {
        self.capture_image
            .clone()
            .unwrap_or_else(|| v.existing.tcpdump_image.clone())
    }
}

fn context(ctx: &RunContext) -> Result<&str, ProviderError> {
    ctx.context
        .as_deref()
        .ok_or_else(|| ProviderError::Preflight {
            problem: "--provider existing needs --context CTX".into(),
            hint: "name a kubeconfig context of a cluster you own (`kubectl config get-contexts`)"
                .into(),
        })
}

/// The requirements a cluster lacks, each with what would install it.
pub fn missing(s: &Scenario, found: Installed) -> Vec<String> {
    let r = &s.file.requires;
    let mut out = Vec::new();
    if r.load_balancer.is_some() && !found.metallb {
        out.push("MetalLB (install it yourself, e.g. `kubectl apply -f` the pinned metallb-native.yaml, and give it an IPAddressPool)".into());
    }
    if r.mesh.is_some() && !found.istio {
        out.push("Istio (install it yourself with `istioctl install`; meshproof never installs into a cluster it did not create)".into());
    }
    if r.metrics_server && !found.metrics_server {
        out.push("metrics-server (kube-system/metrics-server)".into());
    }
    out
}

async fn detect(kube: &Kube) -> Result<Installed, ClusterError> {
    let exists = |ns: &'static str, name: &'static str| {
        let api: Api<Deployment> = Api::namespaced(kube.client().clone(), ns);
        async move { api.get_opt(name).await.map(|d| d.is_some()) }
    };
    let err =
        |e: ::kube::Error| ClusterError::Kube(kube.api_error("detect installed components")(e));
    Ok(Installed {
        metallb: exists("metallb-system", "controller").await.map_err(err)?,
        istio: exists("istio-system", "istiod").await.map_err(err)?,
        metrics_server: exists("kube-system", "metrics-server").await.map_err(err)?,
    })
}

#[async_trait]
impl Provider for ExistingProvider {
    fn name(&self) -> &'static str {
        "existing"
    }

    fn plan(&self, s: &Scenario, ctx: &RunContext) -> Result<Vec<PlanEntry>, ProviderError> {
        let v = Versions::load(&self.root).map_err(ClusterError::from)?;
        let ctx_name = ctx
            .context
            .clone()
            .unwrap_or_else(|| "<--context required>".into());
        let e = |section: &str, text: String, detail: Option<String>| PlanEntry {
            section: section.into(),
            text,
            detail,
        };
        let image = self.image(&v);
        let pod = capture_pod("<node>", &image, &ctx.run_id);
        Ok(vec![
            e("cluster", format!("use kubeconfig context {ctx_name}: a cluster you own; nothing is created"), None),
            e("install", "detect MetalLB (metallb-system/controller), Istio (istio-system/istiod) and metrics-server; reuse them, never reinstall; stop if a required one is missing".into(), None),
            e(
                "capture",
                format!("one privileged hostNetwork pod per involved node in namespace {CAPTURE_NAMESPACE}, running tcpdump from {image} (mirror it and pass --capture-image to use your own registry), streamed back through exec"),
                Some(serde_saphyr::to_string(&pod).map_err(|e| ClusterError::Generate(e.to_string()))?),
            ),
            e("teardown", format!("delete the objects of the scenario's {} manifest file(s) (unless --keep), then namespace {CAPTURE_NAMESPACE} with every capture pod (always, even with --keep)", s.manifests.len()), None),
        ])
    }

    /// Contacts the server: reachability, slot labels, the metrics API when needed.
    async fn preflight(&self, s: &Scenario, ctx: &RunContext) -> Result<(), ProviderError> {
        contact::check(s, context(ctx)?).await
    }

    async fn provision(
        &self,
        s: &Scenario,
        ctx: &RunContext,
        _reporter: &dyn Reporter,
    ) -> Result<Box<dyn Lab>, ProviderError> {
        let name = context(ctx)?.to_string();
        let (kubeconfig, _server) = contact::locate(&name)?;
        let kube = Kube::connect(&kubeconfig, Some(&name))
            .await
            .map_err(ClusterError::from)?;
        let found = detect(&kube).await?;
        let lacking = missing(s, found);
        if !lacking.is_empty() {
            return Err(ProviderError::Preflight {
                problem: format!("context {name} lacks: {}", lacking.join("; ")),
                hint: "install them, or run on `--provider kind`".into(),
            });
        }
        let versions = Versions::load(&self.root).map_err(ClusterError::from)?;
        let exec = Exec::new();
        let opts = generic::tool_options(&self.root, true);
        let tools = tools::resolve(&versions, &opts, &exec)
            .await
            .unwrap_or_default();
        crate::private_fs::create_dir(&ctx.artifacts).map_err(|source| ClusterError::Io {
            path: ctx.artifacts.clone(),
            source,
        })?;
        let ledger = Ledger::open(&ctx.artifacts.join("ledger.jsonl"), &ctx.run_id)
            .map_err(ClusterError::from)?;
        let capture_image = self.image(&versions);
        let parts = ClusterParts {
            root: self.root.clone(),
            scenario: s.clone(),
            ctx: ctx.clone(),
            kube,
            exec,
            tools,
            name,
            kubeconfig,
            ledger,
            versions,
        };
        Ok(Box::new(ClusterLab::new(
            parts,
            Box::new(cluster::ExistingCluster { capture_image }),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    #[test]
    fn api_errors_are_not_prefixed_with_a_provider_name() {
        let timeout = crate::kube::KubeError::Timeout {
            what: "Deployment demo/web rollout".into(),
            seconds: 300,
            state: "0/1 ready".into(),
        };
        let text = ProviderError::from(ClusterError::Kube(timeout)).to_string();
        assert_eq!(
            text,
            "timed out after 300s waiting for Deployment demo/web rollout; last seen: 0/1 ready"
        );
    }

    #[test]
    fn missing_components_are_named_never_installed() {
        let s = scenario("pii-demo");
        let lacking = missing(
            &s,
            Installed {
                metallb: false,
                istio: true,
                metrics_server: false,
            },
        );
        assert_eq!(lacking.len(), 1, "{lacking:?}");
        assert!(lacking[0].starts_with("MetalLB"));
        assert!(
            missing(
                &s,
                Installed {
                    metallb: true,
                    istio: true,
                    metrics_server: false
                }
            )
            .is_empty()
        );
        assert_eq!(missing(&s, Installed::default()).len(), 2);
    }

    #[tokio::test]
    async fn preflight_without_a_context_says_how_to_pick_one() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let ctx = RunContext {
            run_id: "r".into(),
            artifacts: "a".into(),
            canary: crate::scenario::Canary::fixed("MESHPROOF-CANARY-x"),
            keep: false,
            reuse: None,
            context: None,
        };
        let err = ExistingProvider::new(root)
            .preflight(&scenario("pii-demo"), &ctx)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("--context"), "{err}");
    }
}
