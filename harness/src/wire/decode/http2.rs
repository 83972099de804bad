//! HTTP/2 frames of one direction (h2c: prior knowledge or an HTTP/1.1 upgrade): header
//! blocks (HEADERS, PUSH_PROMISE and CONTINUATION) through HPACK, and DATA per stream,
//! decompressed when the stream's headers name a content coding.

use std::collections::HashMap;

use super::coding::{self, Coding};
use super::hpack::Hpack;
use super::text::value_extras;
use super::{Encoding, Next, Out};
use crate::wire::canary::CanaryScan;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams with a body being searched at once; more are not followed (scan partial).
const MAX_STREAMS: usize = 256;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const PADDED: u8 = 8;
const PRIORITY: u8 = 0x20;

/// Whether `head` starts with a SETTINGS frame on stream 0, as a server's side of an
/// HTTP/2 connection does.
pub fn starts_with_settings(head: &[u8]) -> bool {
    head.len() >= 9 && {
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]);
        head[3] == 4
            && head[4] & !1 == 0
            && head[5..9] == [0; 4]
            && len.is_multiple_of(6)
            && len <= 16384
    }
}

enum Body {
    Plain(CanaryScan),
    Coded(coding::Body),
}

/// The HTTP/2 state of one direction.
pub struct Http2 {
    /// Preface bytes still to skip.
    skip: usize,
    header: [u8; 9],
    header_len: usize,
    /// The current frame's payload, when it is one that is read whole.
    payload: Vec<u8>,
    /// Payload bytes of the current frame still to come.
    remaining: usize,
    /// A header block being collected across CONTINUATION frames.
    block: Vec<u8>,
    block_stream: u32,
    block_end_stream: bool,
    hpack: Option<Hpack>,
    streams: HashMap<u32, Body>,
    /// Content codings seen in header blocks, by stream, for the DATA that follows.
    codings: HashMap<u32, Coding>,
}

impl Http2 {
    /// A direction that still has `skip` preface bytes to pass.
    pub fn new(skip: usize) -> Http2 {
        Http2 {
            skip,
            header: [0; 9],
            header_len: 0,
            payload: Vec::new(),
            remaining: 0,
            block: Vec::new(),
            block_stream: 0,
            block_end_stream: false,
            hpack: None,
            streams: HashMap::new(),
            codings: HashMap::new(),
        }
    }

    fn frame(&self) -> (usize, u8, u8, u32) {
        let h = &self.header;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        (len, h[3], h[4], stream)
    }

    /// The next bytes of the direction.
    pub fn feed(&mut self, out: &mut Out<'_>, data: &[u8]) -> Next {
        let mut d = data;
        let skip = self.skip.min(d.len());
        self.skip -= skip;
        d = &d[skip..];
        while !d.is_empty() {
            if self.header_len < 9 {
                let n = (9 - self.header_len).min(d.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&d[..n]);
                self.header_len += n;
                d = &d[n..];
                if self.header_len < 9 {
                    break;
                }
                let (len, _, _, _) = self.frame();
                if len > out.limits.buffered {
                    return Next::Lost {
                        at: data.len() - d.len(),
                    };
                }
                self.remaining = len;
                self.payload.clear();
            }
            let n = self.remaining.min(d.len());
            self.payload.extend_from_slice(&d[..n]);
            self.remaining -= n;
            d = &d[n..];
            if self.remaining == 0 {
                self.header_len = 0;
                let payload = std::mem::take(&mut self.payload);
                if !self.complete(out, &payload) {
                    return Next::Lost {
                        at: data.len() - d.len(),
                    };
                }
                self.payload = payload;
            }
        }
        Next::Stay
    }

    /// Handles one whole frame; false when the framing cannot be trusted any more.
    fn complete(&mut self, out: &mut Out<'_>, p: &[u8]) -> bool {
        let (_, ty, flags, stream) = self.frame();
        let unpad = |p: &[u8], extra: usize| -> Option<Vec<u8>> {
            let (pad, start) = if flags & PADDED != 0 {
                (usize::from(*p.first()?), 1)
            } else {
                (0, 0)
            };
            let body = p.get(start + extra..p.len().checked_sub(pad)?)?;
            Some(body.to_vec())
        };
        match ty {
            DATA => match unpad(p, 0) {
                Some(body) => self.data(out, stream, &body, flags & END_STREAM != 0),
                None => return false,
            },
            HEADERS | PUSH_PROMISE => {
                let extra = match ty {
                    HEADERS if flags & PRIORITY != 0 => 5,
                    HEADERS => 0,
                    _ => 4,
                };
                let Some(fragment) = unpad(p, extra) else {
                    return false;
                };
                self.block = fragment;
                self.block_stream = stream;
                self.block_end_stream = ty == HEADERS && flags & END_STREAM != 0;
                if flags & END_HEADERS != 0 {
                    return self.header_block(out);
                }
            }
            CONTINUATION => {
                self.block.extend_from_slice(p);
                if self.block.len() > out.limits.buffered {
                    return false;
                }
                if flags & END_HEADERS != 0 {
                    return self.header_block(out);
                }
            }
            _ => {}
        }
        true
    }

    fn header_block(&mut self, out: &mut Out<'_>) -> bool {
        let block = std::mem::take(&mut self.block);
        let limit = out.limits.hpack_table;
        let hpack = self.hpack.get_or_insert_with(|| Hpack::new(limit));
        let mut fields = Vec::new();
        let decoded = hpack.block(&block, &mut |n, v| fields.push((n.to_vec(), v.to_vec())));
        for (name, value) in &fields {
            // Indexed fields repeat table entries for one byte each: they count as output.
            if !out.charge(name.len() + value.len()) {
                return false;
            }
            let hits = CanaryScan::default().scan(out.set, name)
                + CanaryScan::default().scan(out.set, value);
            out.found.add(hits, Some(Encoding::Hpack));
            value_extras(out, value);
            if name.as_slice() == b"content-encoding" {
                match Coding::parse(value) {
                    Ok(Some(c)) => {
                        self.codings.insert(self.block_stream, c);
                    }
                    Ok(None) => {}
                    Err(()) => out.found.partial = true,
                }
            }
        }
        if self.block_end_stream {
            self.end_stream(out, self.block_stream);
        }
        decoded.is_ok()
    }

    fn data(&mut self, out: &mut Out<'_>, stream: u32, body: &[u8], end: bool) {
        if !self.streams.contains_key(&stream) {
            if self.streams.len() >= MAX_STREAMS {
                out.found.partial = true;
                return;
            }
            let b = match self.codings.remove(&stream) {
                Some(c) => Body::Coded(coding::Body::new(c)),
                None => Body::Plain(CanaryScan::default()),
            };
            self.streams.insert(stream, b);
        }
        match self.streams.get_mut(&stream) {
            Some(Body::Plain(scan)) => out.scan(scan, body, Some(Encoding::Http2Data)),
            Some(Body::Coded(b)) => b.feed(out, body),
            None => {}
        }
        if end {
            self.end_stream(out, stream);
        }
    }

    fn end_stream(&mut self, out: &mut Out<'_>, stream: u32) {
        if let Some(Body::Coded(mut b)) = self.streams.remove(&stream) {
            b.finish(out);
        }
        self.codings.remove(&stream);
    }

    /// The direction ended: bodies still open are settled.
    pub fn finish(&mut self, out: &mut Out<'_>) {
        let open: Vec<u32> = self.streams.keys().copied().collect();
        for s in open {
            self.end_stream(out, s);
        }
    }
}
