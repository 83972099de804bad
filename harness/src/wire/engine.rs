//! The analyzer: packets in, classified flows out, one packet at a time.
//!
//! Memory is bounded per flow (see `stream`), and closed connections are finalised at
//! once, so a long capture costs memory for the connections open at the same time, not
//! for the file's size.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::link::{LinkType, Segment, tcp_segment};
use super::sniff;
use super::stream::{Needles, Side};
use super::tls::Hello;
use super::{Analysis, Flow, FlowClass};

/// ALPN values only Istio's sidecars offer.
const ISTIO_ALPN: [&str; 5] = [
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];
/// Closed connections remembered to absorb their trailing ACKs.
const TOMBSTONES: usize = 8192;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct AnalyzerConfig {
    /// Markers to count wherever they appear in clear.
    pub canaries: Vec<Vec<u8>>,
}

/// A streaming analyzer. Feed packets with [`Analyzer::push`], then [`Analyzer::finish`].
#[derive(Debug)]
pub struct Analyzer {
    needles: Needles,
    open: HashMap<(SocketAddr, SocketAddr), Conn>,
    closed: HashMap<(SocketAddr, SocketAddr), u64>,
    closed_order: VecDeque<(SocketAddr, SocketAddr)>,
    done: Vec<(u64, Flow)>,
    packets: u64,
    bytes: u64,
    next_id: u64,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    /// The endpoint that sent the first packet seen; `sides[0]` is what it sent.
    first: SocketAddr,
    second: SocketAddr,
    sides: [Side; 2],
    syn_from: Option<usize>,
    fin: [bool; 2],
    rst: bool,
}

impl Analyzer {
    /// A new analyzer.
    pub fn new(config: AnalyzerConfig) -> Analyzer {
        Analyzer {
            needles: Needles::new(&config.canaries),
            open: HashMap::new(),
            closed: HashMap::new(),
            closed_order: VecDeque::new(),
            done: Vec::new(),
            packets: 0,
            bytes: 0,
            next_id: 0,
        }
    }

    /// Packets seen so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Feeds one captured frame. Non-TCP and undecodable frames are counted and skipped.
    pub fn push(&mut self, link: LinkType, _ts: Duration, frame: &[u8]) {
        self.packets += 1;
        self.bytes += frame.len() as u64;
        if let Some(seg) = tcp_segment(link, frame) {
            self.segment(seg);
        }
    }

    fn segment(&mut self, seg: Segment<'_>) {
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let opening = seg.flags.syn && !seg.flags.ack;
        if !opening && seg.payload.is_empty() && self.closed.contains_key(&key) {
            return; // the last ACK or FIN of a connection already reported
        }
        if opening && self.open.get(&key).is_some_and(|c| c.bytes() > 0 || c.rst) {
            // A fresh SYN on a used 4-tuple starts a new connection.
            if let Some(old) = self.open.remove(&key) {
                self.finalize(old);
            }
        }
        self.closed.remove(&key);
        let needles = &self.needles;
        let next_id = &mut self.next_id;
        let conn = self.open.entry(key).or_insert_with(|| {
            *next_id += 1;
            Conn {
                id: *next_id,
                first: seg.src,
                second: seg.dst,
                sides: Default::default(),
                syn_from: None,
                fin: [false; 2],
                rst: false,
            }
        });
        let i = usize::from(seg.src != conn.first);
        if opening {
            conn.syn_from = Some(i);
        }
        conn.sides[i].segment(seg.seq, seg.flags.syn, seg.payload, needles);
        conn.fin[i] |= seg.flags.fin;
        conn.rst |= seg.flags.rst;
        if conn.rst || (conn.fin[0] && conn.fin[1]) {
            if let Some(conn) = self.open.remove(&key) {
                self.finalize(conn);
            }
            self.remember_closed(key);
        }
    }

