//! The kind provider's part of the dry-run plan: tools, cluster, installs, capture.

use super::images::{is_local, scenario_images};
use super::{KindError, KindProvider, capture, config, istio, metallb};
use crate::env_vars;
use crate::provider::{PlanEntry, RunContext};
use crate::scenario::Scenario;
use crate::tools::{TOOLS, Versions};

/// kind's usual IPv4 subnet, used only to show an example pool in the plan; the real
/// pool is carved from the subnet Docker reports at run time.
const EXAMPLE_SUBNET: &str = "172.18.0.0/16";

fn entry(section: &str, text: String, detail: Option<String>) -> PlanEntry {
    PlanEntry {
        section: section.to_string(),
        text,
        detail,
    }
}

/// Every step the provider takes, in order.
pub fn entries(
    p: &KindProvider,
    s: &Scenario,
    ctx: &RunContext,
) -> Result<Vec<PlanEntry>, KindError> {
    let v = Versions::load(p.root())?;
    let mut out = tools(p, &v)?;
    out.extend(build(p));
    out.extend(cluster(s, ctx, &v)?);
    out.extend(installs(s, ctx, &v)?);
    out.extend(images(s, ctx));
    out.extend(outside(s, ctx)?);
    out.extend(
        super::placement::lines(s)
            .into_iter()
            .map(|line| entry("placement", line, None)),
    );
    out.push(entry(
        "capture",
        format!(
            "node-to-node capture on the kind network's bridge (br-<network id>: every node's traffic): libpcap in this process when it may capture (root or CAP_NET_RAW), else the capture helper container `{} capture` from {} on the Docker host's network (no root needed; stopped by SIGTERM, removed within {}s)",
            crate::image::WORKLOAD_PATH,
            crate::image::workload_reference(),
            crate::capture::helper::REMOVE_LIMIT.as_secs()
        ),
        Some(format!(
            "BPF: {}\n(pod CIDRs are read from the nodes at run time)",
            capture::bpf_filter(&["10.244.1.0/24".into(), "10.244.2.0/24".into()], EXAMPLE_SUBNET.parse().map_err(KindError::Generate)?)
        )),
    ));
    Ok(out)
}

/// `kind: external` workloads: containers on the `kind` network, outside the cluster.
fn outside(s: &Scenario, ctx: &RunContext) -> Result<Vec<PlanEntry>, KindError> {
    let containers = crate::provider::outside::containers(s, &ctx.run_id, "kind")
        .map_err(KindError::Generate)?;
    Ok(containers
        .iter()
        .map(|c| {
            let (text, detail) = crate::provider::outside::describe(c);
            entry("outside", text, Some(detail))
        })
        .collect())
}

fn tools(p: &KindProvider, v: &Versions) -> Result<Vec<PlanEntry>, KindError> {
    let cache = env_vars::cache_dir(p.root());
    let mut out = Vec::new();
    for name in TOOLS {
        let pin = v.tool(name)?;
        out.push(entry(
            "tools",
            format!(
                "{name} {} (from {} or PATH at that version)",
                pin.version,
                cache.display()
            ),
            None,
        ));
    }
    out.push(entry("tools", "tools not cached yet are downloaded by the run itself (the same code as `cargo xtask tools install`), each verified against its upstream checksum file and fixtures/tools.lock".into(), None));
    Ok(out)
}

fn cluster(s: &Scenario, ctx: &RunContext, v: &Versions) -> Result<Vec<PlanEntry>, KindError> {
    let nodes = s.file.requires.workers + 1;
    if let Some(name) = &ctx.reuse {
        return Ok(vec![
            entry(
                "cluster",
                format!(
                    "reuse kind cluster {name} (--reuse): export its kubeconfig, create nothing"
                ),
                None,
            ),
            entry(
                "cluster",
                format!("wait until all {nodes} nodes are Ready"),
                None,
            ),
        ]);
    }
    let name = config::cluster_name(&ctx.run_id);
    let cfg = config::for_scenario(s, &name, &v.kind.node_image, &ctx.run_id)?;
    let kubeconfig = ctx.artifacts.join("kubeconfig");
    Ok(vec![
        entry(
            "cluster",
            format!(
                "kind create cluster --name {name} --config kind-config.yaml --kubeconfig {} --wait 120s (1 control plane + {} workers, Kubernetes {})",
                kubeconfig.display(),
                s.file.requires.workers,
                v.kind.kubernetes
            ),
            Some(cfg.to_yaml()?),
        ),
        entry(
            "cluster",
            format!(
                "{}: pulled by `kind create cluster` unless present locally (needs internet the first time; preflight does not require it)",
                v.kind.node_image
            ),
            None,
        ),
        entry(
            "cluster",
            format!(
                "wait until all {nodes} nodes are Ready (kind's --wait checks only the control plane)"
            ),
            None,
        ),
    ])
}

