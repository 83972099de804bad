//! Unit tests for flow tracking and classification, on frames built in memory.

use super::*;
use crate::wire::tls::tests::{client_hello, records};

/// Builds Ethernet/IPv4/TCP frames for one connection.
pub(crate) struct Conn {
    pub client: ([u8; 4], u16),
    pub server: ([u8; 4], u16),
    pub cseq: u32,
    pub sseq: u32,
}

impl Conn {
    pub(crate) fn new(client_port: u16, server_port: u16) -> Conn {
        Conn { client: ([10, 244, 1, 5], client_port), server: ([10, 244, 2, 7], server_port), cseq: 1000, sseq: 9000 }
    }

    pub(crate) fn frame(&self, from_client: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst) = if from_client { (self.client, self.server) } else { (self.server, self.client) };
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.1.to_be_bytes());
        f.extend_from_slice(&dst.1.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// The three-way handshake.
    pub(crate) fn open(&mut self) -> Vec<Vec<u8>> {
        let out = vec![
            self.frame(true, self.cseq, flags::SYN, b""),
            self.frame(false, self.sseq, flags::SYN | flags::ACK, b""),
            self.frame(true, self.cseq + 1, flags::ACK, b""),
        ];
        self.cseq += 1;
        self.sseq += 1;
        out
    }

    /// Sends `data` from one side in segments of `mss` bytes.
    pub(crate) fn send(&mut self, from_client: bool, data: &[u8], mss: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for piece in data.chunks(mss) {
            let seq = if from_client { &mut self.cseq } else { &mut self.sseq };
            let s = *seq;
            *seq += piece.len() as u32;
            out.push(self.frame(from_client, s, flags::ACK, piece));
        }
        out
    }

    pub(crate) fn close(&mut self) -> Vec<Vec<u8>> {
        vec![
            self.frame(true, self.cseq, flags::FIN | flags::ACK, b""),
            self.frame(false, self.sseq, flags::FIN | flags::ACK, b""),
        ]
    }
}

fn analyze(frames: &[Vec<u8>], canaries: &[&str]) -> Analysis {
    let config = AnalyzerConfig {
        canaries: canaries.iter().map(|c| c.as_bytes().to_vec()).collect(),
        ..AnalyzerConfig::default()
    };
    let mut a = Analyzer::new(config);
    for (i, f) in frames.iter().enumerate() {
        a.push(LinkType::Ethernet, Duration::from_millis(i as u64), f);
    }
    a.finish()
}

#[test]
fn istio_mtls_flow_with_large_client_hello_across_segments() {
    let mut c = Conn::new(51234, 3306);
    let mut frames = c.open();
    let hello = client_hello(
        Some("outbound_.3306_._.mysql.ns.svc.cluster.local"),
        &["istio-peer-exchange", "istio"],
        &[0x0304, 0x0303],
        2400,
    );
    frames.extend(c.send(true, &records(&hello, 16384), 1448));
    frames.extend(c.send(false, &[23, 3, 3, 0, 4, 1, 2, 3, 4], 1448));
    frames.extend(c.close());
    let a = analyze(&frames, &["canary"]);
    assert_eq!(a.flows.len(), 1);
    let f = &a.flows[0];
    assert_eq!(f.client.to_string(), "10.244.1.5:51234");
    assert_eq!(f.class, FlowClass::IstioMtls);
    assert_eq!(f.sni.as_deref(), Some("outbound_.3306_._.mysql.ns.svc.cluster.local"));
    assert_eq!(f.alpn, vec!["istio-peer-exchange", "istio"]);
    assert_eq!(f.tls_version.as_deref(), Some("TLS1.3"));
    assert_eq!(f.protocol, None);
    assert_eq!(f.server_bytes, 9);
}