    fn remember_closed(&mut self, key: (SocketAddr, SocketAddr)) {
        self.closed.insert(key, self.packets);
        self.closed_order.push_back(key);
        while self.closed_order.len() > TOMBSTONES {
            if let Some(old) = self.closed_order.pop_front() {
                self.closed.remove(&old);
            }
        }
    }

    fn finalize(&mut self, mut conn: Conn) {
        for side in &mut conn.sides {
            side.finish(&self.needles);
        }
        let id = conn.id;
        self.done.push((id, conn.into_flow()));
    }

    /// Finalises every open connection and returns the flows in order of first packet.
    pub fn finish(mut self) -> Analysis {
        let open: Vec<Conn> = self.open.drain().map(|(_, c)| c).collect();
        for conn in open {
            self.finalize(conn);
        }
        self.done.sort_by_key(|(id, _)| *id);
        Analysis {
            packets: self.packets,
            bytes: self.bytes,
            flows: self.done.into_iter().map(|(_, f)| f).collect(),
        }
    }
}

impl Conn {
    fn bytes(&self) -> u64 {
        self.sides[0].bytes + self.sides[1].bytes
    }

    /// Which side is the client: the SYN's sender, else the ClientHello's, else the side
    /// with the ephemeral-looking port.
    fn client_index(&self) -> usize {
        if let Some(i) = self.syn_from {
            return i;
        }
        if let Some(i) = self.sides.iter().position(|s| s.hello.is_some()) {
            return i;
        }
        let (a, b) = (self.first.port(), self.second.port());
        if a > b { 0 } else { 1 }
    }

    fn into_flow(self) -> Flow {
        let c = self.client_index();
        let addrs = [self.first, self.second];
        let (client, server) = (&self.sides[c], &self.sides[1 - c]);
        let server_addr = addrs[1 - c];
        let tls = client.is_tls() || server.is_tls();
        let hello = client.hello.as_ref();
        let class = if tls {
            classify_tls(hello, server_addr.port())
        } else if self.bytes() > 0 {
            FlowClass::Plaintext
        } else {
            FlowClass::Unknown
        };
        let protocol = (class == FlowClass::Plaintext)
            .then(|| sniff::protocol(&client.head, &server.head))
            .flatten();
        Flow {
            client: addrs[c],
            server: server_addr,
            class,
            protocol: protocol.map(str::to_string),
            sni: hello.and_then(|h| h.sni.clone()),
            alpn: hello.map(|h| h.alpn.clone()).unwrap_or_default(),
            tls_version: hello.and_then(|h| h.version.clone()),
            canary_hits: client.hits + server.hits,
            client_bytes: client.bytes,
            server_bytes: server.bytes,
        }
    }
}

/// The class of a TLS flow from what its ClientHello offered.
pub fn classify_tls(hello: Option<&Hello>, server_port: u16) -> FlowClass {
    let Some(h) = hello else {
        return FlowClass::Tls;
    };
    let sni = h.sni.as_deref().unwrap_or("");
    if h.alpn.iter().any(|a| ISTIO_ALPN.contains(&a.as_str())) || sni.starts_with("outbound_.") {
        FlowClass::IstioMtls
    } else if is_consul_sni(sni) {
        FlowClass::ConsulMtls
    } else if server_port == 15008 && h.sni.is_none() && h.alpn.iter().any(|a| a == "h2") {
        FlowClass::Hbone
    } else {
        FlowClass::Tls
    }
}

/// Consul Connect's SNI: `<service>.<namespace>[.<partition>].<datacenter>.internal[-v1].<trust-domain>.consul`,
/// or for peered services `<service>.<namespace>.<partition>.<peer>.external.<trust-domain>.consul`.
fn is_consul_sni(sni: &str) -> bool {
    sni.ends_with(".consul")
        && sni
            .split('.')
            .any(|label| matches!(label, "internal" | "internal-v1" | "external"))
        && sni.split('.').count() >= 6
}

#[cfg(test)]
mod tests;
