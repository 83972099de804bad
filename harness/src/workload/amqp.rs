//! AMQP 0-9-1, as far as a traffic generator needs it.
//!
//! Real framing throughout: the protocol header `AMQP\0\0\x09\x01`, frames of type, channel,
//! size and payload closed by `0xCE`, and the methods a publish-and-get needs:
//! Connection.Start/StartOk/Tune/TuneOk/Open/OpenOk/Close/CloseOk, Channel.Open/OpenOk/
//! Close/CloseOk, Queue.Declare/DeclareOk, Basic.Publish with its content header and body,
//! and Basic.Get/GetOk/GetEmpty. The broker keeps messages in memory so a probe can read
//! back what it published; it is not a message broker.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::WorkloadError;

/// The protocol header a client sends first.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
const FRAME_MAX: u32 = 131_072;

/// A method id: `(class, method)`.
pub type MethodId = (u16, u16);
const START: MethodId = (10, 10);
const START_OK: MethodId = (10, 11);
const TUNE: MethodId = (10, 30);
const TUNE_OK: MethodId = (10, 31);
const OPEN: MethodId = (10, 40);
const OPEN_OK: MethodId = (10, 41);
const CLOSE: MethodId = (10, 50);
const CLOSE_OK: MethodId = (10, 51);
const CHANNEL_OPEN: MethodId = (20, 10);
const CHANNEL_OPEN_OK: MethodId = (20, 11);
const CHANNEL_CLOSE: MethodId = (20, 40);
const CHANNEL_CLOSE_OK: MethodId = (20, 41);
const QUEUE_DECLARE: MethodId = (50, 10);
const QUEUE_DECLARE_OK: MethodId = (50, 11);
const BASIC_PUBLISH: MethodId = (60, 40);
const BASIC_GET: MethodId = (60, 70);
const BASIC_GET_OK: MethodId = (60, 71);
const BASIC_GET_EMPTY: MethodId = (60, 72);
const BASIC_ACK: MethodId = (60, 80);

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1 method, 2 content header, 3 body, 8 heartbeat.
    pub kind: u8,
    /// The channel.
    pub channel: u16,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Serializes the frame with its end octet.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 8);
        out.push(self.kind);
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out.push(FRAME_END);
        out
    }

    /// The method id of a method frame.
    pub fn method(&self) -> Option<MethodId> {
        (self.kind == FRAME_METHOD && self.payload.len() >= 4).then(|| {
            let p = &self.payload;
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        })
    }

    fn args(&self) -> Args<'_> {
        Args {
            buf: self.payload.get(4..).unwrap_or_default(),
            pos: 0,
        }
    }
}

/// Reads one frame, checking its end octet.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, WorkloadError> {
    let mut head = [0u8; 7];
    r.read_exact(&mut head).await?;
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    if size > FRAME_MAX {
        return Err(WorkloadError::Protocol(format!(
            "AMQP frame of {size} bytes exceeds frame-max"
        )));
    }
    let mut payload = vec![0u8; size as usize + 1];
    r.read_exact(&mut payload).await?;
    if payload.pop() != Some(FRAME_END) {
        return Err(WorkloadError::Protocol(
            "AMQP frame does not end with 0xCE".into(),
        ));
    }
    Ok(Frame {
        kind: head[0],
        channel: u16::from_be_bytes([head[1], head[2]]),
        payload,
    })
}

/// Builds method frames argument by argument.
#[derive(Debug, Default)]
pub struct Method(Vec<u8>);

