//! Running captures on kind, always on the kind network's bridge (every worker's
//! traffic): libpcap in this process, or the capture helper container on the host network
//! when this process may not capture (see `capture.rs`), both through `crate::capture`.
//!
//! A capture is live only once it has seen a packet: the lab sends a SYN from the host to
//! a worker (a closed port answers with a reset), which crosses the bridge inside the
//! filter, and waits up to five seconds for the engine to count it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;

use super::KindCluster;
use super::capture::{CapturePoint, bpf_filter, choose_point, pcap_path};
use crate::capture::helper::{HelperCapture, HelperConfig};
use crate::capture::{CaptureConfig, CaptureSummary, DropCounts, LiveCapture};
use crate::ledger::Item;
use crate::provider::cluster::ClusterLab;
use crate::provider::{CaptureResult, ProviderError};
use crate::wire::{Analysis, AnalyzerConfig};

/// A port nothing listens on in a kind node; a SYN to it is answered with a reset.
const LIVENESS_PORT: u16 = 9;

/// A capture in progress.
pub enum Running {
    /// libpcap on the bridge, in this process.
    Bridge { capture: LiveCapture, point: String },
    /// The capture helper container on the host network, on the bridge.
    Helper {
        capture: HelperCapture,
        point: String,
    },
}

fn failed(message: String) -> ProviderError {
    ProviderError::Failed {
        operation: "capture".into(),
        message,
    }
}

/// Starts a capture and returns once it has seen its own liveness packet.
pub async fn start(
    lab: &ClusterLab,
    kind: &KindCluster,
    name: &str,
    canaries: &[String],
) -> Result<Running, ProviderError> {
    let network = kind.network().map_err(|e| failed(e.to_string()))?.clone();
    let cidrs = lab
        .kube()
        .pod_cidrs()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let bpf = bpf_filter(&cidrs, network.ipv4);
    let pcap = pcap_path(lab.artifacts(), lab.scenario().name(), name);
    if let Some(dir) = pcap.parent() {
        crate::private_fs::create_dir(dir)
            .map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    }
    lab.ledger()
        .record(Item::Capture { path: pcap.clone() })
        .map_err(|e| failed(e.to_string()))?;
    let analyzer = analyzer_config(canaries);
    let worker = worker_node(lab).await?;
    let refused = crate::tools::host::capture_rights().map(|f| f.problem);
    let point = choose_point(
        &network.bridge,
        refused.as_deref(),
        &crate::image::workload_reference(),
    );
    let running = match point {
        CapturePoint::HostBridge { interface } => {
            start_bridge(&interface, &bpf, pcap, analyzer).await?
        }
        CapturePoint::HelperContainer { interface, image } => {
            let name = format!(
                "meshproof-{}-capture-{}",
                lab.run_id(),
                pcap.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("capture")
            );
            start_helper(
                &kind.docker,
                &lab.run_id(),
                name,
                &image,
                &interface,
                &bpf,
                pcap,
                analyzer,
            )
            .await?
        }
    };
    ensure_live(&running, worker.1).await?;
    Ok(running)
}

/// The analyzer settings for a run's canaries.
pub fn analyzer_config(canaries: &[String]) -> AnalyzerConfig {
    AnalyzerConfig {
        canaries: canaries.iter().map(|c| c.as_bytes().to_vec()).collect(),
        ..AnalyzerConfig::default()
    }
}

/// Starts libpcap on a host bridge.
pub async fn start_bridge(
    interface: &str,
    bpf: &str,
    pcap: PathBuf,
    analyzer: AnalyzerConfig,
) -> Result<Running, ProviderError> {
    let config = CaptureConfig {
        interface: interface.to_string(),
        bpf: bpf.to_string(),
        pcap_path: pcap,
        analyzer,
        ..CaptureConfig::default()
    };
    let capture = tokio::task::spawn_blocking(move || LiveCapture::start(config))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
    Ok(Running::Bridge {
        capture,
        point: interface.to_string(),
    })
}

/// The first worker's container name and node IP.
async fn worker_node(lab: &ClusterLab) -> Result<(String, IpAddr), ProviderError> {
    let inputs = lab
        .kube()
        .peer_inputs()
        .await
        .map_err(|e| failed(e.to_string()))?;
    inputs
        .nodes
        .iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(super::SLOT_LABEL))
        })
        .find_map(|n| {
            let ip = n
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .parse()
                .ok()?;
            Some((n.metadata.name.clone()?, ip))
        })
        .ok_or_else(|| failed("no worker node with an InternalIP".into()))
}

fn seen(running: &Running) -> u64 {
    match running {
        Running::Bridge { capture, .. } => capture.packets_seen(),
        Running::Helper { capture, .. } => capture.packets_seen(),
    }
}

