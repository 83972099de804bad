//! Link, network and transport headers: from one captured frame to one TCP segment.
//!
//! Decoding is hand-written over byte slices so the hot path never allocates and never
//! copies payload. Tunnels (VXLAN, Geneve, IP-in-IP, GRE; see `tunnel.rs`) are looked
//! through at any depth up to [`MAX_DEPTH`], each level free to carry VLAN tags, and the
//! innermost one is kept with the segment. Node-to-node ciphertext decodes to
//! [`Decoded::Encrypted`], IP fragments to [`Decoded::Fragment`] for the analyzer to
//! reassemble, anything else that is not TCP over IPv4/IPv6 (ARP, plain UDP, ICMP) to
//! [`Decoded::Other`] so the caller can count it, and anything malformed to
//! [`Decoded::Malformed`]. No input can make this module panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use super::flow::TunnelKind;
use super::tunnel::{self, Inner, MAX_DEPTH, OverlayTag, Sealed, TunnelConfig};

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
    /// The innermost tunnel the segment travelled in, if any.
    pub overlay: Option<OverlayTag>,
}

/// Where in a stack of encapsulations a packet was found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layer {
    /// Encapsulations around this packet (0 for the captured packet itself).
    pub depth: u8,
    /// The innermost tunnel around it.
    pub overlay: Option<OverlayTag>,
}

/// One IP fragment, for the analyzer to reassemble.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    /// Where the fragmented packet was found.
    pub layer: Layer,
    /// The sender (port 0).
    pub src: Endpoint,
    /// The receiver (port 0).
    pub dst: Endpoint,
    /// The IP identification (IPv4) or fragment header identification (IPv6).
    pub id: u32,
    /// The protocol of the whole datagram's payload.
    pub proto: u8,
    /// Where this fragment's bytes go in the datagram's payload.
    pub offset: u32,
    /// Whether more fragments follow.
    pub more: bool,
    /// The fragment's payload bytes that were captured.
    pub data: &'a [u8],
    /// Whether the capture kept all of them.
    pub complete: bool,
}

/// What one frame turned out to be.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    /// A TCP segment.
    Tcp(Segment<'a>),
    /// A packet of node-to-node ciphertext (WireGuard, IPsec ESP).
    Encrypted(Sealed),
    /// A fragment of an IP datagram.
    Fragment(Fragment<'a>),
    /// Well-formed traffic that is not TCP over IP (ARP, UDP, ICMP, tunnels too deep).
    Other,
    /// Headers that contradict themselves or are cut short before the TCP header ends.
    Malformed,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_ESP: u8 = 50;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The decoding context: the tunnel ports and the encapsulations around the packet.
#[derive(Debug, Clone, Copy)]
struct Cx<'c> {
    cfg: &'c TunnelConfig,
    layer: Layer,
}

impl<'c> Cx<'c> {
    /// The context one encapsulation deeper, or `None` past [`MAX_DEPTH`].
    fn enter(
        self,
        kind: TunnelKind,
        vni: Option<u32>,
        src: Endpoint,
        dst: Endpoint,
    ) -> Option<Cx<'c>> {
        let depth = self.layer.depth + 1;
        (depth <= MAX_DEPTH).then_some(Cx {
            cfg: self.cfg,
            layer: Layer {
                depth,
                overlay: Some(OverlayTag {
                    kind,
                    vni,
                    outer_src: src.addr,
                    outer_dst: dst.addr,
                    depth,
                }),
            },
        })
    }
}

static DEFAULT_TUNNELS: LazyLock<TunnelConfig> = LazyLock::new(TunnelConfig::default);

/// Decodes one captured frame of the given link type, with the default tunnel ports.
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded<'_> {
    decode_with(&DEFAULT_TUNNELS, link, frame)
}

/// Decodes one captured frame of the given link type, looking for tunnels on `tunnels`'
/// ports.
pub fn decode_with<'a>(tunnels: &TunnelConfig, link: LinkType, frame: &'a [u8]) -> Decoded<'a> {
    let cx = Cx {
        cfg: tunnels,
        layer: Layer::default(),
    };
    match link {
        LinkType::Ethernet => ethernet(cx, frame),
        LinkType::LinuxSll => sll(cx, frame),
        LinkType::LinuxSll2 => sll2(cx, frame),
        LinkType::Raw => raw_ip(cx, frame),
        LinkType::Ipv4 => ipv4(cx, frame),
        LinkType::Ipv6 => ipv6(cx, frame),
        LinkType::Null | LinkType::Loop => loopback(cx, link, frame),
    }
}

/// Decodes the payload of a reassembled IP datagram found at `layer`.
pub fn decode_datagram<'a>(
    tunnels: &TunnelConfig,
    layer: Layer,
    (src, dst): (Endpoint, Endpoint),
    proto: u8,
    payload: &'a [u8],
) -> Decoded<'a> {
    let cx = Cx {
        cfg: tunnels,
        layer,
    };
    transport(cx, src, dst, proto, payload, payload.len())
}

fn ethernet<'a>(cx: Cx<'_>, frame: &'a [u8]) -> Decoded<'a> {
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
    by_ethertype(cx, ethertype, &frame[at..])
}

