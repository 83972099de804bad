//! Finding the canary where a reader of the capture recovers it without any key: through
//! the clear encodings of the protocols a direction speaks.
//!
//! A [`Decoder`] owns the canary search of one direction's clear bytes. It looks at the
//! first bytes to learn the protocol and then searches the protocol's *decoded view*:
//! - HTTP/1.x: the start line and headers as sent, header values also percent-decoded and
//!   base64-decoded; bodies de-chunked and decompressed (gzip, deflate, br, zstd), form
//!   bodies percent-decoded; an upgrade continues as WebSocket or HTTP/2;
//! - HTTP/2 (h2c): HPACK header blocks decoded (Huffman literals, dynamic table) and
//!   DATA frames per stream, decompressed as their `content-encoding` says;
//! - WebSocket: unmasked frame payloads, permessage-deflate inflated;
//! - MySQL: the compressed protocol's frames inflated (zlib, zstd);
//! - MongoDB: `OP_COMPRESSED` messages decompressed (snappy, zlib, zstd);
//! - anything else: the bytes as they are, as before.
//!
//! `canary_hits` counts occurrences in that view: a canary split over two HTTP chunks is
//! found once, a gzip body's canary is counted in the inflated text only.
//!
//! Memory is bounded per direction by [`DecodeLimits`]: a declared compression window,
//! buffered input or decoded output beyond them is not decoded, and the direction's scan
//! is then `partial`, which can never support an "absent" verdict. TLS record bodies never
//! reach a decoder (the stream analysis hands over clear bytes only).

mod base64;
mod coding;
mod hpack;
mod http1;
mod http2;
mod huffman;
mod huffman_table;
mod mongodb;
mod mysql;
mod text;
mod websocket;

use super::canary::{Canaries, CanaryScan};

/// How far decoding may go in one direction of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest compression window (LZ77 history) a decoder may allocate: a brotli or
    /// zstd stream that declares a larger one is not decoded.
    pub window: usize,
    /// The most compressed or framed bytes held at once (a zstd body, an `OP_COMPRESSED`
    /// message, an HPACK header block).
    pub buffered: usize,
    /// The most decoded bytes produced per direction: a decompression bomb stops here.
    pub output: u64,
    /// The largest HPACK dynamic table followed.
    pub hpack_table: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            window: 16 << 20,
            buffered: 1 << 20,
            output: 256 << 20,
            hpack_table: 64 << 10,
        }
    }
}

/// An encoding the canary was recovered through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// HTTP/1.1 `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: deflate` (zlib or raw).
    Deflate,
    /// `Content-Encoding: br`.
    Brotli,
    /// `Content-Encoding: zstd`.
    Zstd,
    /// Percent-encoding in a URL, header value or form body.
    Percent,
    /// A base64 header value (`Authorization: Basic`).
    Base64,
    /// An HTTP/2 HPACK header block.
    Hpack,
    /// HTTP/2 DATA frames.
    Http2Data,
    /// WebSocket frames (client frames unmasked).
    WebSocket,
    /// WebSocket permessage-deflate.
    PermessageDeflate,
    /// MySQL compressed protocol, zlib.
    MysqlZlib,
    /// MySQL compressed protocol, zstd.
    MysqlZstd,
    /// MongoDB `OP_COMPRESSED`, snappy.
    MongodbSnappy,
    /// MongoDB `OP_COMPRESSED`, zlib.
    MongodbZlib,
    /// MongoDB `OP_COMPRESSED`, zstd.
    MongodbZstd,
}

/// Every encoding, in the order the JSON lists them.
pub const ENCODINGS: [Encoding; 16] = [
    Encoding::Chunked,
    Encoding::Gzip,
    Encoding::Deflate,
    Encoding::Brotli,
    Encoding::Zstd,
    Encoding::Percent,
    Encoding::Base64,
    Encoding::Hpack,
    Encoding::Http2Data,
    Encoding::WebSocket,
    Encoding::PermessageDeflate,
    Encoding::MysqlZlib,
    Encoding::MysqlZstd,
    Encoding::MongodbSnappy,
    Encoding::MongodbZlib,
    Encoding::MongodbZstd,
];

