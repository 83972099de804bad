//! A capture that really loses packets cannot pass an absence check.
//!
//! libpcap captures on a namespace lab's bridge with a tiny kernel buffer and a capture
//! thread that only wakes every half second, while a burst of UDP datagrams crosses the
//! bridge: the kernel drops most of them. The drops must reach the capture's summary and
//! turn the "canary absent, plaintext only" verdict about a real TCP flow captured in the
//! same window into an error that names them. Needs root; without it, says why and passes.

mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use meshproof::capture::{CaptureConfig, LiveCapture};
use meshproof::exec::Exec;
use meshproof::expect::judge_capture;
use meshproof::provider::{CaptureResult, Peer, PeerMap};
use meshproof::scenario::CaptureStep;
use meshproof::verdict::Verdict;
use meshproof::wire::AnalyzerConfig;
use support::netlab::NetLab;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

const STEP: &str = r#"
name: lossy
probes: []
expect:
  - name: nothing-in-clear
    flow: { from: client, to: server, port: 18080 }
    class: plaintext
    canary: absent
    probes: []
"#;

#[tokio::test]
async fn a_capture_that_dropped_packets_cannot_pass_an_absence_check() {
    let lab = match NetLab::create().await {
        Ok(lab) => lab,
        Err(reason) => {
            support::skip("a_capture_that_dropped_packets_cannot_pass", &reason);
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let capture = LiveCapture::start(CaptureConfig {
        interface: lab.bridge.clone(),
        bpf: "tcp or udp".into(),
        pcap_path: dir.path().join("lossy.pcap"),
        analyzer: AnalyzerConfig {
            canaries: vec![b"MESHPROOF-CANARY-drops".to_vec()],
            ..AnalyzerConfig::default()
        },
        // A ring of about a hundred small frames, read twice a second: enough for the
        // TCP flow's few packets, while the burst overflows it.
        snaplen: 2048,
        buffer_size: 256 * 1024,
        poll_interval: Duration::from_millis(500),
        ..CaptureConfig::default()
    })
    .expect("capture starts");

    // A real TCP flow in the window: the namespace sends a few clear bytes to the root.
    let listener = TcpListener::bind((lab.root_ip.as_str(), 18080))
        .await
        .unwrap();
    let accept = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    });
    let send = format!(
        "exec 3<>/dev/tcp/{}/18080; printf 'hello, nothing secret' >&3; exec 3>&-",
        lab.root_ip
    );
    Exec::new()
        .run(&NetLab::in_ns(&lab.ns_a, "bash", &["-c", &send]).timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(accept.await.unwrap(), b"hello, nothing secret");

    // The burst: 20 000 datagrams of 1200 bytes to the namespace, across the bridge.
    let udp = UdpSocket::bind((lab.root_ip.as_str(), 0)).await.unwrap();
    let payload = vec![0x5a; 1200];
    for _ in 0..20_000 {
        let _ = udp.send_to(&payload, (lab.ip_a.as_str(), 9)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let summary = tokio::task::spawn_blocking(move || capture.stop_with_summary())
        .await
        .unwrap()
        .expect("capture stops");
    assert!(
        summary.drops.kernel > 0,
        "no drops were forced: {:?}, {} packets captured",
        summary.drops,
        summary.analysis.packets
    );

    let mut peers = PeerMap::default();
    for (ip, workload) in [(&lab.ip_a, "client"), (&lab.root_ip, "server")] {
        let ip: IpAddr = ip.parse().unwrap();
        peers.peers.insert(
            ip,
            Peer {
                workload: workload.into(),
                instance: workload.into(),
                node: String::new(),
            },
        );
    }
    let mut result = CaptureResult {
        pcap: summary.pcap_path.clone(),
        analysis: summary.analysis.clone(),
        peers,
        point: lab.bridge.clone(),
        drops: Some(summary.drops.clone()),
    };
    let step: CaptureStep = serde_saphyr::from_str(STEP).unwrap();
    let judged = judge_capture(&step, &result, &BTreeMap::new());
    let verdict = &judged[0];
    assert_eq!(verdict.verdict, Verdict::Error, "{verdict:#?}");
    assert!(
        verdict.reason.contains("packet(s) dropped by the kernel"),
        "{}",
        verdict.reason
    );

    // The same flows without the drops pass: the error is the drops' doing.
    result.drops.as_mut().unwrap().kernel = 0;
    result.drops.as_mut().unwrap().interface = 0;
    let judged = judge_capture(&step, &result, &BTreeMap::new());
    assert_eq!(judged[0].verdict, Verdict::Pass, "{:#?}", judged[0]);
}
