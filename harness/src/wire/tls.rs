//! TLS on the wire: record framing and the ClientHello, which is all a passive observer
//! can read of TLS 1.3 (certificates and the server's ALPN are encrypted).
//!
//! The ClientHello is reassembled across TLS records and TCP segments before parsing:
//! post-quantum key shares make it larger than one segment.

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_client_hello_extensions,
    parse_tls_message_handshake,
};

/// The largest record payload TLS allows (2^14 plus room for compression and padding).
const MAX_RECORD: usize = 16384 + 2048;

/// What a ClientHello offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    /// The server name, if any.
    pub sni: Option<String>,
    /// ALPN protocols offered, in order.
    pub alpn: Vec<String>,
    /// The highest version offered, as `TLS1.3`.
    pub version: Option<String>,
}

/// The outcome of looking for a ClientHello at the start of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloParse {
    /// A complete ClientHello.
    Complete(Hello),
    /// TLS handshake framing so far, but the message is not complete yet.
    NeedMore,
    /// The stream does not start with a TLS handshake.
    NotTls,
}

/// True when `b` starts a plausible TLS record header.
pub fn is_record_header(b: &[u8]) -> bool {
    b.len() >= 5
        && (20..=24).contains(&b[0])
        && b[1] == 3
        && b[2] <= 4
        && (u16::from_be_bytes([b[3], b[4]]) as usize) <= MAX_RECORD
}

/// Parses the ClientHello at the start of a client stream.
pub fn client_hello(stream: &[u8]) -> HelloParse {
    if stream.len() < 5 {
        return if stream.is_empty() || stream[0] == 22 {
            HelloParse::NeedMore
        } else {
            HelloParse::NotTls
        };
    }
    if stream[0] != 22 || !is_record_header(stream) {
        return HelloParse::NotTls;
    }
    // Concatenate the payloads of consecutive handshake records until the first handshake
    // message is complete.
    let mut message = Vec::new();
    let mut rest = stream;
    loop {
        if rest.len() < 5 {
            return HelloParse::NeedMore;
        }
        if rest[0] != 22 || !is_record_header(rest) {
            return HelloParse::NotTls;
        }
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        let Some(payload) = rest.get(5..5 + len) else {
            message.extend_from_slice(&rest[5..]);
            return if message.first().is_some_and(|t| *t != 1) {
                HelloParse::NotTls
            } else {
                HelloParse::NeedMore
            };
        };
        message.extend_from_slice(payload);
        rest = &rest[5 + len..];
        if message.len() >= 4 {
            if message[0] != 1 {
                return HelloParse::NotTls;
            }
            let want = 4 + u32::from_be_bytes([0, message[1], message[2], message[3]]) as usize;
            if message.len() >= want {
                return parse_hello(&message[..want]);
            }
        }
    }
}

fn parse_hello(message: &[u8]) -> HelloParse {
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
        parse_tls_message_handshake(message)
    else {
        return HelloParse::NotTls;
    };
    let mut hello = Hello {
        version: Some(version_name(ch.version.0)),
        ..Hello::default()
    };
    let extensions = ch
        .ext
        .and_then(|ext| parse_tls_client_hello_extensions(ext).ok())
        .map(|(_, e)| e)
        .unwrap_or_default();
    for ext in extensions {
        match ext {
            TlsExtension::SNI(names) => {
                hello.sni = names
                    .first()
                    .map(|(_, name)| String::from_utf8_lossy(name).into_owned());
            }
            TlsExtension::ALPN(protocols) => {
                hello.alpn = protocols
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
            }
            TlsExtension::SupportedVersions(versions) => {
                let best = versions
                    .iter()
                    .map(|v| v.0)
                    .filter(|v| !is_grease(*v))
                    .max();
                if let Some(v) = best {
                    hello.version = Some(version_name(v));
                }
            }
            _ => {}
        }
    }
    HelloParse::Complete(hello)
}

/// GREASE values (RFC 8701) are random placeholders, not versions.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        other => format!("0x{other:04x}"),
    }
}

/// True when `buf` (a stream seen from somewhere in its middle) holds a chain of at least
/// two TLS records, or one record that fills the buffer exactly, starting within the first
/// record's length. This recognises TLS on connections that began before the capture.
pub fn midstream_records(buf: &[u8]) -> bool {
    midstream_start(buf).is_some()
}

/// Where the first record of a chain starts in `buf`, as for [`midstream_records`].
pub fn midstream_start(buf: &[u8]) -> Option<usize> {
    let window = buf.len().min(MAX_RECORD + 5);
    (0..window).find(|start| chained(&buf[*start..]))
}

fn chained(buf: &[u8]) -> bool {
    let mut rest = buf;
    let mut count = 0;
    while is_record_header(rest) {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        count += 1;
        match rest.get(5 + len..) {
            Some([]) => return true,
            Some(next) => rest = next,
            None => return count >= 2,
        }
        if count >= 3 {
            return true;
        }
    }
    false
}

/// Walks TLS record framing so the canary search can skip record contents: everything
/// inside a record is ciphertext or handshake data, never application plaintext.
#[derive(Debug, Clone, Default)]
pub struct RecordWalker {
    /// Header bytes collected so far (a header may span segments).
    header: Vec<u8>,
    /// Payload bytes of the current record still to skip.
    remaining: usize,
    /// Framing broke: stop trusting it.
    lost: bool,
}

impl RecordWalker {
    /// Consumes bytes; returns false once the framing is lost.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() && !self.lost {
            if self.remaining > 0 {
                let skip = self.remaining.min(data.len());
                self.remaining -= skip;
                data = &data[skip..];
                continue;
            }
            let need = 5 - self.header.len();
            let take = need.min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() == 5 {
                if !is_record_header(&self.header) {
                    self.lost = true;
                } else {
                    self.remaining = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                }
                self.header.clear();
            }
        }
        !self.lost
    }
}

#[cfg(test)]
pub(crate) mod tests;
