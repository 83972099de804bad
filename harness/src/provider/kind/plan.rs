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
    out.extend(cluster(s, ctx, &v)?);
    out.extend(installs(s, ctx, &v)?);
    out.extend(images(s, ctx));
    out.extend(outside(s, ctx)?);
    out.push(entry(
        "capture",
        "node-to-node capture: libpcap on the kind network's host bridge (br-<network id>), or tcpdump in a helper container in a worker's network namespace when the bridge is not visible".into(),
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
    out.push(entry("tools", "missing tools: `cargo xtask tools install` (verified against upstream checksums and fixtures/tools.lock)".into(), None));
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
        let op = istio::operator(mesh)?;
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

fn images(s: &Scenario, ctx: &RunContext) -> Vec<PlanEntry> {
    let name = ctx
        .reuse
        .clone()
        .unwrap_or_else(|| config::cluster_name(&ctx.run_id));
    scenario_images(s)
        .into_iter()
        .map(|image| {
            let text = if is_local(&image) {
                format!("kind load docker-image {image} --name {name} (built locally, never pulled)")
            } else {
                format!("{image}: pulled by the nodes (or preloaded with `kind load` when present locally)")
            };
            entry("images", text, None)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kind::tests::scenario;
    use crate::scenario::Canary;

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

    #[test]
    fn pii_demo_plan_snapshot() {
        let text = render(&entries(&provider(), &scenario("pii-demo"), &ctx(None)).unwrap());
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
