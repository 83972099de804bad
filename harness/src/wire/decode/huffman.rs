//! Decoding HPACK's static Huffman code (RFC 7541, 5.2) with a binary tree built once
//! from the code table.

use std::sync::OnceLock;

use super::huffman_table::CODES;

/// A node's child: another node, or a leaf holding a symbol (256 is EOS).
#[derive(Debug, Clone, Copy)]
enum Child {
    Empty,
    Node(u16),
    Leaf(u16),
}

fn tree() -> &'static Vec<[Child; 2]> {
    static TREE: OnceLock<Vec<[Child; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut nodes = vec![[Child::Empty; 2]];
        for (symbol, &(code, bits)) in CODES.iter().enumerate() {
            let mut at = 0usize;
            for i in (0..bits).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    nodes[at][bit] = Child::Leaf(symbol as u16);
                } else {
                    at = match nodes[at][bit] {
                        Child::Node(n) => usize::from(n),
                        _ => {
                            nodes.push([Child::Empty; 2]);
                            let n = nodes.len() - 1;
                            nodes[at][bit] = Child::Node(n as u16);
                            n
                        }
                    };
                }
            }
        }
        nodes
    })
}

/// Decodes a Huffman-coded string, or `None` when it is not valid HPACK Huffman (an EOS
/// symbol, or padding longer than 7 bits or not all ones).
pub fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let nodes = tree();
    let mut out = Vec::with_capacity(input.len() * 8 / 5);
    let mut at = 0usize;
    let mut depth = 0u32;
    let mut all_ones = true;
    for &byte in input {
        for i in (0..8).rev() {
            let bit = usize::from((byte >> i) & 1);
            match nodes[at][bit] {
                Child::Leaf(256) | Child::Empty => return None,
                Child::Leaf(s) => {
                    out.push(s as u8);
                    at = 0;
                    depth = 0;
                    all_ones = true;
                }
                Child::Node(n) => {
                    at = usize::from(n);
                    depth += 1;
                    all_ones &= bit == 1;
                }
            }
        }
    }
    (depth < 8 && all_ones).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7541_examples() {
        // C.4.1: "www.example.com"; C.4.2: "no-cache"; C.6.1: "302".
        let www = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decode(&www).unwrap(), b"www.example.com");
        assert_eq!(
            decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]).unwrap(),
            b"no-cache"
        );
        assert_eq!(decode(&[0x64, 0x02]).unwrap(), b"302");
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011 (5 bits): padding 000 is not all ones.
        assert_eq!(decode(&[0b0001_1000]), None);
        assert_eq!(decode(&[0b0001_1111]).unwrap(), b"a");
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff]),
            None,
            "EOS inside the string"
        );
    }
}
