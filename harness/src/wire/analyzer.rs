//! The analyzer: packets in, classified [`Flow`]s out.
//!
//! [`Analyzer`] is fed one captured frame at a time (from a file, a live capture or a
//! pcap byte stream) and never needs a second pass. Each TCP connection gets two
//! directions of reassembly and stream analysis; a connection that closed (both FINs or
//! a RST) is finalised once `close_linger` of capture time has passed, which frees its
//! state while still absorbing late retransmissions.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use super::canary::Canaries;
use super::classify::classify_hello;
use super::decode::DecodeLimits;
use super::defrag::Defrag;
use super::link::{self, Decoded, Endpoint, LinkType, Segment, flags};
use super::reasm::{Chunk, Reassembly, SegmentIn};
use super::sniff::Speaker;
use super::stream::{Ctx, Limits, Stream};
use super::tls::version_name;
use super::tunnel::{OverlayTag, SealedLinks, TunnelConfig};
use super::{Analysis, Flow, FlowClass, FrameSpan};

/// What the analyzer searches for and how much memory it may use per flow.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// Byte strings to count in clear bytes (never inside TLS records).
    pub canaries: Vec<Vec<u8>>,
    /// Bytes at the start of each direction in which a TLS hello is looked for
    /// (TLS after a clear preamble, such as MySQL's SSLRequest).
    pub starttls_window: u64,
    /// Bytes held per direction while looking for TLS framing mid-stream or after a gap.
    pub resync_window: usize,
    /// The largest ClientHello collected, in bytes.
    pub max_handshake: usize,
    /// Bytes of out-of-order segments queued per direction before the hole becomes a gap.
    pub max_out_of_order: usize,
    /// Capture time a closed connection is kept to absorb late retransmissions.
    pub close_linger: Duration,
    /// The UDP ports of VXLAN, Geneve and WireGuard.
    pub tunnels: TunnelConfig,
    /// How far the canary search decodes clear encodings, per direction.
    pub decode: DecodeLimits,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            canaries: Vec::new(),
            starttls_window: 16 * 1024,
            resync_window: 32 * 1024,
            max_handshake: 64 * 1024,
            max_out_of_order: 256 * 1024,
            close_linger: Duration::from_secs(30),
            tunnels: TunnelConfig::default(),
            decode: DecodeLimits::default(),
        }
    }
}

/// Counters that explain what the analyzer could not use; not part of the JSON contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnalyzerStats {
    /// TCP segments decoded.
    pub tcp_segments: u64,
    /// Frames that were not TCP over IP (ARP, plain UDP, ICMP, tunnels nested too deep).
    pub other_packets: u64,
    /// TCP segments found inside a tunnel (counted in `tcp_segments` too).
    pub tunnelled_segments: u64,
    /// Packets of node-to-node ciphertext (WireGuard, IPsec ESP).
    pub encrypted_packets: u64,
    /// IP fragments seen, at any depth.
    pub fragments: u64,
    /// Datagrams rebuilt from fragments.
    pub reassembled_datagrams: u64,
    /// Fragments that never became part of a rebuilt datagram (timed out, evicted by the
    /// memory bound, cut by the snapshot length, or still incomplete at the end).
    pub lost_fragments: u64,
    /// Frames whose headers were malformed or cut short.
    pub malformed_packets: u64,
    /// Holes in reassembled streams (missing or snapshot-truncated bytes).
    pub gaps: u64,
    /// Bytes in those holes.
    pub gap_bytes: u64,
    /// Segments that only repeated bytes already seen.
    pub retransmissions: u64,
    /// Mid-stream bytes that could be neither confirmed as TLS nor as clear text.
    pub undecided_bytes: u64,
}

/// A fast, non-cryptographic hasher for flow keys. The keys come from captured traffic
/// but the table is per-analysis and bounded by the capture, so hash flooding only slows
/// the analysis of a hostile file; it cannot corrupt results.
#[derive(Debug, Default, Clone, Copy)]
struct FlowHasher(u64);