fn sll<'a>(cx: Cx<'_>, frame: &'a [u8]) -> Decoded<'a> {
    if frame.len() < 16 {
        return Decoded::Malformed;
    }
    by_ethertype(cx, be16(frame, 14), &frame[16..])
}

fn sll2<'a>(cx: Cx<'_>, frame: &'a [u8]) -> Decoded<'a> {
    if frame.len() < 20 {
        return Decoded::Malformed;
    }
    by_ethertype(cx, be16(frame, 0), &frame[20..])
}

fn loopback<'a>(cx: Cx<'_>, link: LinkType, frame: &'a [u8]) -> Decoded<'a> {
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
        2 => ipv4(cx, &frame[4..]),
        // AF_INET6 differs between BSDs (24, 28, 30); all mean IPv6 here.
        24 | 28 | 30 => ipv6(cx, &frame[4..]),
        _ => Decoded::Other,
    }
}

fn by_ethertype<'a>(cx: Cx<'_>, ethertype: u16, rest: &'a [u8]) -> Decoded<'a> {
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(cx, rest),
        ETHERTYPE_IPV6 => ipv6(cx, rest),
        _ => Decoded::Other,
    }
}

fn raw_ip<'a>(cx: Cx<'_>, frame: &'a [u8]) -> Decoded<'a> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => ipv4(cx, frame),
        Some(6) => ipv6(cx, frame),
        Some(_) => Decoded::Malformed,
        None => Decoded::Malformed,
    }
}

fn ipv4<'a>(cx: Cx<'_>, p: &'a [u8]) -> Decoded<'a> {
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
    // Ethernet padding may follow the datagram; the IP total length is the truth.
    let end = total.min(p.len());
    let src = Endpoint::v4(&p[12..16], 0);
    let dst = Endpoint::v4(&p[16..20], 0);
    let frag = be16(p, 6);
    if frag & 0x3fff != 0 {
        return Decoded::Fragment(Fragment {
            layer: cx.layer,
            src,
            dst,
            id: u32::from(be16(p, 4)),
            proto: p[9],
            offset: u32::from(frag & 0x1fff) * 8,
            more: frag & 0x2000 != 0,
            data: &p[ihl..end],
            complete: end == total,
        });
    }
    transport(cx, src, dst, p[9], &p[ihl..end], total - ihl)
}

fn ipv6<'a>(cx: Cx<'_>, p: &'a [u8]) -> Decoded<'a> {
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
            44 => {
                if end < at + 8 || remaining_wire < 8 {
                    return Decoded::Malformed;
                }
                let off = be16(p, at + 2);
                let (proto, id) = (p[at], be32(p, at + 4));
                at += 8;
                remaining_wire -= 8;
                // An atomic fragment (offset 0, no more) is a whole datagram.
                if off & 0xfff9 != 0 {
                    return Decoded::Fragment(Fragment {
                        layer: cx.layer,
                        src,
                        dst,
                        id,
                        proto,
                        offset: u32::from(off & 0xfff8),
                        more: off & 1 != 0,
                        data: &p[at.min(end)..end],
                        complete: end == 40 + payload_len,
                    });
                }
                next = proto;
            }
            // No next header.
            59 => return Decoded::Other,
            proto => return transport(cx, src, dst, proto, &p[at.min(end)..end], remaining_wire),
        }
    }
    Decoded::Other
}

/// What an IP packet carries: TCP, a tunnel, ciphertext, or something else.
fn transport<'a>(
    cx: Cx<'_>,
    src: Endpoint,
    dst: Endpoint,
    proto: u8,
    l4: &'a [u8],
    wire: usize,
) -> Decoded<'a> {
    let inner = match proto {
        IPPROTO_TCP => return tcp(cx.layer.overlay, src, dst, l4, wire),
        IPPROTO_UDP => tunnel::udp(cx.cfg, l4),
        IPPROTO_IPIP | IPPROTO_IPV6 => Inner::Ip(TunnelKind::Ipip, None, l4),
        IPPROTO_GRE => tunnel::gre(l4),
        IPPROTO_ESP => tunnel::esp(l4),
        _ => return Decoded::Other,
    };
    match inner {
        Inner::Sealed(kind) => Decoded::Encrypted(Sealed {
            kind,
            src: src.addr,
            dst: dst.addr,
            bytes: wire as u64,
        }),
        Inner::Other => Decoded::Other,
        Inner::Malformed => Decoded::Malformed,
        Inner::Ethernet(kind, vni, rest) => match cx.enter(kind, vni, src, dst) {
            Some(cx) => ethernet(cx, rest),
            None => Decoded::Other,
        },
        Inner::Ip(kind, vni, rest) => match cx.enter(kind, vni, src, dst) {
            Some(cx) => raw_ip(cx, rest),
            None => Decoded::Other,
        },
    }
}

fn tcp<'a>(
    overlay: Option<OverlayTag>,
    mut src: Endpoint,
    mut dst: Endpoint,
    t: &'a [u8],
    wire: usize,
) -> Decoded<'a> {
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
        overlay,
    })
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
