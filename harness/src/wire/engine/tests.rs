//! Engine tests on synthetic frames built with etherparse: client detection, classes,
//! protocols, connection reuse. Real captures are tested in `harness/tests/`.

use etherparse::PacketBuilder;

use super::*;
use crate::wire::tls::tests::rustls_hello;

const CANARY: &str = "MESHPROOF-CANARY-0123456789abcdef";

struct Wire {
    frames: Vec<Vec<u8>>,
    seq: [u32; 2],
}

impl Wire {
    fn new() -> Wire {
        Wire {
            frames: vec![],
            seq: [1000, 5000],
        }
    }

    /// A segment from side `i` (0 = 10.0.0.1:40000, 1 = 10.0.0.2:port).
    fn send(&mut self, i: usize, port: u16, syn: bool, ack: bool, fin: bool, payload: &[u8]) {
        let (src, dst, sp, dp) = if i == 0 {
            ([10, 0, 0, 1], [10, 0, 0, 2], 40000, port)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], port, 40000)
        };
        let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, self.seq[i], 65535);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        if fin {
            b = b.fin();
        }
        let mut frame = Vec::new();
        b.write(&mut frame, payload).unwrap();
        self.frames.push(frame);
        self.seq[i] =
            self.seq[i].wrapping_add(payload.len() as u32 + u32::from(syn) + u32::from(fin));
    }

    fn handshake(&mut self, port: u16) {
        self.send(0, port, true, false, false, b"");
        self.send(1, port, true, true, false, b"");
        self.send(0, port, false, true, false, b"");
    }

    fn analyze(&self) -> Analysis {
        let mut a = Analyzer::new(AnalyzerConfig {
            canaries: vec![CANARY.as_bytes().to_vec()],
        });
        for f in &self.frames {
            a.push(LinkType::Ethernet, Duration::ZERO, f);
        }
        a.finish()
    }
}

#[test]
fn plaintext_mysql_with_canary() {
    let mut w = Wire::new();
    w.handshake(3306);
    let mut greeting = vec![0x4a, 0, 0, 0, 0x0a];
    greeting.extend_from_slice(b"8.4.6\0");
    greeting.extend_from_slice(&[0; 63]);
    w.send(1, 3306, false, true, false, &greeting);
    w.send(
        0,
        3306,
        false,
        true,
        false,
        format!("\x50\0\0\0\x03INSERT INTO users VALUES ('{CANARY}')").as_bytes(),
    );
    w.send(0, 3306, false, true, true, b"");
    w.send(1, 3306, false, true, true, b"");
    let a = w.analyze();
    assert_eq!(a.flows.len(), 1);
    let f = &a.flows[0];
    assert_eq!(f.client.to_string(), "10.0.0.1:40000");
    assert_eq!(f.class, FlowClass::Plaintext);
    assert_eq!(f.protocol.as_deref(), Some("mysql"));
    assert_eq!(f.canary_hits, 1);
    assert_eq!(f.server_bytes, greeting.len() as u64);
}

#[test]
fn istio_mtls_by_alpn_and_sni() {
    let mut w = Wire::new();
    w.handshake(3306);
    w.send(
        0,
        3306,
        false,
        true,
        false,
        &rustls_hello(
            "outbound_.3306_._.mysql-server.pii-demo.svc.cluster.local",
            &["istio-peer-exchange", "istio"],
            None,
        ),
    );
    let f = &w.analyze().flows[0];
    assert_eq!(f.class, FlowClass::IstioMtls);
    assert_eq!(f.alpn, ["istio-peer-exchange", "istio"]);
    assert_eq!(f.tls_version.as_deref(), Some("TLS1.3"));
    assert_eq!(f.protocol, None);
}

#[test]
fn classes_from_hellos() {
    let h = |sni: Option<&str>, alpn: &[&str]| Hello {
        sni: sni.map(str::to_string),
        alpn: alpn.iter().map(|a| a.to_string()).collect(),
        version: None,
    };
    assert_eq!(
        classify_tls(
            Some(&h(Some("outbound_.80_._.a.b.svc.cluster.local"), &[])),
            80
        ),
        FlowClass::IstioMtls
    );
    assert_eq!(
        classify_tls(Some(&h(None, &["istio-h2", "istio", "h2"])), 80),
        FlowClass::IstioMtls
    );
    assert_eq!(
        classify_tls(
            Some(&h(
                Some("counting.default.dc1.internal.5e3c1f55-3a4b-4bd2-a8e0-1c4ae4d1c2b7.consul"),
                &[]
            )),
            20000
        ),
        FlowClass::ConsulMtls
    );
    assert_eq!(
        classify_tls(
            Some(&h(Some("api.ns.part.dc1.internal-v1.foo.consul"), &[])),
            20000
        ),
        FlowClass::ConsulMtls
    );
    assert_eq!(
        classify_tls(Some(&h(None, &["h2"])), 15008),
        FlowClass::Hbone
    );
    assert_eq!(classify_tls(Some(&h(None, &["h2"])), 443), FlowClass::Tls);
    assert_eq!(
        classify_tls(Some(&h(Some("rabbitmq.example"), &["amqp"])), 5671),
        FlowClass::Tls
    );
    assert_eq!(
        classify_tls(Some(&h(Some("consul.io"), &[])), 443),
        FlowClass::Tls
    );
    assert_eq!(classify_tls(None, 443), FlowClass::Tls);
}

#[test]
fn client_without_syn_is_the_hello_sender_even_on_a_low_port() {
    let mut w = Wire::new();
    // The capture starts after the handshake; side 1 (port 80) happens to send the hello.
    w.send(
        1,
        80,
        false,
        true,
        false,
        &rustls_hello("x.example", &[], None),
    );
    let f = &w.analyze().flows[0];
    assert_eq!(f.client.port(), 80);
    assert_eq!(f.class, FlowClass::Tls);
}

#[test]
fn client_without_syn_or_hello_is_the_ephemeral_port() {
    let mut w = Wire::new();
    w.send(1, 5672, false, true, false, b"some bytes from the middle");
    let f = &w.analyze().flows[0];
    assert_eq!(f.client.port(), 40000);
    assert_eq!(f.server.port(), 5672);
}

#[test]
fn reused_four_tuple_is_two_flows_and_trailing_acks_are_absorbed() {
    let mut w = Wire::new();
    for _ in 0..2 {
        w.handshake(8080);
        w.send(0, 8080, false, true, false, b"GET / HTTP/1.1\r\n\r\n");
        w.send(0, 8080, false, true, true, b"");
        w.send(1, 8080, false, true, true, b"");
        w.send(0, 8080, false, true, false, b"");
        w.seq = [w.seq[0] + 100_000, w.seq[1] + 100_000];
    }
    let a = w.analyze();
    assert_eq!(a.flows.len(), 2, "{:#?}", a.flows);
    assert!(
        a.flows
            .iter()
            .all(|f| f.protocol.as_deref() == Some("http"))
    );
}

#[test]
fn syn_only_flow_is_unknown_and_non_tcp_is_counted() {
    let mut w = Wire::new();
    w.send(0, 443, true, false, false, b"");
    let mut udp = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
        .udp(53, 53)
        .write(&mut udp, b"dns")
        .unwrap();
    w.frames.push(udp);
    let a = w.analyze();
    assert_eq!(a.packets, 2);
    assert_eq!(a.flows.len(), 1);
    assert_eq!(a.flows[0].class, FlowClass::Unknown);
}