impl Hasher for FlowHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Key = (Endpoint, Endpoint);

#[derive(Debug, Default)]
struct Direction {
    reasm: Reassembly,
    stream: Stream,
    /// Distinct payload bytes captured.
    bytes: u64,
}

#[derive(Debug)]
struct FlowState {
    id: usize,
    /// `ep[0]` sent the first packet seen; `dirs[i]` carries bytes sent by `ep[i]`.
    ep: [Endpoint; 2],
    dirs: [Direction; 2],
    syn_from: Option<usize>,
    synack_from: Option<usize>,
    rst: bool,
    closed: bool,
    /// The tunnel of the first encapsulated segment, and which side sent it.
    overlay: Option<(OverlayTag, usize)>,
    /// Frame numbers (1-based, in capture order) of this flow's first and last segment,
    /// and how many segments it had.
    frames: FrameSpan,
}

/// Classifies TCP flows from captured frames, one frame at a time.
#[derive(Debug)]
pub struct Analyzer {
    config: AnalyzerConfig,
    canaries: Canaries,
    table: HashMap<Key, Box<FlowState>, BuildHasherDefault<FlowHasher>>,
    closing: VecDeque<(Duration, Key, usize)>,
    results: Vec<Option<Flow>>,
    defrag: Defrag,
    links: SealedLinks,
    packets: u64,
    bytes: u64,
    stats: AnalyzerStats,
}

impl Analyzer {
    /// A fresh analyzer.
    pub fn new(config: AnalyzerConfig) -> Analyzer {
        Analyzer {
            canaries: Canaries::new(&config.canaries),
            config,
            table: HashMap::default(),
            closing: VecDeque::new(),
            results: Vec::new(),
            defrag: Defrag::default(),
            links: SealedLinks::default(),
            packets: 0,
            bytes: 0,
            stats: AnalyzerStats::default(),
        }
    }

    /// Packets pushed so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The counters so far.
    pub fn stats(&self) -> AnalyzerStats {
        let mut stats = self.stats;
        stats.fragments = self.defrag.fragments;
        stats.reassembled_datagrams = self.defrag.reassembled;
        stats.lost_fragments = self.defrag.lost;
        stats
    }

    /// Feeds one captured frame of the given link type, captured at `ts` (since the epoch).
    pub fn push(&mut self, link: LinkType, ts: Duration, data: &[u8]) {
        self.packets += 1;
        self.bytes += data.len() as u64;
        let decoded = link::decode_with(&self.config.tunnels, link, data);
        self.handle(ts, decoded);
    }

    fn handle(&mut self, ts: Duration, decoded: Decoded<'_>) {
        match decoded {
            Decoded::Tcp(seg) => {
                self.stats.tcp_segments += 1;
                self.stats.tunnelled_segments += u64::from(seg.overlay.is_some());
                self.tcp(ts, seg);
            }
            Decoded::Encrypted(sealed) => {
                self.stats.encrypted_packets += 1;
                self.links.add(sealed);
            }
            Decoded::Fragment(f) => {
                if let Some(d) = self.defrag.push(ts, f) {
                    let inner = link::decode_datagram(
                        &self.config.tunnels,
                        d.layer,
                        d.ends,
                        d.proto,
                        &d.payload,
                    );
                    // A datagram's fragments are only decoded one layer deeper than the
                    // fragments themselves, so this recursion ends within MAX_DEPTH.
                    self.handle(ts, inner);
                }
            }
            Decoded::Other => self.stats.other_packets += 1,
            Decoded::Malformed => self.stats.malformed_packets += 1,
        }
    }

    /// Ends the analysis: settles every open flow and returns them in order of first packet.
    pub fn finish(self) -> Analysis {
        self.finish_with_stats().0
    }

