//! Standard Kubernetes kinds: parse into `k8s-openapi` types (feature `v1_36`) and find
//! keys those types dropped.
//!
//! `k8s-openapi` types accept unknown keys silently, so `spec.template.spec.containers[0].imagePullPolcy`
//! would pass a plain parse. We parse, serialize the typed value back, and report every
//! key of the original that did not survive the round trip: that is exactly the set of
//! keys the type does not know, at any depth.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac};

/// Why a standard document is wrong: the field path and the message.
pub(super) struct Finding {
    /// `spec.ports[0].targetPort`, or empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// True when the key is unknown, false when the value has the wrong shape.
    pub unknown_key: bool,
}

/// The checker for a standard `apiVersion`/`kind`, or `None` if meshproof does not know it.
pub(super) fn checker(api_version: &str, kind: &str) -> Option<fn(&Value) -> Vec<Finding>> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => check::<core::v1::Namespace>,
        ("v1", "ServiceAccount") => check::<core::v1::ServiceAccount>,
        ("v1", "Secret") => check::<core::v1::Secret>,
        ("v1", "ConfigMap") => check::<core::v1::ConfigMap>,
        ("v1", "Service") => check::<core::v1::Service>,
        ("v1", "Pod") => check::<core::v1::Pod>,
        ("v1", "PersistentVolumeClaim") => check::<core::v1::PersistentVolumeClaim>,
        ("v1", "Endpoints") => check::<core::v1::Endpoints>,
        ("v1", "LimitRange") => check::<core::v1::LimitRange>,
        ("v1", "ResourceQuota") => check::<core::v1::ResourceQuota>,
        ("apps/v1", "Deployment") => check::<apps::v1::Deployment>,
        ("apps/v1", "StatefulSet") => check::<apps::v1::StatefulSet>,
        ("apps/v1", "DaemonSet") => check::<apps::v1::DaemonSet>,
        ("apps/v1", "ReplicaSet") => check::<apps::v1::ReplicaSet>,
        ("batch/v1", "Job") => check::<batch::v1::Job>,
        ("batch/v1", "CronJob") => check::<batch::v1::CronJob>,
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            check::<autoscaling::v2::HorizontalPodAutoscaler>
        }
        ("autoscaling/v1", "HorizontalPodAutoscaler") => {
            check::<autoscaling::v1::HorizontalPodAutoscaler>
        }
        ("policy/v1", "PodDisruptionBudget") => check::<policy::v1::PodDisruptionBudget>,
        ("networking.k8s.io/v1", "NetworkPolicy") => check::<networking::v1::NetworkPolicy>,
        ("networking.k8s.io/v1", "Ingress") => check::<networking::v1::Ingress>,
        ("networking.k8s.io/v1", "IngressClass") => check::<networking::v1::IngressClass>,
        ("rbac.authorization.k8s.io/v1", "Role") => check::<rbac::v1::Role>,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => check::<rbac::v1::RoleBinding>,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => check::<rbac::v1::ClusterRole>,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            check::<rbac::v1::ClusterRoleBinding>
        }
        _ => return None,
    })
}

/// Parses `value` as `T` and reports shape errors or keys `T` does not know.
pub(super) fn check<T: DeserializeOwned + Serialize>(value: &Value) -> Vec<Finding> {
    let typed: T = match serde_path_to_error::deserialize(value) {
        Ok(typed) => typed,
        Err(e) => {
            return vec![Finding {
                path: clean_path(&e.path().to_string()),
                message: e.inner().to_string(),
                unknown_key: false,
            }];
        }
    };
    match serde_json::to_value(&typed) {
        Ok(round) => dropped_keys(value, &round, "")
            .into_iter()
            .map(|path| Finding {
                message: format!("unknown field `{}`", last_segment(&path)),
                path,
                unknown_key: true,
            })
            .collect(),
        Err(e) => vec![Finding {
            path: String::new(),
            message: e.to_string(),
            unknown_key: false,
        }],
    }
}

/// Every key path present (with a non-null value) in `original` and absent in `round`.
pub(super) fn dropped_keys(original: &Value, round: &Value, path: &str) -> Vec<String> {
    match (original, round) {
        (Value::Object(o), Value::Object(r)) => o
            .iter()
            .filter(|(_, v)| !v.is_null())
            .flat_map(|(k, v)| {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match r.get(k) {
                    Some(rv) => dropped_keys(v, rv, &here),
                    None => vec![here],
                }
            })
            .collect(),
        (Value::Array(o), Value::Array(r)) => o
            .iter()
            .zip(r)
            .enumerate()
            .flat_map(|(i, (v, rv))| dropped_keys(v, rv, &format!("{path}[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

/// serde_path_to_error writes `?` for the root and `.` before map keys; keep the familiar
/// `a.b[0].c` form.
fn clean_path(path: &str) -> String {
    if path == "." || path == "?" {
        String::new()
    } else {
        path.to_string()
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn misspelt_keys_are_found_at_any_depth() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labelz": {"a": "b"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "replica": 2,
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27.0", "imagePullPolcy": "Never"}]}
                }
            }
        });
        let findings = check::<apps::v1::Deployment>(&deployment);
        let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.labelz",
                "spec.replica",
                "spec.template.spec.containers[0].imagePullPolcy"
            ]
        );
        assert!(findings.iter().all(|f| f.unknown_key));
    }

    #[test]
    fn wrong_types_name_their_path() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": "eighty"}]}
        });
        let findings = check::<core::v1::Service>(&service);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].path, "spec.ports[0].port");
        assert!(!findings[0].unknown_key);
    }

    #[test]
    fn nulls_and_free_form_maps_are_not_unknown() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "creationTimestamp": null, "annotations": {"x/y": "z"}},
            "data": {"my.cnf": "[mysqld]"}
        });
        assert!(check::<core::v1::ConfigMap>(&cm).is_empty());
    }

    #[test]
    fn unknown_kinds_have_no_checker() {
        assert!(checker("v1", "Namespace").is_some());
        assert!(checker("apps/v1beta1", "Deployment").is_none());
        assert!(checker("v1", "List").is_none());
    }
}
