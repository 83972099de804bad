//! Erlang's port mapper (epmd) and the distribution handshake, as RabbitMQ nodes use them.
//!
//! A clustered RabbitMQ node asks its peer's epmd on 4369 where the peer's distribution
//! listener is (`PORT_PLEASE2_REQ`), then connects there (25672) and runs the version-6
//! handshake: `send_name` ('N'), `send_status` ("ok"), `send_challenge` ('N'),
//! `send_challenge_reply` ('r') and `send_challenge_ack` ('a'), with MD5 digests of the
//! shared cookie and the peer's challenge. After that, 4-byte length-prefixed messages
//! flow; an empty one is a tick. This module speaks exactly that framing.

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::WorkloadError;

const ALIVE2_REQ: u8 = 120;
const ALIVE2_X_RESP: u8 = 118;
const PORT_PLEASE2_REQ: u8 = 122;
const PORT2_RESP: u8 = 119;
const NAMES_REQ: u8 = 110;
/// Normal (not hidden) node.
const NODE_TYPE_NORMAL: u8 = 77;
/// Distribution flags a modern node sends: extended references and pids, UTF-8 atoms,
/// maps, big creation, the OTP 23 handshake and the mandatory OTP 25 digest flag.
pub const DIST_FLAGS: u64 = 0x4
    | 0x8
    | 0x10
    | 0x80
    | 0x100
    | 0x200
    | 0x400
    | 0x800
    | 0x10000
    | 0x20000
    | 0x40000
    | 0x1000000
    | 0x2000000
    | 0x4000000;

/// What this node's epmd knows: its own node and distribution port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The short node name (`rabbit`).
    pub name: String,
    /// The distribution port (25672).
    pub port: u16,
}

async fn read_u16_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, WorkloadError> {
    let len = r.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

fn u16_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Serves one epmd request, as epmd does: one request per connection (ALIVE2 keeps it open).
pub async fn serve_epmd<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &Registration,
) -> Result<(), WorkloadError> {
    let req = read_u16_frame(stream).await?;
    match req.first().copied() {
        Some(PORT_PLEASE2_REQ) => {
            let name = String::from_utf8_lossy(&req[1..]);
            if name == me.name {
                stream.write_all(&port2_resp(me)).await?;
            } else {
                stream.write_all(&[PORT2_RESP, 1]).await?;
            }
        }
        Some(NAMES_REQ) => {
            let mut out = 4369u32.to_be_bytes().to_vec();
            out.extend_from_slice(format!("name {} at port {}\n", me.name, me.port).as_bytes());
            stream.write_all(&out).await?;
        }
        Some(ALIVE2_REQ) => {
            let mut out = vec![ALIVE2_X_RESP, 0];
            out.extend_from_slice(&1u32.to_be_bytes());
            stream.write_all(&out).await?;
            // The registering node keeps this connection open for as long as it lives.
            let mut sink = [0u8; 64];
            while stream.read(&mut sink).await? > 0 {}
        }
        other => {
            return Err(WorkloadError::Protocol(format!(
                "unknown epmd request {other:?}"
            )));
        }
    }
    Ok(())
}

fn port2_resp(me: &Registration) -> Vec<u8> {
    let mut out = vec![PORT2_RESP, 0];
    out.extend_from_slice(&me.port.to_be_bytes());
    out.extend_from_slice(&[NODE_TYPE_NORMAL, 0]);
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&5u16.to_be_bytes());
    out.extend_from_slice(&(me.name.len() as u16).to_be_bytes());
    out.extend_from_slice(me.name.as_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out
}

/// Asks an epmd for a node's distribution port.
pub async fn port_please<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    name: &str,
) -> Result<u16, WorkloadError> {
    let mut req = vec![PORT_PLEASE2_REQ];
    req.extend_from_slice(name.as_bytes());
    stream.write_all(&u16_frame(&req)).await?;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head != [PORT2_RESP, 0] {
        return Err(WorkloadError::Protocol(format!(
            "epmd does not know node `{name}` ({head:?})"
        )));
    }
    Ok(stream.read_u16().await?)
}

fn digest(cookie: &str, challenge: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(cookie.as_bytes());
    h.update(challenge.to_string().as_bytes());
    h.finalize().into()
}

