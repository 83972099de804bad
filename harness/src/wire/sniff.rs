//! Plaintext protocol sniffing: which application protocol the first clear bytes of a
//! direction speak, and whether they came from the client or the server.
//!
//! Each recogniser checks the framing of the protocol's first message (lengths that
//! agree with each other, magic numbers, known codes), not just a leading keyword, so
//! that a verdict is evidence rather than a guess. The side that spoke first is also
//! evidence of who the client is when the SYN was not captured.

/// An application protocol recognised in clear bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http,
    /// HTTP/2 with prior knowledge (the `PRI * HTTP/2.0` preface), as gRPC uses in clear.
    Http2,
    /// The MySQL client/server protocol.
    Mysql,
    /// AMQP 0-9-1 (RabbitMQ).
    Amqp,
    /// The MongoDB wire protocol.
    Mongodb,
    /// The PostgreSQL frontend/backend protocol.
    Postgres,
    /// The Erlang Port Mapper Daemon protocol.
    Epmd,
    /// The Erlang distribution protocol's handshake.
    ErlangDist,
}

impl Protocol {
    /// The spelling used in the JSON contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Mysql => "mysql",
            Protocol::Amqp => "amqp",
            Protocol::Mongodb => "mongodb",
            Protocol::Postgres => "postgres",
            Protocol::Epmd => "epmd",
            Protocol::ErlangDist => "erlang-dist",
        }
    }
}

/// Which side sent the recognised message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The message is a request or greeting that only a client sends.
    Client,
    /// The message is one that only a server sends.
    Server,
}

/// The outcome of sniffing the first bytes of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// A protocol was recognised.
    Found(Protocol, Speaker),
    /// Some recogniser needs more bytes to decide.
    NeedMore,
    /// No recogniser matches.
    NotFound,
}

/// The most bytes a recogniser looks at; a decision is forced at this size.
pub const SNIFF_LIMIT: usize = 1024;

