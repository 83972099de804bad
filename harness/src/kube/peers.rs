//! Who is who: pod and node addresses mapped to scenario workloads and node names.
//!
//! Reports say `httpd-server (worker) -> mysql-server (worker2):3306`, never bare IPs.

use std::net::IpAddr;

use ::kube::api::{Api, ListParams};
use k8s_openapi::api::core::v1::{Node, Pod};

use super::{Kube, KubeError};
use crate::provider::{Peer, PeerMap};
use crate::scenario::{Workload, peers};

/// Everything the map is built from.
#[derive(Debug, Clone, Default)]
pub struct PeerInputs {
    /// Every pod in the cluster.
    pub pods: Vec<Pod>,
    /// Every node.
    pub nodes: Vec<Node>,
    /// The ingress gateway's LoadBalancer IP, if any.
    pub gateway_ip: Option<IpAddr>,
    /// The host's address on the node network (the bridge gateway), if known.
    pub host_ip: Option<IpAddr>,
}

/// The scenario workload a pod belongs to: same namespace and a name made from the
/// workload's (`name-<hash>-<id>` for Deployments, `name-<ordinal>` for StatefulSets),
/// or the builtin name of Istio's gateways.
pub fn pod_workload(pod: &Pod, workloads: &[Workload]) -> Option<String> {
    let ns = pod.metadata.namespace.as_deref()?;
    let name = pod.metadata.name.as_deref()?;
    let owned = |w: &str| {
        name.strip_prefix(w)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| {
                let parts: Vec<&str> = rest.split('-').collect();
                match parts.as_slice() {
                    [ordinal] => ordinal.chars().all(|c| c.is_ascii_digit()),
                    [_, _] => true,
                    _ => false,
                }
            })
    };
    if let Some(w) = workloads
        .iter()
        .filter(|w| w.namespace == ns)
        .find(|w| owned(&w.name.value))
    {
        return Some(w.name.value.clone());
    }
    match ns {
        "istio-system" if owned("istio-ingressgateway") => Some(peers::INGRESS_GATEWAY.to_string()),
        "istio-system" if owned("istio-egressgateway") => Some(peers::EGRESS_GATEWAY.to_string()),
        _ => None,
    }
}

/// Builds the map: pod IPs to workloads (other pods by their own name), node IPs to
/// `node`, the gateway IP to the ingress gateway, the bridge gateway to `host`.
pub fn peer_map(inputs: &PeerInputs, workloads: &[Workload]) -> PeerMap {
    let mut map = PeerMap::default();
    for node in &inputs.nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        for addr in node
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
        {
            if let (true, Ok(ip)) = (addr.type_ == "InternalIP", addr.address.parse()) {
                map.peers.insert(
                    ip,
                    Peer {
                        workload: "node".into(),
                        instance: name.clone(),
                        node: name.clone(),
                    },
                );
            }
        }
    }
    for pod in &inputs.pods {
        let Some(status) = &pod.status else { continue };
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            continue; // Host-network pods share the node's address, already mapped.
        }
        let instance = pod.metadata.name.clone().unwrap_or_default();
        let workload = pod_workload(pod, workloads).unwrap_or_else(|| instance.clone());
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        for ip in status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
        {
            map.peers.insert(
                ip,
                Peer {
                    workload: workload.clone(),
                    instance: instance.clone(),
                    node: node.clone(),
                },
            );
        }
    }
    if let Some(ip) = inputs.gateway_ip {
        let peer = Peer {
            workload: peers::INGRESS_GATEWAY.into(),
            instance: "LoadBalancer IP".into(),
            node: "metallb".into(),
        };
        map.peers.insert(ip, peer);
    }
    if let Some(ip) = inputs.host_ip {
        map.peers.insert(
            ip,
            Peer {
                workload: peers::HOST.into(),
                instance: "host".into(),
                node: "host".into(),
            },
        );
    }
    map
}

impl Kube {
    /// Lists every pod and node (one call each).
    pub async fn peer_inputs(&self) -> Result<PeerInputs, KubeError> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let nodes: Api<Node> = Api::all(self.client.clone());
        let lp = ListParams::default();
        Ok(PeerInputs {
            pods: pods
                .list(&lp)
                .await
                .map_err(self.api_error("list pods"))?
                .items,
            nodes: nodes
                .list(&lp)
                .await
                .map_err(self.api_error("list nodes"))?
                .items,
            gateway_ip: None,
            host_ip: None,
        })
    }

    /// The pod CIDRs the nodes were given, for capture filters.
    pub async fn pod_cidrs(&self) -> Result<Vec<String>, KubeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(self.api_error("list nodes"))?;
        Ok(list
            .items
            .iter()
            .filter_map(|n| n.spec.as_ref())
            .flat_map(|s| s.pod_cidrs.clone().unwrap_or_default())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::kind::tests::scenario;

    fn pod(ns: &str, name: &str, node: &str, ip: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": []},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}
        }))
        .unwrap()
    }

    #[test]
    fn pods_nodes_gateway_and_host_get_names() {
        let s = scenario("pii-demo");
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "meshproof-x-worker"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"}, {"type": "Hostname", "address": "meshproof-x-worker"}]}
        }))
        .unwrap();
        let inputs = PeerInputs {
            pods: vec![
                pod(
                    "pii-demo",
                    "httpd-server-7d9f8b6c5-x2x9q",
                    "meshproof-x-worker",
                    "10.244.1.5",
                ),
                pod(
                    "pii-demo",
                    "mysql-server-5c6d7e8f9-abcde",
                    "meshproof-x-worker2",
                    "10.244.2.7",
                ),
                pod(
                    "istio-system",
                    "istio-ingressgateway-6b7c8d9e-zzzzz",
                    "meshproof-x-worker2",
                    "10.244.2.9",
                ),
                pod(
                    "kube-system",
                    "coredns-abc-def",
                    "meshproof-x-control-plane",
                    "10.244.0.2",
                ),
            ],
            nodes: vec![node],
            gateway_ip: Some("172.18.255.200".parse().unwrap()),
            host_ip: Some("172.18.0.1".parse().unwrap()),
        };
        let map = peer_map(&inputs, &s.file.workloads);
        let at = |ip: &str| map.peers[&ip.parse::<IpAddr>().unwrap()].clone();
        assert_eq!(at("10.244.1.5").workload, "httpd-server");
        assert_eq!(at("10.244.1.5").node, "meshproof-x-worker");
        assert_eq!(at("10.244.2.7").workload, "mysql-server");
        assert_eq!(at("10.244.2.9").workload, "ingress-gateway");
        assert_eq!(at("10.244.0.2").workload, "coredns-abc-def");
        assert_eq!(at("172.18.0.3").workload, "node");
        assert_eq!(at("172.18.255.200").workload, "ingress-gateway");
        assert_eq!(at("172.18.0.1").workload, "host");
    }

    #[test]
    fn statefulset_ordinals_and_near_miss_names() {
        let s = scenario("rabbitmq");
        let w = &s.file.workloads;
        let ns = w
            .iter()
            .find(|w| w.name.value == "rabbitmq")
            .unwrap()
            .namespace
            .clone();
        assert_eq!(
            pod_workload(&pod(&ns, "rabbitmq-2", "n", "10.0.0.1"), w).as_deref(),
            Some("rabbitmq")
        );
        assert_eq!(
            pod_workload(&pod(&ns, "rabbitmq-extra-thing-x", "n", "10.0.0.1"), w),
            None
        );
        assert_eq!(
            pod_workload(&pod("other", "rabbitmq-0", "n", "10.0.0.1"), w),
            None
        );
    }
}
