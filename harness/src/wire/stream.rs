//! One direction of one flow, after reassembly: where TLS starts, where each TLS record
//! ends, which bytes are clear, what protocol they speak, and how many canaries they hold.
//!
//! A direction is in one of three modes:
//! - **plain**: bytes are clear. They are sniffed for a protocol and searched for
//!   canaries. Within the first `starttls_window` bytes every byte is also checked for
//!   the start of a TLS hello, so TLS after a clear preamble (MySQL or PostgreSQL
//!   SSLRequest, STARTTLS, HTTP CONNECT) is found, and TLS at offset 0 is the same case.
//! - **tls**: the record layer is walked header by header; record bodies are skipped in
//!   O(1) and never searched, so ciphertext cannot produce a canary hit. The first
//!   handshake message is collected across records and segments and, if it is a
//!   ClientHello, parsed.
//! - **resync**: the position of record boundaries is not known, because the flow
//!   started mid-stream or a gap broke the record framing. Up to `resync_window` bytes are
//!   held until a chain of two valid record headers (or a hello) pins the framing down.
//!   A mid-stream direction that shows no TLS framing within the window is clear.

use super::canary::{Canaries, CanaryScan};
use super::decode::{DecodeLimits, Decoder};
use super::reasm::Chunk;
use super::sniff::{self, Protocol, Sniff, Speaker};
use super::tls::{self, ClientHello, HANDSHAKE_PROBE, Probe, RECORD_HEADER};

/// The bounds that keep a direction's memory small.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes at the start of a direction in which a TLS hello is looked for.
    pub starttls_window: u64,
    /// Bytes held while looking for TLS record framing.
    pub resync_window: usize,
    /// The largest first handshake message collected.
    pub max_handshake: usize,
    /// How far the canary search may decode clear encodings.
    pub decode: DecodeLimits,
}

/// Shared, read-only context for every direction of one analysis.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The canaries to search for.
    pub canaries: &'a Canaries,
    /// Memory bounds.
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No byte seen yet.
    Fresh,
    Plain,
    Tls,
    Resync {
        after_tls: bool,
    },
}

#[derive(Debug, Default)]
struct Walker {
    hdr: [u8; RECORD_HEADER],
    hdr_len: usize,
    remaining: usize,
    content: u8,
    /// The first handshake message while it is being collected; `None` once done.
    handshake: Option<Vec<u8>>,
}

/// The analysis state of one direction.
#[derive(Debug)]
pub struct Stream {
    mode: Mode,
    /// Stream offset of the next byte (gaps included).
    pos: u64,
    /// A possible hello start cut off at the end of the previous chunk.
    held: [u8; HANDSHAKE_PROBE],
    held_len: usize,
    /// The canary search of the clear bytes, through their encodings.
    pub decoder: Decoder,
    sniff_buf: Vec<u8>,
    sniffed: Option<Sniff>,
    walker: Walker,
    resync_buf: Vec<u8>,
    resync_scan: usize,
    /// Canary occurrences found in clear bytes.
    pub hits: u64,
    /// Bytes judged clear.
    pub plain_bytes: u64,
    /// Bytes whose nature could not be decided (mid-stream data too short to tell).
    pub undecided_bytes: u64,
    /// Whether TLS record framing was established in this direction.
    pub tls_seen: bool,
    /// The ClientHello this direction sent, if any.
    pub hello: Option<ClientHello>,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            mode: Mode::Fresh,
            pos: 0,
            held: [0; HANDSHAKE_PROBE],
            held_len: 0,
            decoder: Decoder::default(),
            sniff_buf: Vec::new(),
            sniffed: None,
            walker: Walker::default(),
            resync_buf: Vec::new(),
            resync_scan: 0,
            hits: 0,
            plain_bytes: 0,
            undecided_bytes: 0,
            tls_seen: false,
            hello: None,
        }
    }
}

impl Stream {
    /// Consumes the next chunk of reassembled stream. `from_syn` tells whether offset 0
    /// is the real start of the direction (a SYN was seen) or a mid-stream pick-up.
    pub fn chunk(&mut self, cx: &Ctx<'_>, chunk: Chunk<'_>, from_syn: bool) {
        if self.mode == Mode::Fresh {
            let starts_clean = from_syn && matches!(chunk, Chunk::Data(_));
            self.mode = if starts_clean {
                Mode::Plain
            } else {
                Mode::Resync { after_tls: false }
            };
        }
        match chunk {
            Chunk::Data(data) => {
                let at = self.pos;
                self.pos += data.len() as u64;
                self.data(cx, data, at);
            }
            Chunk::Gap(n) => {
                self.pos += n;
                self.gap(cx, n);
            }
        }
    }

