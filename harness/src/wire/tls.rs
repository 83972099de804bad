//! TLS on the wire: record headers, the start of a handshake, and the ClientHello fields
//! (SNI, offered ALPN, highest offered version) that classification needs.
//!
//! Only framing and the ClientHello are read; nothing is decrypted. The parser works on
//! a fully reassembled handshake message, so a ClientHello spread over several TCP
//! segments or TLS records (post-quantum key shares make it larger than one MSS) parses
//! the same as a small one.

/// The largest record body TLS allows (2^14 plus 2048 bytes of expansion).
pub const MAX_RECORD_BODY: usize = 16384 + 2048;

/// A record header is five bytes: type, two version bytes, two length bytes.
pub const RECORD_HEADER: usize = 5;

/// Bytes needed to recognise the start of a handshake (see [`handshake_start`]).
pub const HANDSHAKE_PROBE: usize = 11;

/// TLS record content type for handshake messages.
pub const CONTENT_HANDSHAKE: u8 = 22;

/// The body length of a plausible record header, or `None` when `h` is not one.
pub fn record_header(h: &[u8]) -> Option<usize> {
    if h.len() < RECORD_HEADER {
        return None;
    }
    // Content types 20 (change_cipher_spec) to 24 (heartbeat); major version 3.
    let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
    let plausible = (20..=24).contains(&h[0]) && h[1] == 3 && h[2] <= 4 && len <= MAX_RECORD_BODY;
    plausible.then_some(len)
}

/// Whether a TLS handshake (a ClientHello or ServerHello record) starts at `b[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Yes: the eleven bytes agree with a hello record.
    Yes,
    /// The bytes so far agree, but fewer than eleven are available.
    Maybe,
    /// No.
    No,
}

/// One test on the bytes of a candidate hello; it may read only the bytes its position
/// in the list guarantees are there.
type ByteCheck = dyn Fn(&[u8]) -> bool;

/// Checks whether a ClientHello or ServerHello record starts at `b[0]`.
///
/// Eleven bytes are checked (record type, version and length; handshake type and
/// length; the hello's own version), which makes a false match in clear text
/// practically impossible while still finding TLS after a plaintext preamble
/// (MySQL's SSLRequest, PostgreSQL's SSLRequest, STARTTLS, HTTP CONNECT).
pub fn handshake_start(b: &[u8]) -> Probe {
    let checks: [&ByteCheck; HANDSHAKE_PROBE] = [
        &|b| b[0] == CONTENT_HANDSHAKE,
        &|b| b[1] == 3,
        &|b| b[2] <= 4,
        &|_| true,
        &|b| (4..=MAX_RECORD_BODY).contains(&usize::from(u16::from_be_bytes([b[3], b[4]]))),
        &|b| b[5] == 1 || b[5] == 2,
        // A hello below 64 KiB; the largest real ones are a few KiB.
        &|b| b[6] == 0,
        &|_| true,
        &|b| u16::from_be_bytes([b[7], b[8]]) >= 38,
        &|b| b[9] == 3,
        &|b| b[10] <= 4,
    ];
    for (i, check) in checks.iter().enumerate() {
        if i >= b.len() {
            return Probe::Maybe;
        }
        if !check(b) {
            return Probe::No;
        }
    }
    Probe::Yes
}

/// Finds the first position where a hello record starts.
///
/// Returns `(position, Probe::Yes)`, or `(position, Probe::Maybe)` when the only
/// candidate is cut off by the end of `data`, or `(len, Probe::No)`.
pub fn find_handshake_start(data: &[u8], search_limit: usize) -> (usize, Probe) {
    let limit = search_limit.min(data.len());
    let mut at = 0;
    while let Some(found) = memchr::memchr(CONTENT_HANDSHAKE, &data[at..limit]) {
        let pos = at + found;
        match handshake_start(&data[pos..]) {
            Probe::No => at = pos + 1,
            probe => return (pos, probe),
        }
    }
    (data.len(), Probe::No)
}

/// What a ClientHello offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The server name from the `server_name` extension.
    pub sni: Option<String>,
    /// The ALPN protocols offered, in order.
    pub alpn: Vec<String>,
    /// The highest version offered (`supported_versions`, else the legacy version);
    /// GREASE values are ignored.
    pub version: u16,
}