fn installs(s: &Scenario, ctx: &RunContext, v: &Versions) -> Result<Vec<PlanEntry>, KindError> {
    let r = &s.file.requires;
    let mut out = Vec::new();
    if r.load_balancer.is_some() {
        let m = v.manifest("metallb")?;
        out.push(entry(
            "install",
            format!(
                "MetalLB {}: server-side apply {} (sha256 checked against fixtures/tools.lock)",
                m.version,
                m.url()
            ),
            None,
        ));
        out.push(entry(
            "install",
            "wait for Deployment metallb-system/controller and DaemonSet metallb-system/speaker"
                .into(),
            None,
        ));
        let pool = metallb::pool_for(EXAMPLE_SUBNET.parse().map_err(KindError::Generate)?)?;
        out.push(entry(
            "install",
            format!("IPAddressPool + L2Advertisement from the kind network's IPv4 subnet (e.g. {EXAMPLE_SUBNET} -> {}), retried while MetalLB's webhook warms up", pool.range()),
            Some(metallb::yaml(pool, &ctx.run_id)?),
        ));
    }
    if let Some(mesh) = &r.mesh {
        let op = istio::operator(mesh, super::placement::gateway_slot(s).as_deref())?;
        let istioctl = v.tool("istioctl")?;
        out.push(entry(
            "install",
            format!(
                "Istio {}: istioctl install -y -f istio-operator.yaml --readiness-timeout 300s",
                istioctl.version
            ),
            Some(op.to_yaml()?),
        ));
        out.push(entry(
            "install",
            format!(
                "wait for Deployments {} in {}",
                op.deployments().join(", "),
                istio::NAMESPACE
            ),
            None,
        ));
        if mesh.ingress_gateway {
            out.push(entry(
                "install",
                format!(
                    "wait for Service {}/{} to get its LoadBalancer IP",
                    istio::NAMESPACE,
                    istio::INGRESS_GATEWAY
                ),
                None,
            ));
        }
    }
    if r.metrics_server {
        let m = v.manifest("metrics-server")?;
        out.push(entry("install", format!("metrics-server {}: apply {} with --kubelet-insecure-tls added, wait for its rollout", m.version, m.url()), None));
    }
    Ok(out)
}

/// The workload binary and the kind workload image, built before the cluster exists.
fn build(p: &KindProvider) -> Vec<PlanEntry> {
    use crate::image::workload_bin::{BinaryInputs, plan_workload_binary};
    vec![
        entry(
            "images",
            plan_workload_binary(&BinaryInputs::current()).describe(p.root()),
            None,
        ),
        entry(
            "images",
            format!(
                "build image {} from {} and the libraries ldd lists for it (local files: no base image, no pull)",
                crate::image::workload_reference(),
                crate::image::WORKLOAD_PATH
            ),
            None,
        ),
    ]
}

fn images(s: &Scenario, ctx: &RunContext) -> Vec<PlanEntry> {
    let name = ctx
        .reuse
        .clone()
        .unwrap_or_else(|| config::cluster_name(&ctx.run_id));
    scenario_images(s)
        .into_iter()
        .map(|image| {
            let text = if is_local(&image) {
                format!(
                    "kind load docker-image {image} --name {name} (built locally, never pulled)"
                )
            } else {
                format!(
                    "{image}: pulled by the nodes from its registry (not loaded with `kind load`)"
                )
            };
            entry("images", text, None)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Canary;
    use crate::testsupport::scenario;

    fn ctx(reuse: Option<&str>) -> RunContext {
        RunContext {
            run_id: "mp-test".into(),
            artifacts: "artifacts/mp-test".into(),
            canary: Canary::fixed("MESHPROOF-CANARY-test"),
            keep: false,
            reuse: reuse.map(str::to_string),
            context: None,
        }
    }

    fn render(entries: &[PlanEntry]) -> String {
        entries
            .iter()
            .map(|e| {
                let detail = e
                    .detail
                    .as_deref()
                    .map(|d| format!("\n    {}", d.trim_end().replace('\n', "\n    ")))
                    .unwrap_or_default();
                format!("[{}] {}{detail}", e.section, e.text)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn provider() -> KindProvider {
        KindProvider::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap(),
        )
    }

    /// The binary line depends on how the test runs (cargo, profile, target dir).
    fn binary_line() -> String {
        use crate::image::workload_bin::{BinaryInputs, plan_workload_binary};
        plan_workload_binary(&BinaryInputs::current()).describe(provider().root())
    }

    #[test]
    fn every_project_image_is_built_then_loaded_and_every_other_is_pulled() {
        for name in ["pii-demo", "rabbitmq", "xnat"] {
            let s = scenario(name);
            let texts: Vec<String> = entries(&provider(), &s, &ctx(None))
                .unwrap()
                .into_iter()
                .map(|e| e.text)
                .collect();
            let at = |needle: &str| {
                texts
                    .iter()
                    .position(|t| t.contains(needle))
                    .unwrap_or_else(|| panic!("{name}: no step `{needle}` in {texts:#?}"))
            };
            let binary = at(&binary_line());
            let cluster = at("kind create cluster");
            for image in scenario_images(&s) {
                if is_local(&image) {
                    let built = at(&format!("build image {image} "));
                    let loaded = at(&format!("kind load docker-image {image} "));
                    assert!(
                        binary < built && built < cluster && cluster < loaded,
                        "{name}: {texts:#?}"
                    );
                } else {
                    at(&format!("{image}: pulled by the nodes"));
                }
            }
            at("pulled by `kind create cluster`");
            at("capture helper container");
        }
    }

    #[test]
    fn pii_demo_plan_snapshot() {
        let text = render(&entries(&provider(), &scenario("pii-demo"), &ctx(None)).unwrap());
        let text = text.replace(&binary_line(), "<build or find meshproof-workload>");
        // The cache path depends on the machine; everything else is fixed.
        let text = text.replace(
            &crate::env_vars::cache_dir(provider().root())
                .display()
                .to_string(),
            "<cache>",
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn reuse_creates_nothing() {
        let text =
            render(&entries(&provider(), &scenario("rabbitmq"), &ctx(Some("mine"))).unwrap());
        assert!(text.contains("reuse kind cluster mine"));
        assert!(!text.contains("kind create cluster"));
        assert!(text.contains("--name mine"));
    }
}