    fn data(&mut self, cx: &Ctx<'_>, data: &[u8], at: u64) {
        match self.mode {
            Mode::Fresh | Mode::Plain => self.plain(cx, data, at),
            Mode::Tls => self.tls(cx, data),
            Mode::Resync { .. } => self.resync(cx, data),
        }
    }

    /// The protocol recognised in this direction's clear bytes, and who spoke it.
    pub fn protocol(&self) -> Option<(Protocol, Speaker)> {
        match self.sniffed {
            Some(Sniff::Found(p, s)) => Some((p, s)),
            _ => None,
        }
    }

    /// Settles everything still pending at the end of the capture.
    pub fn finish(&mut self, cx: &Ctx<'_>) {
        match self.mode {
            Mode::Plain => self.flush_held(cx),
            Mode::Resync { after_tls } => self.settle(cx, after_tls),
            Mode::Fresh | Mode::Tls => {}
        }
        self.decoder.finish(cx.canaries, cx.limits.decode);
        self.hits = self.decoder.found.hits;
        self.end_sniffing();
    }

    fn plain(&mut self, cx: &Ctx<'_>, data: &[u8], at: u64) {
        let mut data = data;
        if self.held_len > 0 {
            match self.plain_after_held(cx, data) {
                Some(rest) => data = rest,
                None => return,
            }
        }
        let limit = cx.limits.starttls_window.saturating_sub(at) as usize;
        if limit == 0 {
            self.emit_plain(cx, data);
            return;
        }
        let (pos, probe) = tls::find_handshake_start(data, limit);
        self.emit_plain(cx, &data[..pos]);
        match probe {
            Probe::Yes => {
                self.start_tls();
                self.tls(cx, &data[pos..]);
            }
            Probe::Maybe => self.hold(&data[pos..]),
            Probe::No => {}
        }
    }

    /// Resolves a held partial hello start against the head of `data`. Returns the
    /// part of `data` still to be handled as clear, or `None` when all was consumed.
    fn plain_after_held<'d>(&mut self, cx: &Ctx<'_>, data: &'d [u8]) -> Option<&'d [u8]> {
        let h = self.held_len;
        let mut joint = [0u8; 2 * HANDSHAKE_PROBE];
        joint[..h].copy_from_slice(&self.held[..h]);
        let take = data.len().min(joint.len() - h);
        joint[h..h + take].copy_from_slice(&data[..take]);
        let joint = &joint[..h + take];
        self.held_len = 0;
        let (pos, probe) = tls::find_handshake_start(joint, h);
        match probe {
            Probe::Yes => {
                self.emit_plain(cx, &joint[..pos]);
                self.start_tls();
                self.tls(cx, &joint[pos..]);
                self.tls(cx, &data[take..]);
                None
            }
            // Only possible when `data` was too short to decide: it is all in `joint`.
            Probe::Maybe => {
                self.emit_plain(cx, &joint[..pos]);
                self.hold(&joint[pos..]);
                None
            }
            Probe::No => {
                self.emit_plain(cx, &joint[..h]);
                Some(data)
            }
        }
    }

    fn hold(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(HANDSHAKE_PROBE);
        self.held[..n].copy_from_slice(&bytes[..n]);
        self.held_len = n;
    }

    fn flush_held(&mut self, cx: &Ctx<'_>) {
        if self.held_len > 0 {
            let held = self.held;
            let n = self.held_len;
            self.held_len = 0;
            self.emit_plain(cx, &held[..n]);
        }
    }

    fn emit_plain(&mut self, cx: &Ctx<'_>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.plain_bytes += bytes.len() as u64;
        self.decoder.feed(cx.canaries, cx.limits.decode, bytes);
        self.hits = self.decoder.found.hits;
        if self.sniffed.is_none() {
            let room = sniff::SNIFF_LIMIT - self.sniff_buf.len();
            self.sniff_buf
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
            let verdict = sniff::sniff(&self.sniff_buf);
            if verdict != Sniff::NeedMore {
                self.sniffed = Some(verdict);
                self.sniff_buf = Vec::new();
            }
        }
    }

