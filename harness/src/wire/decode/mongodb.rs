//! MongoDB, one direction: messages read as sent, except `OP_COMPRESSED` (opcode 2012),
//! whose body is decompressed (snappy, zlib or zstd) and searched instead. A compressed
//! message is held whole (up to the `buffered` limit) because snappy needs all of it.

use super::coding::{self, Inflater};
use super::{Encoding, Next, Out};
use crate::wire::canary::CanaryScan;

const OP_COMPRESSED: u32 = 2012;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Whether `head` starts a MongoDB message with a known opcode and a sane length.
pub fn starts_message(head: &[u8]) -> bool {
    head.len() >= 16
        && (21..=48 << 20).contains(&le32(head, 0))
        && matches!(le32(head, 12), 1 | 2004 | 2012 | 2013)
}

/// The MongoDB state of one direction.
#[derive(Default)]
pub struct Mongodb {
    header: Vec<u8>,
    /// Bytes of the current message still to come.
    remaining: usize,
    /// The current compressed message's body, or `None` for a message read as sent.
    compressed: Option<Vec<u8>>,
    raw: CanaryScan,
}

impl Mongodb {
    /// The next bytes of the direction.
    pub fn feed(&mut self, out: &mut Out<'_>, data: &[u8]) -> Next {
        let mut d = data;
        while !d.is_empty() {
            if self.remaining == 0 {
                let n = (16 - self.header.len()).min(d.len());
                self.header.extend_from_slice(&d[..n]);
                d = &d[n..];
                if self.header.len() < 16 {
                    break;
                }
                let h = std::mem::take(&mut self.header);
                let len = le32(&h, 0) as usize;
                if len < 16 {
                    return Next::Lost {
                        at: data.len() - d.len(),
                    };
                }
                self.remaining = len - 16;
                if le32(&h, 12) == OP_COMPRESSED {
                    self.compressed = Some(Vec::new());
                    if self.remaining > out.limits.buffered {
                        out.found.partial = true;
                        self.compressed = None;
                    }
                } else {
                    self.compressed = None;
                    out.scan(&mut self.raw, &h, None);
                }
                if self.remaining == 0 {
                    self.end_message(out);
                }
                continue;
            }
            let n = self.remaining.min(d.len());
            match &mut self.compressed {
                Some(body) => body.extend_from_slice(&d[..n]),
                None => out.scan(&mut self.raw, &d[..n], None),
            }
            self.remaining -= n;
            d = &d[n..];
            if self.remaining == 0 {
                self.end_message(out);
            }
        }
        Next::Stay
    }

    fn end_message(&mut self, out: &mut Out<'_>) {
        let Some(body) = self.compressed.take() else {
            return;
        };
        // originalOpcode:4, uncompressedSize:4, compressorId:1, then the message.
        if body.len() < 9 {
            out.found.partial = true;
            return;
        }
        let size = le32(&body, 4) as u64;
        let data = &body[9..];
        let mut scan = CanaryScan::default();
        let ok = match body[8] {
            0 => {
                out.scan(&mut scan, data, None);
                true
            }
            1 => snappy(out, data, size, &mut scan),
            2 => {
                let mut sink = |out: &mut Out<'_>, d: &[u8]| {
                    out.scan(&mut scan, d, Some(Encoding::MongodbZlib))
                };
                Inflater::new(Some(false))
                    .push(out, data, &mut sink)
                    .is_ok()
            }
            3 => {
                let mut sink = |out: &mut Out<'_>, d: &[u8]| {
                    out.scan(&mut scan, d, Some(Encoding::MongodbZstd))
                };
                coding::zstd(out, data, &mut sink).is_ok()
            }
            _ => false,
        };
        if !ok {
            out.found.partial = true;
        }
    }

    /// The direction ended.
    pub fn finish(&mut self, out: &mut Out<'_>) {
        let header = std::mem::take(&mut self.header);
        out.scan(&mut self.raw, &header, None);
    }
}

fn snappy(out: &mut Out<'_>, data: &[u8], declared: u64, scan: &mut CanaryScan) -> bool {
    let Ok(len) = snap::raw::decompress_len(data) else {
        return false;
    };
    if len as u64 != declared || len > out.limits.window || !out.charge(len) {
        return false;
    }
    match snap::raw::Decoder::new().decompress_vec(data) {
        Ok(plain) => {
            out.scan(scan, &plain, Some(Encoding::MongodbSnappy));
            true
        }
        Err(_) => false,
    }
}