/// Sniffs the first clear bytes of one direction.
pub fn sniff(b: &[u8]) -> Sniff {
    let recognisers: [fn(&[u8]) -> Sniff; 8] = [
        http,
        http2,
        mysql,
        amqp,
        mongodb,
        postgres,
        epmd,
        erlang_dist,
    ];
    let mut need_more = false;
    for recognise in recognisers {
        match recognise(b) {
            Sniff::Found(p, s) => return Sniff::Found(p, s),
            Sniff::NeedMore => need_more = true,
            Sniff::NotFound => {}
        }
    }
    if need_more && b.len() < SNIFF_LIMIT {
        Sniff::NeedMore
    } else {
        Sniff::NotFound
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// `NeedMore` when `b` is a proper prefix of `want`, else whether it starts with it.
fn starts(b: &[u8], want: &[u8]) -> Option<bool> {
    if b.len() >= want.len() {
        Some(b.starts_with(want))
    } else if want.starts_with(b) {
        None
    } else {
        Some(false)
    }
}

/// HTTP/1.x request methods, with their trailing space, as a request line starts.
pub(crate) const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

fn http(b: &[u8]) -> Sniff {
    match starts(b, b"HTTP/1.") {
        Some(true) => {
            let ok = b.len() >= 12 && (b[7] == b'0' || b[7] == b'1') && b[8] == b' ';
            let code = b.len() >= 12 && b[9..12].iter().all(u8::is_ascii_digit);
            return if ok && code {
                Sniff::Found(Protocol::Http, Speaker::Server)
            } else if b.len() < 12 {
                Sniff::NeedMore
            } else {
                Sniff::NotFound
            };
        }
        None => return Sniff::NeedMore,
        Some(false) => {}
    }
    let mut prefix_of_method = false;
    for method in METHODS {
        match starts(b, method) {
            Some(true) => return request_line(&b[method.len()..]),
            None => prefix_of_method = true,
            Some(false) => {}
        }
    }
    if prefix_of_method {
        Sniff::NeedMore
    } else {
        Sniff::NotFound
    }
}

/// Checks `target SP HTTP/1.x CRLF` after the method.
fn request_line(rest: &[u8]) -> Sniff {
    match memchr::memchr(b'\n', rest) {
        Some(end) => {
            let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
            let good = line.len() > 9
                && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
                && !line[0].is_ascii_whitespace();
            if good {
                Sniff::Found(Protocol::Http, Speaker::Client)
            } else {
                Sniff::NotFound
            }
        }
        None if rest
            .iter()
            .all(|c| c.is_ascii_graphic() || *c == b' ' || *c == b'\r') =>
        {
            Sniff::NeedMore
        }
        None => Sniff::NotFound,
    }
}

fn http2(b: &[u8]) -> Sniff {
    match starts(b, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") {
        Some(true) => Sniff::Found(Protocol::Http2, Speaker::Client),
        None => Sniff::NeedMore,
        Some(false) => Sniff::NotFound,
    }
}

/// The server greeting (protocol 10, a NUL-terminated version) or an error packet
/// sent instead of it (`Host ... is not allowed to connect`).
fn mysql(b: &[u8]) -> Sniff {
    if b.len() < 5 {
        return if b.len() < 4 || b[3] == 0 {
            Sniff::NeedMore
        } else {
            Sniff::NotFound
        };
    }
    let len = usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
    if b[3] != 0 || !(3..=4096).contains(&len) {
        return Sniff::NotFound;
    }
    match b[4] {
        0x0a => {
            let body = &b[5..b.len().min(4 + len)];
            match memchr::memchr(0, body) {
                Some(0) => Sniff::NotFound,
                Some(end) if body[..end].iter().all(u8::is_ascii_graphic) => {
                    // Version, thread id, 8 bytes of scramble and a filler byte follow.
                    if len >= 1 + end + 1 + 4 + 9 {
                        Sniff::Found(Protocol::Mysql, Speaker::Server)
                    } else {
                        Sniff::NotFound
                    }
                }
                Some(_) => Sniff::NotFound,
                None if body.len() < len - 1 && body.iter().all(u8::is_ascii_graphic) => {
                    Sniff::NeedMore
                }
                None => Sniff::NotFound,
            }
        }
        0xff if b.len() >= 7 => {
            let code = u16::from_le_bytes([b[5], b[6]]);
            if (1000..=5000).contains(&code) {
                Sniff::Found(Protocol::Mysql, Speaker::Server)
            } else {
                Sniff::NotFound
            }
        }
        0xff => Sniff::NeedMore,
        _ => Sniff::NotFound,
    }
}

fn amqp(b: &[u8]) -> Sniff {
    match starts(b, b"AMQP") {
        None => return Sniff::NeedMore,
        Some(true) if b.len() < 8 => return Sniff::NeedMore,
        // 0-9-1, and the 0-9 and 0-8 headers that RabbitMQ also accepts.
        Some(true) => {
            let v = &b[4..8];
            let known = v == [0, 0, 9, 1] || v == [1, 1, 0, 9] || v == [1, 1, 8, 0];
            return if known {
                Sniff::Found(Protocol::Amqp, Speaker::Client)
            } else {
                Sniff::NotFound
            };
        }
        Some(false) => {}
    }
    // The server's first frame: a method frame on channel 0 carrying connection.start
    // (class 10, method 10), ended by the frame-end octet 0xCE.
    if b.len() < 11 {
        return if b.first().is_none_or(|t| *t == 1) {
            Sniff::NeedMore
        } else {
            Sniff::NotFound
        };
    }
    let size = be32(b, 3) as usize;
    let start = b[0] == 1 && b[1] == 0 && b[2] == 0 && b[7..11] == [0, 10, 0, 10];
    match b.get(7 + size) {
        _ if !start || size > 1 << 20 => Sniff::NotFound,
        Some(0xce) => Sniff::Found(Protocol::Amqp, Speaker::Server),
        Some(_) => Sniff::NotFound,
        None => Sniff::NeedMore,
    }
}

/// A standard message header (length, request id, response-to, opcode) whose fields
/// agree: a known opcode, a sane length, and for OP_MSG a known section kind.
fn mongodb(b: &[u8]) -> Sniff {
    if b.len() < 21 {
        return Sniff::NeedMore;
    }
    let len = le32(b, 0) as usize;
    let response_to = le32(b, 8);
    let opcode = le32(b, 12);
    if !(21..=48 << 20).contains(&len) {
        return Sniff::NotFound;
    }
    let speaker = if response_to == 0 {
        Speaker::Client
    } else {
        Speaker::Server
    };
    let framed = match opcode {
        // OP_MSG: flag bits with only defined bits set, then section kind 0 or 1.
        2013 => le32(b, 16) & !0x0001_0003 == 0 && b[20] <= 1,
        // OP_QUERY from a client: flags, then a NUL-terminated `db.collection`.
        2004 => {
            response_to == 0
                && memchr::memchr(0, &b[20..b.len().min(len)]).is_some_and(|end| {
                    let name = &b[20..20 + end];
                    name.contains(&b'.') && name.iter().all(u8::is_ascii_graphic)
                })
        }
        // OP_REPLY from a server, OP_COMPRESSED either way.
        1 => response_to != 0,
        2012 => true,
        _ => false,
    };
    if framed {
        Sniff::Found(Protocol::Mongodb, speaker)
    } else {
        Sniff::NotFound
    }
}

fn postgres(b: &[u8]) -> Sniff {
    if b.len() < 8 {
        return Sniff::NeedMore;
    }
    let len = be32(b, 0) as usize;
    let code = be32(b, 4);
    let found = Sniff::Found(Protocol::Postgres, Speaker::Client);
    match code {
        // SSLRequest and GSSENCRequest are exactly 8 bytes; CancelRequest is 16.
        80_877_103 | 80_877_104 if len == 8 => found,
        80_877_102 if len == 16 => found,
        // StartupMessage 3.0 or 3.2: `name\0value\0 ... \0`, so it ends in NUL.
        196_608 | 196_610 if (9..=10_000).contains(&len) => match b.get(len - 1) {
            Some(0) => found,
            Some(_) => Sniff::NotFound,
            None => Sniff::NeedMore,
        },
        _ => Sniff::NotFound,
    }
}

/// EPMD requests: a 2-byte length, then NAMES, DUMP, KILL, PORT_PLEASE2 or ALIVE2.
fn epmd(b: &[u8]) -> Sniff {
    if b.len() < 3 {
        return Sniff::NeedMore;
    }
    let len = be16(b, 0);
    let found = Sniff::Found(Protocol::Epmd, Speaker::Client);
    match b[2] {
        b'n' | b'd' | b'k' if len == 1 => found,
        b'z' if len >= 2 => match b.get(2..2 + len) {
            Some(req) if req[1..].iter().all(u8::is_ascii_graphic) => found,
            Some(_) => Sniff::NotFound,
            None => Sniff::NeedMore,
        },
        b'x' if len >= 13 => {
            let Some(req) = b.get(2..2 + len) else {
                return Sniff::NeedMore;
            };
            let versions_ok = (5..=6).contains(&be16(req, 5)) && (5..=6).contains(&be16(req, 7));
            let name_len = be16(req, 9);
            let ok =
                matches!(req[3], 72 | 77) && req[4] == 0 && versions_ok && 11 + name_len + 2 <= len;
            if ok { found } else { Sniff::NotFound }
        }
        _ => Sniff::NotFound,
    }
}

/// The distribution handshake: `send_name` ('N' since OTP 23, 'n' before) from the
/// connecting node, or the `recv_status` reply ('s') from the accepting node.
fn erlang_dist(b: &[u8]) -> Sniff {
    if b.len() < 3 {
        return Sniff::NeedMore;
    }
    let len = be16(b, 0);
    if len == 0 {
        return Sniff::NotFound;
    }
    let Some(msg) = b.get(2..2 + len) else {
        return if len <= 1024 && matches!(b[2], b'N' | b'n' | b's') {
            Sniff::NeedMore
        } else {
            Sniff::NotFound
        };
    };
    let node_name = |name: &[u8]| name.contains(&b'@') && name.iter().all(u8::is_ascii_graphic);
    let ok = match msg[0] {
        b'N' => len >= 15 && be16(msg, 13) == len - 15 && node_name(&msg[15..]),
        b'n' => len >= 8 && be16(msg, 1) == 5 && node_name(&msg[7..]),
        b's' => {
            let status = &msg[1..];
            [
                &b"ok"[..],
                b"ok_simultaneous",
                b"nok",
                b"not_allowed",
                b"alive",
            ]
            .contains(&status)
                || status.starts_with(b"named:")
        }
        _ => false,
    };
    let speaker = if msg[0] == b's' {
        Speaker::Server
    } else {
        Speaker::Client
    };
    if ok {
        Sniff::Found(Protocol::ErlangDist, speaker)
    } else {
        Sniff::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(b: &[u8]) -> Option<(Protocol, Speaker)> {
        match sniff(b) {
            Sniff::Found(p, s) => Some((p, s)),
            _ => None,
        }
    }

    #[test]
    fn http_both_ways_and_partial_lines() {
        let req = b"POST /submit HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(found(req), Some((Protocol::Http, Speaker::Client)));
        assert_eq!(sniff(&req[..8]), Sniff::NeedMore);
        assert_eq!(
            found(b"HTTP/1.1 200 OK\r\n"),
            Some((Protocol::Http, Speaker::Server))
        );
        assert_eq!(found(b"GETTING / HTTP/1.1\r\n"), None);
        assert_eq!(
            found(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some((Protocol::Http2, Speaker::Client))
        );
    }

    #[test]
    fn mysql_greeting_and_error() {
        let mut g = vec![0, 0, 0, 0, 0x0a];
        g.extend_from_slice(b"8.4.3\0");
        g.extend_from_slice(&[1, 0, 0, 0]);
        g.extend_from_slice(&[0x41; 8]);
        g.push(0);
        g.extend_from_slice(&[0xff; 20]);
        let len = g.len() - 4;
        g[0] = len as u8;
        assert_eq!(found(&g), Some((Protocol::Mysql, Speaker::Server)));
        let err = [0x17, 0, 0, 0, 0xff, 0x6a, 0x04, b'H', b'o', b's', b't'];
        assert_eq!(found(&err), Some((Protocol::Mysql, Speaker::Server)));
    }

    #[test]
    fn amqp_header_and_connection_start() {
        assert_eq!(
            found(b"AMQP\x00\x00\x09\x01"),
            Some((Protocol::Amqp, Speaker::Client))
        );
        assert_eq!(sniff(b"AMQ"), Sniff::NeedMore);
        let mut start = vec![1, 0, 0, 0, 0, 0, 6, 0, 10, 0, 10, 0, 9];
        start.push(0xce);
        assert_eq!(found(&start), Some((Protocol::Amqp, Speaker::Server)));
    }

    #[test]
    fn mongodb_op_msg() {
        let mut m = Vec::new();
        m.extend_from_slice(&40u32.to_le_bytes());
        m.extend_from_slice(&7u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&2013u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0);
        m.extend_from_slice(&[5, 0, 0, 0, 0]);
        assert_eq!(found(&m), Some((Protocol::Mongodb, Speaker::Client)));
        m[12] = 0x99;
        assert_eq!(found(&m), None);
    }

    #[test]
    fn postgres_startup_and_ssl_request() {
        assert_eq!(
            found(&[0, 0, 0, 8, 4, 210, 22, 47]),
            Some((Protocol::Postgres, Speaker::Client))
        );
        let mut s = vec![0, 0, 0, 0, 0, 3, 0, 0];
        s.extend_from_slice(b"user\0app\0\0");
        s[3] = s.len() as u8;
        assert_eq!(found(&s), Some((Protocol::Postgres, Speaker::Client)));
    }

    #[test]
    fn epmd_and_distribution_are_told_apart() {
        assert_eq!(
            found(&[0, 1, b'n']),
            Some((Protocol::Epmd, Speaker::Client))
        );
        let mut pp = vec![0, 7, b'z'];
        pp.extend_from_slice(b"rabbit");
        assert_eq!(found(&pp), Some((Protocol::Epmd, Speaker::Client)));
        let name = b"rabbit@rabbitmq-0.rabbitmq-nodes.ns";
        let mut n = vec![0, 0, b'N'];
        n.extend_from_slice(&[0, 0, 0, 0, 0x0d, 0x07, 0xff, 0xfd]);
        n.extend_from_slice(&[0, 0, 0, 1]);
        n.extend_from_slice(&(name.len() as u16).to_be_bytes());
        n.extend_from_slice(name);
        let len = (n.len() - 2) as u16;
        n[..2].copy_from_slice(&len.to_be_bytes());
        assert_eq!(found(&n), Some((Protocol::ErlangDist, Speaker::Client)));
        assert_eq!(
            found(&[0, 3, b's', b'o', b'k']),
            Some((Protocol::ErlangDist, Speaker::Server))
        );
    }

    #[test]
    fn random_text_is_not_found_and_never_panics() {
        assert_eq!(
            sniff(b"hello there, this is not a protocol"),
            Sniff::NotFound
        );
        // Found by fuzzing: a zero length prefix must not index an empty message.
        assert_eq!(erlang_dist(&[0, 0, 0]), Sniff::NotFound);
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 91 + 7) as u8).collect();
            let _ = sniff(&junk);
        }
    }
}
