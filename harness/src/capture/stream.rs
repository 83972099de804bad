//! A capture that arrives as a pcap byte stream (`tcpdump -w -` inside a kind node,
//! streamed back over `docker exec`): written to a file verbatim and analysed as it comes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::CaptureError;
use crate::wire::{Analysis, Analyzer, AnalyzerConfig, AnalyzerStats, CaptureParser, WireError};

/// Where a streamed capture goes and what to look for in it.
#[derive(Debug, Clone, Default)]
pub struct StreamConfig {
    /// The pcap file to write (the stream's bytes, unchanged).
    pub pcap_path: PathBuf,
    /// What the analyzer searches for.
    pub analyzer: AnalyzerConfig,
}

/// Accepts chunks of a pcap or pcapng stream, in any sizes.
#[derive(Debug)]
pub struct StreamCapture {
    path: PathBuf,
    file: BufWriter<File>,
    parser: CaptureParser,
    /// Bytes of an incomplete record carried over to the next chunk.
    pending: Vec<u8>,
    analyzer: Analyzer,
}

impl StreamCapture {
    /// Creates the file and an empty analysis.
    pub fn create(config: StreamConfig) -> Result<StreamCapture, CaptureError> {
        let file =
            crate::private_fs::create_file(&config.pcap_path).map_err(|e| CaptureError::File {
                path: config.pcap_path.clone(),
                reason: e.to_string(),
            })?;
        Ok(StreamCapture {
            path: config.pcap_path,
            file: BufWriter::new(file),
            parser: CaptureParser::default(),
            pending: Vec::new(),
            analyzer: Analyzer::new(config.analyzer),
        })
    }

    /// Packets parsed so far.
    pub fn packets_seen(&self) -> u64 {
        self.analyzer.packets()
    }

    /// Takes the next bytes of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), CaptureError> {
        self.file
            .write_all(chunk)
            .map_err(|e| self.file_error(&e))?;
        let StreamCapture {
            parser,
            analyzer,
            pending,
            ..
        } = self;
        let mut sink = |r: crate::wire::Record<'_>| analyzer.push(r.link, r.ts, r.data);
        if pending.is_empty() {
            // The common case: parse straight from the chunk and keep only its tail.
            let used = parser
                .parse(chunk, &mut sink)
                .map_err(CaptureError::Stream)?;
            pending.extend_from_slice(&chunk[used..]);
        } else {
            pending.extend_from_slice(chunk);
            let used = parser
                .parse(pending, &mut sink)
                .map_err(CaptureError::Stream)?;
            pending.drain(..used);
        }
        Ok(())
    }

    /// Ends the stream: returns the analysis and the file. A record cut off at the end is
    /// expected (the capturing process was stopped mid-write); it is dropped from the file
    /// so the file stays readable by every tool.
    pub fn finish(self) -> Result<(Analysis, PathBuf), CaptureError> {
        self.finish_with_stats().map(|(a, _, p)| (a, p))
    }

    /// Like [`StreamCapture::finish`], also returning the analyzer's counters.
    pub fn finish_with_stats(mut self) -> Result<(Analysis, AnalyzerStats, PathBuf), CaptureError> {
        self.file.flush().map_err(|e| self.file_error(&e))?;
        if let Err(WireError::Truncated {
            offset, available, ..
        }) = self.parser.finish(&self.pending)
        {
            if self.parser.offset() == 0 {
                return Err(CaptureError::EmptyStream(available));
            }
            let file = self.file.get_ref();
            file.set_len(offset).map_err(|e| self.file_error(&e))?;
        }
        let (analysis, stats) = self.analyzer.finish_with_stats();
        Ok((analysis, stats, self.path))
    }

    fn file_error(&self, e: &std::io::Error) -> CaptureError {
        CaptureError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}
