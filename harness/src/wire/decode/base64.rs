//! Base64 (RFC 4648, standard and URL-safe alphabets) for header values: strict enough
//! that ordinary words are not taken for it, lenient about missing padding.

/// The shortest token taken for base64: shorter words decode to noise anyway.
const MIN_LEN: usize = 8;

fn value(b: u8, url: bool) -> Option<u32> {
    Some(u32::from(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' if !url => 62,
        b'/' if !url => 63,
        b'-' if url => 62,
        b'_' if url => 63,
        _ => return None,
    }))
}

/// Decodes `token` if all of it is base64 in one alphabet, else `None`.
pub fn decode(token: &[u8]) -> Option<Vec<u8>> {
    let body = token
        .strip_suffix(b"==")
        .or_else(|| token.strip_suffix(b"="))
        .unwrap_or(token);
    if body.len() < MIN_LEN || body.len() % 4 == 1 {
        return None;
    }
    if (token.len() != body.len()) && !token.len().is_multiple_of(4) {
        return None;
    }
    let url = body.iter().any(|b| *b == b'-' || *b == b'_');
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in body {
        acc = acc << 6 | value(b, url)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_url_safe_and_unpadded() {
        assert_eq!(decode(b"dXNlcjpzZWNyZXQ=").unwrap(), b"user:secret");
        assert_eq!(decode(b"dXNlcjpzZWNyZXQ").unwrap(), b"user:secret");
        assert_eq!(decode(b"Pz8_Pz8-Pj4-").unwrap(), b"?????>>>>");
        assert_eq!(decode(b"Pz8/Pz8+Pj4+").unwrap(), b"?????>>>>");
    }

    #[test]
    fn words_and_mixed_alphabets_are_not_base64() {
        assert_eq!(decode(b"short"), None);
        assert_eq!(decode(b"not base64!"), None);
        assert_eq!(decode(b"Pz8_Pz8+Pj4+"), None);
        assert_eq!(decode(b"abcdefghi"), None, "9 characters cannot be base64");
    }
}
