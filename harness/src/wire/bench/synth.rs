//! A synthetic capture for the analyzer benchmark: many interleaved TCP connections,
//! half carrying real TLS (records produced by rustls in memory, with real ClientHellos)
//! and half carrying plaintext HTTP with canaries in it.
//!
//! A handful of connection transcripts are produced once and replayed on many 4-tuples,
//! so generating a gigabyte costs little more than writing it. Generation streams to the
//! file; its memory does not grow with the target size.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConnection, ServerConnection};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Stop once the file holds at least this many bytes.
    pub target_bytes: u64,
    /// Connections in progress at once (their packets interleave).
    pub concurrent: usize,
    /// Bytes of response body per connection.
    pub response_bytes: usize,
    /// The canary placed in the plaintext connections.
    pub canary: Vec<u8>,
}

/// What was generated, to check the analysis against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// File size.
    pub bytes: u64,
    /// Packets written.
    pub packets: u64,
    /// Connections carrying TLS.
    pub tls_flows: u64,
    /// Connections carrying plaintext HTTP.
    pub plain_flows: u64,
    /// Canary occurrences written in clear.
    pub canary_hits: u64,
}

/// One direction's message in a transcript.
type Message = (bool, Vec<u8>);

struct Template {
    messages: Vec<Message>,
    server_port: u16,
    tls: bool,
    canary_hits: u64,
}

/// Errors while generating: I/O, or rustls refusing the in-memory handshake.
fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn tls_template(sni: &str, alpn: &[&[u8]], response_bytes: usize) -> io::Result<Template> {
    let certified = rcgen::generate_simple_self_signed(vec![sni.to_string()]).map_err(other)?;
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).map_err(other)?;
    let mut client_cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(other)?;
    server_cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(sni.to_string()).map_err(other)?;
    let mut client = ClientConnection::new(Arc::new(client_cfg), name).map_err(other)?;
    let mut server = ServerConnection::new(Arc::new(server_cfg)).map_err(other)?;
    let mut messages = Vec::new();
    pump(&mut client, &mut server, &mut messages)?;
    client
        .writer()
        .write_all(b"GET /bench HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    pump(&mut client, &mut server, &mut messages)?;
    // rustls bounds its send buffer, so the body goes out in record-sized pieces.
    let piece = vec![b'x'; 16 * 1024];
    let mut left = response_bytes;
    while left > 0 {
        let n = left.min(piece.len());
        server.writer().write_all(&piece[..n])?;
        pump(&mut client, &mut server, &mut messages)?;
        left -= n;
    }
    Ok(Template {
        messages,
        server_port: 443,
        tls: true,
        canary_hits: 0,
    })
}

/// Moves TLS bytes between the two ends until neither has anything to send.
fn pump(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
    out: &mut Vec<Message>,
) -> io::Result<()> {
    loop {
        let mut moved = false;
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf)?;
        }
        if !buf.is_empty() {
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd)?;
                server.process_new_packets().map_err(other)?;
                discard(server.reader());
            }
            out.push((true, buf));
            moved = true;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf)?;
        }
        if !buf.is_empty() {
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd)?;
                client.process_new_packets().map_err(other)?;
                discard(client.reader());
            }
            out.push((false, buf));
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
}

/// Reads and drops received plaintext so rustls's receive buffer never fills.
fn discard(mut reader: rustls::Reader<'_>) {
    let mut sink = [0u8; 16 * 1024];
    while matches!(std::io::Read::read(&mut reader, &mut sink), Ok(n) if n > 0) {}
}

fn plain_template(canary: &[u8], response_bytes: usize) -> Template {
    let mut request = b"POST /users HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nemail=".to_vec();
    request.extend_from_slice(canary);
    let mut body = Vec::with_capacity(response_bytes + 64);
    body.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    let line = b"id=42 name=Alice Example city=Sydney age=37 note=nothing to see here\n";
    let mut hits = 1;
    while body.len() < response_bytes {
        body.extend_from_slice(line);
        if body.len() % (256 * 1024) < line.len() {
            body.extend_from_slice(canary);
            hits += 1;
        }
    }
    Template {
        messages: vec![(true, request), (false, body)],
        server_port: 80,
        tls: false,
        canary_hits: hits,
    }
}

/// One connection being written: which template, how far, and its sequence numbers.
struct Conn {
    template: usize,
    id: u64,
    message: usize,
    offset: usize,
    seq: [u32; 2],
    stage: u8,
}

const MSS: usize = 1448;

