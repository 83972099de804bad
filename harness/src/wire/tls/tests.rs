//! ClientHello parsing against real ClientHellos produced by rustls.

use std::sync::Arc;

use super::*;

/// A real ClientHello from rustls, with the given SNI, ALPN and record size limit.
pub(crate) fn rustls_hello(sni: &str, alpn: &[&str], max_fragment: Option<usize>) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore::empty();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    config.max_fragment_size = max_fragment;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[test]
fn parses_sni_alpn_and_version_from_rustls() {
    let bytes = rustls_hello(
        "outbound_.3306_._.mysql-server.pii-demo.svc.cluster.local",
        &["istio-peer-exchange", "istio"],
        None,
    );
    let HelloParse::Complete(h) = client_hello(&bytes) else {
        panic!("not parsed")
    };
    assert_eq!(
        h.sni.as_deref(),
        Some("outbound_.3306_._.mysql-server.pii-demo.svc.cluster.local")
    );
    assert_eq!(h.alpn, ["istio-peer-exchange", "istio"]);
    assert_eq!(h.version.as_deref(), Some("TLS1.3"));
}

#[test]
fn reassembles_a_hello_split_over_many_records() {
    let bytes = rustls_hello("db.example", &["h2", "http/1.1"], Some(64));
    assert!(bytes.len() > 200);
    assert_eq!(bytes[0], 22);
    let HelloParse::Complete(h) = client_hello(&bytes) else {
        panic!("not parsed")
    };
    assert_eq!(h.sni.as_deref(), Some("db.example"));
    assert_eq!(h.alpn, ["h2", "http/1.1"]);
}

#[test]
fn truncated_hello_needs_more_and_plaintext_is_not_tls() {
    let bytes = rustls_hello("a.example", &[], None);
    for cut in [1, 4, 5, 40, bytes.len() - 1] {
        assert_eq!(
            client_hello(&bytes[..cut]),
            HelloParse::NeedMore,
            "cut at {cut}"
        );
    }
    assert_eq!(client_hello(b"GET / HTTP/1.1\r\n"), HelloParse::NotTls);
    assert_eq!(
        client_hello(&[22, 3, 1, 0xff, 0xff]),
        HelloParse::NotTls,
        "record too long"
    );
}

#[test]
fn midstream_application_data_is_recognised() {
    let mut stream = vec![0xab; 37]; // the tail of a record that began before the capture
    for len in [100u16, 2000, 50] {
        stream.extend_from_slice(&[23, 3, 3]);
        stream.extend_from_slice(&len.to_be_bytes());
        stream.extend(std::iter::repeat_n(0x5a, len as usize));
    }
    assert!(midstream_records(&stream));
    assert!(!midstream_records(
        b"INSERT INTO users VALUES ('MESHPROOF-CANARY-x') -- plain SQL, no records"
    ));
}

#[test]
fn record_walker_skips_contents_and_notices_lost_framing() {
    let mut w = RecordWalker::default();
    assert!(w.feed(&[23, 3, 3, 0, 3, 1]));
    assert!(w.feed(&[2, 3, 23, 3]));
    assert!(w.feed(&[3, 0, 1, 9]));
    assert!(!w.feed(b"plain text"));
}

#[test]
fn grease_is_ignored() {
    assert!(is_grease(0x0a0a) && is_grease(0xfafa));
    assert!(!is_grease(0x0304));
}
