//! TCP reassembly for one direction: segments in, an ordered byte stream with explicit
//! gaps out.
//!
//! Sequence numbers are turned into 64-bit stream offsets, so wrap-around is handled and
//! streams longer than 4 GiB work. In-order segments are handed on without copying;
//! only segments that arrive ahead of a hole are copied, into a queue bounded in bytes.
//! When the queue is full, or the capture ends, the hole is declared a gap and the
//! stream continues after it: memory stays bounded whatever the capture holds.
//!
//! Overlaps are resolved "first copy wins": bytes already delivered are never
//! delivered again, so retransmissions are counted once.

/// What the reassembler hands to its consumer, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// This many bytes of the stream were never captured.
    Gap(u64),
}

/// How far ahead of the next expected byte a segment may start and still be queued;
/// anything further is treated as noise (a stray packet of an older connection).
const MAX_AHEAD: i64 = 1 << 30;

/// Data segments a direction without a SYN holds before it picks its first byte. A
/// capture that starts mid-stream cannot know where the stream starts; taking the first
/// segment seen would drop an earlier segment that arrives just after it (reordering at
/// the capture's start) as if it were a retransmission, and a canary in it would be lost.
/// Holding a few segments and starting at the lowest sequence number among them survives
/// the reordering a network actually produces.
const MID_STREAM_HOLD: usize = 8;

