//! Plaintext protocol sniffing: recognise an application protocol by its real framing in
//! the first bytes of each direction, never by port number.

/// Recognises the protocol of a plaintext flow from the start of each direction.
/// `client` and `server` are the first bytes each side sent (either may be empty).
pub fn protocol(client: &[u8], server: &[u8]) -> Option<&'static str> {
    let checks: [(&str, fn(&[u8], &[u8]) -> bool); 7] = [
        ("amqp", amqp),
        ("http", http),
        ("postgres", postgres),
        ("mysql", mysql),
        ("epmd", epmd),
        ("erlang-dist", erlang_dist),
        ("mongodb", mongodb),
    ];
    checks
        .iter()
        .find(|(_, f)| f(client, server))
        .map(|(name, _)| *name)
}

const METHODS: [&str; 9] = [
    "GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
];

fn http(client: &[u8], server: &[u8]) -> bool {
    let request = METHODS.iter().any(|m| client.starts_with(m.as_bytes()))
        && first_line(client).is_some_and(|l| l.windows(7).any(|w| w == b"HTTP/1."));
    request || server.starts_with(b"HTTP/1.")
}

fn first_line(b: &[u8]) -> Option<&[u8]> {
    b.iter().position(|c| *c == b'\n').map(|end| &b[..end])
}

/// AMQP 0-9-1 opens with the protocol header `AMQP\0\0\x09\x01`.
fn amqp(client: &[u8], _: &[u8]) -> bool {
    client.starts_with(b"AMQP\x00\x00\x09\x01")
}

fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u32be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// MySQL is server-first: a packet (3-byte little-endian length, sequence 0) holding the
/// v10 handshake with a NUL-terminated version string, or an error packet.
fn mysql(_: &[u8], server: &[u8]) -> bool {
    let Some(header) = server.get(..4) else {
        return false;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if header[3] != 0 || !(10..=1 << 16).contains(&len) {
        return false;
    }
    match server.get(4) {
        Some(0x0a) => server.get(5..(4 + len).min(server.len())).is_some_and(|v| {
            let version = v.split(|c| *c == 0).next().unwrap_or_default();
            !version.is_empty()
                && version.len() < 64
                && version.iter().all(|c| c.is_ascii_graphic())
        }),
        Some(0xff) => true,
        _ => false,
    }
}

/// PostgreSQL's startup message: length, then protocol 3.0 or an SSL/GSS/cancel request code.
fn postgres(client: &[u8], _: &[u8]) -> bool {
    let (Some(len), Some(code)) = (u32be(client, 0), u32be(client, 4)) else {
        return false;
    };
    matches!(code, 196_608 | 80_877_102 | 80_877_103 | 80_877_104) && (8..=10_000).contains(&len)
}

/// epmd: a 2-byte big-endian length and a request code (ALIVE2 `x`, PORT_PLEASE2 `z`,
/// NAMES `n`, DUMP `d`, KILL `k`), or a PORT2/ALIVE2 response from the server.
fn epmd(client: &[u8], server: &[u8]) -> bool {
    let request = client.len() >= 3 && {
        let len = u16::from_be_bytes([client[0], client[1]]) as usize;
        matches!(client[2], b'x' | b'z' | b'n' | b'd' | b'k')
            && len >= 1
            && len <= 1024
            && (client.len() == len + 2 || client[2] == b'x' || client[2] == b'z')
    };
    request
        || (client.is_empty()
            && matches!(server.first(), Some(b'w' | b'y' | b'v'))
            && server.len() >= 2)
}

/// Erlang distribution handshake: a 2-byte length, then `n` (version 5, flags, name) or
/// `N` (8-byte flags, creation, name length, name); node names hold an `@`.
fn erlang_dist(client: &[u8], _: &[u8]) -> bool {
    if client.len() < 4 {
        return false;
    }
    let len = u16::from_be_bytes([client[0], client[1]]) as usize;
    let body = &client[2..(2 + len).min(client.len())];
    let name = match body.first() {
        Some(b'n') if body.get(1..3) == Some(&[0, 5]) => body.get(7..),
        Some(b'N') => body.get(15..),
        _ => None,
    };
    name.is_some_and(|n| n.contains(&b'@'))
}

/// MongoDB wire protocol: a 16-byte header (length, request id, response to, op code)
/// with a known op code and a plausible length.
fn mongodb(client: &[u8], server: &[u8]) -> bool {
    let header = |b: &[u8]| -> bool {
        let (Some(len), Some(op)) = (u32le(b, 0), u32le(b, 12)) else {
            return false;
        };
        matches!(op, 1 | 2004 | 2012 | 2013) && (16..=48_000_000).contains(&len)
    };
    header(client) || (client.is_empty() && header(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_protocol_by_framing() {
        assert_eq!(
            protocol(b"POST / HTTP/1.1\r\nHost: a\r\n", b""),
            Some("http")
        );
        assert_eq!(protocol(b"", b"HTTP/1.1 200 OK\r\n"), Some("http"));
        assert_eq!(protocol(b"AMQP\x00\x00\x09\x01", b""), Some("amqp"));
        let mut greeting = vec![0x4a, 0, 0, 0, 0x0a];
        greeting.extend_from_slice(b"8.4.6\0");
        greeting.extend_from_slice(&[0; 63]);
        assert_eq!(protocol(b"", &greeting), Some("mysql"));
        assert_eq!(
            protocol(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f], b""),
            Some("postgres")
        );
        assert_eq!(
            protocol(
                &[0, 9, b'z', b'r', b'a', b'b', b'b', b'i', b't', b'-', b'0'],
                b""
            ),
            Some("epmd")
        );
        let mut dist = vec![0, 0, b'N'];
        dist.extend_from_slice(&[0; 12]);
        dist.extend_from_slice(&[0, 8]);
        dist.extend_from_slice(b"rabbit@a");
        let len = (dist.len() - 2) as u16;
        dist[..2].copy_from_slice(&len.to_be_bytes());
        assert_eq!(protocol(&dist, b""), Some("erlang-dist"));
        let mut op_msg = vec![0u8; 21];
        op_msg[..4].copy_from_slice(&21u32.to_le_bytes());
        op_msg[12..16].copy_from_slice(&2013u32.to_le_bytes());
        assert_eq!(protocol(&op_msg, b""), Some("mongodb"));
    }

    #[test]
    fn unknown_bytes_are_not_guessed() {
        assert_eq!(protocol(b"hello world", b"bye"), None);
        assert_eq!(protocol(b"", b""), None);
        assert_eq!(protocol(b"GET", b""), None);
    }
}
