//! Reading pcap and pcapng, from a file or from a byte stream that arrives in chunks.
//!
//! [`CaptureParser`] is incremental: it is given whatever bytes are available, hands out
//! every complete packet record, and reports how many bytes it consumed, so the same code
//! reads a file through a fixed buffer and a `tcpdump -w -` stream as it arrives. Every
//! error carries the byte offset where the input stopped making sense. Record sizes are
//! bounded before anything is buffered, so a lying length cannot make the reader
//! allocate without limit.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::link::LinkType;
use super::{Analysis, Analyzer, AnalyzerConfig, AnalyzerStats, WireError};

/// The largest packet record accepted (libpcap's own maximum snapshot length is 256 KiB;
/// this leaves room for offloaded super-segments).
pub const MAX_RECORD: u32 = 1 << 20;

/// The largest pcapng block accepted.
pub const MAX_BLOCK: u32 = MAX_RECORD + 4096;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BYTE_ORDER: u32 = 0x1A2B_3C4D;

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Option<LinkType>,
    linktype: u32,
    /// Timestamp units per second.
    units: u64,
    snaplen: u32,
}

#[derive(Debug, Clone)]
enum Format {
    Unknown,
    Pcap {
        le: bool,
        nanos: bool,
        link: LinkType,
    },
    Pcapng {
        le: bool,
        interfaces: Vec<Interface>,
    },
}

/// One packet record, borrowing its bytes from the input.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The link type of the interface it was captured on.
    pub link: LinkType,
    /// Capture time since the Unix epoch.
    pub ts: Duration,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// An incremental pcap/pcapng reader.
#[derive(Debug, Clone)]
pub struct CaptureParser {
    format: Format,
    /// Absolute offset of the next unconsumed byte.
    offset: u64,
}

impl Default for CaptureParser {
    fn default() -> Self {
        CaptureParser {
            format: Format::Unknown,
            offset: 0,
        }
    }
}

fn u32_at(b: &[u8], at: usize, le: bool) -> u32 {
    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if le {
        u32::from_le_bytes(w)
    } else {
        u32::from_be_bytes(w)
    }
}

fn u16_at(b: &[u8], at: usize, le: bool) -> u16 {
    let w = [b[at], b[at + 1]];
    if le {
        u16::from_le_bytes(w)
    } else {
        u16::from_be_bytes(w)
    }
}

