//! The decoders on hand-made streams in every encoding: each must find the canary once
//! per occurrence however the bytes are cut, and stay within its limits.

use super::*;

const CANARY: &[u8] = b"MESHPROOF-CANARY-unit";
const BODY: &[u8] = b"order 4111 for MESHPROOF-CANARY-unit\n";
// Made with Python's gzip, zlib, brotli, zstandard, python-snappy and hpack modules.
const GZIP: &str = "1f8b0800000000000203cb2f4a492d52303134345448cb2f52f0750df60808f2f777d37576f4730c8ad42dcdcb2ce102009675bdf025000000";
const ZLIB: &str =
    "789ccb2f4a492d52303134345448cb2f52f0750df60808f2f777d37576f4730c8ad42dcdcb2ce10200d5700b20";
const BR: &str =
    "0b12806f72646572203431313120666f72204d45534850524f4f462d43414e4152592d756e69740a03";
const ZSTD: &str =
    "28b52ffd20252901006f72646572203431313120666f72204d45534850524f4f462d43414e4152592d756e69740a";
const H2: &str = "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000000400000000000000270104000000018344856116c749938641811f4086f2b10750ecf592d183763d7b756ac2b5e874c3b79ad6d464ff00001a000100000001626f6479204d45534850524f4f462d43414e4152592d756e697400000501050000000383c086bfbe";
const WS: &str = "819b1122334479475f287e027e01426a63165e6d756952637d05437b1e317f4b47c1a711223344db0d790d3c7003752516670cda0d61b4642fc54c19d0c433c25745b0622eb9903ceff868f02033c18511223344db05755511";
const MYSQL: &str = "2500000185a6ff0100000000000000000000000000000000000000000000000000000000726f6f74002b000000230000789c93676060600e76f571750e5150f7750df60808f2f777d37576f4730c8ad42dcdcb2c51070085d908dc230000010000001f0000000353454c45435420274d45534850524f4f462d43414e4152592d756e697427";
const MONGO: &str = "3f0000000700000000000000dc070000dd070000250000000125000001017c66696e64206f72646572204d45534850524f4f462d43414e4152592d756e6974440000000700000000000000dc070000dd0700002500000002789c63600082b4ccbc1485fca294d422055fd7608f80207f7f375d67473fc7a048ddd2bccc1200b09c0a89470000000700000000000000dc070000dd070000250000000328b52ffd2025290100000000000066696e64206f72646572204d45534850524f4f462d43414e4152592d756e6974";

fn set() -> Canaries {
    Canaries::new(&[CANARY.to_vec()])
}

/// Runs one direction through a decoder in pieces of `step` bytes.
fn run_with(data: &[u8], step: usize, limits: DecodeLimits) -> Findings {
    let set = set();
    let mut d = Decoder::default();
    for piece in data.chunks(step.max(1)) {
        d.feed(&set, limits, piece);
    }
    d.finish(&set, limits);
    d.found
}

/// The findings, checked to be the same for every way of cutting the stream.
fn run(data: &[u8]) -> Findings {
    let whole = run_with(data, data.len(), DecodeLimits::default());
    for step in [1, 2, 3, 7, 64] {
        assert_eq!(
            run_with(data, step, DecodeLimits::default()),
            whole,
            "pieces of {step}"
        );
    }
    whole
}

