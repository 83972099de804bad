//! Preflight and provisioning of a kind lab, step by step.

use std::path::Path;
use std::time::{Duration, Instant};

use bollard::Docker;

use super::lab::{KindLab, LabParts};
use super::{KindError, KindProvider, config, istio, metallb};
use crate::env_vars;
use crate::exec::{Cmd, Exec};
use crate::kube::Kube;
use crate::ledger::{Item, Ledger};
use crate::manifest::{self, Document};
use crate::provider::{ProviderError, RunContext};
use crate::reporter::Reporter;
use crate::scenario::Scenario;
use crate::tools::{self, Platform, ToolOptions, ToolsLock, Toolset, Versions, host};

/// The tool options for this machine.
pub(crate) fn tool_options(p: &KindProvider) -> ToolOptions {
    ToolOptions {
        cache: env_vars::cache_dir(p.root()),
        use_path_tools: p.use_path_tools,
        platform: Platform::current().unwrap_or(Platform {
            os: "linux",
            arch: "amd64",
        }),
        path_dirs: env_vars::path_dirs(),
    }
}

/// Every check at once, so one run names everything to fix; never downloads anything.
pub async fn preflight(
    p: &KindProvider,
    _s: &Scenario,
    _ctx: &RunContext,
) -> Result<(), ProviderError> {
    let versions = Versions::load(p.root()).map_err(KindError::from)?;
    let mut findings = Vec::new();
    if let Err(missing) = tools::resolve(&versions, &tool_options(p), &Exec::new()).await {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        findings.push(host::Finding {
            problem: format!("missing tools: {}", list.join(", ")),
            hint: "run `cargo xtask tools install` (needs internet), or `--use-path-tools` to accept other versions".into(),
        });
    }
    match Docker::connect_with_local_defaults() {
        Ok(docker) => {
            if let Some(f) = host::docker(&docker).await {
                findings.push(f);
            } else if docker
                .inspect_image(&versions.kind.node_image)
                .await
                .is_err()
            {
                // Not fatal: kind pulls the image. Offline this is where a run would stop.
                findings.push(host::Finding {
                    problem: format!("the kind node image {} is not present locally", versions.kind.node_image),
                    hint: "it is pulled on first use, which needs internet access (or `docker pull` it beforehand)".into(),
                });
            }
        }
        Err(e) => findings.push(host::Finding {
            problem: format!("no Docker client: {e}"),
            hint: "install Docker".into(),
        }),
    }
    findings.extend(host::inotify());
    findings.extend(host::capture_rights());
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
    hint.push_str("\n- without internet or kind, run the same scenario offline: `cargo xtask e2e NAME --provider lab`");
    Err(ProviderError::Preflight {
        problem: format!("the kind provider cannot run here:\n{problem}"),
        hint,
    })
}

/// Creates (or reuses) the cluster and installs what the scenario requires.
pub async fn provision(
    p: &KindProvider,
    s: &Scenario,
    ctx: &RunContext,
    reporter: &dyn Reporter,
) -> Result<KindLab, ProviderError> {
    let versions = Versions::load(p.root()).map_err(KindError::from)?;
    let exec = Exec::new();
    let toolset = tools::resolve(&versions, &tool_options(p), &exec)
        .await
        .map_err(|missing| KindError::Tools(tools::ToolsError::Missing { missing }))?;
    crate::private_fs::create_dir(&ctx.artifacts).map_err(|source| KindError::Io {
        path: ctx.artifacts.clone(),
        source,
    })?;
    let ledger =
        Ledger::open(&ctx.artifacts.join("ledger.jsonl"), &ctx.run_id).map_err(KindError::from)?;
    let docker = Docker::connect_with_local_defaults().map_err(KindError::from)?;
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
        Ok::<_, KindError>((kube, super::KindNetwork::from_inspect(&inspect)?))
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
    let network = Some(network);
    let parts = LabParts {
        root: p.root().to_path_buf(),
        scenario: s.clone(),
        ctx: ctx.clone(),
        kube,
        exec,
        tools: toolset,
        docker,
        cluster,
        created,
        existing: false,
        kubeconfig,
        ledger,
        network,
        versions,
    };
    let mut lab = KindLab::new(parts);
    if let Err(e) = install(&mut lab, p, s, reporter).await {
        let _ = Box::new(lab).teardown_now(reporter).await;
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
    lab: &mut KindLab,
    p: &KindProvider,
    s: &Scenario,
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
            metallb_install(lab, &mut lock),
        )
        .await?;
    }
    if let Some(mesh) = &s.file.requires.mesh {
        let op = istio::operator(mesh)?;
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
        "Loading local images",
        lab.load_images(),
    )
    .await?;
    Ok(())
}

async fn download(
    lab: &KindLab,
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

async fn metallb_install(lab: &mut KindLab, lock: &mut ToolsLock) -> Result<(), KindError> {
    let docs = download(lab, "metallb", lock).await?;
    lab.kube().apply(&docs).await?;
    lab.kube()
        .deployment_rolled_out(metallb::NAMESPACE, "controller", Duration::from_secs(300))
        .await?;
    lab.kube()
        .daemonset_ready(metallb::NAMESPACE, "speaker", Duration::from_secs(300))
        .await?;
    let pool = metallb::pool_for(lab.network()?.ipv4)?;
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
    lab.set_pool(pool);
    Ok(())
}

async fn istio_install(
    lab: &mut KindLab,
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

async fn metrics_server(lab: &mut KindLab, lock: &mut ToolsLock) -> Result<(), KindError> {
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

/// A `kind` command for a cluster (used by diagnostics and image loading).
pub(super) fn kind_cmd(tools: &Toolset, args: &[&str]) -> Cmd {
    tools.cmd("kind").args(args.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kind::tests::scenario;
    use crate::scenario::Canary;

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

    #[tokio::test]
    async fn preflight_fails_fast_and_names_the_fix() {
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
        // On this machine kind is never installed and nothing can be downloaded; on a
        // machine where everything is ready the preflight passes, which is also correct.
        let tools_ready = tools::resolve(
            &Versions::load(root).unwrap(),
            &tool_options(&p),
            &Exec::new(),
        )
        .await
        .is_ok();
        if !tools_ready {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("missing tools: kind v0.33.0"), "{err}");
            assert!(err.contains("cargo xtask tools install"), "{err}");
            assert!(err.contains("--provider lab"), "{err}");
        }
    }
}
