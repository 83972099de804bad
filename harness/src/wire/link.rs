//! Link, network and transport headers: from one captured frame to one TCP segment.
//!
//! Decoding is hand-written over byte slices so the hot path never allocates and never
//! copies payload. Anything that is not TCP over IPv4/IPv6 (ARP, UDP, ICMP, later IP
//! fragments) decodes to a [`Decoded::Other`] so the caller can count it; anything
//! malformed decodes to [`Decoded::Malformed`]. No input can make this module panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The link-layer header types the analyzer reads (pcap `LINKTYPE_*` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback (`LINKTYPE_NULL`, 0): a 4-byte address family in host byte order.
    Null,
    /// Ethernet II with optional 802.1Q / 802.1ad tags (`LINKTYPE_ETHERNET`, 1).
    Ethernet,
    /// Raw IPv4 or IPv6, version taken from the first nibble (`LINKTYPE_RAW`, 101; `DLT_RAW` 12 and 14).
    Raw,
    /// OpenBSD loopback (`LINKTYPE_LOOP`, 108): a 4-byte address family in network byte order.
    Loop,
    /// Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`, 113), what libpcap gives on `any`.
    LinuxSll,
    /// Raw IPv4 (`LINKTYPE_IPV4`, 228).
    Ipv4,
    /// Raw IPv6 (`LINKTYPE_IPV6`, 229).
    Ipv6,
    /// Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`, 276), what `tcpdump -i any` writes.
    LinuxSll2,
}

impl LinkType {
    /// The link type for a pcap/pcapng `LINKTYPE_*` number, or `None` when unsupported.
    pub fn from_linktype(value: u32) -> Option<LinkType> {
        Some(match value {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The canonical `LINKTYPE_*` number, as written into pcap headers.
    pub fn linktype(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LinkType::Null => "NULL",
            LinkType::Ethernet => "EN10MB",
            LinkType::Raw => "RAW",
            LinkType::Loop => "LOOP",
            LinkType::LinuxSll => "LINUX_SLL",
            LinkType::Ipv4 => "IPV4",
            LinkType::Ipv6 => "IPV6",
            LinkType::LinuxSll2 => "LINUX_SLL2",
        };
        f.write_str(name)
    }
}

/// One side of a TCP connection, as a fixed-size key (IPv4 is stored IPv4-mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address, 16 bytes; IPv4 addresses are IPv4-mapped (`::ffff:a.b.c.d`).
    pub addr: [u8; 16],
    /// The TCP port.
    pub port: u16,
}

impl Endpoint {
    fn v4(bytes: &[u8], port: u16) -> Endpoint {
        let mut addr = [0u8; 16];
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12..].copy_from_slice(&bytes[..4]);
        Endpoint { addr, port }
    }

    fn v6(bytes: &[u8], port: u16) -> Endpoint {
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&bytes[..16]);
        Endpoint { addr, port }
    }

    /// The address as a standard library value (IPv4-mapped addresses become IPv4).
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.addr);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    /// The endpoint as a socket address.
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.ip(), self.port)
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::v4(&Ipv4Addr::UNSPECIFIED.octets(), 0)
    }
}

/// TCP flag bits, as in the header's flags byte.
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
}

/// One TCP segment, borrowing its payload from the captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// The sender.
    pub src: Endpoint,
    /// The receiver.
    pub dst: Endpoint,
    /// The sequence number.
    pub seq: u32,
    /// The flag bits (see [`flags`]).
    pub flags: u8,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// The payload length on the wire according to the IP header; larger than
    /// `payload.len()` when the snapshot length cut the frame short.
    pub wire_len: u32,
}

/// What one frame turned out to be.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    /// A TCP segment.
    Tcp(Segment<'a>),
    /// Well-formed traffic that is not TCP over IP (ARP, UDP, ICMP, later fragments).
    Other,
    /// Headers that contradict themselves or are cut short before the TCP header ends.
    Malformed,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const IPPROTO_TCP: u8 = 6;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes one captured frame of the given link type.
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded<'_> {
    match link {
        LinkType::Ethernet => ethernet(frame),
        LinkType::LinuxSll => sll(frame),
        LinkType::LinuxSll2 => sll2(frame),
        LinkType::Raw => raw_ip(frame),
        LinkType::Ipv4 => ipv4(frame),
        LinkType::Ipv6 => ipv6(frame),
        LinkType::Null | LinkType::Loop => loopback(link, frame),
    }
}

fn ethernet(frame: &[u8]) -> Decoded<'_> {
    if frame.len() < 14 {
        return Decoded::Malformed;
    }
    let mut ethertype = be16(frame, 12);
    let mut at = 14;
    // Stacked tags (QinQ) are unwrapped one after the other; the bound stops a frame
    // made only of tags from looping for long.
    for _ in 0..4 {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            break;
        }
        if frame.len() < at + 4 {
            return Decoded::Malformed;
        }
        ethertype = be16(frame, at + 2);
        at += 4;
    }
    by_ethertype(ethertype, &frame[at..])
}

