//! Reassembly and canary-scanning rules, segment by segment.

use super::*;

const CANARY: &[u8] = b"MESHPROOF-CANARY-abcdefghijklmnop";

fn needles() -> Needles {
    Needles::new(&[CANARY.to_vec()])
}

fn plain_side() -> Side {
    let mut s = Side::default();
    s.segment(999, true, b"", &needles());
    s
}

#[test]
fn in_order_out_of_order_retransmitted_and_overlapping_segments() {
    let n = needles();
    let mut s = plain_side();
    let text = b"INSERT INTO users VALUES ('MESHPROOF-CANARY-abcdefghijklmnop', 'x');";
    // Delivered as: [20..40) early, [0..25) overlapping, [0..10) retransmitted, [40..) last.
    s.segment(1000 + 20, false, &text[20..40], &n);
    s.segment(1000, false, &text[..25], &n);
    s.segment(1000, false, &text[..10], &n);
    s.segment(1000 + 40, false, &text[40..], &n);
    assert_eq!(s.bytes, text.len() as u64, "each byte counted once");
    assert_eq!(s.hits, 1);
    assert!(!s.is_tls());
}

#[test]
fn canary_split_over_many_segments_is_found() {
    let n = needles();
    let mut s = plain_side();
    let mut payload = b"GET /?q=".to_vec();
    payload.extend_from_slice(CANARY);
    payload.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let mut seq = 1000u32;
    for chunk in payload.chunks(3) {
        s.segment(seq, false, chunk, &n);
        seq += chunk.len() as u32;
    }
    s.finish(&n);
    assert_eq!(s.hits, 1);
}

#[test]
fn two_canaries_back_to_back_count_twice() {
    let n = needles();
    let mut s = plain_side();
    let mut p = CANARY.to_vec();
    p.extend_from_slice(CANARY);
    s.segment(1000, false, &p[..40], &n);
    s.segment(1040, false, &p[40..], &n);
    s.finish(&n);
    assert_eq!(s.hits, 2);
}

#[test]
fn canary_inside_tls_records_is_not_counted() {
    let n = needles();
    let mut s = Side::default();
    s.segment(0, true, b"", &n);
    let hello = crate::wire::tls::tests::rustls_hello("a.example", &["istio"], None);
    s.segment(1, false, &hello, &n);
    let mut record = vec![23, 3, 3];
    record.extend_from_slice(&(CANARY.len() as u16).to_be_bytes());
    record.extend_from_slice(CANARY); // pretend ciphertext that happens to equal the canary
    s.segment(1 + hello.len() as u32, false, &record, &n);
    assert!(s.is_tls());
    assert_eq!(s.hits, 0);
    assert_eq!(s.hello.as_ref().unwrap().alpn, ["istio"]);
}

#[test]
fn clienthello_split_over_segments_is_reassembled() {
    let n = needles();
    let mut s = Side::default();
    s.segment(7, true, b"", &n);
    let hello = crate::wire::tls::tests::rustls_hello(
        "outbound_.80_._.web.demo.svc.cluster.local",
        &["istio-http/1.1", "istio", "http/1.1"],
        Some(100),
    );
    let mut seq = 8u32;
    for chunk in hello.chunks(33).rev().collect::<Vec<_>>().into_iter().rev() {
        s.segment(seq, false, chunk, &n);
        seq += chunk.len() as u32;
    }
    assert_eq!(
        s.hello.as_ref().unwrap().sni.as_deref(),
        Some("outbound_.80_._.web.demo.svc.cluster.local")
    );
}

#[test]
fn midstream_plaintext_is_scanned_and_midstream_tls_is_not() {
    let n = needles();
    let mut plain = Side::default();
    plain.segment(
        123_456,
        false,
        b"...name='MESHPROOF-CANARY-abcdefghijklmnop'...",
        &n,
    );
    plain.finish(&n);
    assert_eq!(plain.hits, 1);
    let mut tls = Side::default();
    let mut stream = vec![0u8; 10];
    for _ in 0..3 {
        stream.extend_from_slice(&[23, 3, 3, 0, 40]);
        stream.extend_from_slice(&[0x42; 40]);
    }
    tls.segment(5, false, &stream, &n);
    tls.finish(&n);
    assert!(tls.is_tls());
}

#[test]
fn a_lost_segment_is_skipped_not_buffered_forever() {
    let n = needles();
    let mut s = plain_side();
    s.segment(1000, false, b"hello", &n);
    // Segment [1005, 2005) is never captured; later data keeps arriving.
    let mut seq = 2005u32;
    for _ in 0..300 {
        s.segment(seq, false, &[b'a'; 1000], &n);
        seq += 1000;
    }
    assert!(s.lost >= 1000, "lost {}", s.lost);
    assert!(s.pending_bytes <= MAX_PENDING);
    assert_eq!(s.bytes, 5 + 300 * 1000);
}

#[test]
fn sequence_numbers_wrap() {
    let n = needles();
    let mut s = Side::default();
    s.segment(u32::MAX - 3, true, b"", &n);
    s.segment(u32::MAX - 2, false, b"MESHPROOF-CANARY-", &n);
    s.segment(
        (u32::MAX - 2).wrapping_add(17),
        false,
        b"abcdefghijklmnop",
        &n,
    );
    s.finish(&n);
    assert_eq!(s.hits, 1);
}
