//! Fixture tier for tunnels: the recordings of `fixtures/captures/record_tunnels.sh`.
//! (`wire_fixtures.rs` already requires each one's exact expected JSON.) Here: the same
//! pod traffic seen through every encapsulation gives the same inner flows; the
//! kernel's outer fragments give the same analysis in any order, and a lost fragment is
//! counted rather than silently dropped; WireGuard gives a link and no flow.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshproof::wire::{
    Analysis, Analyzer, AnalyzerConfig, Decoded, EncryptionKind, Flow, FrameSpan, LinkType,
    TunnelKind, analyze_file, decode, read_capture,
};

const CANARY: &str = "MESHPROOF-CANARY-fixture-0001";

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/captures")
        .join(name)
}

fn config() -> AnalyzerConfig {
    AnalyzerConfig {
        canaries: vec![CANARY.as_bytes().to_vec()],
        ..AnalyzerConfig::default()
    }
}

/// The flows as the pods saw them: without the tunnel, and without frame spans (positions
/// in the file, which differ where one encapsulation needed fewer packets).
fn pod_flows(a: &Analysis) -> Vec<Flow> {
    a.flows
        .iter()
        .cloned()
        .map(|mut f| {
            f.overlay = None;
            f.frames = FrameSpan::default();
            f
        })
        .collect()
}

#[test]
fn every_encapsulation_of_the_same_pod_traffic_gives_the_same_flows() {
    let vxlan = analyze_file(&capture("vxlan-http.pcap"), &config()).unwrap();
    assert_eq!(vxlan.flows.len(), 3, "{:#?}", vxlan.flows);
    assert_eq!(vxlan.flows.iter().map(|f| f.canary_hits).sum::<u64>(), 4);
    for (name, kind, vni, depth) in [
        ("vxlan-http.pcap", TunnelKind::Vxlan, Some(1), 1),
        ("geneve-http.pcap", TunnelKind::Geneve, Some(42), 1),
        ("ipip-http.pcap", TunnelKind::Ipip, None, 1),
        ("gre-http.pcap", TunnelKind::Gre, Some(7), 1),
        ("nested-gre-vxlan.pcap", TunnelKind::Vxlan, Some(1), 2),
    ] {
        let a = analyze_file(&capture(name), &config()).unwrap();
        assert_eq!(pod_flows(&a), pod_flows(&vxlan), "{name}");
        for f in &a.flows {
            let o = f
                .overlay
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no overlay"));
            assert_eq!((o.kind, o.vni, o.depth), (kind, vni, depth), "{name}");
        }
    }
}

struct Packet {
    link: LinkType,
    ts: Duration,
    data: Vec<u8>,
}

fn packets(file: &Path) -> Vec<Packet> {
    let mut out = Vec::new();
    read_capture(std::fs::File::open(file).unwrap(), &mut |r| {
        out.push(Packet {
            link: r.link,
            ts: r.ts,
            data: r.data.to_vec(),
        })
    })
    .unwrap();
    out
}

fn replay(packets: &[Packet], order: impl Iterator<Item = usize>) -> Analyzer {
    let mut analyzer = Analyzer::new(config());
    for i in order {
        analyzer.push(packets[i].link, packets[i].ts, &packets[i].data);
    }
    analyzer
}

#[test]
fn kernel_fragments_reassemble_in_any_order_and_losses_are_counted() {
    let file = capture("vxlan-fragments.pcap");
    let original = packets(&file);
    let fragments: Vec<usize> = (0..original.len())
        .filter(|&i| {
            matches!(
                decode(original[i].link, &original[i].data),
                Decoded::Fragment(_)
            )
        })
        .collect();
    assert!(
        fragments.len() >= 4,
        "the kernel fragmented too little: {fragments:?}"
    );
    let want = analyze_file(&file, &config()).unwrap();
    let (in_order, stats) = replay(&original, 0..original.len()).finish_with_stats();
    assert_eq!(in_order, want);
    assert_eq!(
        (
            stats.fragments,
            stats.reassembled_datagrams * 2,
            stats.lost_fragments
        ),
        (fragments.len() as u64, fragments.len() as u64, 0)
    );
    // Every pair of fragments delivered last first.
    let mut order: Vec<usize> = (0..original.len()).collect();
    for pair in fragments.chunks_exact(2) {
        order.swap(pair[0], pair[1]);
    }
    assert_eq!(replay(&original, order.into_iter()).finish(), want);
    // One fragment lost: its datagram's bytes become a gap, and the loss is counted.
    let lost = fragments[0];
    let (damaged, stats) =
        replay(&original, (0..original.len()).filter(|&i| i != lost)).finish_with_stats();
    assert_eq!(stats.lost_fragments, 1);
    assert!(stats.gaps >= 1, "{stats:?}");
    assert!(damaged.flows[0].server_bytes < want.flows[0].server_bytes);
}

#[test]
fn wireguard_between_nodes_is_a_link_with_no_flow() {
    let a = analyze_file(&capture("wireguard.pcap"), &config()).unwrap();
    assert!(a.flows.is_empty(), "{:#?}", a.flows);
    assert_eq!(a.links.len(), 1);
    let link = &a.links[0];
    assert_eq!(link.kind, EncryptionKind::Wireguard);
    assert_eq!(link.packets, a.packets);
    let ends: Vec<String> = link.endpoints.iter().map(|e| e.to_string()).collect();
    assert_eq!(ends, ["10.78.0.1", "10.78.0.2"]);
}
