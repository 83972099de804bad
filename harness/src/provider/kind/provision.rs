//! Preflight and provisioning of a kind lab, step by step.

use std::path::Path;
use std::time::{Duration, Instant};

use bollard::Docker;

use super::cluster::{KindCluster, kind_cmd, load_images};
use super::{KindError, KindNetwork, KindProvider, config, istio, metallb};
use crate::env_vars;
use crate::exec::Exec;
use crate::kube::Kube;
use crate::ledger::{Item, Ledger};
use crate::manifest::{self, Document};
use crate::provider::cluster::{ClusterLab, ClusterParts};
use crate::provider::{Lab, ProviderError, RunContext};
use crate::reporter::Reporter;
use crate::scenario::Scenario;
use crate::tools::{self, ToolOptions, ToolsLock, Toolset, Versions, host};

/// The tool options for this machine.
pub(crate) fn tool_options(p: &KindProvider) -> ToolOptions {
    crate::provider::cluster::tool_options(p.root(), p.use_path_tools)
}

/// What preflight observed, before deciding what is fatal.
#[derive(Debug, Clone)]
pub(crate) struct PreflightFacts {
    /// `Err`: no Docker client at all; `Ok(Some)`: the engine is unusable.
    pub docker: Result<Option<host::Finding>, String>,
    /// Whether the `docker` CLI is on `PATH`: kind shells out to it (`docker run`,
    /// `docker save` for `kind load`), while meshproof itself talks to the engine's API.
    pub docker_cli: bool,
}

/// The fatal findings. What provisioning can fix itself is not one: missing tools are
/// downloaded and verified by the first provisioning step, a missing node image is pulled
/// by `kind create cluster`, low inotify limits are raised when this process may (root)
/// and otherwise named with the command to run. Capture rights are not one either:
/// without them the capture runs in the helper container, which needs only Docker.
pub(crate) fn findings(facts: &PreflightFacts) -> Vec<host::Finding> {
    let mut out = Vec::new();
    match &facts.docker {
        Ok(Some(f)) => out.push(f.clone()),
        Ok(None) => {}
        Err(e) => out.push(host::Finding {
            problem: format!("no Docker client: {e}"),
            hint: "install Docker".into(),
        }),
    }
    if !facts.docker_cli {
        out.push(host::Finding {
            problem: "the `docker` command is not on PATH".into(),
            hint: "install the Docker CLI: kind runs `docker` to create nodes and load images"
                .into(),
        });
    }
    out
}

/// Every check at once, so one run names everything to fix; never downloads anything.
pub async fn preflight(
    _p: &KindProvider,
    _s: &Scenario,
    _ctx: &RunContext,
) -> Result<(), ProviderError> {
    // The node image is not checked: `kind create cluster` pulls it when absent.
    let docker = match Docker::connect_with_local_defaults() {
        Ok(docker) => Ok(host::docker(&docker).await),
        Err(e) => Err(e.to_string()),
    };
    let facts = PreflightFacts {
        docker,
        docker_cli: host::on_path("docker", &env_vars::path_dirs()),
    };
    let findings = findings(&facts);
    if findings.is_empty() {
        return Ok(());
    }
    let problem = findings
        .iter()
        .map(|f| format!("- {}", f.problem))
        .collect::<Vec<_>>()
        .join("\n");
    let mut hint = findings
        .iter()
        .map(|f| format!("- {}", f.hint))
        .collect::<Vec<_>>()
        .join("\n");
    hint.push_str("\n- without Docker or kind, run the same scenario offline: `cargo xtask e2e NAME --provider lab`");
    Err(ProviderError::Preflight {
        problem: format!("the kind provider cannot run here:\n{problem}"),
        hint,
    })
}

/// Installs the pinned tools that are not cached yet (each download verified against the
/// upstream checksum file and `fixtures/tools.lock`), so a fresh machine needs no
/// separate `cargo xtask tools install`; offline, the error names the URL it tried.
async fn pinned_tools(
    p: &KindProvider,
    versions: &Versions,
    exec: &Exec,
    reporter: &dyn Reporter,
) -> Result<Toolset, KindError> {
    let mut lock = ToolsLock::load(p.root())?;
    Ok(tools::install(versions, &mut lock, &tool_options(p), exec, reporter).await?)
}

/// Builds the workload binary and the kind workload image the fixtures' pods and the
/// capture helper run, before any cluster exists: a build failure costs seconds, not a
/// cluster.
async fn workload_image(
    p: &KindProvider,
    docker: &Docker,
    exec: &Exec,
    reporter: &dyn Reporter,
) -> Result<String, KindError> {
    let bin = crate::image::locate_or_build(exec, p.root(), reporter).await?;
    let built = crate::image::ensure_workload_image(docker, exec, &bin, reporter).await?;
    Ok(built.reference)
}

