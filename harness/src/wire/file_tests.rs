//! Unit tests for the pcap/pcapng reader: formats, chunking and located errors.

use super::*;
use crate::wire::analyzer::tests::Conn;

fn pcap(frames: &[Vec<u8>], linktype: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&250u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len().div_ceil(4) * 4) as u32;
    let mut out = kind.to_be_bytes().to_vec();
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out.resize(len as usize - 4, 0);
    out.extend_from_slice(&len.to_be_bytes());
    out
}

/// A big-endian pcapng with nanosecond timestamps, to exercise both byte orders.
fn pcapng(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut shb = 0x1A2B_3C4Du32.to_be_bytes().to_vec();
    shb.extend_from_slice(&[0, 1, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_be_bytes());
    let mut out = block(PCAPNG_SHB, &shb);
    let mut idb = vec![0, 1, 0, 0, 0, 0, 0, 0];
    idb.extend_from_slice(&[0, 9, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0]);
    out.extend(block(1, &idb));
    for f in frames {
        let ts: u64 = 1_700_000_000_000_000_123;
        let mut epb = 0u32.to_be_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_be_bytes());
        epb.extend_from_slice(&(ts as u32).to_be_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_be_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_be_bytes());
        epb.extend_from_slice(f);
        out.extend(block(6, &epb));
    }
    out
}

fn frames() -> Vec<Vec<u8>> {
    let mut c = Conn::new(40000, 80);
    let mut f = c.open();
    f.extend(c.send(true, b"GET /canary HTTP/1.1\r\n\r\n", 1448));
    f
}

fn parse_in_chunks(
    bytes: &[u8],
    chunk: usize,
) -> Result<Vec<(LinkType, Duration, usize)>, WireError> {
    let mut parser = CaptureParser::default();
    let mut pending = Vec::new();
    let mut seen = Vec::new();
    for piece in bytes.chunks(chunk) {
        pending.extend_from_slice(piece);
        let used = parser.parse(&pending, &mut |r| seen.push((r.link, r.ts, r.data.len())))?;
        pending.drain(..used);
    }
    parser.finish(&pending)?;
    Ok(seen)
}

#[test]
fn pcap_and_pcapng_read_the_same_in_any_chunking() {
    let f = frames();
    for bytes in [pcap(&f, 1), pcapng(&f)] {
        for chunk in [1, 3, 17, 4096] {
            let seen = parse_in_chunks(&bytes, chunk).unwrap();
            assert_eq!(seen.len(), 4);
            assert_eq!(seen[3].2, f[3].len());
            assert_eq!(seen[3].0, LinkType::Ethernet);
        }
    }
    let ng = parse_in_chunks(&pcapng(&f), 4096).unwrap();
    assert_eq!(ng[0].1, Duration::new(1_700_000_000, 123));
    assert_eq!(
        parse_in_chunks(&pcap(&f, 1), 7).unwrap()[1].1,
        Duration::new(1_700_000_001, 250_000)
    );
}

#[test]
fn errors_carry_their_offsets() {
    let good = pcap(&frames(), 1);
    let cut = &good[..good.len() - 5];
    let last_record = good.len() - (16 + frames()[3].len());
    match parse_in_chunks(cut, 100) {
        Err(WireError::Truncated { offset, .. }) => assert_eq!(offset, last_record as u64),
        other => panic!("{other:?}"),
    }
    let mut bad_len = good.clone();
    bad_len[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        parse_in_chunks(&bad_len, 64),
        Err(WireError::RecordTooLarge { offset: 32, .. })
    ));
    let garbage_link = pcap(&frames(), 0xbeef);
    assert!(matches!(
        parse_in_chunks(&garbage_link, 64),
        Err(WireError::UnsupportedLinkType {
            offset: 20,
            linktype: 0xbeef
        })
    ));
    assert!(matches!(
        parse_in_chunks(b"hello world, not a capture", 8),
        Err(WireError::NotACapture { offset: 0, .. })
    ));
    assert!(matches!(
        parse_in_chunks(b"", 8),
        Err(WireError::Truncated { offset: 0, .. })
    ));
    let mut ng = pcapng(&frames());
    let idb_len = ng.len();
    ng[28 + 4..28 + 8].copy_from_slice(&13u32.to_be_bytes());
    assert!(matches!(
        parse_in_chunks(&ng, 4096),
        Err(WireError::BadBlockLength {
            offset: 32,
            length: 13
        })
    ));
    assert!(idb_len > 40);
}

#[test]
fn analyze_file_reads_a_file_and_reports_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pcap");
    std::fs::write(&path, pcap(&frames(), 1)).unwrap();
    let config = AnalyzerConfig {
        canaries: vec![b"canary".to_vec()],
        ..AnalyzerConfig::default()
    };
    let a = analyze_file(&path, &config).unwrap();
    assert_eq!(a.flows.len(), 1);
    assert_eq!(a.flows[0].canary_hits, 1);
    let missing = analyze_file(&dir.path().join("nope.pcap"), &config).unwrap_err();
    assert!(missing.to_string().contains("nope.pcap"), "{missing}");
    assert_eq!(missing.offset(), None);
}
