//! Unit tests for link, network and transport decoding, on frames built in memory.

use super::*;
use crate::wire::EncryptionKind;

fn tcp_header(sport: u16, dport: u16, seq: u32, flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t
}

fn ipv4_packet(payload: &[u8]) -> Vec<u8> {
    let mut tcp = tcp_header(40000, 443, 7, flags::ACK);
    tcp.extend_from_slice(payload);
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let total = (ip.len() + tcp.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

fn expect_tcp(d: Decoded<'_>) -> Segment<'_> {
    match d {
        Decoded::Tcp(s) => s,
        other => panic!("expected TCP, got {other:?}"),
    }
}

#[test]
fn ethernet_with_two_vlan_tags() {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
    f.extend_from_slice(&ipv4_packet(b"hi"));
    f.extend_from_slice(&[0, 0, 0]); // Ethernet padding must not become payload.
    let s = expect_tcp(decode(LinkType::Ethernet, &f));
    assert_eq!(s.payload, b"hi");
    assert_eq!(s.wire_len, 2);
    assert_eq!(s.src.socket_addr().to_string(), "10.0.0.1:40000");
    assert_eq!(s.dst.port, 443);
}

#[test]
fn sll_and_sll2_reach_the_same_segment() {
    let ip = ipv4_packet(b"x");
    let mut v1 = vec![0u8; 14];
    v1.extend_from_slice(&[0x08, 0x00]);
    v1.extend_from_slice(&ip);
    let mut v2 = vec![0x08, 0x00];
    v2.extend_from_slice(&[0u8; 18]);
    v2.extend_from_slice(&ip);
    assert_eq!(expect_tcp(decode(LinkType::LinuxSll, &v1)).payload, b"x");
    assert_eq!(expect_tcp(decode(LinkType::LinuxSll2, &v2)).payload, b"x");
    assert_eq!(expect_tcp(decode(LinkType::Raw, &ip)).payload, b"x");
}

#[test]
fn ipv6_with_a_hop_by_hop_header() {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
    p.extend_from_slice(&[0xfd; 16]);
    p.extend_from_slice(&[0xfe; 16]);
    let mut ext = vec![IPPROTO_TCP, 0, 0, 0, 0, 0, 0, 0];
    ext.extend_from_slice(&tcp_header(50000, 15008, 1, flags::SYN));
    ext.extend_from_slice(b"abc");
    p[4..6].copy_from_slice(&(ext.len() as u16).to_be_bytes());
    p.extend_from_slice(&ext);
    let s = expect_tcp(decode(LinkType::Ipv6, &p));
    assert_eq!(s.payload, b"abc");
    assert_eq!(s.flags, flags::SYN);
    assert!(s.src.ip().is_ipv6());
}

#[test]
fn snaplen_cut_keeps_the_wire_length() {
    let ip = ipv4_packet(b"0123456789");
    let s = expect_tcp(decode(LinkType::Raw, &ip[..ip.len() - 4]));
    assert_eq!(s.payload, b"012345");
    assert_eq!(s.wire_len, 10);
}

#[test]
fn snaplen_cut_inside_the_options_keeps_the_segment() {
    // Twenty bytes after the fixed header: twelve of options, eight of payload.
    let mut ip = ipv4_packet(&[0x01; 20]);
    ip[20 + 12] = 8 << 4;
    let s = expect_tcp(decode(LinkType::Raw, &ip[..40]));
    assert!(s.payload.is_empty());
    assert_eq!(s.wire_len, 8);
    assert_eq!((s.src.port, s.dst.port, s.seq), (40000, 443, 7));
    let mut lying = ipv4_packet(b"");
    lying[20 + 12] = 8 << 4;
    assert!(matches!(decode(LinkType::Raw, &lying), Decoded::Malformed));
}

#[test]
fn garbage_never_panics_and_is_classified() {
    assert!(matches!(
        decode(LinkType::Ethernet, &[0; 5]),
        Decoded::Malformed
    ));
    assert!(matches!(
        decode(LinkType::Raw, &[0x45, 0, 0]),
        Decoded::Malformed
    ));
    let mut bad_ihl = ipv4_packet(b"");
    bad_ihl[0] = 0x4f;
    assert!(matches!(
        decode(LinkType::Raw, &bad_ihl),
        Decoded::Malformed
    ));
    let mut udp = ipv4_packet(b"");
    udp[9] = 17;
    assert!(matches!(decode(LinkType::Raw, &udp), Decoded::Other));
    for len in 0..80 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        for link in [
            LinkType::Ethernet,
            LinkType::LinuxSll2,
            LinkType::Null,
            LinkType::Ipv6,
        ] {
            let _ = decode(link, &junk);
        }
    }
}

#[test]
fn linktype_numbers_round_trip() {
    for n in [0, 1, 101, 108, 113, 228, 229, 276] {
        assert_eq!(LinkType::from_linktype(n).unwrap().linktype(), n);
    }
    assert_eq!(LinkType::from_linktype(12), Some(LinkType::Raw));
    assert_eq!(LinkType::from_linktype(65000), None);
}

fn outer_ipv4(proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 9, 0, 0, 64, proto, 0, 0, 192, 168, 0, 1, 192, 168, 0, 2,
    ];
    ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

fn eth(ethertype: [u8; 2], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&ethertype);
    f.extend_from_slice(payload);
    f
}

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0xc0, 0x00];
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn vxlan(vni: u8, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0, 0, 0, vni, 0];
    v.extend_from_slice(inner);
    v
}

