//! HTTP/1.1 on both sides, small and strict: one request per connection.
//!
//! Requests and responses carry `Content-Length` and `Connection: close`, which is all a
//! probe needs and keeps every exchange one TCP flow, easy to find in a capture. Chunked
//! responses (which an Envoy in the path may produce) are decoded.

use std::collections::BTreeMap;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::WorkloadError;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A parsed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The form fields of an `application/x-www-form-urlencoded` body, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        let is_form = self
            .headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Vec::new();
        }
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (url_decode(k), url_decode(v))
            })
            .collect()
    }
}

/// A response to write or one that was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Reads bytes until the blank line that ends a head; returns the head and what came after.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<(String, Vec<u8>), WorkloadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf[..end]).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(WorkloadError::Protocol(
                "HTTP head larger than 64 KiB".into(),
            ));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(WorkloadError::Closed { after: buf.len() });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

async fn read_exact_body<R: AsyncRead + Unpin>(
    r: &mut R,
    mut have: Vec<u8>,
    len: usize,
) -> Result<Vec<u8>, WorkloadError> {
    if len > MAX_BODY {
        return Err(WorkloadError::Protocol(format!(
            "HTTP body of {len} bytes is too large"
        )));
    }
    if have.len() < len {
        let mut more = vec![0u8; len - have.len()];
        r.read_exact(&mut more).await?;
        have.extend(more);
    }
    have.truncate(len);
    Ok(have)
}

/// Reads one request.
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, WorkloadError> {
    let (head, rest) = read_head(r).await?;
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(WorkloadError::Protocol(format!(
            "bad HTTP request line `{first}`"
        )));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(WorkloadError::Protocol(format!(
            "unsupported HTTP version `{version}`"
        )));
    }
    let headers = parse_headers(lines);
    let len = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = read_exact_body(r, rest, len).await?;
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
    })
}

/// Writes a response with `Content-Length` and `Connection: close`.
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    body: &[u8],
) -> Result<(), WorkloadError> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    w.write_all(head.as_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await?;
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

/// Sends one request and reads the whole response.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    req: &Request,
) -> Result<Response, WorkloadError> {
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !req.body.is_empty() || req.method == "POST" || req.method == "PUT" {
        head.push_str(&format!("content-length: {}\r\n", req.body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&req.body).await?;
    stream.flush().await?;
    read_response(stream).await
}

async fn read_response<R: AsyncRead + Unpin>(r: &mut R) -> Result<Response, WorkloadError> {
    let (head, rest) = read_head(r).await?;
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let status = first
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| WorkloadError::Protocol(format!("bad HTTP status line `{first}`")))?;
    let headers = parse_headers(lines);
    let body = if let Some(len) = headers.get("content-length").and_then(|v| v.parse().ok()) {
        read_exact_body(r, rest, len).await?
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        let mut all = rest;
        r.take(MAX_BODY as u64).read_to_end(&mut all).await?;
        dechunk(&all)?
    } else {
        let mut all = rest;
        r.take(MAX_BODY as u64).read_to_end(&mut all).await?;
        all
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, WorkloadError> {
    let mut out = Vec::new();
    loop {
        let line_end = memchr::memmem::find(data, b"\r\n")
            .ok_or_else(|| WorkloadError::Protocol("chunked body truncated".into()))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| WorkloadError::Protocol(format!("bad chunk size `{size_text}`")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data
            .get(..size)
            .ok_or_else(|| WorkloadError::Protocol("chunk truncated".into()))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// Percent-encodes a form value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_and_response_round_trip() {
        let (mut c, mut s) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            let req = read_request(&mut s).await.unwrap();
            write_response(&mut s, 201, b"made").await.unwrap();
            req
        });
        let mut req = Request {
            method: "POST".into(),
            path: "/users".into(),
            ..Request::default()
        };
        req.headers.insert(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        );
        req.body = format!("email={}&age=42", url_encode("a b&c@x")).into_bytes();
        let resp = exchange(&mut c, &req).await.unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (201, &b"made"[..]));
        let got = srv.await.unwrap();
        assert_eq!(
            got.form(),
            vec![
                ("email".into(), "a b&c@x".into()),
                ("age".into(), "42".into())
            ]
        );
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"5\r\nRBAC:\r\n e\r\n access denied\r\n0\r\n\r\n").unwrap(),
            b"RBAC: access denied"
        );
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[test]
    fn url_decoding_tolerates_stray_percent() {
        assert_eq!(url_decode("a%2"), "a%2");
        assert_eq!(url_decode("%41%42+c"), "AB c");
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let mut input: &[u8] = b"NOT-HTTP\r\n\r\n";
        assert!(read_request(&mut input).await.is_err());
    }
}
