//! Bounded decompressors: DEFLATE (zlib, raw, gzip) and brotli stream as bytes arrive;
//! zstd input is held (up to the `buffered` limit) and decoded when it ends. Every decoded
//! byte is charged to the direction's output budget, and windows larger than the limit
//! are refused before anything is allocated for them.

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

use super::{Encoding, Out};
use crate::wire::canary::CanaryScan;

/// Decoded bytes produced per call into a decompressor.
const STEP: usize = 16 * 1024;

/// A content coding the analyzer decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// gzip (RFC 1952).
    Gzip,
    /// zlib (RFC 1950), or raw DEFLATE as some servers send for `deflate`.
    Deflate,
    /// brotli (RFC 7932).
    Brotli,
    /// Zstandard (RFC 8878).
    Zstd,
}

impl Coding {
    /// Reads a `Content-Encoding` token: `Ok(None)` for identity, `Err` when unknown.
    pub fn parse(token: &[u8]) -> Result<Option<Coding>, ()> {
        match token.trim_ascii().to_ascii_lowercase().as_slice() {
            b"" | b"identity" => Ok(None),
            b"gzip" | b"x-gzip" => Ok(Some(Coding::Gzip)),
            b"deflate" => Ok(Some(Coding::Deflate)),
            b"br" => Ok(Some(Coding::Brotli)),
            b"zstd" => Ok(Some(Coding::Zstd)),
            _ => Err(()),
        }
    }

    /// The encoding hits are recovered through.
    pub fn encoding(self) -> Encoding {
        match self {
            Coding::Gzip => Encoding::Gzip,
            Coding::Deflate => Encoding::Deflate,
            Coding::Brotli => Encoding::Brotli,
            Coding::Zstd => Encoding::Zstd,
        }
    }
}

/// Receives decoded bytes.
pub type Sink<'s> = dyn FnMut(&mut Out<'_>, &[u8]) + 's;

/// A streaming DEFLATE decoder (zlib or raw, told apart by the first two bytes).
pub struct Inflater {
    state: Option<Box<InflateState>>,
    /// The first byte, held until the second tells zlib from raw DEFLATE.
    first: Option<u8>,
    raw: Option<bool>,
    ended: bool,
    buf: Vec<u8>,
}

impl Inflater {
    /// A decoder; `raw` fixes the format, `None` tells it from the first bytes.
    pub fn new(raw: Option<bool>) -> Inflater {
        Inflater {
            state: None,
            first: None,
            raw,
            ended: false,
            buf: Vec::new(),
        }
    }

    /// Inflates `input`; `Err` when the stream is corrupt or the budget is spent.
    pub fn push(&mut self, out: &mut Out<'_>, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ()> {
        if self.ended || input.is_empty() {
            return Ok(());
        }
        let joined;
        let input = match self.first.take() {
            Some(b) if self.state.is_none() => {
                joined = [&[b][..], input].concat();
                &joined[..]
            }
            _ => input,
        };
        if self.state.is_none() && self.raw.is_none() && input.len() < 2 {
            self.first = input.first().copied();
            return Ok(());
        }
        if self.state.is_none() {
            let raw = *self.raw.get_or_insert_with(|| !is_zlib(input));
            let format = if raw {
                DataFormat::Raw
            } else {
                DataFormat::ZLibIgnoreChecksum
            };
            self.state = Some(InflateState::new_boxed(format));
            self.buf = vec![0; STEP];
        }
        let Some(state) = self.state.as_mut() else {
            return Err(());
        };
        let mut input = input;
        loop {
            let r = inflate(state, input, &mut self.buf, MZFlush::None);
            input = &input[r.bytes_consumed..];
            if r.bytes_written > 0 {
                if !out.charge(r.bytes_written) {
                    return Err(());
                }
                sink(out, &self.buf[..r.bytes_written]);
            }
            match r.status {
                Ok(MZStatus::StreamEnd) => {
                    self.ended = true;
                    return Ok(());
                }
                Ok(MZStatus::Ok) if input.is_empty() && r.bytes_written < STEP => return Ok(()),
                Ok(MZStatus::Ok) => {}
                // No progress without more input.
                Err(miniz_oxide::MZError::Buf) => return Ok(()),
                Ok(MZStatus::NeedDict) | Err(_) => return Err(()),
            }
        }
    }
}

/// The two-byte zlib header: method 8, and a check that makes it a multiple of 31.
fn is_zlib(b: &[u8]) -> bool {
    b.len() >= 2
        && b[0] & 0x0f == 8
        && b[0] >> 4 <= 7
        && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// The window a brotli stream declares in its first byte (RFC 7932, 9.1), or `None` for
/// the large-window extension, which the analyzer does not decode.
fn brotli_window(first: u8) -> Option<usize> {
    let bits = if first & 1 == 0 {
        16
    } else if (first >> 1) & 7 != 0 {
        17 + u32::from((first >> 1) & 7)
    } else {
        match (first >> 4) & 7 {
            0 => 17,
            1 => return None,
            n => 8 + u32::from(n),
        }
    };
    Some(1 << bits)
}

/// A streaming brotli decoder.
pub struct Brotli {
    state: Option<Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>>,
    buf: Vec<u8>,
    ended: bool,
}

impl Brotli {
    fn new() -> Brotli {
        Brotli {
            state: None,
            buf: Vec::new(),
            ended: false,
        }
    }

    fn push(&mut self, out: &mut Out<'_>, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ()> {
        if self.ended || input.is_empty() {
            return Ok(());
        }
        if self.state.is_none() {
            match brotli_window(input[0]) {
                Some(w) if w <= out.limits.window => {}
                _ => return Err(()),
            }
            self.state = Some(Box::new(BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            )));
            self.buf = vec![0; STEP];
        }
        let Some(state) = self.state.as_mut() else {
            return Err(());
        };
        let (mut avail_in, mut in_off) = (input.len(), 0);
        let mut total = 0;
        loop {
            let (mut avail_out, mut out_off) = (STEP, 0);
            let r = BrotliDecompressStream(
                &mut avail_in,
                &mut in_off,
                input,
                &mut avail_out,
                &mut out_off,
                &mut self.buf,
                &mut total,
                state,
            );
            if out_off > 0 {
                if !out.charge(out_off) {
                    return Err(());
                }
                sink(out, &self.buf[..out_off]);
            }
            match r {
                BrotliResult::NeedsMoreOutput => {}
                BrotliResult::NeedsMoreInput => return Ok(()),
                BrotliResult::ResultSuccess => {
                    self.ended = true;
                    return Ok(());
                }
                BrotliResult::ResultFailure => return Err(()),
            }
        }
    }
}

