//! Fixture tier for the wire analyzer: real captures, recorded by
//! `fixtures/captures/record.sh` with curl, openssl, psql, tcpdump and dumpcap and checked
//! against tshark when they were recorded, are analysed offline and must give exactly
//! their expected JSON. The same captures, with every data segment retransmitted or with
//! each flow direction's data segments delivered out of order, must give the same flows: that is the
//! reassembly promise, shown on real TCP streams rather than hand-written ones.
//! Files in `fixtures/captures/regressions/` (inputs that once broke the analyzer) must
//! keep giving what `regressions/expected.txt` says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshproof::wire::{
    Analysis, Analyzer, AnalyzerConfig, Decoded, Endpoint, Flow, FrameSpan, LinkType, Segment,
    WireError, analyze_file, decode, read_capture, tcp_flags,
};

/// The canary `record.sh` planted in every recording.
const CANARY: &str = "MESHPROOF-CANARY-fixture-0001";

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures")
}

fn config() -> AnalyzerConfig {
    AnalyzerConfig {
        canaries: vec![CANARY.as_bytes().to_vec()],
        ..AnalyzerConfig::default()
    }
}

/// Every recorded capture, sorted by name.
fn recordings() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(captures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    files
}

fn expected(capture: &Path) -> Analysis {
    let mut name = capture.file_name().unwrap().to_os_string();
    name.push(".expected.json");
    let path = capture.with_file_name(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} has no expected analysis: {e}", capture.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_recording_gives_its_expected_analysis() {
    let files = recordings();
    assert!(files.len() >= 10, "recordings missing: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let got = analyze_file(file, &config()).unwrap();
        let want = expected(file);
        if got != want {
            failures.push(format!(
                "{}:\n  got  {}\n  want {}",
                file.display(),
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&want).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_expected_file_is_left_without_its_recording() {
    for entry in std::fs::read_dir(captures_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(capture) = name.strip_suffix(".expected.json") {
            assert!(
                captures_dir().join(capture).exists(),
                "{name} describes a capture that is not there"
            );
        }
    }
}

/// One packet of a recording, owned so it can be replayed in another order.
struct Packet {
    link: LinkType,
    ts: Duration,
    data: Vec<u8>,
}

fn packets(file: &Path) -> Vec<Packet> {
    let mut out = Vec::new();
    let reader = std::fs::File::open(file).unwrap();
    read_capture(reader, &mut |r| {
        out.push(Packet {
            link: r.link,
            ts: r.ts,
            data: r.data.to_vec(),
        })
    })
    .unwrap();
    out
}

/// A data segment's direction, or `None` for control segments and non-TCP packets.
fn data_direction(p: &Packet) -> Option<(Endpoint, Endpoint)> {
    match decode(p.link, &p.data) {
        Decoded::Tcp(Segment {
            src,
            dst,
            flags,
            payload,
            ..
        }) if !payload.is_empty()
            && flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0 =>
        {
            Some((src, dst))
        }
        _ => None,
    }
}

/// Replays the packets in the given order, each with its own timestamp (captures taken
/// on several interfaces are not in time order either).
fn replay(original: &[Packet], order: &[usize]) -> Analysis {
    let mut analyzer = Analyzer::new(config());
    for &i in order {
        let p = &original[i];
        analyzer.push(p.link, p.ts, &p.data);
    }
    analyzer.finish()
}

/// The flows without their frame spans: replaying extra or reordered packets changes the
/// frame numbers (positions in the file), never what the flows were.
fn without_frames(mut flows: Vec<Flow>) -> Vec<Flow> {
    for f in &mut flows {
        f.frames = FrameSpan::default();
    }
    flows
}

/// Delivers the data segments of every flow direction out of order: the first and second
/// segment of a direction trade places, then the third and fourth, and so on. Packets of
/// other directions and control segments keep their places. Returns the new order and
/// how many pairs were swapped.
fn swapped_pairs(packets: &[Packet]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..packets.len()).collect();
    let mut by_direction: std::collections::HashMap<(Endpoint, Endpoint), Vec<usize>> =
        std::collections::HashMap::new();
    for (i, p) in packets.iter().enumerate() {
        if let Some(dir) = data_direction(p) {
            by_direction.entry(dir).or_default().push(i);
        }
    }
    let mut swaps = 0;
    for slots in by_direction.values() {
        for pair in slots.chunks_exact(2) {
            order.swap(pair[0], pair[1]);
            swaps += 1;
        }
    }
    (order, swaps)
}

#[test]
fn retransmitted_and_reordered_segments_of_real_captures_change_no_flow() {
    let mut swaps = 0;
    for file in recordings() {
        let original = packets(&file);
        let want = without_frames(analyze_file(&file, &config()).unwrap().flows);

        let twice: Vec<usize> = (0..original.len())
            .flat_map(|i| {
                if data_direction(&original[i]).is_some() {
                    vec![i, i]
                } else {
                    vec![i]
                }
            })
            .collect();
        assert_eq!(
            without_frames(replay(&original, &twice).flows),
            want,
            "{}: retransmitted",
            file.display()
        );

        let (order, swapped) = swapped_pairs(&original);
        swaps += swapped;
        assert_eq!(
            without_frames(replay(&original, &order).flows),
            want,
            "{}: reordered",
            file.display()
        );
    }
    // The recordings must hold real out-of-order material, or the test proves nothing.
    assert!(
        swaps >= 20,
        "only {swaps} pairs of data segments could be swapped"
    );
}

#[test]
fn a_recording_cut_short_names_the_byte_where_its_last_record_starts() {
    let file = captures_dir().join("http-eth.pcap");
    let bytes = std::fs::read(&file).unwrap();
    // pcap: a 24-byte file header, then records of a 16-byte header and the frame.
    let mut starts = vec![24usize];
    while let Some(&at) = starts.last() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        if at + 16 + len >= bytes.len() {
            break;
        }
        starts.push(at + 16 + len);
    }
    let last = *starts.last().unwrap();
    let cut = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cut.path(), &bytes[..last + 20]).unwrap();
    match analyze_file(cut.path(), &config()) {
        Err(WireError::Truncated { offset, .. }) => assert_eq!(offset, last as u64),
        other => panic!("expected truncation at byte {last}, got {other:?}"),
    }
}

#[test]
fn regression_inputs_keep_their_recorded_results() {
    let dir = captures_dir().join("regressions");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    let mut seen = 0;
    for (n, line) in expected.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, want) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("expected.txt:{}: no ':' in {line:?}", n + 1));
        let got = match analyze_file(&dir.join(file.trim()), &config()) {
            Ok(analysis) => analysis
                .flows
                .iter()
                .map(|f| format!("{}/{}", f.class, f.protocol.as_deref().unwrap_or("-")))
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, want.trim(), "expected.txt:{}: {file}", n + 1);
        seen += 1;
    }
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".pcap") || name.ends_with(".pcapng")
        })
        .count();
    assert_eq!(
        seen, files,
        "every regression input needs a line in expected.txt"
    );
}

