//! Captures on the lab bridge, from the host, and the map from lab addresses to workload
//! names.
//!
//! Packets are taken on the bridge interface of the run's network: it carries exactly the
//! pod-to-pod, host-to-pod and gateway traffic (a pod talking to its own sidecar stays on
//! the pod's loopback, as in Kubernetes). Until the shared live-capture engine
//! (`harness/src/capture`, issue 3) is on main, the packets are taken by `tcpdump`, run
//! through `exec`, and the pcap is classified by the project's analyzer
//! ([`crate::wire::analyze_file`]); the lab's API does not change when it switches.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::LabError;
use super::docker::LabNetwork;
use super::pod::RunningPod;
use crate::exec::{Cmd, Exec, Running};
use crate::provider::{CaptureResult, Peer, PeerMap};
use crate::scenario::peers;
use crate::wire::{AnalyzerConfig, analyze_file};

/// The node name lab peers carry: there are no nodes, one bridge joins every pod.
pub const LAB_NODE: &str = "lab";
/// The capture filter.
pub const BPF: &str = "tcp";
/// Time given to packets still in flight when the capture is stopped.
const GRACE: Duration = Duration::from_millis(500);

/// A capture in progress.
#[derive(Debug)]
pub struct Capture {
    /// The pcap being written.
    pub pcap: PathBuf,
    canaries: Vec<String>,
    tcpdump: Running,
    exec: Exec,
}

/// Starts capturing on the lab bridge into `dir/<name>.pcap`; returns once packets are
/// being captured.
pub async fn start(
    exec: &Exec,
    network: &LabNetwork,
    dir: &Path,
    name: &str,
    canaries: &[String],
) -> Result<Capture, LabError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LabError::Capture(format!("{}: {e}", dir.display())))?;
    let pcap = dir.join(format!("{name}.pcap"));
    let cmd = Cmd::new("tcpdump")
        // Immediate mode: without it, packets wait in a kernel block for up to a second
        // and a capture stopped right after its probes loses the last of them.
        .args([
            "-i",
            &network.bridge,
            "--immediate-mode",
            "-U",
            "-s",
            "0",
            "-n",
            "-w",
        ])
        .arg(pcap.display().to_string())
        .arg(BPF);
    let tcpdump = exec.spawn(&cmd)?;
    // tcpdump writes the pcap header once the interface is open and capturing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0) < 24 {
        if Instant::now() > deadline {
            let out = tcpdump.wait(Duration::from_secs(2)).await;
            let why = out
                .map(|o| o.stderr_tail())
                .unwrap_or_else(|e| e.to_string());
            return Err(LabError::Capture(format!(
                "tcpdump on {} did not start: {why}",
                network.bridge
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Capture {
        pcap,
        canaries: canaries.to_vec(),
        tcpdump,
        exec: exec.clone(),
    })
}

/// Stops the capture and classifies every flow in it.
pub async fn stop(
    capture: Capture,
    peers: PeerMap,
    network: &LabNetwork,
) -> Result<CaptureResult, LabError> {
    tokio::time::sleep(GRACE).await;
    let pid = capture
        .tcpdump
        .id()
        .ok_or_else(|| LabError::Capture("tcpdump ended early".into()))?;
    capture
        .exec
        .run(&Cmd::new("kill").args(["-INT", &pid.to_string()]))
        .await?;
    let out = capture.tcpdump.wait(Duration::from_secs(10)).await?;
    if !matches!(out.status, Some(0) | None) {
        return Err(LabError::Capture(format!(
            "tcpdump failed: {}",
            out.stderr_tail()
        )));
    }
    let config = AnalyzerConfig {
        canaries: capture
            .canaries
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect(),
    };
    let analysis =
        analyze_file(&capture.pcap, &config).map_err(|e| LabError::Capture(e.to_string()))?;
    Ok(CaptureResult {
        pcap: capture.pcap,
        analysis,
        peers,
        point: network.bridge.clone(),
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