fn send_name(name: &str) -> Vec<u8> {
    let mut m = vec![b'N'];
    m.extend_from_slice(&DIST_FLAGS.to_be_bytes());
    m.extend_from_slice(&1u32.to_be_bytes());
    m.extend_from_slice(&(name.len() as u16).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m
}

fn send_challenge(name: &str, challenge: u32) -> Vec<u8> {
    let mut m = vec![b'N'];
    m.extend_from_slice(&DIST_FLAGS.to_be_bytes());
    m.extend_from_slice(&challenge.to_be_bytes());
    m.extend_from_slice(&1u32.to_be_bytes());
    m.extend_from_slice(&(name.len() as u16).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m
}

fn field<const N: usize>(msg: &[u8], at: usize) -> Result<[u8; N], WorkloadError> {
    msg.get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| WorkloadError::Protocol("distribution handshake message truncated".into()))
}

/// The accepting side of the handshake, then ticks until the peer closes. Returns the
/// peer's node name.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &str,
    cookie: &str,
) -> Result<String, WorkloadError> {
    let name_msg = read_u16_frame(stream).await?;
    if name_msg.first() != Some(&b'N') {
        return Err(WorkloadError::Protocol("expected send_name 'N'".into()));
    }
    let nlen = u16::from_be_bytes(field(&name_msg, 13)?) as usize;
    let peer =
        String::from_utf8_lossy(name_msg.get(15..15 + nlen).unwrap_or_default()).into_owned();
    stream.write_all(&u16_frame(b"sok")).await?;
    let challenge: u32 = rand::random();
    stream
        .write_all(&u16_frame(&send_challenge(me, challenge)))
        .await?;
    let reply = read_u16_frame(stream).await?;
    if reply.first() != Some(&b'r') || reply.len() != 21 {
        return Err(WorkloadError::Protocol(
            "expected send_challenge_reply 'r'".into(),
        ));
    }
    if reply[5..21] != digest(cookie, challenge) {
        return Err(WorkloadError::Protocol(format!(
            "node {peer} sent a wrong cookie digest"
        )));
    }
    let theirs = u32::from_be_bytes(field(&reply, 1)?);
    let mut ack = vec![b'a'];
    ack.extend_from_slice(&digest(cookie, theirs));
    stream.write_all(&u16_frame(&ack)).await?;
    // Connected: answer ticks (empty 4-byte-length messages) until the peer leaves.
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return Ok(peer);
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > 1 << 20 {
            return Err(WorkloadError::Protocol(
                "distribution message too large".into(),
            ));
        }
        let mut skip = vec![0u8; n];
        stream.read_exact(&mut skip).await?;
        stream.write_all(&[0, 0, 0, 0]).await?;
    }
}

/// Connects, then sends one pass-through message carrying `payload` as an Erlang binary
/// term (`131, 109, length, bytes`), waits for the peer's tick, and closes.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &str,
    cookie: &str,
    payload: &[u8],
) -> Result<(), WorkloadError> {
    connect(stream, me, cookie, 0).await?;
    let mut msg = vec![112, 131, 109];
    msg.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    msg.extend_from_slice(payload);
    let mut framed = (msg.len() as u32).to_be_bytes().to_vec();
    framed.extend(msg);
    stream.write_all(&framed).await?;
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await?;
    Ok(())
}

/// The connecting side: handshake, `ticks` ticks (each answered), then close. Returns the
/// peer's node name.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &str,
    cookie: &str,
    ticks: u32,
) -> Result<String, WorkloadError> {
    stream.write_all(&u16_frame(&send_name(me))).await?;
    let status = read_u16_frame(stream).await?;
    if status != b"sok" {
        return Err(WorkloadError::Protocol(format!(
            "peer refused: {}",
            String::from_utf8_lossy(&status)
        )));
    }
    let challenge_msg = read_u16_frame(stream).await?;
    if challenge_msg.first() != Some(&b'N') {
        return Err(WorkloadError::Protocol(
            "expected send_challenge 'N'".into(),
        ));
    }
    let theirs = u32::from_be_bytes(field(&challenge_msg, 9)?);
    let nlen = u16::from_be_bytes(field(&challenge_msg, 17)?) as usize;
    let peer =
        String::from_utf8_lossy(challenge_msg.get(19..19 + nlen).unwrap_or_default()).into_owned();
    let mine: u32 = rand::random();
    let mut reply = vec![b'r'];
    reply.extend_from_slice(&mine.to_be_bytes());
    reply.extend_from_slice(&digest(cookie, theirs));
    stream.write_all(&u16_frame(&reply)).await?;
    let ack = read_u16_frame(stream).await?;
    if ack.first() != Some(&b'a') || ack.get(1..17) != Some(&digest(cookie, mine)[..]) {
        return Err(WorkloadError::Protocol(format!(
            "node {peer} sent a wrong challenge ack"
        )));
    }
    for _ in 0..ticks {
        stream.write_all(&[0, 0, 0, 0]).await?;
        let mut back = [0u8; 4];
        stream.read_exact(&mut back).await?;
    }
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_please_finds_the_registered_node() {
        let me = Registration {
            name: "rabbit".into(),
            port: 25672,
        };
        let (mut c, mut s) = tokio::io::duplex(1024);
        let m = me.clone();
        tokio::spawn(async move { serve_epmd(&mut s, &m).await });
        assert_eq!(port_please(&mut c, "rabbit").await.unwrap(), 25672);
        let (mut c, mut s) = tokio::io::duplex(1024);
        tokio::spawn(async move { serve_epmd(&mut s, &me).await });
        assert!(port_please(&mut c, "other").await.is_err());
    }

    #[tokio::test]
    async fn handshake_with_the_same_cookie_connects() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move { accept(&mut s, "rabbit@b", "cookie").await });
        assert_eq!(
            connect(&mut c, "rabbit@a", "cookie", 3).await.unwrap(),
            "rabbit@b"
        );
        drop(c);
        assert_eq!(srv.await.unwrap().unwrap(), "rabbit@a");
    }

    #[tokio::test]
    async fn a_wrong_cookie_is_refused() {
        let (mut c, mut s) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move { accept(&mut s, "rabbit@b", "right").await });
        assert!(connect(&mut c, "rabbit@a", "wrong", 1).await.is_err());
        assert!(srv.await.unwrap().is_err());
    }

    #[test]
    fn digest_is_md5_of_cookie_and_decimal_challenge() {
        // md5("abc123"), the well-known value.
        assert_eq!(
            hex::encode(digest("abc", 123)),
            "e99a18c428cb38d5f260853678922e03"
        );
    }
}
