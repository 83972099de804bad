//! A small but real MySQL client/server protocol exchange (protocol 10 greeting,
//! HandshakeResponse41, OK packets, COM_QUERY, COM_QUIT) with correct packet framing, so
//! captures contain MySQL traffic without a MySQL server installed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn write_packet(s: &mut TcpStream, seq: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = payload.len() as u32;
    let mut p = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
    p.extend_from_slice(payload);
    s.write_all(&p).await
}

async fn read_packet(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    Ok((h[3], payload))
}

const OK: [u8; 7] = [0, 0, 0, 2, 0, 0, 0];

/// Serves one connection: greeting, accept any login, answer every query with OK.
/// Returns the queries received.
pub async fn serve_one(mut s: TcpStream) -> std::io::Result<Vec<String>> {
    let mut g = vec![0x0a];
    g.extend_from_slice(b"8.4.3-meshproof\0");
    g.extend_from_slice(&7u32.to_le_bytes());
    g.extend_from_slice(b"abcdefgh\0");
    g.extend_from_slice(&[0xff, 0xf7, 0x21, 0x02, 0x00, 0xff, 0x81, 21]);
    g.extend_from_slice(&[0u8; 10]);
    g.extend_from_slice(b"ijklmnopqrst\0");
    g.extend_from_slice(b"mysql_native_password\0");
    write_packet(&mut s, 0, &g).await?;
    let (seq, _login) = read_packet(&mut s).await?;
    write_packet(&mut s, seq + 1, &OK).await?;
    let mut queries = Vec::new();
    loop {
        let (seq, cmd) = match read_packet(&mut s).await {
            Ok(p) => p,
            Err(_) => break,
        };
        match cmd.first() {
            Some(0x03) => {
                queries.push(String::from_utf8_lossy(&cmd[1..]).into_owned());
                write_packet(&mut s, seq + 1, &OK).await?;
            }
            _ => break,
        }
    }
    Ok(queries)
}

/// Logs in and runs one query, then quits.
pub async fn query_once(mut s: TcpStream, user: &str, query: &str) -> std::io::Result<()> {
    let (_, greeting) = read_packet(&mut s).await?;
    assert_eq!(greeting[0], 0x0a, "not a MySQL greeting");
    let mut login = Vec::new();
    login.extend_from_slice(&(0x0000_0200u32 | 0x8000 | 0x0008_0000).to_le_bytes());
    login.extend_from_slice(&(16u32 << 20).to_le_bytes());
    login.push(0x21);
    login.extend_from_slice(&[0u8; 23]);
    login.extend_from_slice(user.as_bytes());
    login.push(0);
    login.push(20);
    login.extend_from_slice(&[0x5a; 20]);
    login.extend_from_slice(b"mysql_native_password\0");
    write_packet(&mut s, 1, &login).await?;
    let (_, ok) = read_packet(&mut s).await?;
    assert_eq!(ok[0], 0, "login refused");
    let mut q = vec![0x03];
    q.extend_from_slice(query.as_bytes());
    write_packet(&mut s, 0, &q).await?;
    let (_, ok) = read_packet(&mut s).await?;
    assert_eq!(ok[0], 0, "query refused");
    write_packet(&mut s, 0, &[0x01]).await?;
    s.shutdown().await
}