/// Creates (or reuses) the cluster and installs what the scenario requires.
pub async fn provision(
    p: &KindProvider,
    s: &Scenario,
    ctx: &RunContext,
    reporter: &dyn Reporter,
) -> Result<ClusterLab, ProviderError> {
    let versions = Versions::load(p.root()).map_err(KindError::from)?;
    let exec = Exec::new();
    let toolset = pinned_tools(p, &versions, &exec, reporter).await?;
    for note in host::raise_inotify() {
        reporter.warn(&note);
    }
    crate::private_fs::create_dir(&ctx.artifacts).map_err(|source| KindError::Io {
        path: ctx.artifacts.clone(),
        source,
    })?;
    let ledger =
        Ledger::open(&ctx.artifacts.join("ledger.jsonl"), &ctx.run_id).map_err(KindError::from)?;
    let docker = Docker::connect_with_local_defaults().map_err(KindError::from)?;
    step(
        reporter,
        "kind/image",
        &format!(
            "Building {} (local files, no base image, no pull)",
            crate::image::workload_reference()
        ),
        workload_image(p, &docker, &exec, reporter),
    )
    .await?;
    let kubeconfig = ctx.artifacts.join("kubeconfig");
    let (cluster, created) = step(
        reporter,
        "kind/cluster",
        "Creating the kind cluster",
        cluster(&toolset, &exec, s, ctx, &versions, &kubeconfig, &ledger),
    )
    .await?;
    // From here on the lab exists: any failure must still tear it down, so the parts are
    // assembled first and the remaining steps run through the lab itself.
    let attached = async {
        let kube = Kube::connect(&kubeconfig, None).await?;
        let inspect = docker
            .inspect_network(&env_vars::kind_network(), None)
            .await?;
        Ok::<_, KindError>((kube, KindNetwork::from_inspect(&inspect)?))
    }
    .await;
    let (kube, network) = match attached {
        Ok(found) => found,
        Err(e) => {
            // The cluster exists but cannot be used: remove it now rather than leave it.
            if created && !ctx.keep {
                let _ = exec
                    .run(&kind_cmd(
                        &toolset,
                        &["delete", "cluster", "--name", &cluster],
                    ))
                    .await;
            }
            return Err(e.into());
        }
    };
    let parts = ClusterParts {
        root: p.root().to_path_buf(),
        scenario: s.clone(),
        ctx: ctx.clone(),
        kube,
        exec,
        tools: toolset,
        name: cluster,
        kubeconfig,
        ledger,
        versions,
    };
    let kind = KindCluster {
        created,
        network: Some(network.clone()),
        docker,
    };
    let mut lab = ClusterLab::new(parts, Box::new(kind));
    if let Err(e) = install(&mut lab, p, s, &network, reporter).await {
        let _ = Box::new(lab).teardown(reporter).await;
        return Err(e.into());
    }
    Ok(lab)
}

async fn step<T>(
    reporter: &dyn Reporter,
    id: &str,
    label: &str,
    work: impl std::future::Future<Output = Result<T, KindError>>,
) -> Result<T, KindError> {
    reporter.started(id, label);
    let started = Instant::now();
    let result = work.await;
    let summary = match &result {
        Ok(_) => format!("done in {:.0}s", started.elapsed().as_secs_f64()),
        Err(e) => e.to_string(),
    };
    reporter.finished(id, result.is_ok(), &summary);
    result
}