fn names(f: &Findings) -> Vec<&'static str> {
    f.encodings().map(Encoding::as_str).collect()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn response(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn a_canary_split_across_chunks_is_found_once() {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(b"c\r\norder 4111 f\r\n");
    r.extend_from_slice(b"10\r\nor MESHPROOF-CAN\r\n");
    r.extend_from_slice(b"A;ext=1\r\nARY-unit\n\r\n0\r\n\r\n");
    let f = run(&r);
    assert_eq!((f.hits, f.partial), (1, false));
    assert_eq!(names(&f), ["chunked"]);
}

#[test]
fn compressed_bodies_in_every_coding() {
    for (coding, hexed, name) in [
        ("gzip", GZIP, "gzip"),
        ("deflate", ZLIB, "deflate"),
        ("br", BR, "br"),
        ("zstd", ZSTD, "zstd"),
    ] {
        let r = response(&format!("Content-Encoding: {coding}\r\n"), &h(hexed));
        let f = run(&r);
        assert_eq!((f.hits, f.partial), (1, false), "{coding}");
        assert_eq!(names(&f), [name]);
    }
}

#[test]
fn a_gzip_body_sent_chunked_by_a_client_is_found() {
    let gz = h(GZIP);
    let mut r = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in gz.chunks(10) {
        r.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        r.extend_from_slice(part);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(run(&r).hits, 1);
}

#[test]
fn percent_encoded_urls_forms_and_base64_headers() {
    let req = b"GET /q?who=MESHPROOF%2DCANARY%2Dunit HTTP/1.1\r\nAuthorization: Basic dXNlcjpNRVNIUFJPT0YtQ0FOQVJZLXVuaXQ=\r\nX-Plain: MESHPROOF-CANARY-unit\r\n\r\n";
    let f = run(req);
    assert_eq!(f.hits, 3);
    assert_eq!(names(&f), ["percent", "base64"]);
    let form = b"q=order+4111+MESHPROOF%2dCANARY-unit&x=MESHPROOF-CANARY-unit";
    let mut r = format!("POST /f HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", form.len()).into_bytes();
    r.extend_from_slice(form);
    let f = run(&r);
    assert_eq!(f.hits, 2, "one encoded, one as sent: neither counted twice");
}

#[test]
fn http2_hpack_huffman_dynamic_table_and_data() {
    let f = run(&h(H2));
    // The header Huffman-coded, again from the dynamic table, and the DATA frame.
    assert_eq!((f.hits, f.partial), (3, false));
    assert_eq!(names(&f), ["hpack", "http2-data"]);
}

#[test]
fn websocket_masked_and_deflated_messages() {
    let mut ws = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
    ws.extend(h(WS));
    let f = run(&ws);
    assert_eq!((f.hits, f.partial), (3, false));
    assert_eq!(names(&f), ["websocket", "permessage-deflate"]);
}

#[test]
fn mysql_compressed_protocol() {
    let f = run(&h(MYSQL));
    assert_eq!((f.hits, f.partial), (2, false));
    assert_eq!(names(&f), ["mysql-zlib"]);
}

#[test]
fn mongodb_op_compressed_in_three_compressors() {
    let f = run(&h(MONGO));
    assert_eq!((f.hits, f.partial), (3, false));
    assert_eq!(
        names(&f),
        ["mongodb-snappy", "mongodb-zlib", "mongodb-zstd"]
    );
}

#[test]
fn a_decompression_bomb_stops_at_the_output_limit_and_says_partial() {
    let zeros = vec![0u8; 4 << 20];
    let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    bomb.extend(miniz_oxide::deflate::compress_to_vec(&zeros, 9));
    let mut r = response("Content-Encoding: gzip\r\n", &bomb);
    r.extend_from_slice(&response("", BODY));
    let limits = DecodeLimits {
        output: 1 << 20,
        ..DecodeLimits::default()
    };
    let f = run_with(&r, 4096, limits);
    assert!(f.partial);
    assert_eq!(f.hits, 1, "the next message is still searched");
}

#[test]
fn windows_and_tables_beyond_the_limits_are_not_decoded() {
    let small = DecodeLimits {
        window: 1 << 10,
        ..DecodeLimits::default()
    };
    let r = response("Content-Encoding: br\r\n", &h(BR));
    assert!(
        run_with(&r, r.len(), small).partial,
        "brotli declares a 4 MiB window"
    );
    let r = response("Content-Encoding: zstd\r\n", &h(ZSTD));
    let f = run_with(
        &r,
        r.len(),
        DecodeLimits {
            window: 16,
            ..DecodeLimits::default()
        },
    );
    assert!(f.partial);
    // An HPACK table size update to 1 MiB, over the 64 KiB limit.
    let mut h2 = http2::PREFACE.to_vec();
    h2.extend_from_slice(&[0, 0, 4, 1, 4, 0, 0, 0, 1, 0x3f, 0xe1, 0xff, 0x3f]);
    assert!(run(&h2).partial);
}

#[test]
fn unknown_codings_are_partial_and_other_bytes_are_read_as_sent() {
    let r = response(
        "Content-Encoding: compress\r\n",
        b"xx MESHPROOF-CANARY-unit",
    );
    let f = run(&r);
    assert!(f.partial);
    let f = run(b"\x00\x01binary MESHPROOF-CANARY-unit and MESHPROOF-CANARY-unit");
    assert_eq!((f.hits, f.partial), (2, false));
    assert!(names(&f).is_empty());
}