    fn end_sniffing(&mut self) {
        if self.sniffed.is_none() && !self.sniff_buf.is_empty() {
            self.sniffed = Some(Sniff::NotFound);
        }
        self.sniff_buf = Vec::new();
    }

    fn start_tls(&mut self) {
        self.mode = Mode::Tls;
        self.tls_seen = true;
        self.end_sniffing();
        self.walker = Walker {
            handshake: Some(Vec::new()),
            ..Walker::default()
        };
    }

    fn tls(&mut self, cx: &Ctx<'_>, data: &[u8]) {
        let mut d = data;
        while !d.is_empty() {
            let w = &mut self.walker;
            if w.remaining > 0 {
                let n = w.remaining.min(d.len());
                w.remaining -= n;
                if w.content == tls::CONTENT_HANDSHAKE && w.handshake.is_some() {
                    self.collect(cx, &d[..n]);
                }
                d = &d[n..];
                continue;
            }
            let n = (RECORD_HEADER - w.hdr_len).min(d.len());
            w.hdr[w.hdr_len..w.hdr_len + n].copy_from_slice(&d[..n]);
            w.hdr_len += n;
            d = &d[n..];
            if w.hdr_len < RECORD_HEADER {
                return;
            }
            w.hdr_len = 0;
            match tls::record_header(&w.hdr) {
                Some(len) => {
                    w.content = w.hdr[0];
                    w.remaining = len;
                    if w.content != tls::CONTENT_HANDSHAKE {
                        // The hello comes first; anything else means it was missed.
                        w.handshake = None;
                    }
                }
                None => {
                    let hdr = w.hdr;
                    self.enter_resync(true);
                    self.resync(cx, &hdr);
                    self.resync(cx, d);
                    return;
                }
            }
        }
    }

    /// Adds handshake record bytes to the first handshake message and parses it once whole.
    fn collect(&mut self, cx: &Ctx<'_>, bytes: &[u8]) {
        let Some(buf) = self.walker.handshake.as_mut() else {
            return;
        };
        if buf.len() + bytes.len() > cx.limits.max_handshake + 4 {
            self.walker.handshake = None;
            return;
        }
        buf.extend_from_slice(bytes);
        if buf.len() < 4 {
            return;
        }
        let len = usize::from(buf[1]) << 16 | usize::from(buf[2]) << 8 | usize::from(buf[3]);
        if buf[0] != 1 || len > cx.limits.max_handshake {
            self.walker.handshake = None;
        } else if buf.len() >= 4 + len {
            self.hello = tls::parse_client_hello(&buf[4..4 + len]);
            self.walker.handshake = None;
        }
    }

    fn enter_resync(&mut self, after_tls: bool) {
        self.mode = Mode::Resync { after_tls };
        self.walker = Walker::default();
        self.resync_buf.clear();
        self.resync_scan = 0;
    }

    fn resync(&mut self, cx: &Ctx<'_>, data: &[u8]) {
        let window = cx.limits.resync_window;
        let mut d = data;
        while !d.is_empty() {
            let Mode::Resync { after_tls } = self.mode else {
                let at = self.pos - d.len() as u64;
                return self.data(cx, d, at);
            };
            let take = (window - self.resync_buf.len().min(window))
                .min(d.len())
                .max(1);
            self.resync_buf.extend_from_slice(&d[..take]);
            d = &d[take..];
            if self.try_sync(cx, after_tls) {
                continue;
            }
            if self.resync_buf.len() >= window {
                self.window_full(cx, after_tls);
            }
        }
    }

    /// Looks for framing in the held bytes; switches mode and replays them when found.
    fn try_sync(&mut self, cx: &Ctx<'_>, after_tls: bool) -> bool {
        let buf = &self.resync_buf;
        let (hello_at, probe) = tls::find_handshake_start(buf, buf.len());
        let sync_at = if probe == Probe::Yes {
            Some(hello_at)
        } else if !after_tls && matches!(sniff::sniff(buf), Sniff::Found(..)) {
            // A recognised message start is treated like the start of the direction, so
            // TLS that follows a clear preamble is still found.
            let buf = std::mem::take(&mut self.resync_buf);
            self.mode = Mode::Plain;
            self.plain(cx, &buf, 0);
            return true;
        } else {
            match find_chain(buf, self.resync_scan) {
                Chain::At(p) => Some(p),
                Chain::Wait(p) | Chain::None(p) => {
                    self.resync_scan = p;
                    None
                }
            }
        };
        let Some(p) = sync_at else { return false };
        let buf = std::mem::take(&mut self.resync_buf);
        // Bytes before the first header found are the tail of a record already under way.
        self.start_tls();
        self.tls(cx, &buf[p..]);
        true
    }

