//! IP fragment reassembly, bounded: a tunnel packet larger than the underlay's MTU
//! arrives in fragments, and the flow inside it must not vanish.
//!
//! Fragments are gathered per (source, destination, identification, protocol, depth).
//! Memory is bounded three ways: at most [`MAX_PENDING`] datagrams in progress, at most
//! [`MAX_BUFFERED`] bytes across them, and [`TIMEOUT`] of capture time per datagram (what
//! Linux allows by default, `ipfrag_time`). Every fragment that cannot become part of a
//! whole datagram (evicted, timed out, cut by the snapshot length, still waiting when the
//! capture ends) is counted in [`Defrag::lost`], never dropped silently.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::link::{Endpoint, Fragment, Layer};

/// Datagrams being reassembled at once.
pub const MAX_PENDING: usize = 256;
/// Bytes held across all of them.
pub const MAX_BUFFERED: usize = 8 << 20;
/// Capture time a datagram may take to complete.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest datagram payload IPv4 and (non-jumbo) IPv6 can carry.
const MAX_DATAGRAM: u32 = 65_535;

type Key = ([u8; 16], [u8; 16], u32, u8, u8);

#[derive(Debug)]
struct Pending {
    layer: Layer,
    started: Duration,
    data: Vec<u8>,
    /// Byte ranges received, sorted and merged.
    have: Vec<(u32, u32)>,
    /// The payload's length, once the last fragment arrived.
    total: Option<u32>,
    fragments: u64,
}

/// A whole datagram payload rebuilt from its fragments.
#[derive(Debug)]
pub struct Datagram {
    /// Where the fragments were found.
    pub layer: Layer,
    /// Sender and receiver.
    pub ends: (Endpoint, Endpoint),
    /// The payload's protocol.
    pub proto: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Fragments in progress.
#[derive(Debug, Default)]
pub struct Defrag {
    pending: HashMap<Key, Pending>,
    order: VecDeque<(Duration, Key)>,
    buffered: usize,
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams rebuilt.
    pub reassembled: u64,
    /// Fragments that never became part of a rebuilt datagram.
    pub lost: u64,
}

impl Defrag {
    /// Adds one fragment; returns the datagram when it is complete.
    pub fn push(&mut self, ts: Duration, f: Fragment<'_>) -> Option<Datagram> {
        self.fragments += 1;
        self.expire(ts);
        let len = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        let end = f.offset.saturating_add(len);
        // A fragment cut by the snapshot length, or one whose bytes run past any datagram,
        // cannot be placed; nor can a middle fragment that is not a multiple of 8.
        if !f.complete || end > MAX_DATAGRAM || (f.more && len % 8 != 0) {
            self.lost += 1;
            return None;
        }
        let key = (f.src.addr, f.dst.addr, f.id, f.proto, f.layer.depth);
        if !self.pending.contains_key(&key) {
            self.make_room(end as usize);
            self.order.push_back((ts, key));
            self.pending.insert(
                key,
                Pending {
                    layer: f.layer,
                    started: ts,
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    fragments: 0,
                },
            );
        }
        let p = self.pending.get_mut(&key)?;
        p.fragments += 1;
        if p.data.len() < end as usize {
            self.buffered += end as usize - p.data.len();
            p.data.resize(end as usize, 0);
        }
        p.data[f.offset as usize..end as usize].copy_from_slice(f.data);
        insert_range(&mut p.have, (f.offset, end));
        if !f.more {
            p.total = Some(end);
        }
        let total = p.total?;
        if p.have.first() != Some(&(0, total)) {
            return None;
        }
        let p = self.pending.remove(&key)?;
        self.buffered -= p.data.len();
        self.reassembled += 1;
        let mut payload = p.data;
        payload.truncate(total as usize);
        Some(Datagram {
            layer: p.layer,
            ends: (f.src, f.dst),
            proto: f.proto,
            payload,
        })
    }