/// Returns once the capture has counted a packet: SYNs to a closed port of `node` (answered
/// with resets) cross the capture point inside the filter.
pub async fn ensure_live(running: &Running, node: IpAddr) -> Result<(), ProviderError> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let target = SocketAddr::new(node, LIVENESS_PORT);
        let _ = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(target),
        )
        .await;
        if seen(running) > 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(failed("the capture saw no packet within 5 s of starting, not even its own liveness SYN; it would prove nothing".into()))
}

/// Starts the capture helper container on the host network (the image is built and
/// present: provisioning built it before the cluster).
#[allow(clippy::too_many_arguments)] // One helper, described field by field.
pub async fn start_helper(
    docker: &Docker,
    run: &str,
    name: String,
    image: &str,
    interface: &str,
    bpf: &str,
    pcap: PathBuf,
    analyzer: AnalyzerConfig,
) -> Result<Running, ProviderError> {
    let config = HelperConfig {
        image: image.to_string(),
        program: crate::image::WORKLOAD_PATH.to_string(),
        name,
        labels: HashMap::from([(super::RUN_LABEL.to_string(), run.to_string())]),
        interface: interface.to_string(),
        bpf: bpf.to_string(),
        pcap_path: pcap,
        analyzer,
    };
    let capture = HelperCapture::start(docker, config)
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(Running::Helper {
        point: format!(
            "{interface} (from the capture helper container {})",
            capture.name()
        ),
        capture,
    })
}

/// The analysis of a finished capture and the packets it lost. Lost packets do not
/// refuse the capture: they travel in [`CaptureResult::drops`] to the judge, which turns
/// every verdict that rests on absence (no canary, only protected classes, no flow) into
/// an error, while what was seen still stands.
fn complete(summary: CaptureSummary) -> (Analysis, PathBuf, DropCounts) {
    (summary.analysis, summary.pcap_path, summary.drops)
}

/// Stops the capture, analyses it and names every peer.
pub async fn stop(
    lab: &ClusterLab,
    kind: &KindCluster,
    running: Running,
) -> Result<CaptureResult, ProviderError> {
    let nudge = worker_node(lab).await.ok().map(|(_, ip)| ip);
    let (analysis, pcap, point, drops) = finish(running, nudge).await?;
    let mut inputs = lab
        .kube()
        .peer_inputs()
        .await
        .map_err(|e| failed(e.to_string()))?;
    inputs.gateway_ip = lab.gateway_ip();
    inputs.host_ip = kind.network().ok().and_then(|n| n.gateway).map(IpAddr::V4);
    let peers = crate::kube::peer_map(&inputs, &lab.scenario().file.workloads);
    Ok(CaptureResult {
        pcap,
        analysis,
        peers,
        point,
        drops,
    })
}

/// What a stopped capture gives: the analysis, its file, the capture point and the drops
/// (libpcap's counts, in this process or in the helper; `None` when nothing could say).
pub type Finished = (Analysis, PathBuf, String, Option<DropCounts>);

/// Stops a capture and returns its analysis, file, capture point and drops.
///
/// libpcap in immediate mode may wait for the next packet before it notices the stop
/// request, and the filter keeps control-plane chatter out, so a quiet bridge could hold
/// the capture open forever: while stopping, a SYN to `nudge` every 200 ms gives it a
/// packet to wake on (visible in the capture as a host -> node flow to port 9).
pub async fn finish(running: Running, nudge: Option<IpAddr>) -> Result<Finished, ProviderError> {
    Ok(match running {
        Running::Bridge { capture, point } => {
            let mut stopping = tokio::task::spawn_blocking(move || capture.stop_with_summary());
            let deadline = Instant::now() + Duration::from_secs(60);
            let summary = loop {
                tokio::select! {
                    done = &mut stopping => break done.map_err(|e| failed(e.to_string()))?.map_err(|e| failed(e.to_string()))?,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if Instant::now() > deadline {
                            return Err(failed(format!("the capture on {point} did not stop within 60 s")));
                        }
                        if let Some(ip) = nudge {
                            let target = SocketAddr::new(ip, LIVENESS_PORT);
                            let _ = tokio::time::timeout(Duration::from_millis(150), tokio::net::TcpStream::connect(target)).await;
                        }
                    }
                }
            };
            let (analysis, pcap, drops) = complete(summary);
            (analysis, pcap, point, Some(drops))
        }
        // Bounded inside: SIGTERM, at most 30 s for the stream to end, at most 15 s to
        // remove the container.
        Running::Helper { capture, point } => {
            let summary = capture.stop().await.map_err(|e| failed(e.to_string()))?;
            let (analysis, pcap, drops) = complete(summary);
            (analysis, pcap, point, Some(drops))
        }
    })
}

#[cfg(test)]
mod docker_tests {
    //! The bridge capture for real: a Docker network and a container made by the test,
    //! whose traffic to the host crosses the bridge and is captured by the same code the
    //! kind lab runs.
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::provider::kind::KindNetwork;
    use crate::provider::kind::capture::bpf_filter;
    use crate::testsupport::{TinyImage, docker, suffix};
    use crate::wire::FlowClass;

