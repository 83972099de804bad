//! Fuzzes the canary search's decoders (`wire::decode`) directly: the first input byte
//! picks a prelude that puts the direction into one decoder (an HTTP/1 response in each
//! content coding, a chunked one, a form request, an HTTP/2 preface, a WebSocket
//! upgrade, a MySQL greeting, a MongoDB `OP_COMPRESSED` header), the second the size of
//! the pieces the rest is fed in. Small limits make decompression bombs and huge HPACK
//! tables hit their bounds quickly; the search must never panic and must say `partial`
//! when it stopped at a bound.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../harness/src/wire/mod.rs"]
mod wire;

use libfuzzer_sys::fuzz_target;
use wire::decode::{DecodeLimits, Decoder};

const PRELUDES: [&[u8]; 10] = [
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /f HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    b"\x20\x00\x00\x00\x0a5.5.5-10.11\x00\x01\x00\x00\x00AAAAAAAA\x00\xff\xff\x08\x02\x00\x0f\x80\x15",
    b"",
];

fuzz_target!(|data: &[u8]| {
    let [pick, step, rest @ ..] = data else {
        return;
    };
    let set = wire_canaries();
    let limits = DecodeLimits {
        window: 1 << 20,
        buffered: 64 << 10,
        output: 1 << 20,
        hpack_table: 4096,
    };
    let mut input = PRELUDES[usize::from(*pick) % PRELUDES.len()].to_vec();
    input.extend_from_slice(rest);
    let mut d = Decoder::default();
    for piece in input.chunks(usize::from(*step).max(1)) {
        d.feed(&set, limits, piece);
    }
    d.finish(&set, limits);
    let found = d.found;
    // Each canary can start at most once per byte searched, and every decoded byte is
    // charged to `output`; a few views (percent, base64) search a value twice more.
    let bound = 2 * 4 * (input.len() as u64 + limits.output);
    assert!(found.hits <= bound, "{} hits from {} bytes", found.hits, input.len());
});

fn wire_canaries() -> wire::Canaries {
    wire::Canaries::new(&[b"MESHPROOF-CANARY".to_vec(), b"aa".to_vec()])
}
