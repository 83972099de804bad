//! Link layers: from a captured frame to the TCP segment inside it.
//!
//! Supports Ethernet (with VLAN tags), Linux cooked capture v1 (SLL) and v2 (SLL2), raw
//! IP, BSD loopback, IPv4 and IPv6. Anything else, and non-TCP packets, yield `None`.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, InternetSlice, SlicedPacket, TransportSlice};

/// The link-layer header type of a capture (libpcap's `LINKTYPE_` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback (`LINKTYPE_NULL`, 0): a 4-byte host-order address family.
    Null,
    /// Ethernet (1), VLAN tags included.
    Ethernet,
    /// Raw IPv4 or IPv6 (101, also 12 and 14 on some systems).
    RawIp,
    /// Linux cooked capture v1 (113): `tcpdump -i any` with `-y LINUX_SLL`, libpcap's `any`.
    LinuxSll,
    /// Raw IPv4 only (228).
    Ipv4,
    /// Raw IPv6 only (229).
    Ipv6,
    /// Linux cooked capture v2 (276): `tcpdump -i any` by default.
    LinuxSll2,
}

impl LinkType {
    /// The link type for a `LINKTYPE_`/`DLT_` number, if supported.
    pub fn from_dlt(dlt: u32) -> Option<LinkType> {
        Some(match dlt {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The `LINKTYPE_` number written into pcap files.
    pub fn dlt(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }
}

/// TCP flag bits the analyzer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// One TCP segment, borrowed from the frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Flags.
    pub flags: Flags,
    /// TCP payload (may be shorter than sent when the snap length cut it).
    pub payload: &'a [u8],
}

/// Decodes the TCP segment in a frame, or `None` for anything else.
pub fn tcp_segment(link: LinkType, frame: &[u8]) -> Option<Segment<'_>> {
    let sliced = match link {
        LinkType::Ethernet => SlicedPacket::from_ethernet(frame).ok()?,
        LinkType::LinuxSll => SlicedPacket::from_linux_sll(frame).ok()?,
        LinkType::LinuxSll2 => {
            // SLL2 is 20 bytes: protocol type (2), reserved (2), interface index (4),
            // ARPHRD type (2), packet type (1), address length (1), address (8).
            let proto = u16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
            SlicedPacket::from_ether_type(EtherType(proto), frame.get(20..)?).ok()?
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => SlicedPacket::from_ip(frame).ok()?,
        LinkType::Null => SlicedPacket::from_ip(frame.get(4..)?).ok()?,
    };
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match sliced.net? {
        InternetSlice::Ipv4(v4) => {
            let h = v4.header();
            // A non-first fragment carries no TCP header; reassembling IP fragments is
            // not worth it for TCP, which avoids fragmentation with path MTU discovery.
            if h.fragments_offset().value() != 0 {
                return None;
            }
            (h.source_addr().into(), h.destination_addr().into())
        }
        InternetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport? else {
        return None;
    };
    Some(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        flags: Flags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
        },
        payload: tcp.payload(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 244, 1, 5], [10, 244, 2, 7], 64)
            .tcp(51234, 3306, 1000, 64240)
            .ack(1);
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let frame = tcp_v4(b"hello");
        let s = tcp_segment(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(s.src.to_string(), "10.244.1.5:51234");
        assert_eq!(s.dst.to_string(), "10.244.2.7:3306");
        assert_eq!(s.seq, 1000);
        assert!(s.flags.ack && !s.flags.syn);
        assert_eq!(s.payload, b"hello");
    }

    #[test]
    fn sll2_and_raw_ip() {
        let frame = tcp_v4(b"x");
        let ip = &frame[14..];
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        assert_eq!(
            tcp_segment(LinkType::LinuxSll2, &sll2).unwrap().payload,
            b"x"
        );
        assert_eq!(tcp_segment(LinkType::RawIp, ip).unwrap().payload, b"x");
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(ip);
        assert_eq!(tcp_segment(LinkType::Null, &null).unwrap().payload, b"x");
    }

    #[test]
    fn ipv6_and_vlan() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(42).unwrap())
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .tcp(40000, 15008, 7, 100)
            .syn();
        let mut frame = Vec::new();
        b.write(&mut frame, &[]).unwrap();
        let s = tcp_segment(LinkType::Ethernet, &frame).unwrap();
        assert!(s.flags.syn);
        assert_eq!(s.dst.port(), 15008);
        assert!(s.src.is_ipv6());
    }

    #[test]
    fn garbage_is_none() {
        assert!(tcp_segment(LinkType::Ethernet, &[0u8; 3]).is_none());
        assert!(tcp_segment(LinkType::LinuxSll2, &[8, 0]).is_none());
        assert!(tcp_segment(LinkType::RawIp, &[0x45; 30]).is_none());
        assert_eq!(LinkType::from_dlt(9999), None);
        assert_eq!(LinkType::from_dlt(276), Some(LinkType::LinuxSll2));
    }
}
