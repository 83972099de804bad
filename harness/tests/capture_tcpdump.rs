//! The capture commands that stream pcap on stdout, tried for real: the existing
//! provider's tcpdump line and the kind capture helper's `meshproof-workload capture`, each
//! in a network namespace, stopped by SIGINT right after the traffic; the stream must
//! still hold the whole connection.
//!
//! Without `--immediate-mode`, libpcap's TPACKET_V3 ring hands packets over a block at a
//! time and a tcpdump stopped by a signal drops the block it has not been given: a short
//! capture comes back empty ("2 packets received by filter, 0 captured"). These tests
//! fail if that flag is ever lost. They need root (namespaces); without it they say why
//! and return.

mod support;

use std::time::Duration;

use meshproof::capture::{StreamCapture, StreamConfig};
use meshproof::exec::{Cmd, Exec};
use meshproof::provider::existing::remote_command;
use meshproof::wire::{AnalyzerConfig, FlowClass};
use support::netlab::NetLab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CANARY: &str = "MESHPROOF-CANARY-tcpdump-00000001";

/// Serves one HTTP request and answers it with the canary in the body.
async fn serve_once(listener: TcpListener) {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 2048];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let body = format!("order for {CANARY}\n");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    s.shutdown().await.unwrap();
}

/// Runs `argv` (a capture command writing pcap to stdout) in the lab's first namespace,
/// makes one HTTP request from there to the root namespace, stops every process in the
/// namespace with SIGINT at once, and analyses what the command wrote.
async fn capture_one_request(lab: &NetLab, argv: &[String]) -> meshproof::wire::Analysis {
    let exec = Exec::new();
    let cmd = Cmd::new("ip")
        .args(["netns", "exec", &lab.ns_a])
        .args(argv.iter().cloned());
    let running = exec.spawn(&cmd).unwrap();
    // tcpdump attaches its filter within a few milliseconds; give it ample time.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let listener = TcpListener::bind((lab.root_ip.as_str(), 8081))
        .await
        .unwrap();
    let serving = tokio::spawn(serve_once(listener));
    let url = format!("http://{}:8081/orders", lab.root_ip);
    let curl = NetLab::in_ns(&lab.ns_a, "curl", &["-sS", "--max-time", "10", "-H"])
        .arg(format!("X-Canary: {CANARY}"))
        .arg(url);
    exec.run(&curl).await.unwrap();
    serving.await.unwrap();

    let pids = exec
        .run(&Cmd::new("ip").args(["netns", "pids", &lab.ns_a]))
        .await
        .unwrap()
        .stdout_text();
    for pid in pids.split_whitespace() {
        let _ = exec.output(&Cmd::new("kill").args(["-INT", pid])).await;
    }
    let out = running.wait(Duration::from_secs(20)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sink = StreamCapture::create(StreamConfig {
        pcap_path: dir.path().join("stream.pcap"),
        analyzer: AnalyzerConfig {
            canaries: vec![CANARY.as_bytes().to_vec()],
            ..AnalyzerConfig::default()
        },
    })
    .unwrap();
    sink.push(&out.stdout).unwrap();
    let (analysis, _) = sink.finish().unwrap();
    assert!(
        out.stderr_text().contains("captured")
            || out
                .stderr_text()
                .contains("meshproof-workload capture: report "),
        "the capture did not report: {}",
        out.stderr_text()
    );
    analysis
}

fn assert_whole_request(analysis: &meshproof::wire::Analysis, lab: &NetLab) {
    let server = format!("{}:8081", lab.root_ip);
    let flow = analysis
        .flows
        .iter()
        .find(|f| f.server.to_string() == server)
        .unwrap_or_else(|| panic!("no flow to {server} in {analysis:#?}"));
    assert_eq!(flow.class, FlowClass::Plaintext);
    assert_eq!(flow.protocol.as_deref(), Some("http"));
    assert_eq!(
        flow.client.ip().to_string(),
        lab.ip_a,
        "the SYN was captured"
    );
    assert_eq!(flow.canary_hits, 2, "request header and response body");
}

#[tokio::test]
async fn the_kind_capture_helper_keeps_the_last_packets() {
    let lab = match NetLab::create().await {
        Ok(lab) => lab,
        Err(reason) => {
            return support::skip("the_kind_capture_helper_keeps_the_last_packets", &reason);
        }
    };
    let argv = [
        env!("CARGO_BIN_EXE_meshproof-workload"),
        "capture",
        "--interface",
        "eth0",
        "--filter",
        "tcp port 8081",
    ]
    .map(str::to_string);
    let analysis = capture_one_request(&lab, &argv).await;
    assert_whole_request(&analysis, &lab);
}

#[tokio::test]
async fn the_existing_capture_pod_command_keeps_the_last_packets() {
    let lab = match NetLab::create().await {
        Ok(lab) => lab,
        Err(reason) => {
            return support::skip(
                "the_existing_capture_pod_command_keeps_the_last_packets",
                &reason,
            );
        }
    };
    // The pod's shell line waits for a line on stdin before it stops tcpdump; here stdin
    // is closed, so run the tcpdump part of it alone, as the pod's shell would.
    let line = remote_command("tcp port 8081")[2].clone();
    let tcpdump = line.split(" & ").next().unwrap().to_string();
    let argv = [
        "sh".to_string(),
        "-c".to_string(),
        format!("exec {tcpdump}"),
    ];
    let analysis = capture_one_request(&lab, &argv).await;
    assert_whole_request(&analysis, &lab);
}
