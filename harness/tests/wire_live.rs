//! Captures made at test time with libpcap on a bridge between network namespaces, of
//! traffic from real tools: openssl and rustls TLS 1.2/1.3 handshakes, plaintext HTTP,
//! and a libpcap capture on `any` (Linux cooked headers) of the same traffic.
//!
//! These tests need root (namespaces, live capture); without it they print why and pass.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meshproof::capture::{CaptureConfig, LiveCapture};
use meshproof::exec::{Cmd, Exec};
use meshproof::wire::{Analysis, AnalyzerConfig, Flow, FlowClass, analyze_file};
use support::certs::Ca;
use support::netlab::NetLab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NAMES: [&str; 4] = [
    "api.meshproof.test",
    "legacy.meshproof.test",
    "rustls12.meshproof.test",
    "to-rustls.meshproof.test",
];

fn analyzer(canaries: &[&str]) -> AnalyzerConfig {
    AnalyzerConfig {
        canaries: canaries.iter().map(|c| c.as_bytes().to_vec()).collect(),
        ..AnalyzerConfig::default()
    }
}

/// A running capture on one interface, checked against its own file when stopped.
struct Running {
    capture: LiveCapture,
    config: AnalyzerConfig,
}

fn start(interface: &str, bpf: &str, path: PathBuf, config: &AnalyzerConfig) -> Running {
    let capture = LiveCapture::start(CaptureConfig {
        interface: interface.to_string(),
        bpf: bpf.to_string(),
        pcap_path: path,
        analyzer: config.clone(),
        ..CaptureConfig::default()
    })
    .expect("live capture starts");
    Running {
        capture,
        config: config.clone(),
    }
}

impl Running {
    /// Stops and checks that the live analysis equals a second reading of its pcap file.
    async fn stop(self) -> Analysis {
        // FINs and final ACKs are on the wire a moment after the programs return.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            self.capture.packets_seen() > 0,
            "the capture saw no packets"
        );
        let (live, path) = self.capture.stop().expect("capture stops");
        let from_file = analyze_file(&path, &self.config).expect("the written pcap reads back");
        assert_eq!(
            live, from_file,
            "live analysis differs from the file it wrote"
        );
        live
    }
}

fn flow_to<'a>(a: &'a Analysis, server: &str) -> &'a Flow {
    let matching: Vec<&Flow> = a
        .flows
        .iter()
        .filter(|f| f.server.to_string() == server)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one flow to {server} in {:#?}",
        a.flows
    );
    matching[0]
}

async fn lab_or_skip(test: &str) -> Option<NetLab> {
    match NetLab::create().await {
        Ok(lab) => Some(lab),
        Err(reason) => {
            support::skip(test, &reason);
            None
        }
    }
}

fn openssl_server(lab: &NetLab, dir: &std::path::Path, ca: &Ca, port: u16) -> Cmd {
    let leaf = ca.leaf("server", &NAMES, None);
    let _ = dir;
    NetLab::in_ns(
        &lab.ns_b,
        "openssl",
        &[
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            leaf.cert.to_str().unwrap(),
            "-key",
            leaf.key.to_str().unwrap(),
            "-www",
            "-naccept",
            "1",
        ],
    )
    .timeout(Duration::from_secs(30))
}

fn openssl_client(
    ns: Option<&str>,
    target: &str,
    sni: &str,
    alpn: &str,
    version: &str,
    request: &str,
) -> Cmd {
    let args = [
        "s_client",
        "-connect",
        target,
        "-servername",
        sni,
        "-alpn",
        alpn,
        version,
        "-ign_eof",
    ];
    match ns {
        Some(ns) => NetLab::in_ns(ns, "openssl", &args),
        None => Cmd::new("openssl").args(args),
    }
    .stdin(request.as_bytes().to_vec())
    .timeout(Duration::from_secs(30))
}

