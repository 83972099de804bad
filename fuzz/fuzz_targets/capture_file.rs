//! Fuzzes the pcap/pcapng reader and everything behind it: arbitrary bytes are read as a
//! capture file and every record is analysed. The same bytes are also parsed in chunks
//! whose sizes come from the input, and both readings must hand out the same records
//! and stop at the same error offset.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../harness/src/wire/mod.rs"]
mod wire;

use libfuzzer_sys::fuzz_target;
use wire::{Analyzer, AnalyzerConfig, CaptureParser};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_seed, bytes)) = data.split_first() else { return };
    let config = AnalyzerConfig { canaries: vec![b"canary".to_vec(), b"ab".to_vec()], ..AnalyzerConfig::default() };
    let mut analyzer = Analyzer::new(config);
    let mut whole = Vec::new();
    let whole_result = wire::read_capture(bytes, &mut |r| {
        whole.push((r.link, r.ts, r.data.to_vec()));
        analyzer.push(r.link, r.ts, r.data);
    });
    let analysis = analyzer.finish();
    assert!(analysis.flows.len() as u64 <= analysis.packets);

    let chunk = usize::from(chunk_seed % 64) + 1;
    let mut parser = CaptureParser::default();
    let mut pending = Vec::new();
    let mut chunked = Vec::new();
    let mut chunked_result = Ok(());
    for piece in bytes.chunks(chunk) {
        pending.extend_from_slice(piece);
        match parser.parse(&pending, &mut |r| chunked.push((r.link, r.ts, r.data.to_vec()))) {
            Ok(used) => drop(pending.drain(..used)),
            Err(e) => {
                chunked_result = Err(e);
                break;
            }
        }
    }
    if chunked_result.is_ok() {
        chunked_result = parser.finish(&pending);
    }
    assert_eq!(whole, chunked);
    assert_eq!(whole_result.err().and_then(|e| e.offset()), chunked_result.err().and_then(|e| e.offset()));
});
