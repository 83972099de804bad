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
    /// How many times any canary appeared in clear, both directions together.
    pub canary_hits: u64,
    /// TCP payload bytes from client to server (retransmissions counted once).
    pub client_bytes: u64,
    /// TCP payload bytes from server to client.
    pub server_bytes: u64,
}