/// Decodes a whole zstd input (one or more frames) within the window limit.
pub fn zstd(out: &mut Out<'_>, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ()> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    let mut src = input;
    let mut dec = FrameDecoder::new();
    dec.set_max_window_size(out.limits.window as u64);
    while !src.is_empty() {
        dec.reset(&mut src).map_err(|_| ())?;
        while !dec.is_finished() {
            dec.decode_blocks(&mut src, BlockDecodingStrategy::UptoBytes(STEP))
                .map_err(|_| ())?;
            if let Some(chunk) = dec.collect() {
                if !out.charge(chunk.len()) {
                    return Err(());
                }
                sink(out, &chunk);
            }
        }
        if let Some(chunk) = dec.collect() {
            if !out.charge(chunk.len()) {
                return Err(());
            }
            sink(out, &chunk);
        }
    }
    Ok(())
}

enum Inner {
    Gzip {
        header: Vec<u8>,
        inflater: Option<Inflater>,
    },
    Deflate(Inflater),
    Brotli(Brotli),
    Zstd(Vec<u8>),
}

/// One message body in a content coding, decoded and searched as it arrives.
pub struct Body {
    coding: Coding,
    inner: Inner,
    scan: CanaryScan,
    failed: bool,
}

impl Body {
    /// A body in `coding`.
    pub fn new(coding: Coding) -> Body {
        let inner = match coding {
            Coding::Gzip => Inner::Gzip {
                header: Vec::new(),
                inflater: None,
            },
            Coding::Deflate => Inner::Deflate(Inflater::new(None)),
            Coding::Brotli => Inner::Brotli(Brotli::new()),
            Coding::Zstd => Inner::Zstd(Vec::new()),
        };
        Body {
            coding,
            inner,
            scan: CanaryScan::default(),
            failed: false,
        }
    }

    /// The next bytes of the encoded body.
    pub fn feed(&mut self, out: &mut Out<'_>, data: &[u8]) {
        if self.failed {
            return;
        }
        let via = Some(self.coding.encoding());
        let scan = &mut self.scan;
        let mut sink = |out: &mut Out<'_>, d: &[u8]| out.scan(scan, d, via);
        let ok = match &mut self.inner {
            Inner::Gzip { header, inflater } => match inflater {
                Some(i) => i.push(out, data, &mut sink),
                None => {
                    header.extend_from_slice(data);
                    match gzip_header(header) {
                        Ok(Some(len)) => {
                            let rest = header.split_off(len);
                            let mut i = Inflater::new(Some(true));
                            let r = i.push(out, &rest, &mut sink);
                            *inflater = Some(i);
                            *header = Vec::new();
                            r
                        }
                        Ok(None) if header.len() <= out.limits.buffered => Ok(()),
                        _ => Err(()),
                    }
                }
            },
            Inner::Deflate(i) => i.push(out, data, &mut sink),
            Inner::Brotli(b) => b.push(out, data, &mut sink),
            Inner::Zstd(held) => {
                held.extend_from_slice(data);
                if held.len() > out.limits.buffered {
                    *held = Vec::new();
                    Err(())
                } else {
                    Ok(())
                }
            }
        };
        if ok.is_err() {
            self.fail(out);
        }
    }

    /// The body ended.
    pub fn finish(&mut self, out: &mut Out<'_>) {
        if self.failed {
            return;
        }
        if let Inner::Zstd(held) = &mut self.inner {
            let held = std::mem::take(held);
            let via = Some(self.coding.encoding());
            let scan = &mut self.scan;
            let mut sink = |out: &mut Out<'_>, d: &[u8]| out.scan(scan, d, via);
            if zstd(out, &held, &mut sink).is_err() {
                self.fail(out);
            }
        }
    }

    fn fail(&mut self, out: &mut Out<'_>) {
        self.failed = true;
        out.found.partial = true;
        self.inner = Inner::Zstd(Vec::new());
    }
}

/// The length of a complete gzip member header, `Ok(None)` while it is incomplete.
fn gzip_header(b: &[u8]) -> Result<Option<usize>, ()> {
    if b.len() < 10 {
        return if b.iter().zip([0x1f, 0x8b, 8]).all(|(x, y)| *x == y) {
            Ok(None)
        } else {
            Err(())
        };
    }
    if b[..3] != [0x1f, 0x8b, 8] {
        return Err(());
    }
    let flags = b[3];
    let mut at = 10;
    if flags & 4 != 0 {
        let Some(x) = b.get(at..at + 2) else {
            return Ok(None);
        };
        at += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for bit in [8, 16] {
        if flags & bit != 0 {
            match b.get(at..).and_then(|r| memchr::memchr(0, r)) {
                Some(end) => at += end + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    Ok((at <= b.len()).then_some(at))
}

#[cfg(test)]
#[path = "coding_tests.rs"]
mod tests;
