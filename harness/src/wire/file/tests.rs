//! Reading pcap and pcapng, and every way a file can be broken.

use std::borrow::Cow;

use etherparse::PacketBuilder;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;

use super::*;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1, 100)
        .ack(1)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn pcap(datalink: DataLink, snaplen: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let header = PcapHeader {
        datalink,
        snaplen,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for f in frames {
        w.write_packet(&PcapPacket::new(Duration::from_secs(1), f.len() as u32, f))
            .unwrap();
    }
    w.into_writer()
}

fn config() -> AnalyzerConfig {
    AnalyzerConfig {
        canaries: vec![b"MESHPROOF-CANARY-f".to_vec()],
    }
}

fn read(bytes: &[u8]) -> Result<Analysis, WireError> {
    analyze_reader(bytes, &config(), "test")
}

#[test]
fn pcap_round_trip() {
    let bytes = pcap(
        DataLink::ETHERNET,
        65535,
        &[frame(b"GET /MESHPROOF-CANARY-f HTTP/1.1\r\n\r\n")],
    );
    let a = read(&bytes).unwrap();
    assert_eq!(a.packets, 1);
    assert_eq!(a.flows[0].canary_hits, 1);
    assert_eq!(a.flows[0].protocol.as_deref(), Some("http"));
}

#[test]
fn pcapng_round_trip_and_chunked_feeding() {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let idb = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![],
    };
    w.write_pcapng_block(idb).unwrap();
    for p in [frame(b"GET / HTTP/1.1\r\n\r\n"), frame(b"more")] {
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_secs(2),
            original_len: p.len() as u32,
            data: Cow::Owned(p),
            options: vec![],
        };
        w.write_pcapng_block(epb).unwrap();
    }
    let bytes = w.into_inner();
    assert_eq!(read(&bytes).unwrap().packets, 2);
    // The same bytes fed 7 at a time, as a live stream arrives.
    let mut stream = PcapStream::default();
    let mut n = 0;
    for chunk in bytes.chunks(7) {
        stream.feed(chunk, &mut |_, _, _| n += 1).unwrap();
    }
    stream.finish().unwrap();
    assert_eq!(n, 2);
}

#[test]
fn broken_inputs_give_reasons_and_offsets() {
    let good = pcap(DataLink::ETHERNET, 65535, &[frame(b"abc"), frame(b"def")]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "header is missing"),
        ("garbage", b"this is not a capture at all".to_vec(), "magic"),
        ("short header", good[..10].to_vec(), "header is missing"),
        (
            "truncated packet",
            good[..good.len() - 5].to_vec(),
            "truncated",
        ),
        (
            "garbage link type",
            pcap(DataLink::from(4242u32), 65535, &[frame(b"x")]),
            "unsupported link type 4242",
        ),
    ];
    for (name, bytes, needle) in cases {
        let err = read(&bytes).expect_err(name).to_string();
        assert!(err.contains(needle), "{name}: {err}");
        assert!(err.contains("at byte"), "{name}: {err}");
    }
    let err = read(&good[..good.len() - 5]).unwrap_err();
    let WireError::Corrupt { offset, .. } = err else {
        panic!()
    };
    let first_record_end = 24 + 16 + frame(b"abc").len() as u64;
    assert_eq!(
        offset, first_record_end,
        "the offset points at the broken record"
    );
}

#[test]
fn bad_record_length_is_an_error_not_a_panic() {
    let mut bytes = pcap(DataLink::ETHERNET, 65535, &[frame(b"abc")]);
    bytes[24 + 8..24 + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes()); // incl_len
    assert!(read(&bytes).is_err());
}

#[test]
fn zero_snaplen_is_read() {
    let mut bytes = pcap(DataLink::ETHERNET, 65535, &[frame(b"abc")]);
    bytes[16..20].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(read(&bytes).unwrap().packets, 1);
}