impl CaptureParser {
    /// Absolute offset of the first byte not consumed yet.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Hands every complete record at the start of `buf` to `sink` and returns how many
    /// bytes were consumed; the rest (a partial record) must be offered again with more
    /// bytes appended.
    pub fn parse(
        &mut self,
        buf: &[u8],
        sink: &mut impl FnMut(Record<'_>),
    ) -> Result<usize, WireError> {
        let mut used = 0;
        loop {
            let step = match self.format {
                Format::Unknown => self.header(&buf[used..])?,
                Format::Pcap { .. } => self.pcap_record(&buf[used..], sink)?,
                Format::Pcapng { .. } => self.pcapng_block(&buf[used..], sink)?,
            };
            match step {
                Some(n) => {
                    used += n;
                    self.offset += n as u64;
                }
                None => return Ok(used),
            }
        }
    }

    /// Reports a partial record left at the end of the input (`leftover`, the bytes not
    /// consumed by [`CaptureParser::parse`]) as truncation, naming how many bytes the
    /// record needs in all when its header is there to say so.
    pub fn finish(&self, leftover: &[u8]) -> Result<(), WireError> {
        if leftover.is_empty() && !matches!(self.format, Format::Unknown) {
            return Ok(());
        }
        let needed = match self.format {
            Format::Unknown => 24,
            Format::Pcap { le, .. } if leftover.len() >= 16 => {
                16 + u64::from(u32_at(leftover, 8, le))
            }
            Format::Pcap { .. } => 16,
            Format::Pcapng { le, .. } if leftover.len() >= 8 => u64::from(u32_at(leftover, 4, le)),
            Format::Pcapng { .. } => 12,
        };
        Err(WireError::Truncated {
            offset: self.offset,
            available: leftover.len() as u64,
            needed,
        })
    }

    fn header(&mut self, b: &[u8]) -> Result<Option<usize>, WireError> {
        if b.len() < 4 {
            return Ok(None);
        }
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let (le, nanos) = match magic {
            0xa1b2_c3d4 => (true, false),
            0xa1b2_3c4d => (true, true),
            0xd4c3_b2a1 => (false, false),
            0x4d3c_b2a1 => (false, true),
            PCAPNG_SHB => {
                self.format = Format::Pcapng {
                    le: true,
                    interfaces: Vec::new(),
                };
                return Ok(Some(0));
            }
            _ => {
                return Err(WireError::NotACapture {
                    offset: self.offset,
                    magic,
                });
            }
        };
        if b.len() < 24 {
            return Ok(None);
        }
        let snaplen = u32_at(b, 16, le);
        let linktype = u32_at(b, 20, le) & 0xffff;
        let link = LinkType::from_linktype(linktype).ok_or(WireError::UnsupportedLinkType {
            offset: self.offset + 20,
            linktype,
        })?;
        let _ = snaplen; // A zero or huge snapshot length is legal; records are bounded instead.
        self.format = Format::Pcap { le, nanos, link };
        Ok(Some(24))
    }

    fn pcap_record(
        &mut self,
        b: &[u8],
        sink: &mut impl FnMut(Record<'_>),
    ) -> Result<Option<usize>, WireError> {
        let Format::Pcap { le, nanos, link } = self.format else {
            return Ok(None);
        };
        if b.len() < 16 {
            return Ok(None);
        }
        let caplen = u32_at(b, 8, le);
        if caplen > MAX_RECORD {
            return Err(WireError::RecordTooLarge {
                offset: self.offset + 8,
                length: caplen,
                limit: MAX_RECORD,
            });
        }
        let end = 16 + caplen as usize;
        if b.len() < end {
            return Ok(None);
        }
        let secs = u64::from(u32_at(b, 0, le));
        let frac = u64::from(u32_at(b, 4, le));
        let ts = Duration::from_secs(secs)
            + if nanos {
                Duration::from_nanos(frac)
            } else {
                Duration::from_micros(frac)
            };
        sink(Record {
            link,
            ts,
            data: &b[16..end],
        });
        Ok(Some(end))
    }

    fn pcapng_block(
        &mut self,
        b: &[u8],
        sink: &mut impl FnMut(Record<'_>),
    ) -> Result<Option<usize>, WireError> {
        if b.len() < 12 {
            return Ok(None);
        }
        let raw_type = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if raw_type == PCAPNG_SHB {
            return self.section_header(b);
        }
        let Format::Pcapng { le, .. } = self.format else {
            return Ok(None);
        };
        let kind = u32_at(b, 0, le);
        let len = u32_at(b, 4, le);
        if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK {
            return Err(WireError::BadBlockLength {
                offset: self.offset + 4,
                length: len,
            });
        }
        let len = len as usize;
        if b.len() < len {
            return Ok(None);
        }
        if u32_at(b, len - 4, le) as usize != len {
            return Err(WireError::BadBlockLength {
                offset: self.offset + len as u64 - 4,
                length: u32_at(b, len - 4, le),
            });
        }
        let body = &b[8..len - 4];
        match kind {
            1 => self.interface(body, le)?,
            2 | 3 | 6 => self.packet(kind, body, le, sink)?,
            _ => {}
        }
        Ok(Some(len))
    }

    fn section_header(&mut self, b: &[u8]) -> Result<Option<usize>, WireError> {
        let le = match u32::from_le_bytes([b[8], b[9], b[10], b[11]]) {
            PCAPNG_BYTE_ORDER => true,
            0x4D3C_2B1A => false,
            magic => {
                return Err(WireError::NotACapture {
                    offset: self.offset + 8,
                    magic,
                });
            }
        };
        let len = u32_at(b, 4, le);
        if len < 28 || !len.is_multiple_of(4) || len > MAX_BLOCK {
            return Err(WireError::BadBlockLength {
                offset: self.offset + 4,
                length: len,
            });
        }
        if b.len() < len as usize {
            return Ok(None);
        }
        // A new section starts over: its interfaces are numbered from zero again.
        self.format = Format::Pcapng {
            le,
            interfaces: Vec::new(),
        };
        Ok(Some(len as usize))
    }

    fn interface(&mut self, body: &[u8], le: bool) -> Result<(), WireError> {
        if body.len() < 8 {
            return Err(WireError::BadBlockLength {
                offset: self.offset + 4,
                length: body.len() as u32 + 12,
            });
        }
        let linktype = u32::from(u16_at(body, 0, le));
        let snaplen = u32_at(body, 4, le);
        let mut units = 1_000_000;
        let mut opts = &body[8..];
        while opts.len() >= 4 {
            let code = u16_at(opts, 0, le);
            let olen = usize::from(u16_at(opts, 2, le));
            let padded = (olen + 3) & !3;
            if code == 0 || opts.len() < 4 + olen {
                break;
            }
            if code == 9 && olen >= 1 {
                // if_tsresol: a power of ten, or of two when the top bit is set.
                let r = opts[4];
                let exp = u32::from(r & 0x7f);
                units = if r & 0x80 != 0 {
                    1u64.checked_shl(exp)
                } else {
                    10u64.checked_pow(exp)
                }
                .unwrap_or(0);
            }
            opts = &opts[(4 + padded).min(opts.len())..];
        }
        let link = LinkType::from_linktype(linktype);
        if let Format::Pcapng { interfaces, .. } = &mut self.format {
            interfaces.push(Interface {
                link,
                linktype,
                units,
                snaplen,
            });
        }
        Ok(())
    }

    fn packet(
        &mut self,
        kind: u32,
        body: &[u8],
        le: bool,
        sink: &mut impl FnMut(Record<'_>),
    ) -> Result<(), WireError> {
        let Format::Pcapng { interfaces, .. } = &self.format else {
            return Ok(());
        };
        let short = || WireError::BadBlockLength {
            offset: self.offset + 4,
            length: body.len() as u32 + 12,
        };
        let (iface, ts, caplen, data_at) = match kind {
            6 if body.len() >= 20 => {
                let ts = (u64::from(u32_at(body, 4, le)) << 32) | u64::from(u32_at(body, 8, le));
                (u32_at(body, 0, le), ts, u32_at(body, 12, le) as usize, 20)
            }
            2 if body.len() >= 20 => {
                let ts = (u64::from(u32_at(body, 4, le)) << 32) | u64::from(u32_at(body, 8, le));
                (
                    u32::from(u16_at(body, 0, le)),
                    ts,
                    u32_at(body, 12, le) as usize,
                    20,
                )
            }
            3 if body.len() >= 4 => {
                let orig = u32_at(body, 0, le) as usize;
                let snap = interfaces.first().map_or(u32::MAX, |i| i.snaplen) as usize;
                let snap = if snap == 0 { usize::MAX } else { snap };
                (0, 0, orig.min(body.len() - 4).min(snap), 4)
            }
            _ => return Err(short()),
        };
        let Some(i) = interfaces.get(iface as usize) else {
            return Err(WireError::UnknownInterface {
                offset: self.offset + 8,
                interface: iface,
                defined: interfaces.len(),
            });
        };
        let link = i.link.ok_or(WireError::UnsupportedLinkType {
            offset: self.offset + 8,
            linktype: i.linktype,
        })?;
        if data_at + caplen > body.len() {
            return Err(WireError::RecordTooLarge {
                offset: self.offset + 20,
                length: caplen as u32,
                limit: (body.len() - data_at) as u32,
            });
        }
        let ts = match i.units {
            0 => Duration::ZERO,
            u => {
                Duration::from_secs(ts / u)
                    + Duration::from_nanos(
                        ((u128::from(ts % u) * 1_000_000_000) / u128::from(u)) as u64,
                    )
            }
        };
        sink(Record {
            link,
            ts,
            data: &body[data_at..data_at + caplen],
        });
        Ok(())
    }
}

/// The read buffer grows to this size: large enough to amortise system calls, small
/// enough that memory does not depend on the file size. It starts small so reading a
/// tiny capture does not cost a large allocation.
const READ_BUFFER: usize = 4 << 20;
const FIRST_READ_BUFFER: usize = 64 << 10;

/// Reads a whole pcap or pcapng stream from `reader`, handing every record to `sink`.
pub fn read_capture(
    mut reader: impl Read,
    sink: &mut impl FnMut(Record<'_>),
) -> Result<(), WireError> {
    let mut parser = CaptureParser::default();
    let mut buf = vec![0u8; FIRST_READ_BUFFER];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // Either the reads fill the buffer (a big file) or one record is larger
            // than it; both call for a bigger buffer, up to what one record can need.
            let cap = READ_BUFFER.max(MAX_BLOCK as usize + 16);
            buf.resize((buf.len() * 2).min(cap), 0);
        }
        let n = loop {
            match reader.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(WireError::Read {
                        offset: parser.offset() + filled as u64,
                        source,
                    });
                }
            }
        };
        if n == 0 {
            return parser.finish(&buf[..filled]);
        }
        filled += n;
        let used = parser.parse(&buf[..filled], sink)?;
        buf.copy_within(used..filled, 0);
        filled -= used;
    }
}

/// Analyses a pcap or pcapng file.
pub fn analyze_file(path: &Path, config: &AnalyzerConfig) -> Result<Analysis, WireError> {
    analyze_file_with_stats(path, config).map(|(a, _)| a)
}

/// Like [`analyze_file`], also returning the analyzer's counters.
pub fn analyze_file_with_stats(
    path: &Path,
    config: &AnalyzerConfig,
) -> Result<(Analysis, AnalyzerStats), WireError> {
    let file = File::open(path).map_err(|source| WireError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut analyzer = Analyzer::new(config.clone());
    read_capture(file, &mut |r| analyzer.push(r.link, r.ts, r.data))?;
    Ok(analyzer.finish_with_stats())
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