#[test]
fn plaintext_canaries_both_directions_with_reordering_and_retransmission() {
    let mut c = Conn::new(40000, 80);
    let mut frames = c.open();
    let mut req = c.send(true, b"POST /users HTTP/1.1\r\nHost: x\r\n\r\nname=secret-canary-1", 16);
    req.swap(1, 2);
    let again = req[3].clone();
    req.push(again);
    frames.extend(req);
    frames.extend(c.send(false, b"HTTP/1.1 201 Created\r\n\r\necho secret-canary-1", 7));
    let a = analyze(&frames, &["secret-canary-1"]);
    let f = &a.flows[0];
    assert_eq!(f.class, FlowClass::Plaintext);
    assert_eq!(f.protocol.as_deref(), Some("http"));
    assert_eq!(f.canary_hits, 2);
    assert_eq!(f.client_bytes, 53);
}

#[test]
fn without_syn_the_client_comes_from_the_evidence() {
    // A MySQL greeting from the server, capture started after the handshake.
    let mut c = Conn::new(51000, 3306);
    let mut greeting = vec![0, 0, 0, 0, 0x0a];
    greeting.extend_from_slice(b"8.4.3\0\x01\x00\x00\x00AAAAAAAA\x00");
    greeting.extend_from_slice(&[0u8; 20]);
    greeting[0] = (greeting.len() - 4) as u8;
    let frames = c.send(false, &greeting, 1448);
    let f = &analyze(&frames, &[]).flows[0];
    assert_eq!(f.client.port(), 51000);
    assert_eq!(f.protocol.as_deref(), Some("mysql"));
    assert_eq!(f.class, FlowClass::Plaintext);

    // A ClientHello sent from the lower port: the ClientHello wins over the ports.
    let mut c = Conn::new(443, 50000);
    let frames = c.send(true, &records(&client_hello(None, &["h2"], &[], 0), 16384), 1448);
    assert_eq!(analyze(&frames, &[]).flows[0].client.port(), 443);

    // Unknown bytes: the higher (ephemeral) port is the client.
    let mut c = Conn::new(8080, 45000);
    let frames = c.send(true, &[0xde, 0xad, 0xbe, 0xef], 1448);
    let f = &analyze(&frames, &[]).flows[0];
    assert_eq!(f.client.port(), 45000);
    assert_eq!(f.class, FlowClass::Unknown);
}

#[test]
fn syn_only_is_unknown_and_port_reuse_opens_a_new_flow() {
    let mut c = Conn::new(40001, 15008);
    let mut frames = vec![c.frame(true, 5, flags::SYN, b""), c.frame(false, 0, flags::RST | flags::ACK, b"")];
    let hello = records(&client_hello(None, &["h2"], &[0x0304], 0), 16384);
    frames.extend(c.open());
    frames.extend(c.send(true, &hello, 1448));
    let a = analyze(&frames, &[]);
    assert_eq!(a.flows.len(), 2);
    assert_eq!(a.flows[0].class, FlowClass::Unknown);
    assert_eq!(a.flows[1].class, FlowClass::Hbone);
    assert_eq!(a.packets, frames.len() as u64);
}

#[test]
fn closed_flows_are_freed_after_the_linger_time() {
    let mut a = Analyzer::new(AnalyzerConfig::default());
    for i in 0..50u16 {
        let mut c = Conn::new(30000 + i, 80);
        let mut frames = c.open();
        frames.extend(c.send(true, b"GET / HTTP/1.1\r\n\r\n", 1448));
        frames.extend(c.close());
        for f in frames {
            a.push(LinkType::Ethernet, Duration::from_secs(u64::from(i) * 60), &f);
        }
    }
    assert!(a.table.len() <= 1, "{} flows still held", a.table.len());
    let analysis = a.finish();
    assert_eq!(analysis.flows.len(), 50);
    assert!(analysis.flows.iter().all(|f| f.protocol.as_deref() == Some("http")));
    assert_eq!(analysis.flows[7].client.port(), 30007);
}
