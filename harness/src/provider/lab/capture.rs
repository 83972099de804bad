//! Captures on the lab bridge, from the host, and the map from lab addresses to workload
//! names.
//!
//! Packets are taken on the bridge interface of the run's network: it carries exactly the
//! pod-to-pod, host-to-pod and gateway traffic (a pod talking to its own sidecar stays on
//! the pod's loopback, as in Kubernetes). They are taken with libpcap by the same engine
//! the kind path uses on the kind bridge ([`crate::capture::LiveCapture`]), written to a
//! pcap file and classified as they arrive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LabError;
use super::docker::LabNetwork;
use super::pod::RunningPod;
use crate::capture::{CaptureConfig, LiveCapture};
use crate::exec::Exec;
use crate::provider::{CaptureResult, Peer, PeerMap};
use crate::scenario::peers;
use crate::wire::AnalyzerConfig;

/// The node name lab peers carry: there are no nodes, one bridge joins every pod.
pub const LAB_NODE: &str = "lab";
/// The capture filter.
pub const BPF: &str = "tcp";
/// Time given to packets still in flight when the capture is stopped.
const GRACE: Duration = Duration::from_millis(500);

/// A capture in progress.
pub struct Capture {
    /// The pcap being written.
    pub pcap: PathBuf,
    live: LiveCapture,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("pcap", &self.pcap)
            .finish_non_exhaustive()
    }
}

/// Starts capturing on the lab bridge into `dir/<name>.pcap`; returns once libpcap has
/// the interface open and is taking packets.
pub async fn start(
    _exec: &Exec,
    network: &LabNetwork,
    dir: &Path,
    name: &str,
    canaries: &[String],
) -> Result<Capture, LabError> {
    crate::private_fs::create_dir(dir)
        .map_err(|e| LabError::Capture(format!("{}: {e}", dir.display())))?;
    let pcap = dir.join(format!("{name}.pcap"));
    let config = CaptureConfig {
        interface: network.bridge.clone(),
        bpf: BPF.to_string(),
        pcap_path: pcap.clone(),
        analyzer: AnalyzerConfig {
            canaries: canaries.iter().map(|c| c.as_bytes().to_vec()).collect(),
            ..AnalyzerConfig::default()
        },
        ..CaptureConfig::default()
    };
    let live = tokio::task::spawn_blocking(move || LiveCapture::start(config))
        .await
        .map_err(|e| LabError::Capture(e.to_string()))?
        .map_err(|e| LabError::Capture(e.to_string()))?;
    Ok(Capture { pcap, live })
}

/// Stops the capture and returns every flow, classified, with the lab's peer names.
pub async fn stop(
    capture: Capture,
    peers: PeerMap,
    network: &LabNetwork,
) -> Result<CaptureResult, LabError> {
    // Packets of the last probe may still be in flight between the pods.
    tokio::time::sleep(GRACE).await;
    let summary = tokio::task::spawn_blocking(move || capture.live.stop_with_summary())
        .await
        .map_err(|e| LabError::Capture(e.to_string()))?
        .map_err(|e| LabError::Capture(e.to_string()))?;
    Ok(CaptureResult {
        pcap: summary.pcap_path,
        analysis: summary.analysis,
        peers,
        point: network.bridge.clone(),
        drops: Some(summary.drops),
    })
}

/// Who is who on the lab network: pods by IP, the gateway, and the host (the bridge's
/// gateway address, where probes from `host` come from).
pub fn peer_map<'a>(network: &LabNetwork, pods: impl Iterator<Item = &'a RunningPod>) -> PeerMap {
    let mut map = PeerMap::default();
    for p in pods {
        map.peers.insert(
            p.ip,
            Peer {
                workload: p.workload.clone(),
                instance: p.name.clone(),
                node: LAB_NODE.into(),
            },
        );
    }
    if let Some(gw) = network.gateway {
        map.peers.insert(
            gw,
            Peer {
                workload: peers::HOST.into(),
                instance: "host".into(),
                node: "host".into(),
            },
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_pods_are_named() {
        let net = LabNetwork {
            id: "x".into(),
            name: "n".into(),
            bridge: "br-x".into(),
            gateway: Some("172.20.0.1".parse().unwrap()),
        };
        let pod = RunningPod {
            name: "mysql-server-0".into(),
            workload: "mysql-server".into(),
            app: "a".into(),
            sidecar: None,
            ip: "172.20.0.3".parse().unwrap(),
        };
        let map = peer_map(&net, [&pod].into_iter());
        assert_eq!(map.peers[&"172.20.0.1".parse().unwrap()].workload, "host");
        assert_eq!(
            map.peers[&"172.20.0.3".parse().unwrap()].instance,
            "mysql-server-0"
        );
    }
}
