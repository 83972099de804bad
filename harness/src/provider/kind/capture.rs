//! Where and how node-to-node packets are taken on kind.
//!
//! kindnet routes pod traffic between nodes without encapsulation, so every cross-node
//! pod packet crosses the kind network's host bridge with real pod addresses. The capture
//! point is always that bridge, so every worker's traffic is seen: with libpcap in this
//! process when it may capture (root or `CAP_NET_RAW`) and sees the bridge, otherwise from
//! the capture helper container on the Docker host's network (`meshproof-workload
//! capture` from the project's own image, built locally), which needs no root here and
//! also reaches the bridge where it lives in a VM (Docker Desktop).

use std::path::{Path, PathBuf};

use super::network::Ipv4Net;

/// Control-plane ports whose chatter would drown the scenario's flows: the API server,
/// kubelet and etcd. Pods reaching the API through its Service VIP arrive DNAT'd to 6443.
const CONTROL_PLANE_PORTS: [u16; 4] = [6443, 10250, 2379, 2380];

/// Where packets are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapturePoint {
    /// libpcap in this process on the host interface of the kind network.
    HostBridge {
        /// `br-<id[..12]>` or the network's explicit bridge name.
        interface: String,
    },
    /// The capture helper container on the Docker host's network, on the same bridge.
    HelperContainer {
        /// The bridge interface.
        interface: String,
        /// The project image holding `meshproof-workload`.
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

/// Picks the capture point: libpcap here when this process may capture and sees the
/// bridge, else the helper container (`capture_refused` is why this process may not).
pub fn choose_point(
    interface: &str,
    capture_refused: Option<&str>,
    helper_image: &str,
) -> CapturePoint {
    if capture_refused.is_none() && bridge_visible(interface) {
        CapturePoint::HostBridge {
            interface: interface.to_string(),
        }
    } else {
        CapturePoint::HelperContainer {
            interface: interface.to_string(),
            image: helper_image.to_string(),
        }
    }
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
    fn without_rights_or_a_visible_bridge_the_helper_captures_on_the_bridge() {
        let image = crate::image::workload_reference();
        let helper = |interface: &str| CapturePoint::HelperContainer {
            interface: interface.to_string(),
            image: image.clone(),
        };
        // Docker Desktop: the bridge lives in the VM, which the helper's host network is.
        assert_eq!(
            choose_point("br-doesnotexist", None, &image),
            helper("br-doesnotexist")
        );
        // A user without CAP_NET_RAW: same bridge, from the helper.
        assert_eq!(choose_point("lo", Some("not root"), &image), helper("lo"));
        assert_eq!(
            choose_point("lo", None, &image),
            CapturePoint::HostBridge {
                interface: "lo".into()
            }
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
            .map(|n| choose_point(&n.bridge, None, "image"));
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
