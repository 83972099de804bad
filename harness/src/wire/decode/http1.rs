//! HTTP/1.x, one direction: messages framed by `Content-Length`, `chunked` or the end
//! of the connection; bodies de-chunked, decompressed and (for forms) percent-decoded
//! before they are searched; header values and the request target also searched decoded.
//! An accepted upgrade hands the rest of the direction to WebSocket or HTTP/2.

use super::coding::{self, Coding};
use super::text::{FormBody, value_extras};
use super::{Encoding, Next, Out};
use crate::wire::canary::CanaryScan;
use crate::wire::sniff::METHODS;

/// The longest start or header line followed; longer ones lose the framing.
const MAX_LINE: usize = 64 * 1024;

/// Whether `head` may still turn out to start an HTTP/1 message.
pub fn could_start(head: &[u8]) -> bool {
    METHODS
        .iter()
        .chain([&&b"HTTP/1."[..]])
        .any(|m| m.starts_with(&head[..head.len().min(m.len())]) || head.starts_with(m))
}

/// Whether `head` starts an HTTP/1 request or response.
pub fn starts_message(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.") || METHODS.iter().any(|m| head.starts_with(m))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Reading the start line.
    Start,
    Headers,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    UntilClose,
}

#[derive(Debug, Default)]
struct Msg {
    request: bool,
    status: u16,
    chunked: bool,
    length: Option<u64>,
    /// `Err` when a coding is not one decoded here.
    coding: Option<Result<Option<Coding>, ()>>,
    form: bool,
    upgrade_ws: bool,
    upgrade_h2c: bool,
}

enum View {
    Plain(CanaryScan),
    Form(FormBody),
    Coded(coding::Body),
    Undecodable,
}

/// The HTTP/1 state of one direction.
pub struct Http1 {
    st: St,
    line: Vec<u8>,
    head: CanaryScan,
    msg: Msg,
    view: View,
    /// An upgrade to WebSocket was requested: bytes that do not start a request are frames.
    ws_next: bool,
}

impl Default for Http1 {
    fn default() -> Self {
        Http1 {
            st: St::Start,
            line: Vec::new(),
            head: CanaryScan::default(),
            msg: Msg::default(),
            view: View::Undecodable,
            ws_next: false,
        }
    }
}

