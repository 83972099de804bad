//! WebSocket frames (RFC 6455) of one direction: client payloads unmasked, messages with
//! RSV1 set inflated as permessage-deflate (RFC 7692) with the window kept across
//! messages, which also reads streams whose sender resets its context.

use super::coding::Inflater;
use super::{Encoding, Next, Out};
use crate::wire::canary::CanaryScan;

/// The WebSocket state of one direction.
pub struct WebSocket {
    masked_side: bool,
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    mask: Option<[u8; 4]>,
    offset: usize,
    fin: bool,
    control: bool,
    /// The current message is compressed.
    deflated: bool,
    inflater: Option<Inflater>,
    scan: CanaryScan,
}

impl WebSocket {
    /// A direction whose frames are masked (the client's) or not.
    pub fn new(masked: bool) -> WebSocket {
        WebSocket {
            masked_side: masked,
            header: Vec::with_capacity(14),
            remaining: 0,
            mask: None,
            offset: 0,
            fin: false,
            control: false,
            deflated: false,
            inflater: None,
            scan: CanaryScan::default(),
        }
    }

    /// The header's length once its first two bytes are known.
    fn header_len(&self) -> Option<usize> {
        let b1 = *self.header.get(1)?;
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Some(2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 })
    }

    /// The next bytes of the direction.
    pub fn feed(&mut self, out: &mut Out<'_>, data: &[u8]) -> Next {
        let mut d = data;
        while !d.is_empty() {
            if self.remaining == 0 && !self.in_payload() {
                self.header.push(d[0]);
                d = &d[1..];
                let whole = self.header_len() == Some(self.header.len());
                if whole && !self.start_frame(out) {
                    return Next::Lost {
                        at: data.len() - d.len(),
                    };
                }
                continue;
            }
            let n = (self.remaining.min(d.len() as u64)) as usize;
            let mut chunk = d[..n].to_vec();
            if let Some(key) = self.mask {
                for (i, b) in chunk.iter_mut().enumerate() {
                    *b ^= key[(self.offset + i) % 4];
                }
            }
            self.offset += n;
            self.remaining -= n as u64;
            d = &d[n..];
            self.payload(out, &chunk);
            if self.remaining == 0 {
                self.end_frame(out);
            }
        }
        Next::Stay
    }

    fn in_payload(&self) -> bool {
        self.header.is_empty() && self.remaining > 0
    }

    fn start_frame(&mut self, out: &mut Out<'_>) -> bool {
        let h = std::mem::take(&mut self.header);
        let (b0, b1) = (h[0], h[1]);
        let opcode = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        if masked != self.masked_side || !matches!(opcode, 0..=2 | 8..=10) {
            return false;
        }
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes(h[2..10].try_into().unwrap_or([0xff; 8])),
            n => u64::from(n),
        };
        self.mask = masked.then(|| {
            let k = &h[h.len() - 4..];
            [k[0], k[1], k[2], k[3]]
        });
        self.offset = 0;
        self.fin = b0 & 0x80 != 0;
        self.control = opcode >= 8;
        if opcode == 1 || opcode == 2 {
            self.deflated = b0 & 0x40 != 0;
            self.scan.reset();
        }
        self.remaining = len;
        if len == 0 {
            self.end_frame(out);
        }
        true
    }

    fn payload(&mut self, out: &mut Out<'_>, chunk: &[u8]) {
        if self.control || !self.deflated {
            let mut scan = CanaryScan::default();
            let s = if self.control {
                &mut scan
            } else {
                &mut self.scan
            };
            out.scan(s, chunk, Some(Encoding::WebSocket));
            return;
        }
        let scan = &mut self.scan;
        let inflater = self
            .inflater
            .get_or_insert_with(|| Inflater::new(Some(true)));
        let mut sink =
            |out: &mut Out<'_>, d: &[u8]| out.scan(scan, d, Some(Encoding::PermessageDeflate));
        if inflater.push(out, chunk, &mut sink).is_err() {
            out.found.partial = true;
            self.deflated = false;
        }
    }

    fn end_frame(&mut self, out: &mut Out<'_>) {
        if self.fin && !self.control && self.deflated {
            // The sender removed the empty stored block that ends each message.
            self.payload(out, &[0, 0, 0xff, 0xff]);
        }
    }

    /// The direction ended.
    pub fn finish(&mut self, _out: &mut Out<'_>) {}
}
