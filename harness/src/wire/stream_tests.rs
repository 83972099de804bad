//! Unit tests for one direction's stream analysis, with hand-built records for the edge
//! cases; real handshakes are covered by the integration tests.

use super::*;
use crate::wire::tls::tests::{client_hello, records};

fn ctx(canaries: &Canaries) -> Ctx<'_> {
    Ctx {
        canaries,
        limits: Limits {
            starttls_window: 16 * 1024,
            resync_window: 32 * 1024,
            max_handshake: 64 * 1024,
            decode: crate::wire::decode::DecodeLimits::default(),
        },
    }
}

fn feed(stream: &mut Stream, cx: &Ctx<'_>, parts: &[&[u8]], from_syn: bool) {
    for p in parts {
        stream.chunk(cx, Chunk::Data(p), from_syn);
    }
    stream.finish(cx);
}

fn app_data(body: &[u8]) -> Vec<u8> {
    let mut r = vec![23, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

#[test]
fn client_hello_split_at_every_byte_is_parsed() {
    let set = Canaries::new(&[b"canary-123".to_vec()]);
    let cx = ctx(&set);
    let hello = client_hello(Some("db.example"), &["h2", "http/1.1"], &[0x0304], 1800);
    let mut wire = records(&hello, 700);
    wire.extend_from_slice(&app_data(b"canary-123 inside ciphertext does not count"));
    for cut in 1..wire.len() {
        let mut s = Stream::default();
        feed(&mut s, &cx, &[&wire[..cut], &wire[cut..]], true);
        let h = s
            .hello
            .as_ref()
            .unwrap_or_else(|| panic!("no hello with cut {cut}"));
        assert_eq!(h.sni.as_deref(), Some("db.example"));
        assert_eq!(h.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(s.hits, 0, "cut {cut}");
        assert_eq!(s.plain_bytes, 0, "cut {cut}");
    }
}

#[test]
fn tls_after_a_clear_preamble_is_found_and_the_preamble_scanned() {
    let set = Canaries::new(&[b"SSLREQ".to_vec()]);
    let cx = ctx(&set);
    // A MySQL-style SSLRequest packet (here carrying a canary), then the ClientHello.
    let mut wire = b"\x20\x00\x00\x01SSLREQ-padding-padding-padding-p".to_vec();
    let preamble = wire.len();
    wire.extend_from_slice(&records(
        &client_hello(Some("mysql.internal"), &[], &[], 100),
        16384,
    ));
    for cut in 1..wire.len() {
        let mut s = Stream::default();
        feed(&mut s, &cx, &[&wire[..cut], &wire[cut..]], true);
        assert_eq!(
            s.hello.as_ref().and_then(|h| h.sni.as_deref()),
            Some("mysql.internal"),
            "cut {cut}"
        );
        assert_eq!(s.plain_bytes, preamble as u64, "cut {cut}");
        assert_eq!(s.hits, 1, "cut {cut}");
    }
}

#[test]
fn plaintext_is_scanned_and_sniffed() {
    let set = Canaries::new(&[b"4111111111111111".to_vec()]);
    let cx = ctx(&set);
    let mut s = Stream::default();
    feed(
        &mut s,
        &cx,
        &[
            b"POST /pay HTTP/1.1\r\nHost: x\r\n\r\ncard=41111111",
            b"11111111&again=4111111111111111",
        ],
        true,
    );
    assert_eq!(s.hits, 2);
    assert_eq!(s.protocol(), Some((Protocol::Http, Speaker::Client)));
    assert!(!s.tls_seen);
}

#[test]
fn mid_stream_tls_records_are_recognised() {
    let set = Canaries::new(&[b"zz".to_vec()]);
    let cx = ctx(&set);
    let mut wire = Vec::new();
    for i in 0..4u8 {
        wire.extend_from_slice(&app_data(&vec![b'z'.wrapping_add(i); 3000]));
    }
    // Pick the stream up in the middle of the first record.
    let mut s = Stream::default();
    feed(&mut s, &cx, &[&wire[1000..5000], &wire[5000..]], false);
    assert!(s.tls_seen);
    assert_eq!(s.hits, 0);
    assert_eq!(s.plain_bytes, 0);
}

#[test]
fn mid_stream_short_fragment_is_undecided_unless_it_holds_a_canary() {
    let set = Canaries::new(&[b"leak-me".to_vec()]);
    let cx = ctx(&set);
    let mut s = Stream::default();
    feed(&mut s, &cx, &[&[0x9c, 0x11, 0xe0, 0x42, 0x77]], false);
    assert_eq!(
        (s.undecided_bytes, s.plain_bytes, s.tls_seen),
        (5, 0, false)
    );
    let mut s = Stream::default();
    feed(&mut s, &cx, &[b"\x01\x02 leak-me \x03"], false);
    assert_eq!((s.hits, s.plain_bytes), (1, 12));
}

#[test]
fn mid_stream_clear_text_without_framing_becomes_plain_after_the_window() {
    let set = Canaries::new(&[b"needle".to_vec()]);
    let cx = ctx(&set);
    let mut s = Stream::default();
    let mut text = vec![b'.'; 40 * 1024];
    text[20_000..20_006].copy_from_slice(b"needle");
    for piece in text.chunks(1448) {
        s.chunk(&cx, Chunk::Data(piece), false);
    }
    s.finish(&cx);
    assert_eq!(s.hits, 1);
    assert_eq!(s.plain_bytes, text.len() as u64);
}

#[test]
fn a_gap_inside_a_record_keeps_framing_and_one_across_headers_resyncs() {
    let set = Canaries::new(&[b"AAAA".to_vec()]);
    let cx = ctx(&set);
    let hello = records(&client_hello(None, &["h2"], &[0x0304], 0), 16384);
    let rec = app_data(&[b'A'; 4000]);
    let mut s = Stream::default();
    s.chunk(&cx, Chunk::Data(&hello), true);
    s.chunk(&cx, Chunk::Data(&rec[..100]), true);
    s.chunk(&cx, Chunk::Gap(1000), true);
    s.chunk(&cx, Chunk::Data(&rec[1100..]), true);
    // Now lose a header: the rest must not be scanned even though it is all 'A'.
    s.chunk(&cx, Chunk::Gap(3), true);
    let next = app_data(&[b'A'; 2000]);
    s.chunk(&cx, Chunk::Data(&next[3..]), true);
    s.chunk(&cx, Chunk::Data(&app_data(&[b'A'; 500])), true);
    s.chunk(&cx, Chunk::Data(&app_data(&[b'A'; 500])), true);
    s.finish(&cx);
    assert_eq!(s.hits, 0);
    assert_eq!(s.plain_bytes, 0);
    assert!(s.hello.is_some());
}
