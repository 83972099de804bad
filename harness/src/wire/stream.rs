//! One direction of a TCP connection: reassembly in sequence order with bounded memory,
//! and what the analyzer keeps of the bytes (a short head, TLS framing, canary hits).

use std::collections::BTreeMap;

use memchr::memmem::Finder;

use super::tls::{self, Hello, HelloParse, RecordWalker};

/// Out-of-order bytes held per direction before a gap is declared lost.
const MAX_PENDING: usize = 256 * 1024;
/// Bytes gathered before deciding whether a stream seen mid-way is TLS.
const MIDSTREAM_DECIDE: usize = 4096;
/// Bytes of the head kept for a ClientHello (post-quantum hellos exceed one segment).
const HELLO_MAX: usize = 32 * 1024;
/// Bytes of a plaintext head kept for protocol sniffing.
const SNIFF_KEEP: usize = 512;

/// The canaries, compiled once and shared by every flow.
#[derive(Debug, Clone)]
pub struct Needles {
    finders: Vec<Finder<'static>>,
    longest: usize,
}

impl Needles {
    /// Compiles the canaries; empty ones are ignored.
    pub fn new(canaries: &[Vec<u8>]) -> Needles {
        let finders: Vec<Finder<'static>> = canaries
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| Finder::new(c).into_owned())
            .collect();
        let longest = finders.iter().map(|f| f.needle().len()).max().unwrap_or(0);
        Needles { finders, longest }
    }
}

/// How the bytes of a direction are treated.
#[derive(Debug, Clone)]
enum Mode {
    /// Not enough bytes yet to tell.
    Undecided,
    /// Plaintext: every byte is searched for canaries.
    Plain,
    /// TLS records: contents are never searched. `None` when the framing is unknown.
    Tls(Option<RecordWalker>),
}

/// One direction of a connection.
#[derive(Debug, Clone)]
pub struct Side {
    next: Option<u32>,
    delivered: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// The stream's first byte was seen (a SYN, or data right after one).
    pub start_known: bool,
    mode: Mode,
    /// The first bytes of the stream (trimmed once they have served).
    pub head: Vec<u8>,
    /// The ClientHello this side sent, once complete.
    pub hello: Option<Hello>,
    tail: Vec<u8>,
    /// Canary sightings in clear.
    pub hits: u64,
    /// Payload bytes, each counted once.
    pub bytes: u64,
    /// Bytes never seen because the capture missed segments.
    pub lost: u64,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            next: None,
            delivered: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            start_known: false,
            mode: Mode::Undecided,
            head: Vec::new(),
            hello: None,
            tail: Vec::new(),
            hits: 0,
            bytes: 0,
            lost: 0,
        }
    }
}

impl Side {
    /// Handles one segment sent by this side.
    pub fn segment(&mut self, seq: u32, syn: bool, payload: &[u8], needles: &Needles) {
        if syn && self.next.is_none() {
            // A retransmitted SYN must not rewind a stream already under way.
            self.next = Some(seq.wrapping_add(1));
            self.start_known = true;
        }
        if payload.is_empty() {
            return;
        }
        let next = *self.next.get_or_insert(seq);
        let diff = seq.wrapping_sub(next) as i32;
        if diff < 0 {
            let skip = diff.unsigned_abs() as usize;
            if skip < payload.len() {
                self.deliver(&payload[skip..], needles);
            }
        } else if diff == 0 {
            self.deliver(payload, needles);
        } else {
            self.hold(self.delivered + diff as u64, payload, needles);
            return;
        }
        self.drain(needles);
    }

    fn hold(&mut self, offset: u64, payload: &[u8], needles: &Needles) {
        if self.pending.contains_key(&offset) {
            return;
        }
        self.pending_bytes += payload.len();
        self.pending.insert(offset, payload.to_vec());
        if self.pending_bytes > MAX_PENDING {
            // The capture missed a segment: give up on the gap rather than grow.
            if let Some((&first, _)) = self.pending.iter().next() {
                let gap = first - self.delivered;
                self.lost += gap;
                self.delivered = first;
                if let Some(n) = &mut self.next {
                    *n = n.wrapping_add(gap as u32);
                }
                // A gap breaks TLS framing and plaintext continuity alike.
                self.tail.clear();
                if let Mode::Tls(walker) = &mut self.mode {
                    *walker = None;
                }
            }
            self.drain(needles);
        }
    }

