//! Fuzzes link decoding, TCP reassembly, TLS and protocol parsing directly: the input is
//! cut into frames (`[link selector][length][bytes]...`) pushed into one analyzer. Frames
//! are wrapped in valid Ethernet/IPv4/TCP headers half of the time, with sequence numbers
//! from the input, so the fuzzer reaches reassembly and stream analysis quickly.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../harness/src/wire/mod.rs"]
mod wire;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wire::{Analyzer, AnalyzerConfig, LinkType};

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

fn tcp_frame(selector: u8, body: &[u8]) -> Vec<u8> {
    let (seq, flags, payload) = match body {
        [a, b, c, f, rest @ ..] => (u32::from_be_bytes([0, *a, *b, *c]), *f, rest),
        _ => (0, 0x10, body),
    };
    let (sport, dport) = if selector & 2 == 0 { (40000, 443) } else { (443, 40000) };
    let (src, dst) = if selector & 2 == 0 { ([10, 0, 0, 1], [10, 0, 0, 2]) } else { ([10, 0, 0, 2], [10, 0, 0, 1]) };
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    let total = (40 + payload.len()) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&u16::to_be_bytes(sport));
    f.extend_from_slice(&u16::to_be_bytes(dport));
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fuzz_target!(|data: &[u8]| {
    let config = AnalyzerConfig {
        canaries: vec![b"canary".to_vec()],
        max_out_of_order: 4096,
        resync_window: 1024,
        starttls_window: 512,
        ..AnalyzerConfig::default()
    };
    let mut analyzer = Analyzer::new(config);
    let mut rest = data;
    let mut ts = 0u64;
    while let [selector, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        ts += u64::from(*selector);
        if selector & 1 == 1 {
            analyzer.push(LinkType::Ethernet, Duration::from_secs(ts), &tcp_frame(*selector, body));
        } else {
            analyzer.push(LINKS[usize::from(selector >> 1) % LINKS.len()], Duration::from_secs(ts), body);
        }
    }
    let analysis = analyzer.finish();
    for flow in &analysis.flows {
        assert!(flow.client != flow.server || flow.client.port() == flow.server.port());
    }
});