async fn cluster(
    tools: &Toolset,
    exec: &Exec,
    s: &Scenario,
    ctx: &RunContext,
    v: &Versions,
    kubeconfig: &Path,
    ledger: &Ledger,
) -> Result<(String, bool), KindError> {
    let kubeconfig_arg = kubeconfig.display().to_string();
    if let Some(name) = &ctx.reuse {
        let out = exec
            .run(
                &tools
                    .cmd("kind")
                    .args(["get", "kubeconfig", "--name", name]),
            )
            .await?;
        std::fs::write(kubeconfig, &out.stdout).map_err(|source| KindError::Io {
            path: kubeconfig.to_path_buf(),
            source,
        })?;
        return Ok((name.clone(), false));
    }
    let name = config::cluster_name(&ctx.run_id);
    let cfg = config::for_scenario(s, &name, &v.kind.node_image, &ctx.run_id)?;
    let cfg_path = ctx.artifacts.join("kind-config.yaml");
    std::fs::write(&cfg_path, cfg.to_yaml()?).map_err(|source| KindError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    // Recorded before creation: a run killed mid-create still leaves a ledger line to clean.
    ledger.record(Item::KindCluster {
        name: name.clone(),
        kubeconfig: kubeconfig.to_path_buf(),
    })?;
    let cmd = tools
        .cmd("kind")
        .args([
            "create",
            "cluster",
            "--name",
            &name,
            "--config",
            &cfg_path.display().to_string(),
            "--kubeconfig",
            &kubeconfig_arg,
            "--wait",
            "120s",
        ])
        .timeout(Duration::from_secs(900));
    exec.run(&cmd).await?;
    Ok((name, true))
}

async fn install(
    lab: &mut ClusterLab,
    p: &KindProvider,
    s: &Scenario,
    network: &KindNetwork,
    reporter: &dyn Reporter,
) -> Result<(), KindError> {
    let nodes = s.file.requires.workers as usize + 1;
    step(
        reporter,
        "kind/nodes",
        &format!("Waiting for {nodes} nodes Ready"),
        async {
            Ok(lab
                .kube()
                .nodes_ready(nodes, Duration::from_secs(300))
                .await?)
        },
    )
    .await?;
    let mut lock = ToolsLock::load(p.root())?;
    if s.file.requires.load_balancer.is_some() {
        step(
            reporter,
            "kind/metallb",
            "Installing MetalLB",
            metallb_install(lab, network, &mut lock),
        )
        .await?;
    }
    if let Some(mesh) = &s.file.requires.mesh {
        let op = istio::operator(mesh, super::placement::gateway_slot(s).as_deref())?;
        step(
            reporter,
            "kind/istio",
            "Installing Istio",
            istio_install(lab, &op, mesh.ingress_gateway),
        )
        .await?;
    }
    if s.file.requires.metrics_server {
        step(
            reporter,
            "kind/metrics-server",
            "Installing metrics-server",
            metrics_server(lab, &mut lock),
        )
        .await?;
    }
    step(
        reporter,
        "kind/images",
        &format!(
            "Loading {} into the nodes (kind load docker-image)",
            crate::image::workload_reference()
        ),
        load_images(lab),
    )
    .await?;
    Ok(())
}

async fn download(
    lab: &ClusterLab,
    name: &str,
    lock: &mut ToolsLock,
) -> Result<Vec<Document>, KindError> {
    let v = lab.versions();
    let cache = env_vars::cache_dir(lab.root());
    let path = tools::fetch_manifest(v, name, lock, &cache).await?;
    let sha256 = tools::sha256_file(&path)?;
    lab.ledger().record(Item::Download {
        url: v.manifest(name)?.url(),
        path: path.clone(),
        sha256,
    })?;
    manifest::load_file(&path).map_err(|e| KindError::Generate(e.to_string()))
}

async fn metallb_install(
    lab: &mut ClusterLab,
    network: &KindNetwork,
    lock: &mut ToolsLock,
) -> Result<(), KindError> {
    let docs = download(lab, "metallb", lock).await?;
    lab.kube().apply(&docs).await?;
    lab.kube()
        .deployment_rolled_out(metallb::NAMESPACE, "controller", Duration::from_secs(300))
        .await?;
    lab.kube()
        .daemonset_ready(metallb::NAMESPACE, "speaker", Duration::from_secs(300))
        .await?;
    let pool = metallb::pool_for(network.ipv4)?;
    let pool_docs = metallb::documents(pool, &lab.run_id())?;
    // The webhook answers only after its certificate is in place, some seconds after the
    // controller is Ready (MetalLB issues #1540, #1597): retry with backoff for 2 minutes.
    let started = Instant::now();
    let mut delay = Duration::from_secs(2);
    loop {
        match lab.kube().apply(&pool_docs).await {
            Ok(_) => break,
            Err(e)
                if started.elapsed() < Duration::from_secs(120)
                    && e.to_string().contains("webhook") =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(15));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn istio_install(
    lab: &mut ClusterLab,
    op: &istio::IstioOperator,
    gateway: bool,
) -> Result<(), KindError> {
    let path = lab.artifacts().join("istio-operator.yaml");
    std::fs::write(&path, op.to_yaml()?).map_err(|source| KindError::Io {
        path: path.clone(),
        source,
    })?;
    let cmd = lab
        .tools()
        .cmd("istioctl")
        .args([
            "install",
            "-y",
            "-f",
            &path.display().to_string(),
            "--kubeconfig",
            &lab.kubeconfig_arg(),
            "--readiness-timeout",
            "300s",
        ])
        .timeout(Duration::from_secs(600));
    lab.exec().run(&cmd).await?;
    for deployment in op.deployments() {
        lab.kube()
            .deployment_rolled_out(istio::NAMESPACE, deployment, Duration::from_secs(300))
            .await?;
    }
    if gateway {
        let ip = lab
            .kube()
            .service_ip(
                istio::NAMESPACE,
                istio::INGRESS_GATEWAY,
                Duration::from_secs(180),
            )
            .await?;
        lab.set_gateway_ip(&ip);
    }
    Ok(())
}

/// Adds `--kubelet-insecure-tls` to metrics-server's container args: kind's kubelets
/// serve self-signed certificates.
pub(super) fn insecure_tls(docs: &mut [Document]) -> bool {
    let mut patched = false;
    for doc in docs
        .iter_mut()
        .filter(|d| d.kind == "Deployment" && d.name == "metrics-server")
    {
        if let Some(args) = doc
            .value
            .pointer_mut("/spec/template/spec/containers/0/args")
            .and_then(|a| a.as_array_mut())
        {
            if !args.iter().any(|a| a == "--kubelet-insecure-tls") {
                args.push("--kubelet-insecure-tls".into());
            }
            patched = true;
        }
    }
    patched
}

async fn metrics_server(lab: &mut ClusterLab, lock: &mut ToolsLock) -> Result<(), KindError> {
    let mut docs = download(lab, "metrics-server", lock).await?;
    if !insecure_tls(&mut docs) {
        return Err(KindError::Generate(
            "metrics-server manifest has no Deployment metrics-server with args to extend".into(),
        ));
    }
    lab.kube().apply(&docs).await?;
    lab.kube()
        .deployment_rolled_out("kube-system", "metrics-server", Duration::from_secs(300))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Canary;
    use crate::testsupport::scenario;

    #[test]
    fn metrics_server_gets_insecure_tls_once() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: metrics-server, namespace: kube-system}\nspec:\n  template:\n    spec:\n      containers:\n      - name: metrics-server\n        args: [--secure-port=10250, --metric-resolution=15s]\n";
        let mut docs = manifest::parse_str(Path::new("components.yaml"), text).unwrap();
        assert!(insecure_tls(&mut docs));
        assert!(insecure_tls(&mut docs));
        let args = docs[0]
            .value
            .pointer("/spec/template/spec/containers/0/args")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(
            args.iter()
                .filter(|a| *a == "--kubelet-insecure-tls")
                .count(),
            1
        );
        let mut other = manifest::parse_str(
            Path::new("x.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        )
        .unwrap();
        assert!(!insecure_tls(&mut other));
    }

    #[test]
    fn only_what_provisioning_cannot_fix_is_fatal() {
        // A fresh machine: no tools, no node image, low inotify limits, no CAP_NET_RAW.
        // None of these is a preflight fact any more: provisioning fixes or works around each.
        let fresh = PreflightFacts {
            docker: Ok(None),
            docker_cli: true,
        };
        assert!(findings(&fresh).is_empty(), "{:?}", findings(&fresh));
        let broken = PreflightFacts {
            docker: Err("socket not found".into()),
            docker_cli: false,
        };
        let problems: Vec<String> = findings(&broken).into_iter().map(|f| f.problem).collect();
        assert_eq!(
            problems,
            [
                "no Docker client: socket not found",
                "the `docker` command is not on PATH"
            ]
        );
    }

    #[tokio::test]
    async fn preflight_is_fast_and_refuses_only_a_machine_without_docker() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let p = KindProvider::new(root);
        let ctx = RunContext {
            run_id: "mp-pre".into(),
            artifacts: std::env::temp_dir().join("mp-pre"),
            canary: Canary::fixed("MESHPROOF-CANARY-x"),
            keep: false,
            reuse: None,
            context: None,
        };
        let started = Instant::now();
        let result = preflight(&p, &scenario("pii-demo"), &ctx).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let docker_ok = match Docker::connect_with_local_defaults() {
            Ok(d) => host::docker(&d).await.is_none(),
            Err(_) => false,
        };
        let cli = host::on_path("docker", &env_vars::path_dirs());
        assert_eq!(result.is_ok(), docker_ok && cli, "{result:?}");
        if let Err(e) = result {
            let err = e.to_string();
            assert!(err.contains("--provider lab"), "{err}");
            // Missing tools, the node image, inotify and capture rights never stop a run.
            assert!(!err.contains("missing tools"), "{err}");
            assert!(!err.contains("node image"), "{err}");
            assert!(!err.contains("inotify"), "{err}");
        }
    }
}