impl Encoding {
    /// The spelling in `canary_encodings`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Chunked => "chunked",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Percent => "percent",
            Encoding::Base64 => "base64",
            Encoding::Hpack => "hpack",
            Encoding::Http2Data => "http2-data",
            Encoding::WebSocket => "websocket",
            Encoding::PermessageDeflate => "permessage-deflate",
            Encoding::MysqlZlib => "mysql-zlib",
            Encoding::MysqlZstd => "mysql-zstd",
            Encoding::MongodbSnappy => "mongodb-snappy",
            Encoding::MongodbZlib => "mongodb-zlib",
            Encoding::MongodbZstd => "mongodb-zstd",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// What a direction's search found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Findings {
    /// Canary occurrences in the decoded view.
    pub hits: u64,
    /// Encodings through which at least one was recovered (a bit per [`Encoding`]).
    encodings: u32,
    /// Something that may hold the canary could not be decoded.
    pub partial: bool,
}

impl Findings {
    /// Counts hits recovered through `via` (none: read as sent).
    pub fn add(&mut self, hits: u64, via: Option<Encoding>) {
        self.hits += hits;
        if let (true, Some(e)) = (hits > 0, via) {
            self.encodings |= e.bit();
        }
    }

    /// The encodings hits were recovered through, in [`ENCODINGS`] order.
    pub fn encodings(&self) -> impl Iterator<Item = Encoding> + '_ {
        ENCODINGS
            .into_iter()
            .filter(|e| self.encodings & e.bit() != 0)
    }

    /// The JSON's `canary_scan`.
    pub fn scan_state(&self) -> super::CanaryScanState {
        if self.partial {
            super::CanaryScanState::Partial
        } else {
            super::CanaryScanState::Complete
        }
    }

    /// Merges another direction's findings.
    pub fn merge(&mut self, other: &Findings) {
        self.hits += other.hits;
        self.encodings |= other.encodings;
        self.partial |= other.partial;
    }
}

/// What a protocol decoder needs from its direction: the canaries, the limits, and where
/// to count.
pub(crate) struct Out<'a> {
    /// The canaries.
    pub set: &'a Canaries,
    /// The limits.
    pub limits: DecodeLimits,
    /// The direction's findings.
    pub found: &'a mut Findings,
    /// Decoded bytes produced so far in this direction.
    pub produced: &'a mut u64,
}

impl Out<'_> {
    /// Scans `data` with `scan` and counts its hits as recovered through `via`.
    pub fn scan(&mut self, scan: &mut CanaryScan, data: &[u8], via: Option<Encoding>) {
        let hits = scan.scan(self.set, data);
        self.found.add(hits, via);
    }

    /// Charges `n` decoded bytes to the output budget; false (and the scan partial) once
    /// the budget is spent.
    pub fn charge(&mut self, n: usize) -> bool {
        *self.produced = self.produced.saturating_add(n as u64);
        if *self.produced > self.limits.output {
            self.found.partial = true;
            false
        } else {
            true
        }
    }
}

/// Where a protocol decoder hands over: the rest of the direction speaks something else.
pub(crate) enum Next {
    /// Keep going.
    Stay,
    /// From `at` on, the bytes are WebSocket frames (`masked` from the client).
    WebSocket { at: usize, masked: bool },
    /// From `at` on, the bytes are HTTP/2 frames, after `skip` more bytes of the
    /// client's connection preface.
    Http2 { at: usize, skip: usize },
    /// The framing was lost at `at`: search the rest as it is, and say the scan is partial.
    Lost { at: usize },
}

enum State {
    /// The first bytes, held until the protocol is known.
    Detect(Vec<u8>),
    Raw,
    Http1(Box<http1::Http1>),
    Http2(Box<http2::Http2>),
    WebSocket(Box<websocket::WebSocket>),
    Mysql(Box<mysql::Mysql>),
    Mongodb(Box<mongodb::Mongodb>),
}

/// How many first bytes are enough to recognise every protocol decoded here.
const DETECT: usize = 24;

/// The canary search of one direction's clear bytes.
pub struct Decoder {
    state: State,
    raw: CanaryScan,
    /// What was found.
    pub found: Findings,
    produced: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("found", &self.found)
            .finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Detect(Vec::new()),
            raw: CanaryScan::default(),
            found: Findings::default(),
            produced: 0,
        }
    }
}