    fn window_full(&mut self, cx: &Ctx<'_>, after_tls: bool) {
        if after_tls {
            // Still inside a TLS stream that lost framing: these bytes are never clear.
            let keep = self
                .resync_buf
                .split_off(self.resync_scan.min(self.resync_buf.len()));
            self.resync_buf = keep;
            self.resync_scan = 0;
        } else {
            // A whole window of mid-stream bytes without TLS framing is clear text.
            let buf = std::mem::take(&mut self.resync_buf);
            self.mode = Mode::Plain;
            self.plain(cx, &buf, u64::MAX);
        }
    }

    fn gap(&mut self, cx: &Ctx<'_>, n: u64) {
        match self.mode {
            Mode::Fresh => self.mode = Mode::Resync { after_tls: false },
            Mode::Plain => {
                self.flush_held(cx);
                self.decoder.gap();
                self.end_sniffing();
            }
            Mode::Tls => {
                let w = &mut self.walker;
                if w.hdr_len == 0 && w.remaining as u64 >= n {
                    // The gap lies inside one record body: framing survives.
                    w.remaining -= n as usize;
                    if w.content == tls::CONTENT_HANDSHAKE {
                        w.handshake = None;
                    }
                } else {
                    self.enter_resync(true);
                }
            }
            Mode::Resync { after_tls } => {
                self.settle(cx, after_tls);
                self.mode = Mode::Resync { after_tls };
                self.resync_buf.clear();
                self.resync_scan = 0;
            }
        }
    }

    /// Decides what held mid-stream bytes were when no more contiguous bytes will come.
    fn settle(&mut self, cx: &Ctx<'_>, after_tls: bool) {
        let buf = std::mem::take(&mut self.resync_buf);
        self.resync_scan = 0;
        if after_tls || buf.is_empty() {
            return;
        }
        if chain_to_end(&buf) {
            self.tls_seen = true;
            return;
        }
        // A canary in the bytes, or a recognised protocol, proves they were clear.
        let hits = CanaryScan::default().scan(cx.canaries, &buf);
        if hits > 0 || matches!(sniff::sniff(&buf), Sniff::Found(..)) {
            self.mode = Mode::Plain;
            self.decoder.gap();
            self.emit_plain(cx, &buf);
        } else {
            self.undecided_bytes += buf.len() as u64;
        }
    }
}

/// The outcome of looking for two chained record headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// Framing found: a record starts here and the next header is valid too.
    At(usize),
    /// A candidate starts here but its successor is not captured yet.
    Wait(usize),
    /// No candidate; scanning may resume from here.
    None(usize),
}

fn find_chain(buf: &[u8], from: usize) -> Chain {
    let mut p = from;
    while p + RECORD_HEADER <= buf.len() {
        if let Some(len) = tls::record_header(&buf[p..]) {
            let next = p + RECORD_HEADER + len;
            if next + RECORD_HEADER > buf.len() {
                return Chain::Wait(p);
            }
            if tls::record_header(&buf[next..]).is_some() {
                return Chain::At(p);
            }
        }
        p += 1;
    }
    Chain::None(p)
}

/// At the end of the data: is there a header near the start from which every header
/// follows validly until the last record runs off the end?
fn chain_to_end(buf: &[u8]) -> bool {
    let first = buf.len().min(tls::MAX_RECORD_BODY + RECORD_HEADER);
    (0..first).any(|start| {
        let mut p = start;
        let mut headers = 0;
        while p + RECORD_HEADER <= buf.len() {
            match tls::record_header(&buf[p..]) {
                Some(len) => {
                    headers += 1;
                    p += RECORD_HEADER + len;
                }
                None => return false,
            }
        }
        headers > 0 && p >= buf.len()
    })
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
