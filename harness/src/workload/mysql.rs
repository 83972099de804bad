//! The MySQL client/server protocol, as far as a traffic generator needs it.
//!
//! The framing is the real one (3-byte little-endian length, sequence id), with
//! handshake v10, `HandshakeResponse41`, `COM_QUERY`, OK, ERR, EOF and text result sets,
//! so the analyzer's MySQL sniffer and Wireshark both recognise it. The server never
//! advertises `CLIENT_SSL`: the protocol stays in clear unless a mesh encrypts it, which
//! is exactly what the plaintext baseline of pii-demo must show.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::WorkloadError;

/// `CLIENT_LONG_PASSWORD | FOUND_ROWS | LONG_FLAG | CONNECT_WITH_DB | PROTOCOL_41 |
/// TRANSACTIONS | SECURE_CONNECTION | MULTI_RESULTS | PLUGIN_AUTH | PLUGIN_AUTH_LENENC_CLIENT_DATA`.
pub const CAPABILITIES: u32 =
    0x1 | 0x2 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x20000 | 0x80000 | 0x200000;
/// The capability bit a server sets when it offers TLS; never set here.
pub const CLIENT_SSL: u32 = 0x800;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PLUGIN_AUTH: u32 = 0x80000;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 0x200000;
const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;
const COM_QUIT: u8 = 0x01;
const COM_INIT_DB: u8 = 0x02;
const COM_QUERY: u8 = 0x03;
const COM_PING: u8 = 0x0e;
const AUTH_PLUGIN: &str = "mysql_native_password";
/// The version string the server announces.
pub const SERVER_VERSION: &str = "8.4.0-meshproof";
const MAX_PACKET: usize = 1 << 20;

/// Reads one packet: `(sequence id, payload)`.
pub async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> Result<(u8, Vec<u8>), WorkloadError> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    if len > MAX_PACKET {
        return Err(WorkloadError::Protocol(format!(
            "mysql packet of {len} bytes is too large"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok((head[3], payload))
}

/// Frames `payload` as one packet with sequence id `seq`.
pub fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&len.to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x10000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    put_lenenc_int(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A cursor over a packet payload that fails with a protocol error instead of panicking.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WorkloadError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| WorkloadError::Protocol("mysql packet truncated".into()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, WorkloadError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WorkloadError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WorkloadError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn nul_str(&mut self) -> Result<&'a [u8], WorkloadError> {
        let rest = &self.buf[self.pos..];
        let end = memchr::memchr(0, rest)
            .ok_or_else(|| WorkloadError::Protocol("mysql string not NUL-terminated".into()))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
    fn lenenc_int(&mut self) -> Result<u64, WorkloadError> {
        Ok(match self.u8()? {
            0xfc => u64::from(self.u16()?),
            0xfd => {
                let b = self.take(3)?;
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], 0]))
            }
            0xfe => {
                let b = self.take(8)?;
                u64::from_le_bytes(b.try_into().unwrap_or_default())
            }
            n => u64::from(n),
        })
    }
    fn lenenc_str(&mut self) -> Result<&'a [u8], WorkloadError> {
        let n = self.lenenc_int()? as usize;
        self.take(n)
    }
}

/// The server's first packet: protocol version 10.
pub fn handshake_v10(connection_id: u32, scramble: &[u8; 20]) -> Vec<u8> {
    let mut p = vec![10u8];
    p.extend_from_slice(SERVER_VERSION.as_bytes());
    p.push(0);
    p.extend_from_slice(&connection_id.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(CAPABILITIES as u16).to_le_bytes());
    p.push(255); // utf8mb4_0900_ai_ci
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&((CAPABILITIES >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(AUTH_PLUGIN.as_bytes());
    p.push(0);
    p
}

/// What a server learns from a handshake v10 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// The announced server version.
    pub version: String,
    /// The capability flags (both halves).
    pub capabilities: u32,
}

/// Parses a handshake v10 packet.
pub fn parse_handshake_v10(payload: &[u8]) -> Result<ServerHello, WorkloadError> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    if c.u8()? != 10 {
        return Err(WorkloadError::Protocol("not a MySQL handshake v10".into()));
    }
    let version = String::from_utf8_lossy(c.nul_str()?).into_owned();
    c.take(4 + 8 + 1)?;
    let low = u32::from(c.u16()?);
    c.take(1 + 2)?;
    let high = u32::from(c.u16()?);
    Ok(ServerHello {
        version,
        capabilities: low | (high << 16),
    })
}

/// The client's `HandshakeResponse41` for `user` with an empty password.
pub fn handshake_response41(user: &str, database: &str) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&CAPABILITIES.to_le_bytes());
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(255);
    p.extend_from_slice(&[0u8; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    // An empty password gives an empty auth response under mysql_native_password.
    put_lenenc_str(&mut p, b"");
    p.extend_from_slice(database.as_bytes());
    p.push(0);
    p.extend_from_slice(AUTH_PLUGIN.as_bytes());
    p.push(0);
    p
}

/// What the server reads from a `HandshakeResponse41`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLogin {
    /// The user name.
    pub user: String,
    /// The default database, if sent.
    pub database: Option<String>,
}