    /// Like [`Analyzer::finish`], also returning the counters.
    pub fn finish_with_stats(mut self) -> (Analysis, AnalyzerStats) {
        let open: Vec<Key> = self.table.keys().copied().collect();
        for key in open {
            self.finalize(&key);
        }
        self.defrag.finish();
        let stats = self.stats();
        let flows = self.results.into_iter().flatten().collect();
        (
            Analysis {
                packets: self.packets,
                bytes: self.bytes,
                flows,
                links: self.links.into_links(),
            },
            stats,
        )
    }

    fn limits(&self) -> Limits {
        Limits {
            starttls_window: self.config.starttls_window,
            resync_window: self
                .config
                .resync_window
                .max(2 * super::tls::MAX_RECORD_BODY),
            max_handshake: self.config.max_handshake,
            decode: self.config.decode,
        }
    }

    fn tcp(&mut self, ts: Duration, seg: Segment<'_>) {
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let syn = seg.flags & flags::SYN != 0;
        let ack = seg.flags & flags::ACK != 0;
        if syn
            && !ack
            && self
                .table
                .get(&key)
                .is_some_and(|f| f.is_new_connection(&seg))
        {
            self.finalize(&key);
        }
        let limits = self.limits();
        let max_ooo = self.config.max_out_of_order;
        let frame = self.packets;
        let Analyzer {
            table,
            results,
            canaries,
            stats,
            closing,
            ..
        } = self;
        let flow = table.entry(key).or_insert_with(|| {
            results.push(None);
            Box::new(FlowState::new(results.len() - 1, seg.src, seg.dst))
        });
        let d = usize::from(seg.src != flow.ep[0]);
        if flow.overlay.is_none() {
            flow.overlay = seg.overlay.map(|o| (o, d));
        }
        flow.frames.add(frame);
        if syn {
            if ack {
                flow.synack_from = Some(d)
            } else {
                flow.syn_from = Some(d)
            }
        }
        flow.rst |= seg.flags & flags::RST != 0;
        let cx = Ctx { canaries, limits };
        let dir = &mut flow.dirs[d];
        let from_syn = syn || dir.reasm.from_syn;
        let input = SegmentIn {
            seq: seg.seq,
            syn,
            fin: seg.flags & flags::FIN != 0,
            payload: seg.payload,
            wire_len: seg.wire_len,
        };
        let Direction {
            reasm,
            stream,
            bytes,
        } = dir;
        let before = reasm.retransmitted;
        reasm.segment(input, max_ooo, &mut |c| {
            consume(&cx, stream, bytes, stats, c, from_syn)
        });
        stats.retransmissions += reasm.retransmitted - before;
        let closed = flow.rst || (flow.dirs[0].reasm.fin && flow.dirs[1].reasm.fin);
        if closed && !flow.closed {
            flow.closed = true;
            closing.push_back((ts, key, flow.id));
        }
        self.expire(ts);
    }

    /// Finalises connections that closed more than `close_linger` ago.
    fn expire(&mut self, now: Duration) {
        while let Some(&(at, key, id)) = self.closing.front() {
            if now.saturating_sub(at) < self.config.close_linger {
                break;
            }
            self.closing.pop_front();
            if self.table.get(&key).is_some_and(|f| f.id == id) {
                self.finalize(&key);
            }
        }
    }

    fn finalize(&mut self, key: &Key) {
        let Some(mut flow) = self.table.remove(key) else {
            return;
        };
        let cx = Ctx {
            canaries: &self.canaries,
            limits: self.limits(),
        };
        let stats = &mut self.stats;
        for dir in &mut flow.dirs {
            let from_syn = dir.reasm.from_syn;
            let Direction {
                reasm,
                stream,
                bytes,
            } = dir;
            reasm.flush(&mut |c| consume(&cx, stream, bytes, stats, c, from_syn));
            stream.finish(&cx);
            stats.undecided_bytes += stream.undecided_bytes;
        }
        let id = flow.id;
        self.results[id] = Some(flow.into_flow());
    }
}

