//! Reading pcap and pcapng, from files or from a byte stream, incrementally: a 1 GiB file
//! costs the same memory as a small one, and a live `tcpdump -w -` stream is analysed as
//! it arrives. Every error names the byte offset where the input stopped making sense.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use pcap_file::PcapError;
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::{Block, PcapNgParser};

use super::link::LinkType;
use super::{Analysis, Analyzer, AnalyzerConfig};

/// Errors from reading captures.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The input is not a capture meshproof can read.
    #[error("{reason} (at byte {offset})")]
    Corrupt {
        /// Where the input stopped making sense.
        offset: u64,
        /// Why.
        reason: String,
    },
}

impl WireError {
    fn at(offset: u64, reason: impl Into<String>) -> WireError {
        WireError::Corrupt {
            offset,
            reason: reason.into(),
        }
    }
}

enum Format {
    Unknown,
    Pcap(PcapParser, LinkType),
    PcapNg(PcapNgParser),
}

/// An incremental pcap/pcapng parser: feed it bytes as they come.
pub struct PcapStream {
    buf: Vec<u8>,
    offset: u64,
    format: Format,
}

impl Default for PcapStream {
    fn default() -> Self {
        PcapStream {
            buf: Vec::new(),
            offset: 0,
            format: Format::Unknown,
        }
    }
}

impl PcapStream {
    /// Parses as many whole records as `chunk` completes, calling `sink` for each packet.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(LinkType, Duration, &[u8]),
    ) -> Result<(), WireError> {
        self.buf.extend_from_slice(chunk);
        let mut used = 0usize;
        let result = self.parse(&mut used, sink);
        self.buf.drain(..used);
        self.offset += used as u64;
        result
    }

    /// Checks that the input ended on a record boundary.
    pub fn finish(&self) -> Result<(), WireError> {
        match (&self.format, self.buf.is_empty()) {
            (Format::Unknown, _) => Err(WireError::at(
                self.offset,
                "not a pcap or pcapng capture: the header is missing or truncated",
            )),
            (_, false) => Err(WireError::at(
                self.offset,
                format!(
                    "truncated: {} trailing bytes are not a whole record",
                    self.buf.len()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// libpcap reads a snap length of 0 as "the default" (262144); some writers emit it.
    /// The parser would reject every packet, so the header is read as libpcap does.
    fn fix_zero_snaplen(&mut self) {
        if self.buf.len() >= 24 && self.buf[16..20] == [0, 0, 0, 0] {
            let big_endian = self.buf[0] == 0xa1;
            let default: u32 = 262_144;
            let bytes = if big_endian {
                default.to_be_bytes()
            } else {
                default.to_le_bytes()
            };
            self.buf[16..20].copy_from_slice(&bytes);
        }
    }

    fn parse(
        &mut self,
        used: &mut usize,
        sink: &mut dyn FnMut(LinkType, Duration, &[u8]),
    ) -> Result<(), WireError> {
        if matches!(self.format, Format::Unknown) {
            let Some(magic) = self.buf.get(..4) else {
                return Ok(());
            };
            let magic = u32::from_le_bytes(magic.try_into().unwrap_or_default());
            self.format = match magic {
                0x0a0d_0d0a => match PcapNgParser::new(&self.buf) {
                    Ok((rest, parser)) => {
                        *used = self.buf.len() - rest.len();
                        Format::PcapNg(parser)
                    }
                    Err(PcapError::IncompleteBuffer) => return Ok(()),
                    Err(e) => {
                        return Err(WireError::at(
                            self.offset,
                            format!("bad pcapng section header: {e}"),
                        ));
                    }
                },
                0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => match PcapParser::new({
                    self.fix_zero_snaplen();
                    &self.buf
                }) {
                    Ok((rest, parser)) => {
                        let dlt = u32::from(parser.header().datalink);
                        let link = LinkType::from_dlt(dlt).ok_or_else(|| {
                            WireError::at(self.offset + 20, format!("unsupported link type {dlt}"))
                        })?;
                        *used = self.buf.len() - rest.len();
                        Format::Pcap(parser, link)
                    }
                    Err(PcapError::IncompleteBuffer) => return Ok(()),
                    Err(e) => {
                        return Err(WireError::at(self.offset, format!("bad pcap header: {e}")));
                    }
                },
                other => {
                    return Err(WireError::at(
                        self.offset,
                        format!("not a pcap or pcapng capture (magic 0x{other:08x})"),
                    ));
                }
            };
        }
        let offset = self.offset;
        match &mut self.format {
            Format::Pcap(parser, link) => loop {
                match parser.next_packet(&self.buf[*used..]) {
                    Ok((rest, packet)) => {
                        sink(*link, packet.timestamp, &packet.data);
                        *used = self.buf.len() - rest.len();
                    }
                    Err(PcapError::IncompleteBuffer) => return Ok(()),
                    Err(e) => {
                        return Err(WireError::at(
                            offset + *used as u64,
                            format!("bad packet record: {e}"),
                        ));
                    }
                }
            },
            Format::PcapNg(parser) => loop {
                match parser.next_block(&self.buf[*used..]) {
                    Ok((rest, block)) => {
                        let at = offset + *used as u64;
                        ng_block(parser, &block, at, sink)?;
                        *used = self.buf.len() - rest.len();
                    }
                    Err(PcapError::IncompleteBuffer) => return Ok(()),
                    Err(e) => {
                        return Err(WireError::at(
                            offset + *used as u64,
                            format!("bad pcapng block: {e}"),
                        ));
                    }
                }
            },
            Format::Unknown => Ok(()),
        }
    }
}

fn ng_block(
    parser: &PcapNgParser,
    block: &Block<'_>,
    at: u64,
    sink: &mut dyn FnMut(LinkType, Duration, &[u8]),
) -> Result<(), WireError> {
    let link_of = |id: u32| -> Result<LinkType, WireError> {
        let iface = parser.interfaces().get(id as usize).ok_or_else(|| {
            WireError::at(
                at,
                format!("packet names interface {id}, which was never described"),
            )
        })?;
        let dlt = u32::from(iface.linktype);
        LinkType::from_dlt(dlt)
            .ok_or_else(|| WireError::at(at, format!("unsupported link type {dlt}")))
    };
    match block {
        Block::EnhancedPacket(p) => sink(link_of(p.interface_id)?, p.timestamp, &p.data),
        Block::SimplePacket(p) => sink(link_of(0)?, Duration::ZERO, &p.data),
        _ => {}
    }
    Ok(())
}

/// Analyses a whole capture from a reader, in 1 MiB chunks.
pub fn analyze_reader(
    mut reader: impl Read,
    config: &AnalyzerConfig,
    name: &str,
) -> Result<Analysis, WireError> {
    let mut analyzer = Analyzer::new(config.clone());
    let mut stream = PcapStream::default();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut chunk).map_err(|source| WireError::Io {
            path: name.to_string(),
            source,
        })?;
        if n == 0 {
            break;
        }
        stream.feed(&chunk[..n], &mut |link, ts, data| {
            analyzer.push(link, ts, data)
        })?;
    }
    stream.finish()?;
    Ok(analyzer.finish())
}

/// Analyses a pcap or pcapng file.
pub fn analyze_file(path: &Path, config: &AnalyzerConfig) -> Result<Analysis, WireError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| WireError::Io {
        path: name.clone(),
        source,
    })?;
    analyze_reader(file, config, &name)
}

#[cfg(test)]
mod tests;
