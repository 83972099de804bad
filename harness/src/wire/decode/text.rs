//! Text encodings a person undoes by eye: percent-encoding (URLs, form bodies) and base64
//! header values (`Authorization: Basic`), for single values and for streamed bodies.

use super::base64;
use super::{Encoding, Out};
use crate::wire::canary::CanaryScan;

/// Counts in one header value or request target what reading it as sent would miss: the
/// occurrences its percent-decoding adds, and those inside a base64 token.
pub fn value_extras(out: &mut Out<'_>, value: &[u8]) {
    if value.contains(&b'%') {
        let raw = CanaryScan::default().scan(out.set, value);
        let decoded = percent_decode(value, false);
        let dec = CanaryScan::default().scan(out.set, &decoded);
        out.found
            .add(dec.saturating_sub(raw), Some(Encoding::Percent));
    }
    // `Basic dXNlcjpwYXNz`, `Bearer ...`, or a bare token: the last word is what may be
    // base64.
    let token = value
        .rsplit(|b| *b == b' ')
        .next()
        .unwrap_or(value)
        .trim_ascii();
    if let Some(decoded) = base64::decode(token) {
        let hits = CanaryScan::default().scan(out.set, &decoded);
        out.found.add(hits, Some(Encoding::Base64));
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (`+` as a space too when `form`); invalid escapes stay as they are.
pub fn percent_decode(s: &[u8], form: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if form => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A streamed form body, searched both as sent and percent-decoded; the message counts
/// whichever view holds more occurrences, so a canary is never counted twice.
#[derive(Debug, Default)]
pub struct FormBody {
    raw: CanaryScan,
    decoded: CanaryScan,
    raw_hits: u64,
    decoded_hits: u64,
    /// An escape cut off at the end of the previous piece (`%`, `%4`).
    pending: Vec<u8>,
}

impl FormBody {
    /// The next piece of the body.
    pub fn feed(&mut self, out: &mut Out<'_>, data: &[u8]) {
        self.raw_hits += self.raw.scan(out.set, data);
        let mut joint = std::mem::take(&mut self.pending);
        joint.extend_from_slice(data);
        // Hold back an incomplete escape at the end.
        let keep = match joint.iter().rev().take(2).position(|b| *b == b'%') {
            Some(p) => p + 1,
            None => 0,
        };
        let cut = joint.len() - keep;
        self.pending = joint[cut..].to_vec();
        let decoded = percent_decode(&joint[..cut], true);
        self.decoded_hits += self.decoded.scan(out.set, &decoded);
    }

    /// The body ended: count the better view.
    pub fn finish(&mut self, out: &mut Out<'_>) {
        let pending = std::mem::take(&mut self.pending);
        self.decoded_hits += self.decoded.scan(out.set, &pending);
        if self.decoded_hits > self.raw_hits {
            out.found.add(self.raw_hits, None);
            out.found
                .add(self.decoded_hits - self.raw_hits, Some(Encoding::Percent));
        } else {
            out.found.add(self.raw_hits, None);
        }
        *self = FormBody::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode(b"a%41%2d%zz%4", false), b"aA-%zz%4");
        assert_eq!(percent_decode(b"a+b%2B", true), b"a b+");
        assert_eq!(percent_decode(b"%", false), b"%");
    }
}
