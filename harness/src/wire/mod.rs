//! The wire analyzer: from packets to classified flows.
//!
//! This module owns the vocabulary for what a TCP connection looked like on the wire
//! ([`FlowClass`], [`Flow`], [`Analysis`]) and the engine that produces it:
//! link-layer decoding ([`LinkType`]) through tunnels ([`TunnelKind`]) and IP fragments,
//! recognition of node-to-node encryption ([`EncryptedLink`]), per-direction TCP
//! reassembly with bounded memory,
//! TLS ClientHello parsing, mesh classification, plaintext protocol sniffing and
//! streaming canary search. [`Analyzer`] is fed frame by frame (live captures use it
//! directly); [`analyze_file`] reads pcap and pcapng files.
//!
//! The JSON contract of [`Analysis`] is documented in `docs/analyzer.md`.

mod analyzer;
// The fuzz crate compiles this module on its own (see `fuzz/Cargo.toml`, whose build
// script sets `meshproof_fuzz`); the benchmark needs the rest of the crate, so it is left
// out there.
#[cfg(not(any(fuzzing, meshproof_fuzz)))]
pub mod bench;
mod canary;
mod class;
mod classify;
pub mod decode;
mod defrag;
mod file;
mod flow;
mod link;
mod reasm;
mod report;
pub mod sniff;
mod stream;
mod tls;
mod tunnel;

use std::path::PathBuf;

pub use analyzer::{Analyzer, AnalyzerConfig, AnalyzerStats};
pub use canary::Canaries;
pub use class::{FlowClass, UnknownClass};
pub use classify::{HBONE_PORT, classify_hello, is_consul_sni, is_istio_sni};
pub use file::{
    CaptureParser, MAX_RECORD, Record, analyze_file, analyze_file_with_stats, read_capture,
};
pub use flow::{
    Analysis, CanaryScanState, EncryptedLink, EncryptionKind, Flow, FrameSpan, Overlay, TunnelKind,
    merge_links,
};
pub use link::{
    Decoded, Endpoint, Fragment, Layer, LinkType, Segment, decode, decode_with, flags as tcp_flags,
};
pub use report::render_table;
pub use tunnel::{
    GENEVE_PORT, OverlayTag, Sealed, TunnelConfig, VXLAN_LINUX_PORT, VXLAN_PORT,
    WIREGUARD_CILIUM_PORT, WIREGUARD_PORT,
};

/// Why a capture could not be read. Every variant that concerns the bytes carries the
/// byte offset where they stopped making sense.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed part-way.
    #[error("read failed at byte {offset}: {source}")]
    Read {
        /// Bytes read successfully before the failure.
        offset: u64,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are neither pcap nor pcapng.
    #[error("not a pcap or pcapng capture: magic number 0x{magic:08x} at byte {offset}")]
    NotACapture {
        /// Where the magic number was read.
        offset: u64,
        /// The number found, read little-endian.
        magic: u32,
    },
    /// The input ends inside a header or record.
    #[error(
        "capture is truncated at byte {offset}: {available} bytes left where a record needs at least {needed}"
    )]
    Truncated {
        /// Where the incomplete header or record starts.
        offset: u64,
        /// Bytes present after that offset.
        available: u64,
        /// Bytes the header or record needs: its whole length when its header is there
        /// to say so, else the size of the header.
        needed: u64,
    },
    /// A packet record claims more bytes than any capture holds or than its block has.
    #[error("bad packet length {length} at byte {offset} (limit {limit})")]
    RecordTooLarge {
        /// Where the length field is.
        offset: u64,
        /// The length claimed.
        length: u32,
        /// The largest acceptable length there.
        limit: u32,
    },
    /// A pcapng block length is too small, not a multiple of 4, too large, or its
    /// trailing copy disagrees.
    #[error("bad pcapng block length {length} at byte {offset}")]
    BadBlockLength {
        /// Where the length field is.
        offset: u64,
        /// The length found.
        length: u32,
    },
    /// The capture's link-layer type is not one the analyzer decodes.
    #[error(
        "unsupported link type {linktype} at byte {offset} (supported: Ethernet, Linux SLL and SLL2, raw IP, loopback)"
    )]
    UnsupportedLinkType {
        /// Where the link type (or the packet that uses it) is.
        offset: u64,
        /// The `LINKTYPE_*` number.
        linktype: u32,
    },
    /// A pcapng packet names an interface that no interface block described.
    #[error(
        "packet at byte {offset} refers to interface {interface}, but only {defined} are described"
    )]
    UnknownInterface {
        /// Where the packet block's interface field is.
        offset: u64,
        /// The interface number used.
        interface: u32,
        /// How many interfaces the section describes.
        defined: usize,
    },
}

impl WireError {
    /// The byte offset the error concerns, when it concerns the bytes.
    pub fn offset(&self) -> Option<u64> {
        match self {
            WireError::Open { .. } => None,
            WireError::Read { offset, .. }
            | WireError::NotACapture { offset, .. }
            | WireError::Truncated { offset, .. }
            | WireError::RecordTooLarge { offset, .. }
            | WireError::BadBlockLength { offset, .. }
            | WireError::UnsupportedLinkType { offset, .. }
            | WireError::UnknownInterface { offset, .. } => Some(*offset),
        }
    }
}
