//! Failure diagnostics: what a person needs to understand a failed kind run.
//!
//! Events, `describe` of pods that are not Ready, logs of every container (istio-proxy
//! included), Istio's view of the involved pods, and `kind export logs`. Each item is
//! written to its own file; one that fails is noted in `errors.txt` and the rest go on.

use std::path::Path;
use std::time::Duration;

use super::lab::KindLab;
use super::provision::kind_cmd;
use crate::exec::Cmd;
use crate::provider::ProviderError;

/// Collects everything into `dir`.
pub async fn collect(lab: &KindLab, dir: &Path) -> Result<(), ProviderError> {
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
    let namespaces: std::collections::BTreeSet<&str> = lab
        .scenario()
        .file
        .workloads
        .iter()
        .map(|w| w.namespace.as_str())
        .collect();
    for ns in namespaces {
        jobs.push((
            format!("logs-{ns}.txt"),
            kubectl(&[
                "logs",
                "-n",
                ns,
                "--all-containers",
                "--prefix",
                "--tail=2000",
                "-l",
                "app",
            ]),
        ));
        for w in lab
            .scenario()
            .file
            .workloads
            .iter()
            .filter(|w| w.namespace == ns)
        {
            let target = format!("deploy/{}", w.name.value);
            let target = if w.kind == crate::scenario::WorkloadKind::StatefulSet {
                format!("sts/{}", w.name.value)
            } else {
                target
            };
            jobs.push((
                format!("istio-proxy-logs-{}.txt", w.name.value),
                kubectl(&[
                    "logs",
                    "-n",
                    ns,
                    &target,
                    "-c",
                    "istio-proxy",
                    "--tail=2000",
                ]),
            ));
            let istioctl = |args: &[&str]| {
                lab.tools()
                    .cmd("istioctl")
                    .args(["--kubeconfig", &kc])
                    .args(args.iter().copied())
                    .timeout(Duration::from_secs(60))
            };
            jobs.push((
                format!("proxy-config-{}.txt", w.name.value),
                istioctl(&["proxy-config", "all", &target, "-n", ns]),
            ));
            jobs.push((
                format!("describe-{}.txt", w.name.value),
                istioctl(&["x", "describe", "pod", "-n", ns, &target]),
            ));
        }
    }
    let mut errors = Vec::new();
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
    let export = kind_cmd(
        lab.tools(),
        &[
            "export",
            "logs",
            &dir.join("kind-logs").display().to_string(),
            "--name",
            lab.cluster(),
        ],
    )
    .timeout(Duration::from_secs(300));
    if lab.is_existing() {
        // Not a kind cluster: there are no kind node logs to export.
    } else if let Err(e) = lab.exec().run(&export).await {
        errors.push(format!("kind export logs: {e}"));
    }
    if let Ok(journal) = serde_json::to_string_pretty(&lab.exec().journal()) {
        let _ = std::fs::write(dir.join("commands.json"), journal);
    }
    if !errors.is_empty() {
        let _ = std::fs::write(dir.join("errors.txt"), errors.join("\n"));
    }
    Ok(())
}