fn sll(frame: &[u8]) -> Decoded<'_> {
    if frame.len() < 16 {
        return Decoded::Malformed;
    }
    by_ethertype(be16(frame, 14), &frame[16..])
}

fn sll2(frame: &[u8]) -> Decoded<'_> {
    if frame.len() < 20 {
        return Decoded::Malformed;
    }
    by_ethertype(be16(frame, 0), &frame[20..])
}

fn loopback(link: LinkType, frame: &[u8]) -> Decoded<'_> {
    if frame.len() < 4 {
        return Decoded::Malformed;
    }
    let family = if link == LinkType::Loop {
        be32(frame, 0)
    } else {
        // Host byte order of the capturing machine: a family fits in one byte, so
        // whichever end holds it tells the order.
        let le = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        if le < 256 { le } else { be32(frame, 0) }
    };
    match family {
        2 => ipv4(&frame[4..]),
        // AF_INET6 differs between BSDs (24, 28, 30); all mean IPv6 here.
        24 | 28 | 30 => ipv6(&frame[4..]),
        _ => Decoded::Other,
    }
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> Decoded<'_> {
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(rest),
        ETHERTYPE_IPV6 => ipv6(rest),
        _ => Decoded::Other,
    }
}

fn raw_ip(frame: &[u8]) -> Decoded<'_> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => ipv4(frame),
        Some(6) => ipv6(frame),
        Some(_) => Decoded::Malformed,
        None => Decoded::Malformed,
    }
}

fn ipv4(p: &[u8]) -> Decoded<'_> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return Decoded::Malformed;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    // A zero total length is what large offloaded (TSO/GSO) segments show when
    // captured on the sending host; the captured bytes are then the whole datagram.
    let total = match usize::from(be16(p, 2)) {
        0 => p.len(),
        n => n,
    };
    if ihl < 20 || total < ihl || p.len() < ihl {
        return Decoded::Malformed;
    }
    let frag = be16(p, 6);
    if p[9] != IPPROTO_TCP || frag & 0x1fff != 0 || frag & 0x2000 != 0 {
        // Fragmented TCP is vanishingly rare on the paths a mesh uses; the fragments
        // are counted as other traffic rather than half-decoded.
        return Decoded::Other;
    }
    // Ethernet padding may follow the datagram; the IP total length is the truth.
    let end = total.min(p.len());
    let src = Endpoint::v4(&p[12..16], 0);
    let dst = Endpoint::v4(&p[16..20], 0);
    tcp(src, dst, &p[ihl..end], total - ihl)
}

fn ipv6(p: &[u8]) -> Decoded<'_> {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return Decoded::Malformed;
    }
    let payload_len = usize::from(be16(p, 4));
    let mut next = p[6];
    let src = Endpoint::v6(&p[8..24], 0);
    let dst = Endpoint::v6(&p[24..40], 0);
    let end = (40 + payload_len).min(p.len());
    let mut at = 40;
    let mut remaining_wire = payload_len;
    // Walk the extension headers; the bound keeps a chain of them from looping long.
    for _ in 0..8 {
        match next {
            IPPROTO_TCP => return tcp(src, dst, &p[at.min(end)..end], remaining_wire),
            // Hop-by-hop, routing, destination options.
            0 | 43 | 60 => {
                if end < at + 8 {
                    return Decoded::Malformed;
                }
                let len = (usize::from(p[at + 1]) + 1) * 8;
                if remaining_wire < len {
                    return Decoded::Malformed;
                }
                next = p[at];
                at += len;
                remaining_wire -= len;
            }
            // A fragment header: only unfragmented datagrams (offset 0, no more) pass.
            44 => {
                if end < at + 8 || remaining_wire < 8 {
                    return Decoded::Malformed;
                }
                if be16(p, at + 2) & 0xfff9 != 0 {
                    return Decoded::Other;
                }
                next = p[at];
                at += 8;
                remaining_wire -= 8;
            }
            _ => return Decoded::Other,
        }
    }
    Decoded::Other
}

fn tcp<'a>(mut src: Endpoint, mut dst: Endpoint, t: &'a [u8], wire: usize) -> Decoded<'a> {
    if t.len() < 20 {
        return Decoded::Malformed;
    }
    let offset = usize::from(t[12] >> 4) * 4;
    if offset < 20 || wire < offset {
        return Decoded::Malformed;
    }
    src.port = be16(t, 0);
    dst.port = be16(t, 2);
    // A small snapshot length (`tcpdump -s 54`) can cut the options off while the IP
    // header says they were sent: the fixed header still names the flow and its
    // sequence, and the analyzer needs nothing from the options.
    Decoded::Tcp(Segment {
        src,
        dst,
        seq: be32(t, 4),
        flags: t[13],
        payload: t.get(offset..).unwrap_or_default(),
        wire_len: u32::try_from(wire - offset).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