impl Http1 {
    /// The next bytes of the direction.
    pub fn feed(&mut self, out: &mut Out<'_>, data: &[u8]) -> Next {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            match self.st {
                St::Start
                    if self.line.is_empty() && self.ws_next && !rest[0].is_ascii_uppercase() =>
                {
                    return Next::WebSocket {
                        at: i,
                        masked: true,
                    };
                }
                St::Start | St::Headers | St::Trailers | St::ChunkSize => {
                    let scanned = !matches!(self.st, St::ChunkSize);
                    let (line_done, used) = self.take_line(rest);
                    if scanned {
                        out.scan(&mut self.head, &rest[..used], None);
                    }
                    i += used;
                    if self.line.len() > MAX_LINE {
                        return Next::Lost { at: i };
                    }
                    if line_done {
                        let line = std::mem::take(&mut self.line);
                        if let Some(next) = self.line_done(out, &line, i) {
                            return next;
                        }
                    }
                }
                St::Fixed(n) | St::ChunkData(n) => {
                    let take = (n.min(rest.len() as u64)) as usize;
                    self.body(out, &rest[..take]);
                    i += take;
                    let left = n - take as u64;
                    self.st = match (self.st, left) {
                        (St::Fixed(_), 0) => {
                            self.end_message(out);
                            St::Start
                        }
                        (St::Fixed(_), l) => St::Fixed(l),
                        (_, 0) => St::ChunkEnd,
                        (_, l) => St::ChunkData(l),
                    };
                }
                St::ChunkEnd => {
                    match rest[0] {
                        b'\r' => {}
                        b'\n' => self.st = St::ChunkSize,
                        _ => return Next::Lost { at: i },
                    }
                    i += 1;
                }
                St::UntilClose => {
                    self.body(out, rest);
                    i = data.len();
                }
            }
        }
        Next::Stay
    }

    /// Appends bytes up to and including the next LF; returns whether the line is whole.
    fn take_line(&mut self, rest: &[u8]) -> (bool, usize) {
        match memchr::memchr(b'\n', rest) {
            Some(end) => {
                self.line.extend_from_slice(&rest[..end]);
                (true, end + 1)
            }
            None => {
                self.line.extend_from_slice(rest);
                (false, rest.len())
            }
        }
    }

    fn line_done(&mut self, out: &mut Out<'_>, line: &[u8], at: usize) -> Option<Next> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.st {
            St::Start if line.is_empty() => None,
            St::Start if line == b"PRI * HTTP/2.0" => Some(Next::Http2 { at, skip: 8 }),
            St::Start => {
                self.start_line(out, line);
                self.st = St::Headers;
                None
            }
            St::Headers if line.is_empty() => self.headers_done(at),
            St::Headers => {
                self.header(out, line);
                None
            }
            St::ChunkSize => {
                let digits = line
                    .split(|b| *b == b';')
                    .next()
                    .unwrap_or(line)
                    .trim_ascii();
                let size = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| u64::from_str_radix(d, 16).ok());
                match size {
                    Some(0) => self.st = St::Trailers,
                    Some(n) => self.st = St::ChunkData(n),
                    None => return Some(Next::Lost { at }),
                }
                None
            }
            St::Trailers if line.is_empty() => {
                self.end_message(out);
                self.st = St::Start;
                None
            }
            _ => None,
        }
    }

    fn start_line(&mut self, out: &mut Out<'_>, line: &[u8]) {
        self.msg = Msg::default();
        if let Some(status) = line.strip_prefix(b"HTTP/1.") {
            self.msg.status = status
                .get(2..5)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        } else {
            self.msg.request = true;
            if let Some(target) = line.split(|b| *b == b' ').nth(1) {
                value_extras(out, target);
            }
        }
    }

    fn header(&mut self, out: &mut Out<'_>, line: &[u8]) {
        let Some(colon) = memchr::memchr(b':', line) else {
            return;
        };
        let name = line[..colon].trim_ascii().to_ascii_lowercase();
        let value = line[colon + 1..].trim_ascii();
        value_extras(out, value);
        let lower = value.to_ascii_lowercase();
        let has = |word: &[u8]| lower.split(|b| *b == b',').any(|t| t.trim_ascii() == word);
        match name.as_slice() {
            b"transfer-encoding" => self.msg.chunked = has(b"chunked"),
            b"content-length" => {
                self.msg.length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            b"content-encoding" => {
                let codings: Vec<_> = lower
                    .split(|b| *b == b',')
                    .map(Coding::parse)
                    .filter(|c| *c != Ok(None))
                    .collect();
                self.msg.coding = Some(match codings.as_slice() {
                    [] => Ok(None),
                    [one] => *one,
                    _ => Err(()),
                });
            }
            b"content-type" => {
                self.msg.form = lower.starts_with(b"application/x-www-form-urlencoded");
            }
            b"upgrade" => {
                self.msg.upgrade_ws = has(b"websocket");
                self.msg.upgrade_h2c = has(b"h2c");
            }
            _ => {}
        }
    }

    /// The headers ended at `at`: decides how the body is framed and read, or where the
    /// direction switches protocol.
    fn headers_done(&mut self, at: usize) -> Option<Next> {
        let m = &self.msg;
        if m.status == 101 {
            return Some(if m.upgrade_ws {
                Next::WebSocket { at, masked: false }
            } else if m.upgrade_h2c {
                Next::Http2 { at, skip: 0 }
            } else {
                Next::Lost { at }
            });
        }
        self.view = match m.coding {
            Some(Err(())) => View::Undecodable,
            Some(Ok(Some(c))) => View::Coded(coding::Body::new(c)),
            _ if m.form => View::Form(FormBody::default()),
            _ => View::Plain(CanaryScan::default()),
        };
        let no_body = (100..200).contains(&m.status) || m.status == 204 || m.status == 304;
        self.st = if no_body {
            St::Start
        } else if m.chunked {
            St::ChunkSize
        } else {
            match (m.length, m.request) {
                (Some(0), _) | (None, true) => St::Start,
                (Some(n), _) => St::Fixed(n),
                (None, false) => St::UntilClose,
            }
        };
        if self.st == St::Start {
            self.ws_next = m.request && m.upgrade_ws;
        }
        None
    }

    fn body(&mut self, out: &mut Out<'_>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let via = self.msg.chunked.then_some(Encoding::Chunked);
        match &mut self.view {
            View::Plain(scan) => out.scan(scan, data, via),
            View::Form(form) => form.feed(out, data),
            View::Coded(body) => body.feed(out, data),
            View::Undecodable => out.found.partial = true,
        }
    }

    fn end_message(&mut self, out: &mut Out<'_>) {
        match &mut self.view {
            View::Form(form) => form.finish(out),
            View::Coded(body) => body.finish(out),
            View::Plain(_) | View::Undecodable => {}
        }
        self.ws_next = self.msg.request && self.msg.upgrade_ws;
        self.view = View::Undecodable;
    }

    /// The direction ended: a body read until the close is complete now.
    pub fn finish(&mut self, out: &mut Out<'_>) {
        if self.st == St::UntilClose {
            self.end_message(out);
        }
    }
}
