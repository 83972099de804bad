//! The existing provider's preflight decisions, as pure functions over what the
//! environment and the API server said, so each is tested offline with recorded objects.
//!
//! Every path in `KUBECONFIG` is read (kubectl merges them; a missing file is skipped as
//! kubectl skips it), the context must exist in one of them, the nodes must carry the
//! `meshproof.dev/slot` labels the scenario pins workloads to, and a scenario with an HPA
//! step needs the metrics API.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Node;
use kube::config::Kubeconfig;

use crate::provider::cluster::SLOT_LABEL;
use crate::scenario::{Scenario, Step};

/// The kubeconfig files, in order: every entry of `KUBECONFIG`, else `~/.kube/config`.
pub fn kubeconfig_paths(kubeconfig: Option<&OsStr>, home: Option<&Path>) -> Vec<PathBuf> {
    let listed: Vec<PathBuf> = kubeconfig
        .map(|v| {
            std::env::split_paths(v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    home.map(|h| vec![h.join(".kube").join("config")])
        .unwrap_or_default()
}

/// The file among `files` that defines `context`, and the server its cluster points at.
pub fn find_context(
    files: &[(PathBuf, Kubeconfig)],
    context: &str,
) -> Result<(PathBuf, String), String> {
    for (path, kc) in files {
        let Some(ctx) = kc.contexts.iter().find(|c| c.name == context) else {
            continue;
        };
        let cluster = ctx
            .context
            .as_ref()
            .map(|c| c.cluster.clone())
            .unwrap_or_default();
        let server = files
            .iter()
            .flat_map(|(_, k)| k.clusters.iter())
            .find(|c| c.name == cluster)
            .and_then(|c| c.cluster.as_ref()?.server.clone())
            .ok_or_else(|| {
                format!(
                    "context {context} in {} names cluster {cluster:?}, which no kubeconfig file defines with a server",
                    path.display()
                )
            })?;
        return Ok((path.clone(), server));
    }
    let read: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    Err(format!(
        "no context {context} in {} (check `kubectl config get-contexts`)",
        if read.is_empty() {
            "any kubeconfig file (none could be read)".to_string()
        } else {
            read.join(", ")
        }
    ))
}

/// The slots the scenario pins workloads to (`slot: a` → `a`).
pub fn needed_slots(s: &Scenario) -> BTreeSet<String> {
    s.file
        .workloads
        .iter()
        .filter_map(|w| w.slot.clone())
        .collect()
}

/// Each needed slot no node carries, with the exact command that labels one.
pub fn missing_slots(nodes: &[Node], needed: &BTreeSet<String>, context: &str) -> Vec<String> {
    let labelled: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.labels.as_ref()?.get(SLOT_LABEL).cloned())
        .collect();
    let unlabelled: Vec<String> = nodes
        .iter()
        .filter(|n| {
            !n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(SLOT_LABEL))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    needed
        .difference(&labelled)
        .enumerate()
        .map(|(i, slot)| {
            let node = unlabelled
                .get(i)
                .cloned()
                .unwrap_or_else(|| "NODE".to_string());
            format!(
                "no node labelled {SLOT_LABEL}={slot}: label one (a different node per slot) with `kubectl --context {context} label node {node} {SLOT_LABEL}={slot}`"
            )
        })
        .collect()
}

/// Whether the scenario has a step that reads the metrics API (an HPA check).
pub fn needs_metrics(s: &Scenario) -> bool {
    s.file
        .phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .any(|step| matches!(step, Step::Hpa(_)))
}

/// The finding when the metrics API is needed and not served (`groups`: API group names).
pub fn metrics_missing(needed: bool, groups: &[String]) -> Option<String> {
    (needed && !groups.iter().any(|g| g == "metrics.k8s.io")).then(|| {
        "the metrics API (metrics.k8s.io) is not served, and the scenario has an HPA step: install metrics-server (`kubectl get apiservices v1beta1.metrics.k8s.io` should say Available)".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    fn node(name: &str, slot: Option<&str>) -> Node {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": slot.map(|s| serde_json::json!({SLOT_LABEL: s})).unwrap_or(serde_json::json!({}))}
        }))
        .unwrap()
    }

    fn kubeconfig(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).unwrap()
    }

    #[test]
    fn every_kubeconfig_path_is_used_in_order() {
        let joined = std::env::join_paths(["/a/one", "/b/two"]).unwrap();
        assert_eq!(
            kubeconfig_paths(Some(&joined), Some(Path::new("/home/u"))),
            [PathBuf::from("/a/one"), PathBuf::from("/b/two")]
        );
        assert_eq!(
            kubeconfig_paths(None, Some(Path::new("/home/u"))),
            [PathBuf::from("/home/u/.kube/config")]
        );
        assert_eq!(
            kubeconfig_paths(Some(OsStr::new("")), Some(Path::new("/h"))),
            [PathBuf::from("/h/.kube/config")]
        );
    }

    #[test]
    fn a_context_in_the_second_file_is_found_with_its_server() {
        let first = kubeconfig(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c1\n  cluster: {server: 'https://one:6443'}\ncontexts:\n- name: one\n  context: {cluster: c1, user: u}\n",
        );
        let second = kubeconfig(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c2\n  cluster: {server: 'https://two:6443'}\ncontexts:\n- name: two\n  context: {cluster: c2, user: u}\n",
        );
        let files = vec![("/a".into(), first), ("/b".into(), second)];
        assert_eq!(
            find_context(&files, "two").unwrap(),
            (PathBuf::from("/b"), "https://two:6443".to_string())
        );
        let err = find_context(&files, "three").unwrap_err();
        assert!(err.contains("no context three in /a, /b"), "{err}");
    }

    #[test]
    fn missing_slots_say_which_node_to_label_and_how() {
        let s = scenario("pii-demo");
        let needed = needed_slots(&s);
        assert_eq!(needed, BTreeSet::from(["a".to_string(), "b".to_string()]));
        let nodes = [node("w1", Some("a")), node("w2", None)];
        let missing = missing_slots(&nodes, &needed, "prod");
        assert_eq!(
            missing,
            [format!(
                "no node labelled {SLOT_LABEL}=b: label one (a different node per slot) with `kubectl --context prod label node w2 {SLOT_LABEL}=b`"
            )]
        );
        let both = [node("w1", Some("a")), node("w2", Some("b"))];
        assert!(missing_slots(&both, &needed, "prod").is_empty());
    }

    #[test]
    fn metrics_api_is_required_only_by_hpa_steps() {
        assert!(needs_metrics(&scenario("xnat")));
        assert!(!needs_metrics(&scenario("pii-demo")));
        assert!(metrics_missing(true, &["apps".into()]).is_some());
        assert!(metrics_missing(true, &["metrics.k8s.io".into()]).is_none());
        assert!(metrics_missing(false, &[]).is_none());
    }
}