/// Parses a `HandshakeResponse41`.
pub fn parse_handshake_response41(payload: &[u8]) -> Result<ClientLogin, WorkloadError> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    let caps = c.u32()?;
    if caps & CLIENT_SSL != 0 && payload.len() == 32 {
        return Err(WorkloadError::Protocol(
            "client asked for TLS, which this server never offers".into(),
        ));
    }
    c.take(4 + 1 + 23)?;
    let user = String::from_utf8_lossy(c.nul_str()?).into_owned();
    if caps & CLIENT_PLUGIN_AUTH_LENENC != 0 {
        c.lenenc_str()?;
    } else {
        let n = c.u8()? as usize;
        c.take(n)?;
    }
    let database = if caps & CLIENT_CONNECT_WITH_DB != 0 {
        Some(String::from_utf8_lossy(c.nul_str()?).into_owned())
    } else {
        None
    };
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        c.nul_str()?;
    }
    Ok(ClientLogin { user, database })
}

/// An OK packet payload.
pub fn ok_packet(affected: u64, last_insert_id: u64) -> Vec<u8> {
    let mut p = vec![0x00];
    put_lenenc_int(&mut p, affected);
    put_lenenc_int(&mut p, last_insert_id);
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p
}

/// An ERR packet payload.
pub fn err_packet(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state.as_bytes());
    p.extend_from_slice(message.as_bytes());
    p
}

fn eof_packet() -> Vec<u8> {
    let mut p = vec![0xfe];
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p
}

