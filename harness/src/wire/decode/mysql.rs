//! MySQL, one direction: packets read as sent until the compressed protocol starts, then
//! compressed frames (`length:3 sequence:1 uncompressed-length:3`) inflated with zlib or
//! zstd. The switch is recognised from the frames themselves, since the capability that
//! turns compression on is negotiated in the other direction: a frame whose payload is a
//! zlib or zstd stream, or exactly a chain of whole packets sent uncompressed.

use super::coding::{self, Inflater};
use super::{Encoding, Next, Out};
use crate::wire::canary::CanaryScan;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether `head` starts a MySQL session: the server's greeting (protocol 10) or a
/// client's first packet (sequence 1).
pub fn starts_session(head: &[u8]) -> bool {
    head.len() >= 5 && {
        let len = le24(head);
        (head[3] == 0 && head[4] == 0x0a && (20..=4096).contains(&len))
            || (head[3] == 1 && (32..=65536).contains(&len))
    }
}

fn le24(b: &[u8]) -> usize {
    usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stored,
    Zlib,
    Zstd,
}

/// The MySQL state of one direction.
pub struct Mysql {
    compressed: bool,
    /// Bytes at a boundary whose meaning is not known yet.
    held: Vec<u8>,
    /// A zstd-compressed frame, decoded when it is whole.
    zstd: Vec<u8>,
    /// Bytes of the current packet or frame payload still to come.
    remaining: usize,
    kind: Kind,
    inflater: Option<Inflater>,
    raw: CanaryScan,
    inner: CanaryScan,
}

impl Default for Mysql {
    fn default() -> Self {
        Mysql {
            compressed: false,
            held: Vec::new(),
            zstd: Vec::new(),
            remaining: 0,
            kind: Kind::Stored,
            inflater: None,
            raw: CanaryScan::default(),
            inner: CanaryScan::default(),
        }
    }
}

impl Mysql {
    /// The next bytes of the direction.
    pub fn feed(&mut self, out: &mut Out<'_>, data: &[u8]) -> Next {
        let mut d = data;
        while !d.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(d.len());
                self.payload(out, &d[..n]);
                self.remaining -= n;
                d = &d[n..];
                if self.remaining == 0 {
                    self.end_frame(out);
                }
                continue;
            }
            let n = (11 - self.held.len().min(11)).min(d.len());
            self.held.extend_from_slice(&d[..n]);
            d = &d[n..];
            self.boundary(out, false);
        }
        Next::Stay
    }

    /// At a packet or frame boundary with `held` bytes: decides what they start. Plain
    /// packet headers wait for 11 bytes (or their whole packet) so that the first
    /// compressed frame is recognised by its 7-byte header and what follows it.
    fn boundary(&mut self, out: &mut Out<'_>, end: bool) {
        loop {
            let h = &self.held;
            if h.len() < 4 || (h.len() < 7 && self.compressed) {
                if end {
                    let held = std::mem::take(&mut self.held);
                    out.scan(&mut self.raw, &held, None);
                }
                return;
            }
            let whole = 4 + le24(h);
            if self.compressed || (h.len() >= 11 && looks_compressed(h)) {
                if h.len() < 7 {
                    return;
                }
                self.compressed = true;
                let held = std::mem::take(&mut self.held);
                self.start_frame(&held[..7]);
                let rest = held[7..].to_vec();
                let n = self.remaining.min(rest.len());
                self.payload(out, &rest[..n]);
                self.remaining -= n;
                if self.remaining == 0 {
                    self.end_frame(out);
                }
                self.held = rest[n..].to_vec();
                if self.remaining > 0 || self.held.is_empty() {
                    return;
                }
                continue;
            }
            if h.len() >= whole {
                let held = std::mem::take(&mut self.held);
                out.scan(&mut self.raw, &held[..whole], None);
                self.held = held[whole..].to_vec();
                continue;
            }
            if h.len() < 11 && !end {
                return;
            }
            let held = std::mem::take(&mut self.held);
            out.scan(&mut self.raw, &held, None);
            self.remaining = whole - held.len();
            return;
        }
    }

    fn start_frame(&mut self, h: &[u8]) {
        self.remaining = le24(h);
        self.kind = if le24(&h[4..]) == 0 {
            Kind::Stored
        } else {
            Kind::Zlib
        };
        self.inflater = None;
        if self.remaining == 0 {
            self.kind = Kind::Stored;
        }
    }

    fn payload(&mut self, out: &mut Out<'_>, chunk: &[u8]) {
        if !self.compressed {
            out.scan(&mut self.raw, chunk, None);
            return;
        }
        if self.kind == Kind::Zlib
            && self.inflater.is_none()
            && self.zstd.is_empty()
            && chunk.starts_with(&ZSTD_MAGIC[..chunk.len().min(4)])
        {
            self.kind = Kind::Zstd;
        }
        let scan = &mut self.inner;
        match self.kind {
            Kind::Stored => out.scan(scan, chunk, None),
            Kind::Zstd => {
                self.zstd.extend_from_slice(chunk);
                if self.zstd.len() > out.limits.buffered {
                    out.found.partial = true;
                    self.zstd = Vec::new();
                    self.kind = Kind::Stored;
                }
            }
            Kind::Zlib => {
                let inflater = self
                    .inflater
                    .get_or_insert_with(|| Inflater::new(Some(false)));
                let mut sink =
                    |out: &mut Out<'_>, d: &[u8]| out.scan(scan, d, Some(Encoding::MysqlZlib));
                if inflater.push(out, chunk, &mut sink).is_err() {
                    out.found.partial = true;
                    self.kind = Kind::Stored;
                }
            }
        }
    }

    fn end_frame(&mut self, out: &mut Out<'_>) {
        if self.kind == Kind::Zstd {
            let held = std::mem::take(&mut self.zstd);
            let scan = &mut self.inner;
            let mut sink =
                |out: &mut Out<'_>, d: &[u8]| out.scan(scan, d, Some(Encoding::MysqlZstd));
            if coding::zstd(out, &held, &mut sink).is_err() {
                out.found.partial = true;
            }
        }
        self.inflater = None;
    }

    /// The direction ended.
    pub fn finish(&mut self, out: &mut Out<'_>) {
        if self.remaining == 0 {
            self.boundary(out, true);
        }
    }
}

/// Whether 11 bytes read as a packet header start a compressed frame instead.
fn looks_compressed(h: &[u8]) -> bool {
    let clen = le24(h);
    let ulen = le24(&h[4..]);
    if clen == 0 || clen > 1 << 24 {
        return false;
    }
    if ulen == 0 {
        // Stored: the payload is whole packets, the first one's header right here.
        let first = le24(&h[7..]) + 4;
        return first == clen || first + 4 <= clen;
    }
    let zlib = h[7] & 0x0f == 8 && (u16::from(h[7]) << 8 | u16::from(h[8])) % 31 == 0;
    (zlib || h[7..11] == ZSTD_MAGIC) && ulen <= 1 << 24
}
