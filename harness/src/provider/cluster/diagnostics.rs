//! Failure diagnostics: what a person needs to understand a failed cluster run.
//!
//! Events, `describe` of pods that are not Ready, logs of every container (istio-proxy
//! included), Istio's view of the involved pods, and whatever the cluster adds (kind's
//! node logs). Each item is written to its own file; one that fails is noted in
//! `errors.txt` and the rest go on.

use std::path::Path;
use std::time::Duration;

use super::ClusterLab;
use crate::exec::Cmd;
use crate::provider::ProviderError;

/// Collects everything into `dir`.
pub async fn collect(
    lab: &ClusterLab,
    cluster: &dyn super::Cluster,
    dir: &Path,
) -> Result<(), ProviderError> {
    std::fs::create_dir_all(dir).map_err(|e| ProviderError::Failed {
        operation: "diagnostics".into(),
        message: e.to_string(),
    })?;
    let kc = lab.kubeconfig_arg();
    let kubectl = |args: &[&str]| {
        lab.tools()
            .cmd("kubectl")
            .args(["--kubeconfig", &kc])
            .args(args.iter().copied())
            .timeout(Duration::from_secs(60))
    };
    let mut jobs: Vec<(String, Cmd)> = vec![
        (
            "events.txt".into(),
            kubectl(&["get", "events", "-A", "--sort-by=.lastTimestamp"]),
        ),
        (
            "pods.txt".into(),
            kubectl(&["get", "pods", "-A", "-o", "wide"]),
        ),
        (
            "describe-pods.txt".into(),
            kubectl(&["describe", "pods", "-A"]),
        ),
    ];
    let istioctl = |args: &[&str]| {
        lab.tools()
            .cmd("istioctl")
            .args(["--kubeconfig", &kc])
            .args(args.iter().copied())
            .timeout(Duration::from_secs(60))
    };
    let mut errors = Vec::new();
    // Per pod of the scenario's workloads: every container's log (istio-proxy included,
    // classic or native), and Istio's own view of the pod.
    let pods = match lab.kube().peer_inputs().await {
        Ok(inputs) => inputs.pods,
        Err(e) => {
            errors.push(format!("listing pods: {e}"));
            Vec::new()
        }
    };
    for pod in &pods {
        if crate::kube::pod_workload(pod, &lab.scenario().file.workloads).is_none() {
            continue;
        }
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let dotted = format!("{name}.{ns}");
        jobs.push((
            format!("logs-{dotted}.txt"),
            kubectl(&[
                "logs",
                "-n",
                ns,
                name,
                "--all-containers",
                "--prefix",
                "--tail=2000",
            ]),
        ));
        jobs.push((
            format!("proxy-config-{dotted}.txt"),
            istioctl(&["proxy-config", "all", &dotted]),
        ));
        jobs.push((
            format!("describe-{dotted}.txt"),
            istioctl(&["x", "describe", "pod", &dotted]),
        ));
    }
    for (file, cmd) in jobs {
        match lab.exec().output(&cmd).await {
            Ok(out) => {
                let mut text = out.stdout;
                text.extend_from_slice(&out.stderr);
                if let Err(e) = std::fs::write(dir.join(&file), text) {
                    errors.push(format!("{file}: {e}"));
                }
            }
            Err(e) => errors.push(format!("{file}: {e}")),
        }
    }
    errors.extend(cluster.diagnostics(lab, dir).await);
    if let Ok(journal) = serde_json::to_string_pretty(&lab.exec().journal()) {
        let _ = std::fs::write(dir.join("commands.json"), journal);
    }
    if !errors.is_empty() {
        let _ = std::fs::write(dir.join("errors.txt"), errors.join("\n"));
    }
    Ok(())
}
