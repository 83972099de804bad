//! Captures on an existing cluster: tcpdump in a privileged hostNetwork pod on every node
//! that runs a scenario workload, each stream fed to the capture engine through exec.
//!
//! A flow between two nodes is seen on both; the merged analysis keeps one copy of each
//! connection (the one that saw more bytes), so counts match a single vantage point.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CAPTURE_NAMESPACE, capture_pod};
use crate::capture::{StreamCapture, StreamConfig};
use crate::kube::ExecStream;
use crate::ledger::Item;
use crate::manifest::{self, Document};
use crate::provider::cluster::ClusterLab;
use crate::provider::{CaptureResult, ProviderError};
use crate::wire::{Analysis, AnalyzerConfig, Flow};

type Streamed = tokio::task::JoinHandle<Result<(Analysis, PathBuf), String>>;

/// tcpdump's standard error, read to the end (it says how many packets were dropped).
type Stderr = tokio::task::JoinHandle<String>;

/// The captures running on each involved node.
pub struct Running {
    streams: Vec<(String, ExecStream, Streamed, Stderr)>,
}

/// The most of tcpdump's standard error kept: its start banner and final statistics are
/// a few hundred bytes.
const STDERR_LIMIT: usize = 64 * 1024;

fn failed(message: String) -> ProviderError {
    ProviderError::Failed {
        operation: "capture".into(),
        message,
    }
}

/// The shell line each capture pod runs: tcpdump until a line arrives on stdin.
pub fn remote_command(bpf: &str) -> Vec<String> {
    let quoted = bpf.replace('\'', r"'\''");
    let line = format!(
        "tcpdump -i any -y LINUX_SLL --immediate-mode -U -s 0 -w - '{quoted}' & p=$!; read _; kill -INT $p; wait $p"
    );
    vec!["sh".into(), "-c".into(), line]
}

/// Merges per-node analyses: one entry per connection, the copy with more bytes.
pub fn merge(parts: Vec<Analysis>) -> Analysis {
    let mut best: HashMap<(SocketAddr, SocketAddr), Flow> = HashMap::new();
    let mut order = Vec::new();
    let mut total = Analysis::default();
    for part in parts {
        total.packets += part.packets;
        total.bytes += part.bytes;
        crate::wire::merge_links(&mut total.links, part.links);
        for flow in part.flows {
            let key = (flow.client, flow.server);
            let size = flow.client_bytes + flow.server_bytes;
            match best.get(&key) {
                Some(old) if old.client_bytes + old.server_bytes >= size => {}
                Some(_) => {
                    best.insert(key, flow);
                }
                None => {
                    order.push(key);
                    best.insert(key, flow);
                }
            }
        }
    }
    total.flows = order.into_iter().filter_map(|k| best.remove(&k)).collect();
    total
}

/// Deploys capture pods on the involved nodes and starts tcpdump in each.
pub async fn start(
    lab: &ClusterLab,
    image: &str,
    name: &str,
    canaries: &[String],
) -> Result<Running, ProviderError> {
    let inputs = lab
        .kube()
        .peer_inputs()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let nodes: BTreeSet<String> = inputs
        .pods
        .iter()
        .filter(|p| crate::kube::pod_workload(p, &lab.scenario().file.workloads).is_some())
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    if nodes.is_empty() {
        return Err(failed(
            "no scenario pod is scheduled yet, so no node to capture on".into(),
        ));
    }
    let mut docs = vec![namespace_doc(&lab.run_id())?];
    for node in &nodes {
        docs.push(doc(capture_pod(node, image, &lab.run_id()))?);
    }
    let keys = lab
        .kube()
        .apply(&docs)
        .await
        .map_err(|e| failed(e.to_string()))?;
    for key in keys {
        lab.ledger()
            .record(Item::KubeObject { key })
            .map_err(|e| failed(e.to_string()))?;
    }
    lab.kube()
        .pods_ready(
            CAPTURE_NAMESPACE,
            "app.kubernetes.io/name=meshproof-capture",
            nodes.len(),
            false,
            Duration::from_secs(180),
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
    let cidrs = lab.kube().pod_cidrs().await.unwrap_or_default();
    let bpf = if cidrs.is_empty() {
        "tcp".to_string()
    } else {
        format!(
            "tcp and ({})",
            cidrs
                .iter()
                .map(|c| format!("net {c}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    };
    let analyzer = AnalyzerConfig {
        canaries: canaries.iter().map(|c| c.as_bytes().to_vec()).collect(),
        ..AnalyzerConfig::default()
    };
    let dir = lab.artifacts().join(lab.scenario().name()).join("captures");
    crate::private_fs::create_dir(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let mut streams = Vec::new();
    for node in nodes {
        let pod = capture_pod(&node, image, &lab.run_id());
        let pod_name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let pcap = dir.join(format!("{name}-{node}.pcap"));
        lab.ledger()
            .record(Item::Capture { path: pcap.clone() })
            .map_err(|e| failed(e.to_string()))?;
        let mut proc = lab
            .kube()
            .exec_stream(
                CAPTURE_NAMESPACE,
                &pod_name,
                "tcpdump",
                &remote_command(&bpf),
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut sink = StreamCapture::create(StreamConfig {
            pcap_path: pcap.clone(),
            analyzer: analyzer.clone(),
        })
        .map_err(|e| failed(e.to_string()))?;
        let mut out = proc
            .stdout()
            .ok_or_else(|| failed("exec gave no stdout".into()))?;
        let mut err = proc
            .stderr()
            .ok_or_else(|| failed("exec gave no stderr".into()))?;
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if text.len() < STDERR_LIMIT {
                    text.extend_from_slice(&buf[..n]);
                }
            }
            String::from_utf8_lossy(&text).into_owned()
        });
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = out.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                sink.push(&buf[..n]).map_err(|e| e.to_string())?;
            }
            sink.finish().map_err(|e| e.to_string())
        });
        streams.push((node, proc, task, stderr));
    }
    Ok(Running { streams })
}

fn doc(value: serde_json::Value) -> Result<Document, ProviderError> {
    let text = serde_saphyr::to_string(&value).map_err(|e| failed(e.to_string()))?;
    let mut docs = manifest::parse_str(std::path::Path::new("<capture pod>"), &text)
        .map_err(|e| failed(e.to_string()))?;
    docs.pop()
        .ok_or_else(|| failed("empty capture manifest".into()))
}

/// The capture namespace; deleting it deletes every capture pod in it.
pub(super) fn namespace_doc(run: &str) -> Result<Document, ProviderError> {
    doc(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        // Capture pods are privileged and on the host network: a cluster that enforces the
        // baseline or restricted Pod Security level rejects them unless the namespace allows it.
        "metadata": {"name": CAPTURE_NAMESPACE, "labels": {
            "meshproof.dev/run": run,
            "istio-injection": "disabled",
            "pod-security.kubernetes.io/enforce": "privileged"
        }}
    }))
}

