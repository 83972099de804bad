//! Fuzzes link decoding, tunnel decapsulation, IP fragment reassembly, TCP reassembly,
//! TLS and protocol parsing directly: the input is cut into frames (`[link selector]
//! [length][bytes]...`) pushed into one analyzer. Frames are wrapped in valid
//! Ethernet/IPv4/TCP headers half of the time, with sequence numbers from the input, so
//! the fuzzer reaches reassembly and stream analysis quickly; a quarter of those are then
//! wrapped again in VXLAN, Geneve, GRE or IP-in-IP, or cut into two IPv4 fragments, so it
//! reaches decapsulation and reassembly of outer fragments too.
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

/// An IPv4 packet around `payload`, with the fragment field given.
fn ipv4(proto: u8, frag: u16, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2];
    ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

fn ethernet(ip: Vec<u8>) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f
}

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0x9c, 0x40, 0, 0, 0, 0, 0, 0];
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    u
}

/// Wraps an Ethernet frame in one tunnel chosen by `how`; some choices emit two frames
/// (the fragments of the outer packet).
fn tunnel(how: u8, inner: Vec<u8>) -> Vec<Vec<u8>> {
    let vni = [0, 0, how, 0];
    match how % 5 {
        0 => {
            let mut v = vec![0x08, 0, 0, 0];
            v.extend_from_slice(&vni);
            v.extend_from_slice(&inner);
            vec![ethernet(ipv4(17, 0, 0, &udp(4789, &v)))]
        }
        1 => {
            let mut g = vec![0x01, 0, 0x65, 0x58];
            g.extend_from_slice(&vni);
            g.extend_from_slice(&[0x01, 0x02, 0x03, 0x04]);
            g.extend_from_slice(&inner);
            vec![ethernet(ipv4(17, 0, 0, &udp(6081, &g)))]
        }
        2 => {
            let mut g = vec![0x20, 0, 0x65, 0x58];
            g.extend_from_slice(&vni);
            g.extend_from_slice(&inner);
            vec![ethernet(ipv4(47, 0, 0, &g))]
        }
        3 => vec![ethernet(ipv4(4, 0, 0, inner.get(14..).unwrap_or_default()))],
        _ => {
            // The VXLAN datagram cut into two fragments, the second sent first.
            let mut v = vec![0x08, 0, 0, 0];
            v.extend_from_slice(&vni);
            v.extend_from_slice(&inner);
            let whole = udp(8472, &v);
            let cut = (whole.len() / 2) & !7;
            let id = u16::from(how);
            vec![
                ethernet(ipv4(17, (cut / 8) as u16, id, &whole[cut..])),
                ethernet(ipv4(17, 0x2000, id, &whole[..cut])),
            ]
        }
    }
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
            let frame = tcp_frame(*selector, body);
            if selector & 0x0c == 0x0c {
                for outer in tunnel(*selector >> 4, frame) {
                    analyzer.push(LinkType::Ethernet, Duration::from_secs(ts), &outer);
                }
            } else {
                analyzer.push(LinkType::Ethernet, Duration::from_secs(ts), &frame);
            }
        } else {
            analyzer.push(LINKS[usize::from(selector >> 1) % LINKS.len()], Duration::from_secs(ts), body);
        }
    }
    let analysis = analyzer.finish();
    for flow in &analysis.flows {
        assert!(flow.client != flow.server || flow.client.port() == flow.server.port());
    }
});
