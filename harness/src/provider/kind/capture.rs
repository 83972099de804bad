//! Where and how node-to-node packets are taken on kind.
//!
//! kindnet routes pod traffic between nodes without encapsulation, so every cross-node
//! pod packet crosses the kind network's host bridge with real pod addresses. The default
//! capture point is that bridge (libpcap on the host). When the bridge is not visible
//! (Docker Desktop, rootless Docker), a helper container sharing a node's network
//! namespace runs `tcpdump -w -` and its output is streamed back through Docker.

use std::path::{Path, PathBuf};

use super::network::Ipv4Net;

/// Control-plane ports whose chatter would drown the scenario's flows: the API server,
/// kubelet and etcd. Pods reaching the API through its Service VIP arrive DNAT'd to 6443.
const CONTROL_PLANE_PORTS: [u16; 4] = [6443, 10250, 2379, 2380];

/// Where packets are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapturePoint {
    /// libpcap on the host interface of the kind network.
    HostBridge {
        /// `br-<id[..12]>` or the network's explicit bridge name.
        interface: String,
    },
    /// `tcpdump -w -` in a helper container joined to a node's network namespace.
    NodeNetns {
        /// The node container.
        node: String,
        /// The image providing tcpdump.
        image: String,
    },
}

/// Everything a capture needs, decided before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSetup {
    /// Where.
    pub point: CapturePoint,
    /// The BPF filter.
    pub bpf: String,
    /// The pcap file to write.
    pub pcap: PathBuf,
}

/// TCP between pods (their CIDRs) and to nodes (the node subnet: NodePorts, the MetalLB
/// IP and the host), minus control-plane ports.
pub fn bpf_filter(pod_cidrs: &[String], node_subnet: Ipv4Net) -> String {
    let mut nets: Vec<String> = pod_cidrs.iter().map(|c| format!("net {c}")).collect();
    nets.push(format!("net {node_subnet}"));
    let noise: Vec<String> = CONTROL_PLANE_PORTS
        .iter()
        .map(|p| format!("not port {p}"))
        .collect();
    format!(
        "tcp and ({}) and {}",
        nets.join(" or "),
        noise.join(" and ")
    )
}

/// Whether this host sees the bridge interface (false on Docker Desktop and rootless).
pub fn bridge_visible(interface: &str) -> bool {
    Path::new("/sys/class/net").join(interface).exists()
}

/// Picks the capture point: the bridge when visible, else the first worker's netns.
pub fn choose_point(interface: &str, first_worker: &str, tcpdump_image: &str) -> CapturePoint {
    if bridge_visible(interface) {
        CapturePoint::HostBridge {
            interface: interface.to_string(),
        }
    } else {
        CapturePoint::NodeNetns {
            node: first_worker.to_string(),
            image: tcpdump_image.to_string(),
        }
    }
}

/// The helper container's command: unbuffered, full packets, pcap on stdout.
///
/// `--immediate-mode` matters: with TPACKET_V3, libpcap hands packets over a block at a
/// time, and a tcpdump stopped by a signal drops the block it has not been given yet, so
/// the last second of traffic (often the probe the capture was for) would be missing.
pub fn tcpdump_command(bpf: &str) -> Vec<String> {
    [
        "tcpdump",
        "-i",
        "eth0",
        "--immediate-mode",
        "-U",
        "-s",
        "0",
        "-w",
        "-",
    ]
    .into_iter()
    .map(str::to_string)
    .chain(std::iter::once(bpf.to_string()))
    .collect()
}

/// The pcap path of a named capture in the artifacts directory.
pub fn pcap_path(artifacts: &Path, scenario: &str, capture: &str) -> PathBuf {
    artifacts
        .join(scenario)
        .join("captures")
        .join(format!("{capture}.pcap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_covers_pods_and_nodes_but_not_the_control_plane() {
        let bpf = bpf_filter(
            &["10.244.1.0/24".into(), "10.244.2.0/24".into()],
            "172.18.0.0/16".parse().unwrap(),
        );
        assert_eq!(
            bpf,
            "tcp and (net 10.244.1.0/24 or net 10.244.2.0/24 or net 172.18.0.0/16) and not port 6443 and not port 10250 and not port 2379 and not port 2380"
        );
    }

    #[test]
    fn a_missing_bridge_falls_back_to_the_node_namespace() {
        let point = choose_point(
            "br-doesnotexist",
            "meshproof-x-worker",
            "nicolaka/netshoot:v0.15",
        );
        assert!(
            matches!(point, CapturePoint::NodeNetns { ref node, .. } if node == "meshproof-x-worker")
        );
        assert!(matches!(
            choose_point("lo", "w", "i"),
            CapturePoint::HostBridge { .. }
        ));
        assert_eq!(
            tcpdump_command("tcp").last().map(String::as_str),
            Some("tcp")
        );
    }
}

#[cfg(test)]
mod docker_tests {
    //! The capture point against a real Docker bridge network created by the test.
    use std::collections::HashMap;

    use super::*;
    use crate::provider::kind::KindNetwork;
    use crate::testsupport::{docker, suffix};

    #[tokio::test]
    #[allow(clippy::print_stderr)] // A skipped test says why.
    async fn a_real_bridge_network_resolves_to_a_visible_host_interface() {
        let Some(docker) = docker().await else {
            eprintln!("skipped: no Docker daemon");
            return;
        };
        let run = format!("mp-brtest-{}", suffix());
        let name = format!("meshproof-{run}");
        let req = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            labels: Some(HashMap::from([(
                "meshproof.dev/run".to_string(),
                run.clone(),
            )])),
            ..Default::default()
        };
        docker.create_network(req).await.unwrap();
        let net = KindNetwork::from_inspect(&docker.inspect_network(&name, None).await.unwrap());
        // Checked while the network lives; the network is removed before any assertion.
        let point = net
            .as_ref()
            .ok()
            .map(|n| choose_point(&n.bridge, "worker", "image"));
        docker.remove_network(&name).await.unwrap();
        let net = net.unwrap();
        assert_eq!(net.bridge, format!("br-{}", &net.id[..12]));
        assert_eq!(
            point,
            Some(CapturePoint::HostBridge {
                interface: net.bridge.clone()
            })
        );
        assert!(
            !bridge_visible(&net.bridge),
            "the bridge should be gone with its network"
        );
        let bpf = bpf_filter(&[], net.ipv4);
        assert!(bpf.contains(&format!("net {}", net.ipv4)), "{bpf}");
    }
}
