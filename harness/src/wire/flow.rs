//! The analyzer's output: classified flows, in the stable JSON contract of
//! `cargo xtask capture analyze --json` (documented in `README.md`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::FlowClass;

/// The result of analysing one capture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Packets read, including non-TCP ones.
    pub packets: u64,
    /// Bytes of captured packet data read.
    pub bytes: u64,
    /// Every TCP connection seen, in order of first packet.
    pub flows: Vec<Flow>,
}

/// Where a flow is in its capture file: frame numbers as tshark and Wireshark count them
/// (1-based, in file order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSpan {
    /// The flow's first TCP segment.
    pub first: u64,
    /// Its last TCP segment.
    pub last: u64,
    /// How many TCP segments it had.
    pub count: u64,
}

impl FrameSpan {
    /// Counts frame `n` into the span.
    pub fn add(&mut self, n: u64) {
        if self.count == 0 {
            self.first = n;
        }
        self.last = n;
        self.count += 1;
    }
}

/// How much of a flow's clear bytes the canary search covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryScanState {
    /// Everything clear was searched and decoded.
    #[default]
    Complete,
    /// Something was not decoded (over the limits, malformed, or an unknown coding).
    Partial,
}

/// One TCP connection, as classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// The side that sent the SYN (or, without a SYN, the best evidence: the side that
    /// sent the ClientHello, else the side with the ephemeral port).
    pub client: SocketAddr,
    /// The other side.
    pub server: SocketAddr,
    /// What the bytes were.
    pub class: FlowClass,
    /// The plaintext protocol recognised (`http`, `mysql`, `amqp`, `mongodb`, `postgres`,
    /// `epmd`, `erlang-dist`), or null.
    pub protocol: Option<String>,
    /// The ClientHello's server name, if any.
    pub sni: Option<String>,
    /// The ALPN protocols the client offered, in order.
    pub alpn: Vec<String>,
    /// The highest TLS version the client offered (`TLS1.3`), if TLS was seen.
    pub tls_version: Option<String>,
    /// How many times any canary can be read without a key, both directions together:
    /// in clear bytes and through the clear encodings the analyzer decodes.
    pub canary_hits: u64,
    /// Whether every clear byte that may hold the canary was searched (`complete`), or
    /// something was too large or malformed to decode (`partial`): a partial search
    /// cannot show that the canary is absent.
    #[serde(default)]
    pub canary_scan: CanaryScanState,
    /// The encodings through which canaries were recovered (`gzip`, `chunked`, `hpack`,
    /// ...), in a fixed order; empty when every hit was readable as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_encodings: Vec<String>,
    /// The flow's frames in the capture file.
    #[serde(default)]
    pub frames: FrameSpan,
    /// TCP payload bytes from client to server (retransmissions counted once).
    pub client_bytes: u64,
    /// TCP payload bytes from server to client.
    pub server_bytes: u64,
}
