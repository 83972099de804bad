//! HPACK (RFC 7541) header block decoding for the canary search: indexed fields from the
//! static and dynamic tables, literals plain or Huffman-coded, and table size updates. The
//! dynamic table is bounded by `DecodeLimits::hpack_table`; an encoder that asks for more
//! stops decoding in this direction (the scan is then partial).

use std::collections::VecDeque;

use super::huffman;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpackError;

/// One direction's HPACK decoding state.
#[derive(Debug)]
pub struct Hpack {
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max: usize,
    limit: usize,
}

impl Hpack {
    /// A decoder with the protocol's initial table size (4096), following updates up to
    /// `limit` bytes.
    pub fn new(limit: usize) -> Hpack {
        Hpack {
            table: VecDeque::new(),
            size: 0,
            max: 4096.min(limit),
            limit,
        }
    }

    /// Decodes one complete header block, handing each field to `field`.
    pub fn block(
        &mut self,
        mut b: &[u8],
        field: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        while let Some(&first) = b.first() {
            if first & 0x80 != 0 {
                let index = int(&mut b, 7)?;
                let (n, v) = self.get(index)?;
                field(&n, &v);
            } else if first & 0xe0 == 0x20 {
                let size = int(&mut b, 5)?;
                if size > self.limit {
                    return Err(HpackError);
                }
                self.max = size;
                self.evict(0);
            } else {
                // 01: with indexing (6-bit index); 0000 and 0001: without, never (4-bit).
                let indexed = first & 0xc0 == 0x40;
                let index = int(&mut b, if indexed { 6 } else { 4 })?;
                let name = if index == 0 {
                    string(&mut b)?
                } else {
                    self.get(index)?.0
                };
                let value = string(&mut b)?;
                field(&name, &value);
                if indexed {
                    self.insert(name, value);
                }
            }
        }
        Ok(())
    }

    fn get(&self, index: usize) -> Result<(Vec<u8>, Vec<u8>), HpackError> {
        match index {
            0 => Err(HpackError),
            i if i <= STATIC.len() => {
                let (n, v) = STATIC[i - 1];
                Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            }
            i => self
                .table
                .get(i - STATIC.len() - 1)
                .cloned()
                .ok_or(HpackError),
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        self.evict(size);
        if size <= self.max {
            self.size += size;
            self.table.push_front((name, value));
        }
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
        }
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541, 5.1).
fn int(b: &mut &[u8], n: u32) -> Result<usize, HpackError> {
    let mask = (1u16 << n) - 1;
    let (&first, rest) = b.split_first().ok_or(HpackError)?;
    *b = rest;
    let mut v = usize::from(u16::from(first) & mask);
    if v < usize::from(mask) {
        return Ok(v);
    }
    let mut shift = 0;
    loop {
        let (&byte, rest) = b.split_first().ok_or(HpackError)?;
        *b = rest;
        if shift > 28 {
            return Err(HpackError);
        }
        v += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// A string literal, Huffman-decoded when its H bit is set.
fn string(b: &mut &[u8]) -> Result<Vec<u8>, HpackError> {
    let huff = b.first().ok_or(HpackError)? & 0x80 != 0;
    let len = int(b, 7)?;
    if len > b.len() {
        return Err(HpackError);
    }
    let (s, rest) = b.split_at(len);
    *b = rest;
    if huff {
        huffman::decode(s).ok_or(HpackError)
    } else {
        Ok(s.to_vec())
    }
}

/// The static table (RFC 7541, Appendix A): index 1 is the first entry.
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(h: &mut Hpack, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        h.block(block, &mut |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        })
        .unwrap();
        out
    }

    #[test]
    fn rfc_7541_c4_requests_with_huffman_and_the_dynamic_table() {
        let mut h = Hpack::new(4096);
        let first = hex::decode("828684418cf1e3c2e5f23a6ba0ab90f4ff").unwrap();
        assert_eq!(
            fields(&mut h, &first)[3],
            (":authority".into(), "www.example.com".into())
        );
        let second = hex::decode("828684be5886a8eb10649cbf").unwrap();
        let got = fields(&mut h, &second);
        assert_eq!(
            got[3],
            (":authority".into(), "www.example.com".into()),
            "from the dynamic table"
        );
        assert_eq!(got[4], ("cache-control".into(), "no-cache".into()));
    }

    #[test]
    fn a_table_larger_than_the_limit_is_refused_and_bad_indexes_fail() {
        let mut h = Hpack::new(4096);
        // Size update to 8192 (001 11111 + 8192-31 = 8161 → e1 3f).
        assert_eq!(
            h.block(&[0x3f, 0xe1, 0x3f], &mut |_, _| {}),
            Err(HpackError)
        );
        assert_eq!(
            Hpack::new(4096).block(&[0xff, 0x00], &mut |_, _| {}),
            Err(HpackError)
        );
        assert_eq!(
            Hpack::new(4096).block(&[0x80], &mut |_, _| {}),
            Err(HpackError)
        );
    }
}