impl Method {
    /// Starts a method.
    pub fn new((class, method): MethodId) -> Method {
        let mut m = Method(Vec::new());
        m.0.extend_from_slice(&class.to_be_bytes());
        m.0.extend_from_slice(&method.to_be_bytes());
        m
    }
    fn octet(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn short(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn long(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn longlong(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn shortstr(mut self, s: &str) -> Self {
        let bytes = &s.as_bytes()[..s.len().min(255)];
        self.0.push(bytes.len() as u8);
        self.0.extend_from_slice(bytes);
        self
    }
    fn longstr(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
    /// A field table of string values.
    fn table(self, entries: &[(&str, &str)]) -> Self {
        let mut body = Vec::new();
        for (key, value) in entries {
            body.push(key.len() as u8);
            body.extend_from_slice(key.as_bytes());
            body.push(b'S');
            body.extend_from_slice(&(value.len() as u32).to_be_bytes());
            body.extend_from_slice(value.as_bytes());
        }
        self.longstr(&body)
    }
    /// The method as a frame on `channel`.
    pub fn frame(self, channel: u16) -> Frame {
        Frame {
            kind: FRAME_METHOD,
            channel,
            payload: self.0,
        }
    }
}

struct Args<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Args<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WorkloadError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| WorkloadError::Protocol("AMQP method truncated".into()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn shortstr(&mut self) -> Result<String, WorkloadError> {
        let n = self.take(1)?[0] as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn longstr(&mut self) -> Result<&'a [u8], WorkloadError> {
        let b = self.take(4)?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        self.take(n)
    }
    fn skip(&mut self, n: usize) -> Result<(), WorkloadError> {
        self.take(n).map(|_| ())
    }
}

fn content_header(channel: u16, size: u64) -> Frame {
    let mut p = Vec::new();
    p.extend_from_slice(&60u16.to_be_bytes());
    p.extend_from_slice(&0u16.to_be_bytes());
    p.extend_from_slice(&size.to_be_bytes());
    p.extend_from_slice(&0u16.to_be_bytes()); // No properties.
    Frame {
        kind: FRAME_HEADER,
        channel,
        payload: p,
    }
}

fn content_frames(channel: u16, body: &[u8]) -> Vec<u8> {
    let mut out = content_header(channel, body.len() as u64).encode();
    for chunk in body.chunks((FRAME_MAX - 8) as usize) {
        out.extend(
            Frame {
                kind: FRAME_BODY,
                channel,
                payload: chunk.to_vec(),
            }
            .encode(),
        );
    }
    out
}

async fn read_content<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, WorkloadError> {
    let header = read_frame(r).await?;
    if header.kind != FRAME_HEADER || header.payload.len() < 14 {
        return Err(WorkloadError::Protocol(
            "expected an AMQP content header".into(),
        ));
    }
    let size = u64::from_be_bytes(header.payload[4..12].try_into().unwrap_or_default());
    if size > u64::from(FRAME_MAX) * 64 {
        return Err(WorkloadError::Protocol(format!(
            "AMQP message of {size} bytes is too large"
        )));
    }
    let mut body = Vec::with_capacity(size as usize);
    while (body.len() as u64) < size {
        let frame = read_frame(r).await?;
        if frame.kind != FRAME_BODY {
            return Err(WorkloadError::Protocol(
                "expected an AMQP body frame".into(),
            ));
        }
        body.extend_from_slice(&frame.payload);
    }
    Ok(body)
}

/// The broker's in-memory queues, shared by all connections of one workload instance.
#[derive(Debug, Default, Clone)]
pub struct Queues {
    inner: Arc<Mutex<BTreeMap<String, VecDeque<Vec<u8>>>>>,
    quorum: Arc<Mutex<std::collections::BTreeSet<String>>>,
    replicate: Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
}

impl Queues {
    /// Queues whose quorum-queue messages are handed to `replicate`, which sends them to
    /// the cluster peers (as a quorum queue's leader does over Erlang distribution).
    pub fn replicated(replicate: tokio::sync::mpsc::UnboundedSender<Vec<u8>>) -> Queues {
        Queues {
            replicate: Some(replicate),
            ..Queues::default()
        }
    }
    fn declare(&self, name: &str, quorum: bool) -> u32 {
        if quorum && let Ok(mut q) = self.quorum.lock() {
            q.insert(name.to_string());
        }
        let Ok(mut q) = self.inner.lock() else {
            return 0;
        };
        q.entry(name.to_string()).or_default().len() as u32
    }
    fn push(&self, name: &str, body: Vec<u8>) {
        let quorum = self
            .quorum
            .lock()
            .map(|q| q.contains(name))
            .unwrap_or(false);
        if let (true, Some(tx)) = (quorum, &self.replicate) {
            // A closed channel only means no peers are configured.
            let _ = tx.send(body.clone());
        }
        if let Ok(mut q) = self.inner.lock() {
            let queue = q.entry(name.to_string()).or_default();
            // Bounded, so a long soak cannot grow the generator without limit.
            if queue.len() >= 1000 {
                queue.pop_front();
            }
            queue.push_back(body);
        }
    }
    fn pop(&self, name: &str) -> Option<(Vec<u8>, u32)> {
        let mut q = self.inner.lock().ok()?;
        let queue = q.get_mut(name)?;
        let body = queue.pop_front()?;
        Some((body, queue.len() as u32))
    }
}

/// Serves one AMQP connection until the client closes it.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    queues: &Queues,
) -> Result<(), WorkloadError> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    if &header != PROTOCOL_HEADER {
        // The specification's answer to a bad header: send ours and close.
        stream.write_all(PROTOCOL_HEADER).await?;
        return Err(WorkloadError::Protocol(
            "client did not send the AMQP 0-9-1 header".into(),
        ));
    }
    let start = Method::new(START)
        .octet(0)
        .octet(9)
        .table(&[("product", "meshproof-workload"), ("platform", "Rust")])
        .longstr(b"PLAIN")
        .longstr(b"en_US");
    stream.write_all(&start.frame(0).encode()).await?;
    let mut delivery_tag = 0u64;
    loop {
        let frame = read_frame(stream).await?;
        if frame.kind == FRAME_HEARTBEAT {
            continue;
        }
        let ch = frame.channel;
        let reply: Vec<u8> = match frame.method() {
            Some(START_OK) => Method::new(TUNE)
                .short(2047)
                .long(FRAME_MAX)
                .short(60)
                .frame(0)
                .encode(),
            Some(TUNE_OK) | Some(BASIC_ACK) => continue,
            Some(OPEN) => Method::new(OPEN_OK).shortstr("").frame(0).encode(),
            Some(CHANNEL_OPEN) => Method::new(CHANNEL_OPEN_OK).longstr(b"").frame(ch).encode(),
            Some(QUEUE_DECLARE) => {
                let mut a = frame.args();
                a.skip(2)?;
                let name = a.shortstr()?;
                a.skip(1)?;
                let quorum = table_text(a.longstr()?, "x-queue-type").as_deref() == Some("quorum");
                let count = queues.declare(&name, quorum);
                Method::new(QUEUE_DECLARE_OK)
                    .shortstr(&name)
                    .long(count)
                    .long(0)
                    .frame(ch)
                    .encode()
            }
            Some(BASIC_PUBLISH) => {
                let mut a = frame.args();
                a.skip(2)?;
                let _exchange = a.shortstr()?;
                let routing_key = a.shortstr()?;
                let body = read_content(stream).await?;
                queues.push(&routing_key, body);
                continue;
            }
            Some(BASIC_GET) => {
                let mut a = frame.args();
                a.skip(2)?;
                let name = a.shortstr()?;
                match queues.pop(&name) {
                    Some((body, remaining)) => {
                        delivery_tag += 1;
                        let mut out = Method::new(BASIC_GET_OK)
                            .longlong(delivery_tag)
                            .octet(0)
                            .shortstr("")
                            .shortstr(&name)
                            .long(remaining)
                            .frame(ch)
                            .encode();
                        out.extend(content_frames(ch, &body));
                        out
                    }
                    None => Method::new(BASIC_GET_EMPTY).shortstr("").frame(ch).encode(),
                }
            }
            Some(CHANNEL_CLOSE) => Method::new(CHANNEL_CLOSE_OK).frame(ch).encode(),
            Some(CLOSE) => {
                stream
                    .write_all(&Method::new(CLOSE_OK).frame(0).encode())
                    .await?;
                return Ok(());
            }
            Some((class, method)) => {
                return Err(WorkloadError::Protocol(format!(
                    "unsupported AMQP method {class}.{method}"
                )));
            }
            None => {
                return Err(WorkloadError::Protocol(format!(
                    "unexpected AMQP frame type {}",
                    frame.kind
                )));
            }
        };
        stream.write_all(&reply).await?;
    }
}

async fn expect<S: AsyncRead + Unpin>(
    stream: &mut S,
    want: MethodId,
) -> Result<Frame, WorkloadError> {
    loop {
        let frame = read_frame(stream).await?;
        if frame.kind == FRAME_HEARTBEAT {
            continue;
        }
        return match frame.method() {
            Some(id) if id == want => Ok(frame),
            Some(CLOSE) | Some(CHANNEL_CLOSE) => {
                let mut a = frame.args();
                a.skip(2)?;
                Err(WorkloadError::Protocol(format!(
                    "broker closed: {}",
                    a.shortstr()?
                )))
            }
            other => Err(WorkloadError::Protocol(format!(
                "expected AMQP method {want:?}, got {other:?}"
            ))),
        };
    }
}

/// What a publish (and optional get) saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The broker's `product` property.
    pub product: String,
    /// The body read back by Basic.Get, when asked to consume.
    pub consumed: Option<Vec<u8>>,
}

/// What a client publish does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOptions<'a> {
    /// The queue, declared first.
    pub queue: &'a str,
    /// Declare it as a (durable) quorum queue.
    pub quorum: bool,
    /// Get the message back with Basic.Get.
    pub consume: bool,
}

/// Connects as a client, declares the queue, publishes `body` to it through the default
/// exchange, optionally gets it back, and closes cleanly.
pub async fn publish<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    opts: &PublishOptions<'_>,
    body: &[u8],
) -> Result<Exchange, WorkloadError> {
    let PublishOptions {
        queue,
        quorum,
        consume,
    } = *opts;
    stream.write_all(PROTOCOL_HEADER).await?;
    let start = expect(stream, START).await?;
    let product = product_of(&start);
    let start_ok = Method::new(START_OK)
        .table(&[("product", "meshproof-workload")])
        .shortstr("PLAIN")
        .longstr(b"\0guest\0guest")
        .shortstr("en_US");
    stream.write_all(&start_ok.frame(0).encode()).await?;
    expect(stream, TUNE).await?;
    let mut out = Method::new(TUNE_OK)
        .short(2047)
        .long(FRAME_MAX)
        .short(0)
        .frame(0)
        .encode();
    out.extend(
        Method::new(OPEN)
            .shortstr("/")
            .shortstr("")
            .octet(0)
            .frame(0)
            .encode(),
    );
    stream.write_all(&out).await?;
    expect(stream, OPEN_OK).await?;
    stream
        .write_all(&Method::new(CHANNEL_OPEN).shortstr("").frame(1).encode())
        .await?;
    expect(stream, CHANNEL_OPEN_OK).await?;
    let declare = if quorum {
        // Quorum queues must be durable (bit 1).
        Method::new(QUEUE_DECLARE)
            .short(0)
            .shortstr(queue)
            .octet(0b10)
            .table(&[("x-queue-type", "quorum")])
    } else {
        Method::new(QUEUE_DECLARE)
            .short(0)
            .shortstr(queue)
            .octet(0)
            .table(&[])
    };
    stream.write_all(&declare.frame(1).encode()).await?;
    expect(stream, QUEUE_DECLARE_OK).await?;
    let mut out = Method::new(BASIC_PUBLISH)
        .short(0)
        .shortstr("")
        .shortstr(queue)
        .octet(0)
        .frame(1)
        .encode();
    out.extend(content_frames(1, body));
    stream.write_all(&out).await?;
    let consumed = if consume {
        stream
            .write_all(
                &Method::new(BASIC_GET)
                    .short(0)
                    .shortstr(queue)
                    .octet(1)
                    .frame(1)
                    .encode(),
            )
            .await?;
        let frame = read_frame(stream).await?;
        match frame.method() {
            Some(BASIC_GET_OK) => Some(read_content(stream).await?),
            Some(BASIC_GET_EMPTY) => None,
            other => {
                return Err(WorkloadError::Protocol(format!(
                    "expected Basic.GetOk, got {other:?}"
                )));
            }
        }
    } else {
        None
    };
    let close_channel = Method::new(CHANNEL_CLOSE)
        .short(200)
        .shortstr("bye")
        .short(0)
        .short(0);
    stream.write_all(&close_channel.frame(1).encode()).await?;
    expect(stream, CHANNEL_CLOSE_OK).await?;
    let close = Method::new(CLOSE)
        .short(200)
        .shortstr("bye")
        .short(0)
        .short(0);
    stream.write_all(&close.frame(0).encode()).await?;
    expect(stream, CLOSE_OK).await?;
    Ok(Exchange { product, consumed })
}

fn product_of(start: &Frame) -> String {
    let mut a = start.args();
    let Ok(()) = a.skip(2) else {
        return String::new();
    };
    let Ok(table) = a.longstr() else {
        return String::new();
    };
    table_text(table, "product").unwrap_or_default()
}

/// A string value (`S`) from a field table; other value types end the search.
fn table_text(table: &[u8], wanted: &str) -> Option<String> {
    let mut t = Args { buf: table, pos: 0 };
    while let Ok(key) = t.shortstr() {
        let kind = t.take(1).ok()?;
        if kind[0] != b'S' {
            return None;
        }
        let value = t.longstr().ok()?;
        if key == wanted {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    None
}

#[cfg(test)]
#[path = "amqp_tests.rs"]
mod tests;