fn consume(
    cx: &Ctx<'_>,
    stream: &mut Stream,
    bytes: &mut u64,
    stats: &mut AnalyzerStats,
    c: Chunk<'_>,
    from_syn: bool,
) {
    match c {
        Chunk::Data(d) => *bytes += d.len() as u64,
        Chunk::Gap(n) => {
            stats.gaps += 1;
            stats.gap_bytes += n;
        }
    }
    stream.chunk(cx, c, from_syn);
}

impl FlowState {
    fn new(id: usize, first_sender: Endpoint, other: Endpoint) -> FlowState {
        FlowState {
            id,
            ep: [first_sender, other],
            dirs: [Direction::default(), Direction::default()],
            syn_from: None,
            synack_from: None,
            rst: false,
            closed: false,
            overlay: None,
            frames: FrameSpan::default(),
        }
    }

    /// Whether a SYN on this 4-tuple opens a new connection rather than retransmitting
    /// the one that opened this flow.
    fn is_new_connection(&self, seg: &Segment<'_>) -> bool {
        let d = usize::from(seg.src != self.ep[0]);
        self.closed
            || self.dirs[d].reasm.syn_seq.is_some_and(|s| s != seg.seq)
            || self.syn_from.is_some_and(|s| s != d)
    }

    /// Which of `ep` is the client, by the best evidence available.
    fn client_index(&self) -> usize {
        if let Some(d) = self.syn_from {
            return d;
        }
        if let Some(d) = self.synack_from {
            return 1 - d;
        }
        match (
            self.dirs[0].stream.hello.is_some(),
            self.dirs[1].stream.hello.is_some(),
        ) {
            (true, false) => return 0,
            (false, true) => return 1,
            _ => {}
        }
        for (d, dir) in self.dirs.iter().enumerate() {
            match dir.stream.protocol() {
                Some((_, Speaker::Client)) => return d,
                Some((_, Speaker::Server)) => return 1 - d,
                None => {}
            }
        }
        // The ephemeral port is the higher one; on a tie the first sender is the client.
        usize::from(self.ep[1].port > self.ep[0].port)
    }

    fn into_flow(self) -> Flow {
        let c = self.client_index();
        let (client, server) = (&self.dirs[c].stream, &self.dirs[1 - c].stream);
        let server_port = self.ep[1 - c].port;
        let hello = client.hello.as_ref().or(server.hello.as_ref());
        let mut found = client.decoder.found;
        found.merge(&server.decoder.found);
        let class = match hello {
            Some(h) => classify_hello(h.sni.as_deref(), &h.alpn, server_port),
            None if client.tls_seen || server.tls_seen => FlowClass::Tls,
            None if client.plain_bytes + server.plain_bytes > 0 => FlowClass::Plaintext,
            None => FlowClass::Unknown,
        };
        let protocol = client
            .protocol()
            .or(server.protocol())
            .map(|(p, _)| p.as_str().to_string());
        Flow {
            client: self.ep[c].socket_addr(),
            server: self.ep[1 - c].socket_addr(),
            class,
            protocol,
            sni: hello.and_then(|h| h.sni.clone()),
            alpn: hello.map(|h| h.alpn.clone()).unwrap_or_default(),
            tls_version: hello.map(|h| version_name(h.version)),
            canary_hits: client.hits + server.hits,
            canary_scan: found.scan_state(),
            canary_encodings: found.encodings().map(|e| e.as_str().to_string()).collect(),
            frames: self.frames,
            client_bytes: self.dirs[c].bytes,
            server_bytes: self.dirs[1 - c].bytes,
            overlay: self.overlay.map(|(o, sender)| o.to_overlay(sender == c)),
        }
    }
}

#[cfg(test)]
#[path = "analyzer_tests.rs"]
pub(crate) mod tests;
