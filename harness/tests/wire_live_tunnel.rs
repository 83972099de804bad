//! A live capture of a real kernel VXLAN tunnel: the root namespace and a lab namespace
//! are the two "nodes", each with a VXLAN device over the namespace bridge, and an HTTP
//! request between their "pod" addresses crosses the bridge only encapsulated. libpcap
//! on the bridge must see the inner flow, on a port the analyzer was told about, with
//! the tunnel's VNI and node addresses; without that port it must see no flow at all.
//!
//! Needs root (namespaces, live capture); without it the test prints why and passes.

mod support;

use std::time::Duration;

use meshproof::capture::{CaptureConfig, LiveCapture};
use meshproof::exec::{Cmd, Exec};
use meshproof::wire::{AnalyzerConfig, FlowClass, TunnelConfig, TunnelKind, analyze_file};
use rand::Rng;
use support::netlab::NetLab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CANARY: &str = "tunnelled.canary@example.com";

fn ip(args: &[&str]) -> Cmd {
    Cmd::new("ip")
        .args(args.iter().copied())
        .timeout(Duration::from_secs(10))
}

/// The root namespace's VXLAN device, deleted on drop (the lab namespace's goes with it).
struct RootVxlan {
    name: String,
}

impl Drop for RootVxlan {
    fn drop(&mut self) {
        let cmd = ip(&["link", "delete", &self.name]);
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async { Exec::new().output(&cmd).await })
                    .map(|_| ())
                    .ok();
            }
        })
        .join();
    }
}

/// A VXLAN device with `vni` on `port` between `local` and `remote`, in the root
/// namespace or in `ns`, with the "pod" address `inner`.
fn vxlan(
    ns: Option<&str>,
    name: &str,
    vni: u32,
    port: u16,
    ends: (&str, &str),
    dev: &str,
    inner: &str,
) -> Vec<Cmd> {
    let vni = vni.to_string();
    let port = port.to_string();
    let add = [
        "link", "add", name, "type", "vxlan", "id", &vni, "dstport", &port, "local", ends.0,
        "remote", ends.1, "dev", dev,
    ];
    let addr = ["addr", "add", inner, "dev", name];
    let up = ["link", "set", name, "up"];
    [&add[..], &addr[..], &up[..]]
        .into_iter()
        .map(|a| match ns {
            Some(ns) => ip(&[&["-n", ns][..], a].concat()),
            None => ip(a),
        })
        .collect()
}

#[tokio::test]
async fn http_inside_a_kernel_vxlan_tunnel() {
    let lab = match NetLab::create().await {
        Ok(lab) => lab,
        Err(reason) => return support::skip("http_inside_a_kernel_vxlan_tunnel", &reason),
    };
    let exec = Exec::new();
    let mut rng = rand::rng();
    let (vni, port, net) = (
        rng.random_range(1..0xff_ffffu32),
        rng.random_range(20000..30000u16),
        rng.random_range(1..250u8),
    );
    let (root_pod, ns_pod) = (format!("172.31.{net}.1"), format!("172.31.{net}.2"));
    let root_dev = format!("mpx{}", lab.id);
    let guard = RootVxlan {
        name: root_dev.clone(),
    };
    let mut cmds = vxlan(
        None,
        &root_dev,
        vni,
        port,
        (&lab.root_ip, &lab.ip_a),
        &lab.bridge,
        &format!("{root_pod}/24"),
    );
    cmds.extend(vxlan(
        Some(&lab.ns_a),
        "vx0",
        vni,
        port,
        (&lab.ip_a, &lab.root_ip),
        "eth0",
        &format!("{ns_pod}/24"),
    ));
    for cmd in &cmds {
        if let Err(e) = exec.run(cmd).await {
            return support::skip(
                "http_inside_a_kernel_vxlan_tunnel",
                &format!("no VXLAN here: {e}"),
            );
        }
    }
    let config = AnalyzerConfig {
        canaries: vec![CANARY.as_bytes().to_vec()],
        tunnels: TunnelConfig {
            vxlan_ports: vec![port],
            ..TunnelConfig::default()
        },
        ..AnalyzerConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let capture = LiveCapture::start(CaptureConfig {
        interface: lab.bridge.clone(),
        bpf: format!("udp port {port}"),
        pcap_path: dir.path().join("vxlan.pcap"),
        analyzer: config.clone(),
        ..CaptureConfig::default()
    })
    .expect("live capture starts");
    let listener = TcpListener::bind((root_pod.as_str(), 8080)).await.unwrap();
    let serving = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.ends_with(CANARY.as_bytes()) {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    });
    let url = format!("http://{root_pod}:8080/users");
    let form = format!("email={CANARY}");
    exec.run(&NetLab::in_ns(
        &lab.ns_a,
        "curl",
        &["-sS", "--max-time", "10", "-d", &form, &url],
    ))
    .await
    .unwrap();
    serving.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (live, path) = capture.stop().expect("capture stops");
    assert_eq!(
        live,
        analyze_file(&path, &config).unwrap(),
        "live and file differ"
    );
    assert_eq!(live.flows.len(), 1, "{:#?}", live.flows);
    let f = &live.flows[0];
    assert_eq!(f.client.ip().to_string(), ns_pod);
    assert_eq!(f.server.to_string(), format!("{root_pod}:8080"));
    assert_eq!(
        (f.class, f.protocol.as_deref()),
        (FlowClass::Plaintext, Some("http"))
    );
    assert_eq!(f.canary_hits, 1);
    let overlay = f.overlay.as_ref().expect("the flow was tunnelled");
    assert_eq!(
        (overlay.kind, overlay.vni, overlay.depth),
        (TunnelKind::Vxlan, Some(vni), 1)
    );
    let outer: Vec<String> = overlay.outer.iter().map(|a| a.to_string()).collect();
    assert_eq!(outer, [lab.ip_a.clone(), lab.root_ip.clone()]);
    // Without being told the port, the analyzer sees UDP and no flow: the port matters.
    let blind = analyze_file(&path, &AnalyzerConfig::default()).unwrap();
    assert!(blind.flows.is_empty(), "{:#?}", blind.flows);
    drop(guard);
}