impl Decoder {
    /// Takes the next clear bytes of the direction.
    pub fn feed(&mut self, set: &Canaries, limits: DecodeLimits, data: &[u8]) {
        if set.is_empty() || data.is_empty() {
            return;
        }
        if let State::Detect(head) = &mut self.state {
            head.extend_from_slice(data);
            if head.len() < DETECT && !obviously_raw(head) {
                return;
            }
            let head = std::mem::take(head);
            self.state = detect(&head);
            return self.run(set, limits, &head);
        }
        self.run(set, limits, data);
    }

    fn run(&mut self, set: &Canaries, limits: DecodeLimits, data: &[u8]) {
        let mut out = Out {
            set,
            limits,
            found: &mut self.found,
            produced: &mut self.produced,
        };
        let mut data = data;
        loop {
            let next = match &mut self.state {
                State::Detect(_) | State::Raw => {
                    out.scan(&mut self.raw, data, None);
                    return;
                }
                State::Http1(h) => h.feed(&mut out, data),
                State::Http2(h) => h.feed(&mut out, data),
                State::WebSocket(w) => w.feed(&mut out, data),
                State::Mysql(m) => m.feed(&mut out, data),
                State::Mongodb(m) => m.feed(&mut out, data),
            };
            let (state, at) = match next {
                Next::Stay => return,
                Next::WebSocket { at, masked } => (
                    State::WebSocket(Box::new(websocket::WebSocket::new(masked))),
                    at,
                ),
                Next::Http2 { at, skip } => (State::Http2(Box::new(http2::Http2::new(skip))), at),
                Next::Lost { at } => {
                    out.found.partial = true;
                    (State::Raw, at)
                }
            };
            self.state = state;
            data = &data[at.min(data.len())..];
        }
    }

    /// Bytes are missing here: the search cannot join what comes next to what came before,
    /// and framing is lost.
    pub fn gap(&mut self) {
        self.raw.reset();
        match self.state {
            State::Detect(_) | State::Raw => self.state = State::Raw,
            _ => {
                self.found.partial = true;
                self.state = State::Raw;
            }
        }
    }

    /// The direction ended: settles what was held.
    pub fn finish(&mut self, set: &Canaries, limits: DecodeLimits) {
        if let State::Detect(head) = &mut self.state {
            let head = std::mem::take(head);
            self.state = detect(&head);
            self.run(set, limits, &head);
        }
        let mut out = Out {
            set,
            limits,
            found: &mut self.found,
            produced: &mut self.produced,
        };
        match &mut self.state {
            State::Http1(h) => h.finish(&mut out),
            State::Http2(h) => h.finish(&mut out),
            State::WebSocket(w) => w.finish(&mut out),
            State::Mysql(m) => m.finish(&mut out),
            State::Mongodb(m) => m.finish(&mut out),
            State::Detect(_) | State::Raw => {}
        }
        self.state = State::Raw;
    }
}

/// Bytes that cannot start any protocol decoded here need not wait for more.
fn obviously_raw(head: &[u8]) -> bool {
    matches!(detect_partial(head), Some(false))
}

/// Whether `head` can still become a decoded protocol: `Some(false)` when it cannot.
fn detect_partial(head: &[u8]) -> Option<bool> {
    let plausible = http1::could_start(head)
        || head.starts_with(&http2::PREFACE[..head.len().min(http2::PREFACE.len())])
        || head.len() < 16;
    if plausible { None } else { Some(false) }
}

fn detect(head: &[u8]) -> State {
    if head.starts_with(http2::PREFACE) {
        State::Http2(Box::new(http2::Http2::new(http2::PREFACE.len())))
    } else if http1::starts_message(head) {
        State::Http1(Box::default())
    } else if http2::starts_with_settings(head) {
        State::Http2(Box::new(http2::Http2::new(0)))
    } else if mongodb::starts_message(head) {
        State::Mongodb(Box::default())
    } else if mysql::starts_session(head) {
        State::Mysql(Box::default())
    } else {
        State::Raw
    }
}

#[cfg(test)]
mod tests;