#[tokio::test]
async fn openssl_tls13_and_tls12_between_namespaces() {
    let Some(lab) = lab_or_skip("openssl_tls13_and_tls12_between_namespaces").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let config = analyzer(&["tls-hidden-canary"]);
    let cap = start(&lab.bridge, "tcp", dir.path().join("openssl.pcap"), &config);
    let exec = Exec::new();
    for (port, sni, alpn, version) in [
        (4433, NAMES[0], "h2,http/1.1", "-tls1_3"),
        (4434, NAMES[1], "http/1.1", "-tls1_2"),
    ] {
        let server = openssl_server(&lab, dir.path(), &ca, port);
        let serving = tokio::spawn({
            let exec = exec.clone();
            async move { exec.output(&server).await }
        });
        lab.wait_listening(&lab.ns_b, port).await.unwrap();
        let target = format!("{}:{port}", lab.ip_b);
        let request = "GET /tls-hidden-canary HTTP/1.0\r\n\r\n";
        exec.run(&openssl_client(None, &target, sni, alpn, version, request))
            .await
            .unwrap();
        serving.await.unwrap().unwrap();
    }
    let a = cap.stop().await;
    let v13 = flow_to(&a, &format!("{}:4433", lab.ip_b));
    assert_eq!(
        (v13.class, v13.sni.as_deref(), v13.tls_version.as_deref()),
        (FlowClass::Tls, Some(NAMES[0]), Some("TLS1.3"))
    );
    assert_eq!(v13.alpn, vec!["h2", "http/1.1"]);
    assert_eq!(v13.client.ip().to_string(), lab.root_ip);
    let v12 = flow_to(&a, &format!("{}:4434", lab.ip_b));
    assert_eq!(
        (v12.class, v12.sni.as_deref(), v12.tls_version.as_deref()),
        (FlowClass::Tls, Some(NAMES[1]), Some("TLS1.2"))
    );
    for f in [v13, v12] {
        assert_eq!(f.canary_hits, 0, "the canary travelled inside TLS records");
        assert!(f.client_bytes > 0 && f.server_bytes > 0);
    }
}

fn rustls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

async fn rustls_client(
    ca: &Ca,
    target: &str,
    sni: &str,
    alpn: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca_der()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(rustls_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(target).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /tls-hidden-canary HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::new();
    let _ = tls.read_to_end(&mut body).await;
    assert!(!body.is_empty(), "the TLS server answered nothing");
}

async fn rustls_server_once(cert_pem: String, key_pem: String, listener: TcpListener) {
    let certs = vec![rustls::pki_types::CertificateDer::from(pem_der(&cert_pem))];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pem_der(&key_pem).into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(rustls_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = acceptor.accept(tcp).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(n > 0);
    tls.write_all(b"HTTP/1.0 200 OK\r\n\r\ntls-hidden-canary\n")
        .await
        .unwrap();
    tls.shutdown().await.unwrap();
}

/// Decodes the first PEM block (test certificates are small and well-formed).
fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&b64)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(val).collect();
    bytes
        .chunks(4)
        .flat_map(|q| {
            let n = q
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, v)| acc | u32::from(*v) << (18 - 6 * i));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.into_iter().take(q.len().saturating_sub(1))
        })
        .collect()
}

