//! Container images must be pinned: a tag that is not `latest`, or a digest.
//!
//! An unpinned image makes a scenario's result depend on the day it ran, so every pod
//! template in every fixture is checked, including init and ephemeral containers.

use serde_json::Value;

/// Where the pod spec lives in each workload kind, as a JSON pointer.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some("/spec/template/spec")
        }
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// One container image that is not pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unpinned {
    /// `spec.template.spec.containers[0].image`.
    pub path: String,
    /// The image as written (empty when missing).
    pub image: String,
    /// Why it is not pinned.
    pub why: &'static str,
}

/// Every unpinned image in a workload document of `kind`.
pub(super) fn unpinned(kind: &str, value: &Value) -> Vec<Unpinned> {
    let Some(pointer) = pod_spec_pointer(kind) else {
        return Vec::new();
    };
    let Some(spec) = value.pointer(pointer) else {
        return Vec::new();
    };
    let prefix = pointer.trim_start_matches('/').replace('/', ".");
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|list| {
            let containers = spec
                .get(list)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let prefix = prefix.clone();
            containers
                .into_iter()
                .enumerate()
                .filter_map(move |(i, c)| {
                    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                    pin_problem(image).map(|why| Unpinned {
                        path: format!("{prefix}.{list}[{i}].image"),
                        image: image.to_string(),
                        why,
                    })
                })
        })
        .collect()
}

/// Why `image` is not pinned, or `None` when it is.
pub(super) fn pin_problem(image: &str) -> Option<&'static str> {
    if image.is_empty() {
        return Some("no image is given");
    }
    if image.contains("@sha256:") {
        return None;
    }
    // The tag follows the last ':' after the last '/'; a ':' before that is a registry port.
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        None => Some("it has no tag, which means `latest`"),
        Some((_, "")) => Some("its tag is empty"),
        Some((_, "latest")) => Some("`latest` is not a pinned version"),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pinning_rules() {
        let table = [
            ("mysql:8.4.6", None),
            ("registry.local:5000/team/app:1.2.3", None),
            ("nginx@sha256:0123abcd", None),
            (
                "registry.local:5000/team/app",
                Some("it has no tag, which means `latest`"),
            ),
            ("nginx", Some("it has no tag, which means `latest`")),
            ("nginx:latest", Some("`latest` is not a pinned version")),
            ("nginx:", Some("its tag is empty")),
            ("", Some("no image is given")),
        ];
        for (image, want) in table {
            assert_eq!(pin_problem(image), want, "{image}");
        }
    }

    #[test]
    fn every_container_list_is_checked() {
        let deployment = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "a", "image": "app:1.0"}, {"name": "b", "image": "b:latest"}]
        }}}});
        let found = unpinned("Deployment", &deployment);
        let paths: Vec<&str> = found.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.template.spec.initContainers[0].image",
                "spec.template.spec.containers[1].image"
            ]
        );
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c"}]
        }}}}}});
        assert_eq!(unpinned("CronJob", &cron)[0].why, "no image is given");
        assert!(unpinned("Service", &json!({"spec": {}})).is_empty());
    }
}
