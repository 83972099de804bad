//! The decompressors' edge cases: headers cut anywhere, corrupt input.

use super::*;

#[test]
fn gzip_headers_with_optional_fields() {
    assert_eq!(gzip_header(&[0x1f, 0x8b]), Ok(None));
    assert_eq!(gzip_header(&[0x1f, 0x8c]), Err(()));
    let mut named = vec![0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3];
    assert_eq!(gzip_header(&named), Ok(None));
    named.extend_from_slice(b"order.txt\0");
    assert_eq!(gzip_header(&named), Ok(Some(20)));
}

#[test]
fn brotli_window_bits() {
    assert_eq!(brotli_window(0), Some(1 << 16));
    assert_eq!(brotli_window(0x0b), Some(1 << 22));
    assert_eq!(brotli_window(0x11), None, "large window");
    assert_eq!(brotli_window(0x21), Some(1 << 10));
    assert_eq!(brotli_window(0x01), Some(1 << 17));
}

#[test]
fn zlib_headers_are_told_from_raw_deflate() {
    assert!(is_zlib(&[0x78, 0x9c]));
    assert!(is_zlib(&[0x78, 0x01]));
    assert!(!is_zlib(&[0xcb, 0x2f]));
}