/// A segment held while a mid-stream direction decides where its stream starts.
#[derive(Debug)]
struct Held {
    seq: u32,
    fin: bool,
    wire_len: u32,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Pending {
    offset: u64,
    wire_len: u32,
    data: Vec<u8>,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct Reassembly {
    /// Sequence number of stream offset 0; set by the SYN or the first segment seen.
    base: Option<u32>,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Segments that arrived ahead of a hole, sorted by offset.
    pending: Vec<Pending>,
    pending_bytes: usize,
    /// Whether the stream started with a SYN (offset 0 is the real start).
    pub from_syn: bool,
    /// The sequence number of the SYN, to tell a retransmitted SYN from port reuse.
    pub syn_seq: Option<u32>,
    /// Whether a FIN was seen.
    pub fin: bool,
    /// Segments or parts of segments that repeated bytes already delivered.
    pub retransmitted: u64,
    /// Data segments of a direction without a SYN, held until its start is chosen.
    held: Vec<Held>,
    held_bytes: usize,
}

impl Reassembly {
    /// Bytes delivered or skipped so far: the offset of the next expected byte.
    #[cfg(test)]
    pub fn offset(&self) -> u64 {
        self.next
    }

    /// Handles one segment of this direction.
    pub fn segment(&mut self, seg: SegmentIn<'_>, limit: usize, sink: &mut impl FnMut(Chunk<'_>)) {
        let mut seq = seg.seq;
        if seg.syn {
            if self.base.is_none() {
                self.base = Some(seq.wrapping_add(1));
                self.from_syn = true;
                self.syn_seq = Some(seq);
                // Data that overtook the SYN now has its place in the stream.
                self.release_held(limit, sink);
            }
            // The SYN occupies one sequence number; data on a SYN (TCP Fast Open) follows it.
            seq = seq.wrapping_add(1);
        }
        if seg.fin {
            self.fin = true;
        }
        if seg.wire_len == 0 {
            return;
        }
        if self.base.is_none() {
            self.hold(seq, seg, limit, sink);
            return;
        }
        self.place(seq, seg.payload, seg.wire_len, limit, sink);
    }

    /// Holds a data segment of a direction whose start is not known yet (see
    /// [`MID_STREAM_HOLD`]); once enough are held, starts at the lowest of them.
    fn hold(
        &mut self,
        seq: u32,
        seg: SegmentIn<'_>,
        limit: usize,
        sink: &mut impl FnMut(Chunk<'_>),
    ) {
        self.held_bytes += seg.payload.len();
        self.held.push(Held {
            seq,
            fin: seg.fin,
            wire_len: seg.wire_len,
            data: seg.payload.to_vec(),
        });
        if self.held.len() >= MID_STREAM_HOLD || self.held_bytes > limit {
            self.start_mid_stream(limit, sink);
        }
    }

    /// Picks the lowest held sequence number (wrap-aware, relative to the first held
    /// segment) as the stream's start and plays the held segments in.
    fn start_mid_stream(&mut self, limit: usize, sink: &mut impl FnMut(Chunk<'_>)) {
        let Some(first) = self.held.first().map(|h| h.seq) else {
            return;
        };
        let lowest = self
            .held
            .iter()
            .map(|h| h.seq)
            .min_by_key(|&s| s.wrapping_sub(first) as i32)
            .unwrap_or(first);
        self.base = Some(lowest);
        self.release_held(limit, sink);
    }

    /// Plays held segments in, now that the stream has a start.
    fn release_held(&mut self, limit: usize, sink: &mut impl FnMut(Chunk<'_>)) {
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        for h in held {
            self.fin |= h.fin;
            self.place(h.seq, &h.data, h.wire_len, limit, sink);
        }
    }

    /// Places a data segment in a stream whose start is known.
    fn place(
        &mut self,
        seq: u32,
        payload: &[u8],
        wire_len: u32,
        limit: usize,
        sink: &mut impl FnMut(Chunk<'_>),
    ) {
        let Some(base) = self.base else {
            return;
        };
        let expected = base.wrapping_add(self.next as u32);
        let ahead = i64::from(seq.wrapping_sub(expected) as i32);
        let offset = self.next as i64 + ahead;
        let end = offset + i64::from(wire_len);
        if end <= self.next as i64 {
            self.retransmitted += 1;
            return;
        }
        if offset <= self.next as i64 {
            self.deliver(offset, payload, wire_len, sink);
            self.drain(sink);
        } else if ahead <= MAX_AHEAD {
            self.queue(offset as u64, payload, wire_len);
            if self.pending_bytes > limit {
                self.skip_hole(sink);
            }
        }
    }

    /// Delivers a segment that starts at or before `next`, trimming what was delivered.
    fn deliver(
        &mut self,
        offset: i64,
        payload: &[u8],
        wire_len: u32,
        sink: &mut impl FnMut(Chunk<'_>),
    ) {
        let skip = (self.next as i64 - offset) as u64;
        let captured = payload.len() as u64;
        if skip < captured {
            sink(Chunk::Data(&payload[skip as usize..]));
        } else if skip > 0 {
            self.retransmitted += 1;
        }
        // Offsets are signed: a mid-stream flow may see bytes from before its first segment.
        let end = (offset + i64::from(wire_len)) as u64;
        let captured_end = ((offset + captured as i64).max(0) as u64).max(self.next);
        if end > captured_end {
            // The snapshot length cut the frame: the rest of this segment is a gap.
            sink(Chunk::Gap(end - captured_end));
        }
        self.next = end;
    }

    fn queue(&mut self, offset: u64, payload: &[u8], wire_len: u32) {
        let at = self.pending.partition_point(|p| p.offset <= offset);
        self.pending_bytes += payload.len();
        self.pending.insert(
            at,
            Pending {
                offset,
                wire_len,
                data: payload.to_vec(),
            },
        );
    }

    /// Delivers queued segments that have become contiguous.
    fn drain(&mut self, sink: &mut impl FnMut(Chunk<'_>)) {
        while self.pending.first().is_some_and(|p| p.offset <= self.next) {
            let p = self.pending.remove(0);
            self.pending_bytes -= p.data.len();
            if p.offset + u64::from(p.wire_len) > self.next {
                self.deliver(p.offset as i64, &p.data, p.wire_len, sink);
            } else {
                self.retransmitted += 1;
            }
        }
    }

    /// Declares the hole before the first queued segment a gap and moves on.
    fn skip_hole(&mut self, sink: &mut impl FnMut(Chunk<'_>)) {
        if let Some(first) = self.pending.first() {
            let gap = first.offset - self.next;
            self.next = first.offset;
            sink(Chunk::Gap(gap));
            self.drain(sink);
        }
    }

    /// Flushes everything held or queued, declaring every remaining hole a gap.
    pub fn flush(&mut self, sink: &mut impl FnMut(Chunk<'_>)) {
        self.start_mid_stream(usize::MAX, sink);
        while !self.pending.is_empty() {
            self.skip_hole(sink);
        }
    }
}

/// The parts of a TCP segment that reassembly needs.
#[derive(Debug, Clone, Copy)]
pub struct SegmentIn<'a> {
    /// The sequence number.
    pub seq: u32,
    /// The SYN flag.
    pub syn: bool,
    /// The FIN flag.
    pub fin: bool,
    /// Captured payload.
    pub payload: &'a [u8],
    /// Payload length on the wire (at least `payload.len()`).
    pub wire_len: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, payload: &[u8]) -> SegmentIn<'_> {
        SegmentIn {
            seq,
            syn: false,
            fin: false,
            payload,
            wire_len: payload.len() as u32,
        }
    }

    fn syn(seq: u32) -> SegmentIn<'static> {
        SegmentIn {
            seq,
            syn: true,
            fin: false,
            payload: b"",
            wire_len: 0,
        }
    }

    fn run(r: &mut Reassembly, segs: &[SegmentIn<'_>], limit: usize) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let mut gaps = 0;
        let mut sink = |c: Chunk<'_>| match c {
            Chunk::Data(d) => out.extend_from_slice(d),
            Chunk::Gap(n) => gaps += n,
        };
        for s in segs {
            r.segment(*s, limit, &mut sink);
        }
        r.flush(&mut sink);
        (out, gaps)
    }

    #[test]
    fn out_of_order_overlap_and_retransmission() {
        let mut r = Reassembly::default();
        let syn = syn(999);
        let (out, gaps) = run(
            &mut r,
            &[
                syn,
                seg(1006, b"world"),
                seg(1000, b"hello "),
                seg(1000, b"hello "),
                seg(1003, b"lo wor"),
                seg(1011, b"!"),
            ],
            1 << 20,
        );
        assert_eq!(out, b"hello world!");
        assert_eq!(gaps, 0);
        assert!(r.retransmitted >= 2);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Reassembly::default();
        let start = u32::MAX - 2;
        let (out, _) = run(
            &mut r,
            &[seg(start, b"abc"), seg(start.wrapping_add(3), b"def")],
            1 << 20,
        );
        assert_eq!(out, b"abcdef");
        assert_eq!(r.offset(), 6);
    }

    #[test]
    fn queue_overflow_becomes_a_gap() {
        let mut r = Reassembly::default();
        let (out, gaps) = run(
            &mut r,
            &[seg(0, b"ab"), seg(10, b"0123456789"), seg(20, b"xyz")],
            8,
        );
        assert_eq!(out, b"ab0123456789xyz");
        assert_eq!(gaps, 8);
    }

    #[test]
    fn snaplen_cut_is_a_gap_and_the_stream_goes_on() {
        let mut r = Reassembly::default();
        let cut = SegmentIn {
            seq: 0,
            syn: false,
            fin: false,
            payload: b"abc",
            wire_len: 10,
        };
        let (out, gaps) = run(&mut r, &[cut, seg(10, b"next")], 1 << 20);
        assert_eq!(out, b"abcnext");
        assert_eq!(gaps, 7);
    }

    #[test]
    fn a_mid_stream_start_survives_reordering_of_its_first_segments() {
        let mut r = Reassembly::default();
        let (out, gaps) = run(
            &mut r,
            &[seg(5006, b"world"), seg(5000, b"hello "), seg(5011, b"!")],
            1 << 20,
        );
        assert_eq!(out, b"hello world!");
        assert_eq!(gaps, 0);
        assert!(!r.from_syn);
    }

    #[test]
    fn data_that_overtakes_the_syn_is_placed_after_it() {
        let mut r = Reassembly::default();
        let syn = syn(99);
        let (out, gaps) = run(&mut r, &[seg(103, b"def"), syn, seg(100, b"abc")], 1 << 20);
        assert_eq!(out, b"abcdef");
        assert_eq!(gaps, 0);
        assert!(r.from_syn);
    }

    #[test]
    fn hole_left_at_the_end_is_flushed_as_a_gap() {
        let mut r = Reassembly::default();
        let (out, gaps) = run(&mut r, &[seg(100, b"a"), seg(105, b"b")], 1 << 20);
        assert_eq!(out, b"ab");
        assert_eq!(gaps, 4);
    }
}