/// The spelling of a TLS version number used in reports (`TLS1.3`).
pub fn version_name(version: u16) -> String {
    match version {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        other => format!("0x{other:04x}"),
    }
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Parses a ClientHello body (the handshake message without its 4-byte header).
/// Returns `None` when the bytes are not a well-formed ClientHello.
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut c = Cursor { b: body };
    let legacy = c.u16()?;
    c.take(32)?;
    c.vec8()?;
    let suites = c.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return None;
    }
    c.vec8()?;
    let mut hello = ClientHello {
        version: legacy,
        ..ClientHello::default()
    };
    if c.b.is_empty() {
        // SSLv3 and some TLS 1.0 clients send no extensions at all.
        return Some(hello);
    }
    let mut exts = Cursor { b: c.vec16()? };
    while !exts.b.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        match kind {
            0 => hello.sni = server_name(data),
            16 => hello.alpn = alpn(data)?,
            43 => {
                if let Some(v) = highest_supported(data) {
                    hello.version = v;
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

fn server_name(data: &[u8]) -> Option<String> {
    let mut list = Cursor {
        b: Cursor { b: data }.vec16()?,
    };
    while !list.b.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

fn alpn(data: &[u8]) -> Option<Vec<String>> {
    let mut list = Cursor {
        b: Cursor { b: data }.vec16()?,
    };
    let mut out = Vec::new();
    while !list.b.is_empty() {
        out.push(String::from_utf8_lossy(list.vec8()?).into_owned());
    }
    Some(out)
}

fn highest_supported(data: &[u8]) -> Option<u16> {
    let list = Cursor { b: data }.vec8()?;
    list.chunks_exact(2)
        .map(|v| u16::from_be_bytes([v[0], v[1]]))
        .filter(|v| !is_grease(*v))
        .max()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ClientHello handshake message (with its 4-byte header) for unit tests.
    /// Real handshakes from rustls and openssl are covered by the integration tests.
    pub(crate) fn client_hello(
        sni: Option<&str>,
        alpn: &[&str],
        versions: &[u16],
        pad: usize,
    ) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(name) = sni {
            let mut entry = vec![0u8];
            entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
            entry.extend_from_slice(name.as_bytes());
            push_ext(&mut exts, 0, &with_len16(&entry));
        }
        if !alpn.is_empty() {
            let mut list = Vec::new();
            for p in alpn {
                list.push(p.len() as u8);
                list.extend_from_slice(p.as_bytes());
            }
            push_ext(&mut exts, 16, &with_len16(&list));
        }
        if !versions.is_empty() {
            let mut list = vec![(versions.len() * 2) as u8];
            for v in versions {
                list.extend_from_slice(&v.to_be_bytes());
            }
            push_ext(&mut exts, 43, &list);
        }
        // A large key share stands in for post-quantum hybrid shares.
        push_ext(&mut exts, 51, &vec![0x42; pad]);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&with_len16(&exts));
        let mut msg = vec![1, 0];
        msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    /// Wraps handshake bytes into TLS records of at most `max` body bytes each.
    pub(crate) fn records(handshake: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in handshake.chunks(max) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    fn with_len16(b: &[u8]) -> Vec<u8> {
        let mut v = (b.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    }

    fn push_ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&with_len16(data));
    }

    #[test]
    fn parses_sni_alpn_and_highest_version_ignoring_grease() {
        let msg = client_hello(
            Some("outbound_.3306_._.mysql.ns.svc.cluster.local"),
            &["istio-peer-exchange", "istio"],
            &[0x3a3a, 0x0304, 0x0303],
            1200,
        );
        let hello = parse_client_hello(&msg[4..]).unwrap();
        assert_eq!(
            hello.sni.as_deref(),
            Some("outbound_.3306_._.mysql.ns.svc.cluster.local")
        );
        assert_eq!(hello.alpn, vec!["istio-peer-exchange", "istio"]);
        assert_eq!(version_name(hello.version), "TLS1.3");
    }

    #[test]
    fn every_truncation_is_rejected_without_panic() {
        let msg = client_hello(Some("a.example"), &["h2"], &[0x0304], 10);
        for cut in 0..msg.len() - 4 {
            let body = &msg[4..4 + cut];
            if let Some(h) = parse_client_hello(body) {
                // Only a cut exactly before the extensions block parses (as no extensions).
                assert!(h.sni.is_none() && h.alpn.is_empty(), "cut {cut}");
            }
        }
    }

    #[test]
    fn handshake_start_needs_all_eleven_bytes() {
        let rec = records(&client_hello(None, &[], &[], 0), 16384);
        assert_eq!(handshake_start(&rec), Probe::Yes);
        assert_eq!(handshake_start(&rec[..7]), Probe::Maybe);
        let mut wrong = rec.clone();
        wrong[5] = 4;
        assert_eq!(handshake_start(&wrong), Probe::No);
        let mut text = b"GET / HTTP/1.1\r\n\x16\x03".to_vec();
        assert_eq!(find_handshake_start(&text, usize::MAX), (16, Probe::Maybe));
        text.extend_from_slice(&rec);
        assert_eq!(find_handshake_start(&text, usize::MAX), (18, Probe::Yes));
        assert_eq!(find_handshake_start(&text, 10).1, Probe::No);
    }

    #[test]
    fn record_header_bounds() {
        assert_eq!(record_header(&[23, 3, 3, 0x40, 0x00]), Some(16384));
        assert_eq!(record_header(&[23, 3, 3, 0x48, 0x01]), None);
        assert_eq!(record_header(&[25, 3, 3, 0, 1]), None);
        assert_eq!(record_header(&[23, 2, 0, 0, 1]), None);
    }
}