#[test]
fn vxlan_with_a_vlan_tag_inside_and_outside() {
    let mut inner = vec![0u8; 12];
    inner.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
    inner.extend_from_slice(&ipv4_packet(b"pod"));
    let outer_ip = outer_ipv4(17, 0, &udp(8472, &vxlan(1, &inner)));
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x81, 0x00, 0, 9, 0x08, 0x00]);
    frame.extend_from_slice(&outer_ip);
    let s = expect_tcp(decode(LinkType::Ethernet, &frame));
    assert_eq!(s.payload, b"pod");
    assert_eq!(s.src.socket_addr().to_string(), "10.0.0.1:40000");
    let o = s.overlay.unwrap();
    assert_eq!((o.kind, o.vni, o.depth), (TunnelKind::Vxlan, Some(1), 1));
    assert_eq!(
        Endpoint {
            addr: o.outer_src,
            port: 0
        }
        .ip()
        .to_string(),
        "192.168.0.1"
    );
}

#[test]
fn ip_in_ip_carries_ipv4_and_ipv6_and_nests() {
    let v4 = outer_ipv4(4, 0, &ipv4_packet(b"four"));
    assert_eq!(expect_tcp(decode(LinkType::Raw, &v4)).payload, b"four");
    let mut v6 = vec![0x60, 0, 0, 0, 0, 0, IPPROTO_TCP, 64];
    v6.extend_from_slice(&[0xfd; 16]);
    v6.extend_from_slice(&[0xfe; 16]);
    let mut t = tcp_header(1, 2, 3, flags::ACK);
    t.extend_from_slice(b"six");
    v6[4..6].copy_from_slice(&(t.len() as u16).to_be_bytes());
    v6.extend_from_slice(&t);
    let six = outer_ipv4(41, 0, &v6);
    let s = expect_tcp(decode(LinkType::Raw, &six));
    assert_eq!(
        (s.payload, s.overlay.unwrap().kind),
        (&b"six"[..], TunnelKind::Ipip)
    );
    // Three levels: IP-in-IP around GRE around VXLAN.
    let vx = outer_ipv4(
        17,
        0,
        &udp(4789, &vxlan(3, &eth([0x08, 0x00], &ipv4_packet(b"deep")))),
    );
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&vx);
    let nested = outer_ipv4(4, 0, &outer_ipv4(47, 0, &gre));
    let s = expect_tcp(decode(LinkType::Raw, &nested));
    let o = s.overlay.unwrap();
    assert_eq!(
        (s.payload, o.kind, o.vni, o.depth),
        (&b"deep"[..], TunnelKind::Vxlan, Some(3), 3)
    );
}

#[test]
fn tunnels_nested_past_the_limit_are_other_traffic() {
    let mut p = ipv4_packet(b"x");
    for _ in 0..MAX_DEPTH {
        p = outer_ipv4(4, 0, &p);
    }
    assert!(matches!(decode(LinkType::Raw, &p), Decoded::Tcp(_)));
    let p = outer_ipv4(4, 0, &p);
    assert!(matches!(decode(LinkType::Raw, &p), Decoded::Other));
}

#[test]
fn fragments_ciphertext_and_plain_udp_are_told_apart() {
    let first = outer_ipv4(17, 0x2000, &[0; 16]);
    match decode(LinkType::Raw, &first) {
        Decoded::Fragment(f) => {
            assert_eq!((f.offset, f.more, f.proto, f.data.len()), (0, true, 17, 16))
        }
        other => panic!("{other:?}"),
    }
    let last = outer_ipv4(17, 2, &[0; 4]);
    assert!(
        matches!(decode(LinkType::Raw, &last), Decoded::Fragment(f) if f.offset == 16 && !f.more)
    );
    let mut wg = vec![4, 0, 0, 0];
    wg.resize(48, 0x77);
    let mut port = udp(51820, &wg);
    port[0..2].copy_from_slice(&51820u16.to_be_bytes());
    match decode(LinkType::Raw, &outer_ipv4(17, 0, &port)) {
        Decoded::Encrypted(s) => assert_eq!((s.kind, s.bytes), (EncryptionKind::Wireguard, 56)),
        other => panic!("{other:?}"),
    }
    let esp = outer_ipv4(50, 0, &[0, 0, 0, 9, 0, 0, 0, 1, 0xaa, 0xbb]);
    assert!(
        matches!(decode(LinkType::Raw, &esp), Decoded::Encrypted(s) if s.kind == EncryptionKind::IpsecEsp)
    );
    assert!(matches!(
        decode(LinkType::Raw, &outer_ipv4(17, 0, &udp(53, b"dns"))),
        Decoded::Other
    ));
}