    /// Gives up on every datagram still incomplete (the capture ended).
    pub fn finish(&mut self) {
        for (_, p) in self.pending.drain() {
            self.lost += p.fragments;
        }
        self.order.clear();
        self.buffered = 0;
    }

    fn expire(&mut self, now: Duration) {
        while let Some(&(at, key)) = self.order.front() {
            if now.saturating_sub(at) < TIMEOUT {
                break;
            }
            self.order.pop_front();
            self.drop_pending(&key, at);
        }
    }

    /// Evicts the oldest datagrams until one more of `need` bytes fits.
    fn make_room(&mut self, need: usize) {
        while self.pending.len() >= MAX_PENDING || self.buffered + need > MAX_BUFFERED {
            let Some((at, key)) = self.order.pop_front() else {
                break;
            };
            self.drop_pending(&key, at);
        }
    }

    fn drop_pending(&mut self, key: &Key, started: Duration) {
        // The queue may name a datagram that completed, or a later one with the same key.
        if self.pending.get(key).is_some_and(|p| p.started == started)
            && let Some(p) = self.pending.remove(key)
        {
            self.buffered -= p.data.len();
            self.lost += p.fragments;
        }
    }
}

/// Adds a half-open range to a sorted list of disjoint ranges, merging neighbours.
fn insert_range(have: &mut Vec<(u32, u32)>, (mut lo, mut hi): (u32, u32)) {
    let mut out = Vec::with_capacity(have.len() + 1);
    for &(a, b) in have.iter() {
        if b < lo || a > hi {
            out.push((a, b));
        } else {
            lo = lo.min(a);
            hi = hi.max(b);
        }
    }
    out.push((lo, hi));
    out.sort_unstable();
    *have = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(id: u32, offset: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            layer: Layer::default(),
            src: Endpoint::default(),
            dst: Endpoint {
                addr: [9; 16],
                port: 0,
            },
            id,
            proto: 17,
            offset,
            more,
            data,
            complete: true,
        }
    }

    #[test]
    fn out_of_order_fragments_make_one_datagram() {
        let mut d = Defrag::default();
        let t = Duration::ZERO;
        assert!(d.push(t, frag(1, 16, false, b"tail")).is_none());
        assert!(d.push(t, frag(1, 0, true, b"01234567")).is_none());
        let whole = d.push(t, frag(1, 8, true, b"89abcdef")).unwrap();
        assert_eq!(whole.payload, b"0123456789abcdeftail");
        assert_eq!((d.fragments, d.reassembled, d.lost), (3, 1, 0));
        assert_eq!(d.buffered, 0);
    }

    #[test]
    fn incomplete_datagrams_are_counted_lost() {
        let mut d = Defrag::default();
        d.push(Duration::ZERO, frag(1, 0, true, b"01234567"));
        // Thirty seconds later the first is given up; the second waits until the end.
        d.push(Duration::from_secs(31), frag(2, 0, true, b"01234567"));
        assert_eq!(d.lost, 1);
        d.finish();
        assert_eq!(d.lost, 2);
        let mut cut = frag(3, 0, true, b"0123");
        cut.complete = false;
        d.push(Duration::from_secs(32), cut);
        assert_eq!(d.lost, 3);
        assert!(
            d.push(Duration::from_secs(32), frag(4, 65_530, false, b"too far"))
                .is_none()
        );
        assert_eq!(d.lost, 4);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut d = Defrag::default();
        for id in 0..(MAX_PENDING as u32 + 10) {
            d.push(Duration::ZERO, frag(id, 65_000, true, &[0; 8]));
        }
        assert!(d.pending.len() <= MAX_PENDING);
        assert!(d.buffered <= MAX_BUFFERED);
        assert_eq!(d.lost + d.pending.len() as u64, MAX_PENDING as u64 + 10);
    }

    #[test]
    fn ranges_merge() {
        let mut have = vec![];
        for r in [(8, 16), (0, 4), (4, 8), (20, 24)] {
            insert_range(&mut have, r);
        }
        assert_eq!(have, vec![(0, 16), (20, 24)]);
    }
}
