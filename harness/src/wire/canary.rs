//! Streaming canary search: counts every occurrence of every canary in a byte stream
//! that arrives in arbitrary chunks, including occurrences that straddle chunk borders.
//!
//! Each direction of a flow owns a [`CanaryScan`], which remembers only the last
//! `longest canary - 1` bytes it saw; the whole stream is never buffered. Occurrences are
//! counted at every start position (overlapping occurrences count separately), so the
//! count does not depend on how the stream was cut into segments.

use memchr::memmem::Finder;

/// The compiled set of canaries, shared by every flow of one analysis.
#[derive(Debug, Clone, Default)]
pub struct Canaries {
    finders: Vec<Finder<'static>>,
    longest: usize,
}

impl Canaries {
    /// Compiles the canaries; empty ones are ignored because they would match everywhere.
    pub fn new(canaries: &[Vec<u8>]) -> Canaries {
        let finders: Vec<Finder<'static>> =
            canaries.iter().filter(|c| !c.is_empty()).map(|c| Finder::new(c).into_owned()).collect();
        let longest = finders.iter().map(|f| f.needle().len()).max().unwrap_or(0);
        Canaries { finders, longest }
    }

    /// True when there is nothing to search for.
    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }
}

/// The search state of one direction of one flow.
#[derive(Debug, Clone, Default)]
pub struct CanaryScan {
    /// The last bytes seen, at most `longest - 1` of them, so that an occurrence that
    /// starts in one chunk and ends in the next is found.
    tail: Vec<u8>,
    /// Scratch space for `tail` followed by the head of the next chunk.
    joint: Vec<u8>,
}

impl CanaryScan {
    /// Searches the next chunk of the stream and returns the occurrences found.
    pub fn scan(&mut self, set: &Canaries, data: &[u8]) -> u64 {
        if set.is_empty() || data.is_empty() {
            return 0;
        }
        let mut hits = 0;
        if !self.tail.is_empty() {
            hits += self.scan_border(set, data);
        }
        for finder in &set.finders {
            hits += count_all(finder, data);
        }
        self.remember(set.longest - 1, data);
        hits
    }

    /// Forgets the tail: the bytes that follow a gap are not contiguous with it.
    pub fn reset(&mut self) {
        self.tail.clear();
    }

    /// Counts occurrences that start inside the tail and end inside `data`.
    fn scan_border(&mut self, set: &Canaries, data: &[u8]) -> u64 {
        let head = &data[..data.len().min(set.longest - 1)];
        self.joint.clear();
        self.joint.extend_from_slice(&self.tail);
        self.joint.extend_from_slice(head);
        let split = self.tail.len();
        let mut hits = 0;
        for finder in &set.finders {
            let len = finder.needle().len();
            // Only start positions in the tail whose match reaches past it qualify;
            // matches wholly inside the tail were counted with the previous chunk.
            let first = (split + 1).saturating_sub(len);
            let mut at = first;
            while let Some(found) = finder.find(&self.joint[at..]) {
                let start = at + found;
                if start >= split {
                    break;
                }
                hits += 1;
                at = start + 1;
            }
        }
        hits
    }

    fn remember(&mut self, keep: usize, data: &[u8]) {
        if keep == 0 {
            return;
        }
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

fn count_all(finder: &Finder<'_>, hay: &[u8]) -> u64 {
    let mut hits = 0;
    let mut at = 0;
    while at < hay.len() {
        match finder.find(&hay[at..]) {
            Some(found) => {
                hits += 1;
                at += found + 1;
            }
            None => break,
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_in_one_piece(canaries: &[&str], text: &[u8]) -> u64 {
        let set = Canaries::new(&canaries.iter().map(|c| c.as_bytes().to_vec()).collect::<Vec<_>>());
        CanaryScan::default().scan(&set, text)
    }

    #[test]
    fn every_split_gives_the_same_count() {
        let canaries = ["4111-1111", "alice@example.com", "aa"];
        let set = Canaries::new(&canaries.iter().map(|c| c.as_bytes().to_vec()).collect::<Vec<_>>());
        let text = b"INSERT 4111-1111 alice@example.com aaa x4111-1111alice@example.com";
        let expected = count_in_one_piece(&canaries, text);
        assert_eq!(expected, 2 + 2 + 2);
        for cut1 in 0..text.len() {
            for cut2 in cut1..text.len() {
                let mut scan = CanaryScan::default();
                let hits = scan.scan(&set, &text[..cut1])
                    + scan.scan(&set, &text[cut1..cut2])
                    + scan.scan(&set, &text[cut2..]);
                assert_eq!(hits, expected, "cuts at {cut1} and {cut2}");
            }
        }
    }

    #[test]
    fn one_byte_chunks() {
        let set = Canaries::new(&[b"secret-canary".to_vec()]);
        let text = b"xx secret-canary yy secret-canarysecret-canary";
        let mut scan = CanaryScan::default();
        let hits: u64 = text.iter().map(|b| scan.scan(&set, std::slice::from_ref(b))).sum();
        assert_eq!(hits, 3);
    }

    #[test]
    fn reset_breaks_matches_across_a_gap() {
        let set = Canaries::new(&[b"canary".to_vec()]);
        let mut scan = CanaryScan::default();
        assert_eq!(scan.scan(&set, b"can"), 0);
        scan.reset();
        assert_eq!(scan.scan(&set, b"ary"), 0);
    }

    #[test]
    fn empty_canaries_are_ignored() {
        let set = Canaries::new(&[Vec::new()]);
        assert!(set.is_empty());
        assert_eq!(CanaryScan::default().scan(&set, b"anything"), 0);
    }
}