    fn drain(&mut self, needles: &Needles) {
        while let Some(entry) = self.pending.first_entry() {
            let offset = *entry.key();
            if offset > self.delivered {
                break;
            }
            let data = entry.remove();
            self.pending_bytes -= data.len();
            let skip = (self.delivered - offset) as usize;
            if skip < data.len() {
                self.deliver(&data[skip..], needles);
            }
        }
    }

    fn deliver(&mut self, data: &[u8], needles: &Needles) {
        self.delivered += data.len() as u64;
        self.bytes += data.len() as u64;
        if let Some(n) = &mut self.next {
            *n = n.wrapping_add(data.len() as u32);
        }
        match &mut self.mode {
            Mode::Plain => self.scan(data, needles),
            Mode::Tls(walker) => {
                if let Some(w) = walker {
                    if !w.feed(data) {
                        // Framing broke: whatever follows is searched as plaintext, so a
                        // leak after a failed or finished TLS session is not missed.
                        self.mode = Mode::Plain;
                    }
                }
            }
            Mode::Undecided => {
                self.head.extend_from_slice(data);
                let full = self.head.len() >= HELLO_MAX;
                self.decide(full, needles);
            }
        }
    }

    /// Decides plaintext or TLS once enough bytes are in; `last` forces a decision.
    fn decide(&mut self, last: bool, needles: &Needles) {
        let head = std::mem::take(&mut self.head);
        let decided = match tls::client_hello(&head) {
            HelloParse::Complete(h) => {
                self.hello = Some(h);
                Some(Mode::Tls(walker_over(&head)))
            }
            HelloParse::NeedMore if !last => None,
            _ if self.start_known && tls::is_record_header(&head) => {
                Some(Mode::Tls(walker_over(&head)))
            }
            HelloParse::NeedMore if self.start_known && head.first() == Some(&22) => {
                Some(Mode::Tls(None))
            }
            _ if self.start_known => Some(Mode::Plain),
            _ if head.len() >= MIDSTREAM_DECIDE || last => {
                Some(match tls::midstream_start(&head) {
                    Some(start) => Mode::Tls(walker_over(&head[start..])),
                    None => Mode::Plain,
                })
            }
            _ => None,
        };
        self.head = head;
        let Some(mode) = decided else { return };
        self.mode = mode;
        if matches!(self.mode, Mode::Plain) {
            let head = std::mem::take(&mut self.head);
            self.scan(&head, needles);
            self.head = head;
        }
        let keep = if self.hello.is_none() && matches!(self.mode, Mode::Tls(_)) {
            HELLO_MAX
        } else {
            SNIFF_KEEP
        };
        self.head.truncate(keep);
    }

    /// Settles an undecided direction at the end of the capture.
    pub fn finish(&mut self, needles: &Needles) {
        if matches!(self.mode, Mode::Undecided) && !self.head.is_empty() {
            self.decide(true, needles);
        }
    }

    /// True when this direction carried TLS records.
    pub fn is_tls(&self) -> bool {
        matches!(self.mode, Mode::Tls(_))
    }

    /// Counts canaries in `data`, including ones that straddle the previous chunk.
    fn scan(&mut self, data: &[u8], needles: &Needles) {
        if needles.longest == 0 || data.is_empty() {
            return;
        }
        for f in &needles.finders {
            let n = f.needle().len();
            let tail = &self.tail[self.tail.len().saturating_sub(n - 1)..];
            if !tail.is_empty() {
                let mut join = tail.to_vec();
                join.extend_from_slice(&data[..data.len().min(n - 1)]);
                self.hits += f.find_iter(&join).filter(|at| *at < tail.len()).count() as u64;
            }
            self.hits += f.find_iter(data).count() as u64;
        }
        let keep = needles.longest - 1;
        if data.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - keep..]);
        } else {
            self.tail.extend_from_slice(data);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }
}

/// A record walker that has already consumed `head`, or `None` if the head breaks framing.
fn walker_over(head: &[u8]) -> Option<RecordWalker> {
    let mut w = RecordWalker::default();
    w.feed(head).then_some(w)
}

#[cfg(test)]
mod tests;