/// Stops every tcpdump, merges the analyses and names the peers.
pub async fn stop(lab: &ClusterLab, running: Running) -> Result<CaptureResult, ProviderError> {
    let mut parts = Vec::new();
    let mut pcaps = Vec::new();
    let mut points = Vec::new();
    let mut drops = Some(crate::capture::DropCounts::default());
    for (node, mut proc, task, stderr) in running.streams {
        if let Some(mut stdin) = proc.stdin() {
            let _ = stdin.write_all(b"stop\n").await;
        }
        let result = tokio::time::timeout(Duration::from_secs(30), task).await;
        let streamed = result
            .map_err(|_| failed(format!("tcpdump on {node} did not stop within 30 s")))?
            .map_err(|e| failed(e.to_string()))?;
        // A short stream's reason is in the exec status (the kubelet unreachable,
        // tcpdump missing), not in the stream.
        let (analysis, pcap) = match (streamed, proc.outcome(Duration::from_secs(5)).await) {
            (Ok(done), _) => done,
            (Err(e), Ok(())) => return Err(failed(format!("tcpdump on {node}: {e}"))),
            (Err(e), Err(why)) => return Err(failed(format!("tcpdump on {node}: {e}: {why}"))),
        };
        let stderr = tokio::time::timeout(Duration::from_secs(5), stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let counted =
            crate::capture::DropCounts::from_tcpdump_stderr(&stderr, &format!("tcpdump on {node}"));
        drops = match (drops, counted) {
            (Some(mut all), Some(one)) => {
                all.add(&one);
                Some(all)
            }
            _ => None,
        };
        parts.push(analysis);
        pcaps.push(pcap);
        points.push(node);
    }
    let mut inputs = lab
        .kube()
        .peer_inputs()
        .await
        .map_err(|e| failed(e.to_string()))?;
    inputs.gateway_ip = lab.gateway_ip();
    let peers = crate::kube::peer_map(&inputs, &lab.scenario().file.workloads);
    let pcap = pcaps.first().cloned().unwrap_or_default();
    Ok(CaptureResult {
        pcap,
        analysis: merge(parts),
        peers,
        point: format!("tcpdump capture pods on {}", points.join(", ")),
        drops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FlowClass;

    #[test]
    fn the_capture_namespace_is_labelled_for_its_run_and_admits_privileged_pods() {
        let ns = namespace_doc("mp-1").unwrap();
        let labels = ns.value.pointer("/metadata/labels").unwrap();
        assert_eq!(labels["meshproof.dev/run"], "mp-1");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
        assert_eq!(labels["istio-injection"], "disabled");
    }

    fn flow(client: &str, server: &str, bytes: u64) -> Flow {
        Flow {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            class: FlowClass::IstioMtls,
            protocol: None,
            sni: None,
            alpn: vec![],
            tls_version: None,
            canary_hits: 0,
            canary_scan: Default::default(),
            canary_encodings: Vec::new(),
            frames: Default::default(),
            client_bytes: bytes,
            server_bytes: 0,
            overlay: None,
        }
    }

    #[test]
    fn a_flow_seen_on_two_nodes_counts_once() {
        let a = Analysis {
            packets: 10,
            bytes: 1000,
            flows: vec![flow("10.0.1.5:40000", "10.0.2.7:3306", 500)],
            links: vec![],
        };
        let b = Analysis {
            packets: 12,
            bytes: 1100,
            flows: vec![
                flow("10.0.1.5:40000", "10.0.2.7:3306", 520),
                flow("10.0.2.7:50000", "10.0.1.9:80", 10),
            ],
            links: vec![],
        };
        let merged = merge(vec![a, b]);
        assert_eq!(merged.flows.len(), 2);
        assert_eq!(merged.flows[0].client_bytes, 520);
        assert_eq!(merged.packets, 22);
    }

    #[test]
    fn the_remote_command_stops_on_stdin_and_quotes_the_filter() {
        let cmd = remote_command("tcp and (net 10.0.0.0/8)");
        assert_eq!(cmd[..2], ["sh".to_string(), "-c".to_string()]);
        assert!(
            cmd[2].contains("-w - 'tcp and (net 10.0.0.0/8)'"),
            "{}",
            cmd[2]
        );
        assert!(cmd[2].contains("read _; kill -INT $p"), "{}", cmd[2]);
    }
}