/// Writes a synthetic pcap of at least `config.target_bytes` bytes.
pub fn write_synthetic_capture(path: &Path, config: &SynthConfig) -> io::Result<SynthSummary> {
    let templates = [
        tls_template(
            "outbound_.9080_._.reviews.bookinfo.svc.cluster.local",
            &[b"istio-http/1.1", b"istio", b"http/1.1"],
            config.response_bytes,
        )?,
        plain_template(&config.canary, config.response_bytes),
        tls_template(
            "api.bench.meshproof.test",
            &[b"h2", b"http/1.1"],
            config.response_bytes,
        )?,
        plain_template(&config.canary, config.response_bytes / 2),
    ];
    let mut w = PcapWriter::create(path)?;
    let mut summary = SynthSummary::default();
    let mut next_id = 0u64;
    let mut active: Vec<Conn> = Vec::new();
    let mut done = false;
    while !done || !active.is_empty() {
        while !done && active.len() < config.concurrent.max(1) {
            let t = (next_id % templates.len() as u64) as usize;
            let tpl = &templates[t];
            if tpl.tls {
                summary.tls_flows += 1
            } else {
                summary.plain_flows += 1
            }
            summary.canary_hits += tpl.canary_hits;
            active.push(Conn {
                template: t,
                id: next_id,
                message: 0,
                offset: 0,
                seq: [1000, 50_000],
                stage: 0,
            });
            next_id += 1;
        }
        let mut failure = None;
        active.retain_mut(|c| match step(&mut w, &templates[c.template], c) {
            Ok(open) => open,
            Err(e) => {
                failure = Some(e);
                false
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if w.bytes >= config.target_bytes {
            done = true;
        }
    }
    summary.packets = w.packets;
    summary.bytes = w.finish()?;
    Ok(summary)
}

/// Writes up to a burst of packets for one connection; false once it has closed.
fn step(w: &mut PcapWriter, t: &Template, c: &mut Conn) -> io::Result<bool> {
    let client = (
        [10, 1, (c.id >> 8) as u8, c.id as u8],
        20_000 + (c.id % 40_000) as u16,
    );
    let server = ([10, 2, 0, (c.id % 200) as u8 + 1], t.server_port);
    let ends = [client, server];
    match c.stage {
        0 => {
            w.tcp(ends[0], ends[1], c.seq[0], 0, 0x02, b"")?;
            w.tcp(ends[1], ends[0], c.seq[1], c.seq[0] + 1, 0x12, b"")?;
            c.seq = [c.seq[0] + 1, c.seq[1] + 1];
            w.tcp(ends[0], ends[1], c.seq[0], c.seq[1], 0x10, b"")?;
            c.stage = 1;
        }
        1 => {
            for _ in 0..8 {
                let Some((from_client, bytes)) = t.messages.get(c.message) else {
                    c.stage = 2;
                    break;
                };
                let d = usize::from(!*from_client);
                let piece = &bytes[c.offset..(c.offset + MSS).min(bytes.len())];
                w.tcp(ends[d], ends[1 - d], c.seq[d], c.seq[1 - d], 0x18, piece)?;
                c.seq[d] = c.seq[d].wrapping_add(piece.len() as u32);
                c.offset += piece.len();
                if (c.offset / MSS).is_multiple_of(2) || c.offset == bytes.len() {
                    // Delayed ACK: the receiver acknowledges every second segment.
                    w.tcp(ends[1 - d], ends[d], c.seq[1 - d], c.seq[d], 0x10, b"")?;
                }
                if c.offset == bytes.len() {
                    c.message += 1;
                    c.offset = 0;
                }
            }
        }
        _ => {
            w.tcp(ends[0], ends[1], c.seq[0], c.seq[1], 0x11, b"")?;
            w.tcp(ends[1], ends[0], c.seq[1], c.seq[0] + 1, 0x11, b"")?;
            w.tcp(ends[0], ends[1], c.seq[0] + 1, c.seq[1] + 1, 0x10, b"")?;
            return Ok(false);
        }
    }
    Ok(true)
}

/// A minimal pcap writer (microsecond timestamps, Ethernet) with a reusable frame buffer.
struct PcapWriter {
    out: BufWriter<File>,
    frame: Vec<u8>,
    bytes: u64,
    packets: u64,
}

impl PcapWriter {
    fn create(path: &Path) -> io::Result<PcapWriter> {
        let mut out = BufWriter::with_capacity(8 << 20, File::create(path)?);
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter {
            out,
            frame: Vec::with_capacity(2048),
            bytes: 24,
            packets: 0,
        })
    }

    fn tcp(
        &mut self,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> io::Result<()> {
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (40 + payload.len()) as u16;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ]);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.1.to_be_bytes());
        f.extend_from_slice(&dst.1.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&ack.to_be_bytes());
        f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        let ts_us = self.packets * 20;
        self.out
            .write_all(&((1_750_000_000 + ts_us / 1_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
        let len = (f.len() as u32).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&len)?;
        self.out.write_all(f)?;
        self.bytes += 16 + f.len() as u64;
        self.packets += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        Ok(self.bytes)
    }
}