#[tokio::test]
async fn rustls_client_and_server_against_openssl() {
    let Some(lab) = lab_or_skip("rustls_client_and_server_against_openssl").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let config = analyzer(&["tls-hidden-canary"]);
    let cap = start(&lab.bridge, "tcp", dir.path().join("rustls.pcap"), &config);
    let exec = Exec::new();
    // rustls clients (root namespace) to openssl servers in namespace b.
    let cases: [(
        u16,
        &str,
        &[&str],
        &[&'static rustls::SupportedProtocolVersion],
    ); 2] = [
        (4435, NAMES[2], &["http/1.1"], &[&rustls::version::TLS12]),
        (
            4436,
            "api.meshproof.test",
            &["istio-peer-exchange", "istio"],
            &[&rustls::version::TLS13],
        ),
    ];
    for (port, sni, alpn, versions) in cases {
        let server = openssl_server(&lab, dir.path(), &ca, port);
        let serving = tokio::spawn({
            let exec = exec.clone();
            async move { exec.output(&server).await }
        });
        lab.wait_listening(&lab.ns_b, port).await.unwrap();
        rustls_client(&ca, &format!("{}:{port}", lab.ip_b), sni, alpn, versions).await;
        serving.await.unwrap().unwrap();
    }
    // An openssl client in namespace a to a rustls server in the root namespace.
    let listener = TcpListener::bind((lab.root_ip.as_str(), 4437))
        .await
        .unwrap();
    let leaf = ca.leaf("rustls-server", &NAMES, None);
    let serving = tokio::spawn(rustls_server_once(leaf.cert_pem, leaf.key_pem, listener));
    let target = format!("{}:4437", lab.root_ip);
    exec.run(&openssl_client(
        Some(&lab.ns_a),
        &target,
        NAMES[3],
        "http/1.1",
        "-tls1_3",
        "GET / HTTP/1.0\r\n\r\n",
    ))
    .await
    .unwrap();
    serving.await.unwrap();
    let a = cap.stop().await;
    let v12 = flow_to(&a, &format!("{}:4435", lab.ip_b));
    assert_eq!(
        (v12.class, v12.sni.as_deref(), v12.tls_version.as_deref()),
        (FlowClass::Tls, Some(NAMES[2]), Some("TLS1.2"))
    );
    assert_eq!(v12.client.ip().to_string(), lab.root_ip);
    let istio = flow_to(&a, &format!("{}:4436", lab.ip_b));
    assert_eq!(
        (istio.class, istio.tls_version.as_deref()),
        (FlowClass::IstioMtls, Some("TLS1.3"))
    );
    assert_eq!(istio.alpn, vec!["istio-peer-exchange", "istio"]);
    let to_rustls = flow_to(&a, &target);
    assert_eq!(
        (to_rustls.class, to_rustls.sni.as_deref()),
        (FlowClass::Tls, Some(NAMES[3]))
    );
    assert_eq!(to_rustls.client.ip().to_string(), lab.ip_a);
    assert!(a.flows.iter().all(|f| f.canary_hits == 0));
}

fn http_response() -> Vec<u8> {
    let body = "saved alice.canary@example.com\n";
    format!(
        "HTTP/1.1 201 Created\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn http_server_once(listener: TcpListener) -> Vec<u8> {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") || !req.ends_with(b"@example.com") {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    s.write_all(&http_response()).await.unwrap();
    s.shutdown().await.unwrap();
    req
}

#[tokio::test]
async fn plaintext_http_on_the_bridge_and_on_any() {
    let Some(lab) = lab_or_skip("plaintext_http_on_the_bridge_and_on_any").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let canary = "alice.canary@example.com";
    let config = analyzer(&[canary]);
    let bpf = format!("tcp port 8080 and host {}", lab.ip_a);
    let bridge = start(&lab.bridge, &bpf, dir.path().join("bridge.pcap"), &config);
    // On `any` every packet is seen twice (on the veth and on the bridge): the analyzer
    // must treat the copies as retransmissions and reach the same verdict.
    let any = start("any", &bpf, dir.path().join("any.pcap"), &config);
    let listener = TcpListener::bind((lab.root_ip.as_str(), 8080))
        .await
        .unwrap();
    let serving = tokio::spawn(http_server_once(listener));
    let url = format!("http://{}:8080/users", lab.root_ip);
    let form = format!("email={canary}");
    Exec::new()
        .run(&NetLab::in_ns(
            &lab.ns_a,
            "curl",
            &["-sS", "--max-time", "10", "-d", &form, &url],
        ))
        .await
        .unwrap();
    let request = serving.await.unwrap();
    assert!(request.ends_with(canary.as_bytes()));
    for a in [bridge.stop().await, any.stop().await] {
        let f = flow_to(&a, &format!("{}:8080", lab.root_ip));
        assert_eq!(
            (f.class, f.protocol.as_deref()),
            (FlowClass::Plaintext, Some("http"))
        );
        assert_eq!(f.canary_hits, 2, "one canary each way");
        assert_eq!(f.client.ip().to_string(), lab.ip_a);
        assert_eq!(f.server_bytes as usize, http_response().len());
    }
}