fn column_definition(name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    for part in [
        &b"def"[..],
        b"pii_demo",
        b"users",
        b"users",
        name.as_bytes(),
        name.as_bytes(),
    ] {
        put_lenenc_str(&mut p, part);
    }
    p.push(0x0c);
    p.extend_from_slice(&255u16.to_le_bytes());
    p.extend_from_slice(&1024u32.to_le_bytes());
    p.push(0xfd); // MYSQL_TYPE_VAR_STRING
    p.extend_from_slice(&0u16.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p
}

/// A text result set with one column, as the packets that follow a `COM_QUERY`
/// (sequence ids from 1).
pub fn result_set(column: &str, rows: &[String]) -> Vec<u8> {
    let mut seq = 1u8;
    let mut out = Vec::new();
    let mut push = |payload: Vec<u8>| {
        out.extend(packet(seq, &payload));
        seq = seq.wrapping_add(1);
    };
    let mut count = Vec::new();
    put_lenenc_int(&mut count, 1);
    push(count);
    push(column_definition(column));
    push(eof_packet());
    for row in rows {
        let mut p = Vec::new();
        put_lenenc_str(&mut p, row.as_bytes());
        push(p);
    }
    push(eof_packet());
    out
}

/// What the stand-in database remembers: the statements that inserted rows, so a SELECT
/// can show a probe that its INSERT really arrived.
#[derive(Debug, Default, Clone)]
pub struct Table {
    rows: Arc<Mutex<Vec<String>>>,
}

impl Table {
    fn insert(&self, statement: &str) -> u64 {
        let Ok(mut rows) = self.rows.lock() else {
            return 0;
        };
        // Bounded: a traffic generator must not grow without limit over a long soak.
        if rows.len() >= 1000 {
            rows.remove(0);
        }
        rows.push(statement.to_string());
        rows.len() as u64
    }
    fn all(&self) -> Vec<String> {
        self.rows.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Serves one MySQL connection: handshake, login, then commands until `COM_QUIT`.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    connection_id: u32,
    table: &Table,
) -> Result<(), WorkloadError> {
    let scramble: [u8; 20] = rand::random::<[u8; 20]>().map(|b| (b % 94) + 33);
    stream
        .write_all(&packet(0, &handshake_v10(connection_id, &scramble)))
        .await?;
    let (seq, login) = read_packet(stream).await?;
    parse_handshake_response41(&login)?;
    stream
        .write_all(&packet(seq.wrapping_add(1), &ok_packet(0, 0)))
        .await?;
    loop {
        let (_, command) = match read_packet(stream).await {
            Ok(p) => p,
            Err(WorkloadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let reply = match command.first().copied() {
            Some(COM_QUIT) | None => return Ok(()),
            Some(COM_PING) | Some(COM_INIT_DB) => packet(1, &ok_packet(0, 0)),
            Some(COM_QUERY) => answer_query(&String::from_utf8_lossy(&command[1..]), table),
            Some(other) => packet(
                1,
                &err_packet(1047, "08S01", &format!("Unknown command {other}")),
            ),
        };
        stream.write_all(&reply).await?;
    }
}

fn answer_query(sql: &str, table: &Table) -> Vec<u8> {
    let verb = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match verb.as_str() {
        "INSERT" => {
            let id = table.insert(sql);
            packet(1, &ok_packet(1, id))
        }
        "SELECT" => result_set("statement", &table.all()),
        _ => packet(1, &ok_packet(0, 0)),
    }
}

/// Connects as a client: handshake, login, one `COM_QUERY`, `COM_QUIT`. Returns the
/// server's answer in text (`OK affected=1 ...`, the rows, or the error).
pub async fn query<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    sql: &str,
) -> Result<String, WorkloadError> {
    let (seq, hello) = read_packet(stream).await?;
    parse_handshake_v10(&hello)?;
    stream
        .write_all(&packet(
            seq.wrapping_add(1),
            &handshake_response41("pii_user", "pii_demo"),
        ))
        .await?;
    let (_, auth) = read_packet(stream).await?;
    if auth.first() != Some(&0x00) {
        return Ok(describe_error(&auth));
    }
    let mut command = vec![COM_QUERY];
    command.extend_from_slice(sql.as_bytes());
    stream.write_all(&packet(0, &command)).await?;
    let answer = read_answer(stream).await?;
    stream.write_all(&packet(0, &[COM_QUIT])).await?;
    Ok(answer)
}

async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, WorkloadError> {
    let (_, first) = read_packet(stream).await?;
    match first.first().copied() {
        Some(0x00) => {
            let mut c = Cursor {
                buf: &first,
                pos: 1,
            };
            let affected = c.lenenc_int()?;
            let id = c.lenenc_int()?;
            Ok(format!("OK affected={affected} last_insert_id={id}"))
        }
        Some(0xff) => Ok(describe_error(&first)),
        _ => {
            let columns = Cursor {
                buf: &first,
                pos: 0,
            }
            .lenenc_int()?;
            for _ in 0..columns {
                read_packet(stream).await?;
            }
            read_packet(stream).await?; // EOF after the column definitions.
            let mut rows = Vec::new();
            loop {
                let (_, row) = read_packet(stream).await?;
                if row.first() == Some(&0xfe) && row.len() < 9 {
                    return Ok(rows.join("\n"));
                }
                let mut c = Cursor { buf: &row, pos: 0 };
                let values: Result<Vec<String>, _> = (0..columns)
                    .map(|_| {
                        c.lenenc_str()
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    })
                    .collect();
                rows.push(values?.join("\t"));
            }
        }
    }
}

fn describe_error(payload: &[u8]) -> String {
    let code = payload
        .get(1..3)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .unwrap_or(0);
    let text = payload
        .get(9..)
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    format!("ERROR {code}: {text}")
}

/// Quotes a value as a SQL string literal.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_boundaries() {
        for (n, len) in [
            (0u64, 1usize),
            (250, 1),
            (251, 3),
            (65535, 3),
            (65536, 4),
            (1 << 24, 9),
        ] {
            let mut out = Vec::new();
            put_lenenc_int(&mut out, n);
            assert_eq!(out.len(), len, "{n}");
            assert_eq!(Cursor { buf: &out, pos: 0 }.lenenc_int().unwrap(), n);
        }
    }

    #[test]
    fn handshake_is_v10_without_tls() {
        let p = handshake_v10(7, &[b'a'; 20]);
        let hello = parse_handshake_v10(&p).unwrap();
        assert_eq!(hello.version, SERVER_VERSION);
        assert_eq!(hello.capabilities & CLIENT_SSL, 0);
        assert_ne!(hello.capabilities & 0x200, 0, "PROTOCOL_41");
        assert_eq!(&packet(0, &p)[..4], &[p.len() as u8, 0, 0, 0]);
    }

    #[test]
    fn login_round_trips() {
        let login =
            parse_handshake_response41(&handshake_response41("pii_user", "pii_demo")).unwrap();
        assert_eq!(
            login,
            ClientLogin {
                user: "pii_user".into(),
                database: Some("pii_demo".into())
            }
        );
        assert!(parse_handshake_response41(&[1, 2, 3]).is_err());
    }

    #[tokio::test]
    async fn insert_then_select_over_a_pipe() {
        let table = Table::default();
        let (mut client, mut server) = tokio::io::duplex(4096);
        let t = table.clone();
        let srv = tokio::spawn(async move { serve(&mut server, 1, &t).await });
        let answer = query(&mut client, "INSERT INTO users (email) VALUES ('x')")
            .await
            .unwrap();
        assert_eq!(answer, "OK affected=1 last_insert_id=1");
        srv.await.unwrap().unwrap();
        let (mut client, mut server) = tokio::io::duplex(4096);
        let t = table.clone();
        tokio::spawn(async move { serve(&mut server, 2, &t).await });
        let rows = query(&mut client, "SELECT * FROM users").await.unwrap();
        assert_eq!(rows, "INSERT INTO users (email) VALUES ('x')");
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("O'Brien\\"), "'O\\'Brien\\\\'");
    }
}