    #[tokio::test]
    #[allow(clippy::print_stderr)] // A skipped test says why.
    async fn bridge_capture_sees_a_containers_canary_in_clear() {
        let Some(docker) = docker().await else {
            eprintln!("skipped: no Docker daemon");
            return;
        };
        if crate::tools::host::capture_rights().is_some() {
            eprintln!("skipped: this process may not capture (needs root or CAP_NET_RAW)");
            return;
        }
        let run = format!("mp-captest-{}", suffix());
        let canary = format!("MESHPROOF-CANARY-{}", suffix());
        // bash's /dev/tcp is the client: no other tool is needed in the image.
        let image = TinyImage::build_with(&run, &["/usr/bin/sleep", "/bin/bash"]).await;
        let net_name = format!("meshproof-{run}");
        let req = bollard::models::NetworkCreateRequest {
            name: net_name.clone(),
            labels: Some(HashMap::from([(
                "meshproof.dev/run".to_string(),
                run.clone(),
            )])),
            ..Default::default()
        };
        docker.create_network(req).await.unwrap();
        let outcome = exercise(&docker, &image, &run, &net_name, &canary).await;
        let cleanup = crate::gc::sweep(
            &docker,
            &crate::exec::Exec::new(),
            &crate::gc::GcFilter {
                run: Some(run.clone()),
                kind: None,
                liveness: crate::gc::Liveness {
                    named: true,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
        image.remove(&docker).await;
        let (analysis, pcap, net, client) = outcome.unwrap();
        assert!(cleanup.unwrap().failures.is_empty());

        assert!(
            std::fs::metadata(&pcap).unwrap().len() > 24,
            "pcap {} is empty",
            pcap.display()
        );
        let gateway = net.gateway.unwrap();
        let flow = analysis
            .flows
            .iter()
            .find(|f| f.client.ip() == client && f.server.ip() == IpAddr::V4(gateway))
            .unwrap_or_else(|| panic!("no flow {client} -> {gateway} in {:?}", analysis.flows));
        assert_eq!(flow.class, FlowClass::Plaintext);
        assert!(flow.canary_hits >= 1, "{flow:?}");
        assert!(flow.client_bytes >= canary.len() as u64, "{flow:?}");
    }

    /// Starts the capture, makes the container send the canary to the host, stops.
    async fn exercise(
        docker: &Docker,
        image: &TinyImage,
        run: &str,
        net_name: &str,
        canary: &str,
    ) -> Result<(Analysis, PathBuf, KindNetwork, IpAddr), String> {
        let net = KindNetwork::from_inspect(
            &docker
                .inspect_network(net_name, None)
                .await
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let gateway = net.gateway.ok_or("the test network has no gateway")?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        // A long-lived container gives the liveness SYNs a target on the bridge.
        let idle = image
            .run_container(
                docker,
                &format!("meshproof-{run}-idle"),
                &[("meshproof.dev/run", run)],
                Some(net_name),
            )
            .await;
        let idle_ip = container_ip(docker, &idle, net_name).await?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let pcap = dir.keep().join("bridge.pcap");
        let running = start_bridge(
            &net.bridge,
            &bpf_filter(&[], net.ipv4),
            pcap,
            analyzer_config(&[canary.to_string()]),
        )
        .await
        .map_err(|e| e.to_string())?;
        ensure_live(&running, idle_ip)
            .await
            .map_err(|e| e.to_string())?;
        let script = format!(
            "exec 3<>/dev/tcp/{gateway}/{port}; printf 'POST / HTTP/1.1\\r\\n\\r\\nname={canary}' >&3; sleep 1"
        );
        let client_id = image
            .run_command(
                docker,
                &format!("meshproof-{run}-client"),
                &[("meshproof.dev/run", run)],
                Some(net_name),
                Some(vec!["/bin/bash".into(), "-c".into(), script]),
            )
            .await;
        let client = container_ip(docker, &client_id, net_name).await?;
        let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .map_err(|_| "the container never connected")?;
        let (mut sock, _) = accepted.map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut got)).await;
        drop(sock);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (analysis, pcap, _, _) = finish(running, Some(idle_ip))
            .await
            .map_err(|e| e.to_string())?;
        if !String::from_utf8_lossy(&got).contains(canary) {
            return Err(format!(
                "the host received {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
        Ok((analysis, pcap, net, client))
    }

    async fn container_ip(docker: &Docker, id: &str, net: &str) -> Result<IpAddr, String> {
        let inspect = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| e.to_string())?;
        let ip = inspect
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|n| n.get(net).and_then(|e| e.ip_address.clone()))
            .ok_or("container has no address")?;
        ip.parse().map_err(|e| format!("{ip}: {e}"))
    }
}