/// The payloads of the first segments a recording's client sent, in capture order.
fn first_client_payloads(file: &Path) -> Vec<Vec<u8>> {
    let mut client = None;
    let mut out = Vec::new();
    for p in packets(file) {
        if let Decoded::Tcp(s) = decode(p.link, &p.data) {
            if s.payload.is_empty() {
                continue;
            }
            let from = *client.get_or_insert(s.src);
            if s.src != from {
                break;
            }
            out.push(s.payload.to_vec());
        }
    }
    out
}

#[test]
fn the_split_hello_recordings_really_split_their_client_hello() {
    // A fixture that claims a multi-segment ClientHello proves nothing if segmentation
    // offload handed the capture one large frame (it once did, at MTU 256).
    for (name, min_hello) in [
        ("istio-mtls-split-hello.pcap", 300),
        // X25519MLKEM768's key share alone is 1,216 bytes.
        ("istio-mtls-pq.pcap", 1_400),
    ] {
        let payloads = first_client_payloads(&captures_dir().join(name));
        let first = &payloads[0];
        assert_eq!(first[0], 0x16, "{name}: not a TLS handshake record");
        let record = 5 + usize::from(u16::from_be_bytes([first[3], first[4]]));
        assert!(record >= min_hello, "{name}: ClientHello of {record} bytes");
        assert!(
            first.len() < record && payloads.len() >= 2,
            "{name}: ClientHello of {record} bytes arrived in a {}-byte segment",
            first.len()
        );
    }
}
