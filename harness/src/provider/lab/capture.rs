//! Captures on the lab bridge, from the host, with the project's capture engine
//! (`harness/src/capture`, shared with the kind path), and the map from lab addresses to
//! workload names.

use std::path::{Path, PathBuf};

use super::LabError;
use super::docker::LabNetwork;
use super::pod::RunningPod;
use crate::provider::{CaptureResult, Peer, PeerMap};
use crate::scenario::peers;

/// The node name lab peers carry: there are no nodes, one bridge joins every pod.
pub const LAB_NODE: &str = "lab";

/// A capture in progress.
#[derive(Debug)]
pub struct Capture {
    /// The pcap being written.
    pub pcap: PathBuf,
}

/// The BPF filter: TCP on the lab bridge, which carries exactly the pod-to-pod, host-to-pod
/// and gateway traffic (a pod talking to its own sidecar stays on the pod's loopback).
pub const BPF: &str = "tcp";

/// Starts capturing on the lab bridge into `dir/<name>.pcap`.
pub fn start(network: &LabNetwork, dir: &Path, name: &str, _canaries: &[String]) -> Result<Capture, LabError> {
    std::fs::create_dir_all(dir).map_err(|e| LabError::Capture(format!("{}: {e}", dir.display())))?;
    let pcap = dir.join(format!("{name}.pcap"));
    Err(LabError::Capture(format!(
        "cannot capture {} on {} into {}: the live capture engine (harness/src/capture, issue 3) is not on main yet",
        BPF,
        network.bridge,
        pcap.display()
    )))
}

/// Stops the capture and analyses it.
pub fn stop(capture: Capture, peers: PeerMap, network: &LabNetwork) -> Result<CaptureResult, LabError> {
    let _ = (peers, network);
    Err(LabError::Capture(format!("no analysis for {}: the capture engine is not on main yet", capture.pcap.display())))
}

/// Who is who on the lab network: pods by IP, the gateway, and the host (the bridge's
/// gateway address, where probes from `host` come from).
pub fn peer_map<'a>(network: &LabNetwork, pods: impl Iterator<Item = &'a RunningPod>) -> PeerMap {
    let mut map = PeerMap::default();
    for p in pods {
        map.peers.insert(p.ip, Peer { workload: p.workload.clone(), instance: p.name.clone(), node: LAB_NODE.into() });
    }
    if let Some(gw) = network.gateway {
        map.peers.insert(gw, Peer { workload: peers::HOST.into(), instance: "host".into(), node: "host".into() });
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_pods_are_named() {
        let net = LabNetwork { id: "x".into(), name: "n".into(), bridge: "br-x".into(), gateway: Some("172.20.0.1".parse().unwrap()) };
        let pod = RunningPod {
            name: "mysql-server-0".into(),
            workload: "mysql-server".into(),
            app: "a".into(),
            sidecar: None,
            ip: "172.20.0.3".parse().unwrap(),
        };
        let map = peer_map(&net, [&pod].into_iter());
        assert_eq!(map.peers[&"172.20.0.1".parse().unwrap()].workload, "host");
        assert_eq!(map.peers[&"172.20.0.3".parse().unwrap()].instance, "mysql-server-0");
    }
}
