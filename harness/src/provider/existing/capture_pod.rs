//! The capture pod of the existing provider: tcpdump on a node's host network.
//!
//! `hostNetwork` puts tcpdump in the node's network namespace, where node-to-node pod
//! traffic is visible; it needs `NET_RAW`/`NET_ADMIN`, hence `privileged`. The pod only
//! sleeps: each capture is an exec of `tcpdump -w -` whose stdout streams back.

use serde_json::{Value, json};

/// The namespace capture pods live in (created and deleted by the run).
pub const CAPTURE_NAMESPACE: &str = "meshproof-capture";

/// The Pod for one node.
pub fn capture_pod(node: &str, image: &str, run_id: &str) -> Value {
    let safe: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("meshproof-capture-{safe}"),
            "namespace": CAPTURE_NAMESPACE,
            "labels": {"meshproof.dev/run": run_id, "app.kubernetes.io/name": "meshproof-capture"},
            "annotations": {"sidecar.istio.io/inject": "false"}
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "tcpdump",
                "image": image,
                "command": ["sleep", "86400"],
                "securityContext": {"privileged": true},
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}
            }]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_pod_snapshot() {
        let pod = capture_pod("worker-1.example", "nicolaka/netshoot:v0.15", "mp-test");
        insta::assert_snapshot!(serde_saphyr::to_string(&pod).unwrap());
        let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
        assert_eq!(typed.spec.unwrap().host_network, Some(true));
    }
}
