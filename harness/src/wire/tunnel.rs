//! Tunnel and encryption headers: what a CNI wraps pod traffic in between nodes.
//!
//! The parsers here read one encapsulation header and say what follows it (an Ethernet
//! frame, an IP packet, ciphertext or nothing of interest); `link.rs` decides what to do
//! with the inner bytes, so the recursion through nested tunnels lives in one place.
//! Like the rest of the link layer this never allocates and no input can make it panic.
//!
//! Facts, with where they were confirmed: VXLAN's header and IANA port 4789 (RFC 7348
//! section 5), the Linux kernel's legacy VXLAN port 8472 that Flannel and Cilium use;
//! Geneve's header and port 6081 (RFC 8926 section 3.4); GRE's flags and optional fields
//! (RFC 2784, RFC 2890), protocol 0x6558 for Ethernet (Transparent Ethernet Bridging);
//! WireGuard's message types and sizes (the WireGuard whitepaper's message formats:
//! initiation 148 bytes, response 92, cookie reply 64, transport data a 16-byte header and
//! a ciphertext of at least the 16-byte tag, padded to 16), the customary port 51820, and
//! 51871, where Cilium's WireGuard listens (Cilium docs, "WireGuard Transparent
//! Encryption"); ESP (RFC 4303) and ESP in UDP 4500 with the non-ESP marker (RFC 3948).

use std::collections::HashMap;
use std::net::IpAddr;

use super::flow::{EncryptedLink, EncryptionKind, Overlay, TunnelKind};

/// VXLAN's IANA port.
pub const VXLAN_PORT: u16 = 4789;
/// The Linux kernel's pre-IANA VXLAN port, still Flannel's and Cilium's default.
pub const VXLAN_LINUX_PORT: u16 = 8472;
/// Geneve's IANA port.
pub const GENEVE_PORT: u16 = 6081;
/// WireGuard's customary port.
pub const WIREGUARD_PORT: u16 = 51820;
/// The port Cilium's WireGuard device listens on.
pub const WIREGUARD_CILIUM_PORT: u16 = 51871;
/// IPsec NAT traversal: ESP inside UDP.
pub const ESP_IN_UDP_PORT: u16 = 4500;
/// How many encapsulations deep the analyzer follows; deeper packets count as other.
pub const MAX_DEPTH: u8 = 8;

const ETHERTYPE_TEB: u16 = 0x6558;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The UDP ports on which the analyzer expects tunnels and WireGuard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Destination ports of VXLAN packets.
    pub vxlan_ports: Vec<u16>,
    /// Destination ports of Geneve packets.
    pub geneve_ports: Vec<u16>,
    /// Ports (either side) of WireGuard packets, which must also have WireGuard's shape.
    pub wireguard_ports: Vec<u16>,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            vxlan_ports: vec![VXLAN_PORT, VXLAN_LINUX_PORT],
            geneve_ports: vec![GENEVE_PORT],
            wireguard_ports: vec![WIREGUARD_PORT, WIREGUARD_CILIUM_PORT],
        }
    }
}

/// The tunnel a packet was found in, as decoding carries it inward (the innermost wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayTag {
    /// The encapsulation.
    pub kind: TunnelKind,
    /// VNI or GRE key.
    pub vni: Option<u32>,
    /// The tunnel packet's source address (IPv4-mapped like [`super::Endpoint`]).
    pub outer_src: [u8; 16],
    /// The tunnel packet's destination address.
    pub outer_dst: [u8; 16],
    /// Encapsulations around the inner packet.
    pub depth: u8,
}

impl OverlayTag {
    /// The JSON form, with the outer addresses swapped when the tunnel packet that first
    /// carried the flow came from its server.
    pub fn to_overlay(self, sent_by_client: bool) -> Overlay {
        let (a, b) = (ip(self.outer_src), ip(self.outer_dst));
        Overlay {
            kind: self.kind,
            vni: self.vni,
            outer: if sent_by_client { [a, b] } else { [b, a] },
            depth: self.depth,
        }
    }
}

fn ip(addr: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// What follows an encapsulation header.
#[derive(Debug, Clone, Copy)]
pub enum Inner<'a> {
    /// An Ethernet frame (VXLAN, Geneve or GRE with Transparent Ethernet Bridging).
    Ethernet(TunnelKind, Option<u32>, &'a [u8]),
    /// An IPv4 or IPv6 packet, version from its first nibble.
    Ip(TunnelKind, Option<u32>, &'a [u8]),
    /// Ciphertext of a node-to-node encryption.
    Sealed(EncryptionKind),
    /// Nothing the analyzer reads (plain UDP, other GRE payloads).
    Other,
    /// A header that contradicts itself or is cut short.
    Malformed,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be24(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, b[at], b[at + 1], b[at + 2]])
}

/// A UDP datagram: VXLAN, Geneve, WireGuard, ESP-in-UDP or other UDP.
pub fn udp<'a>(cfg: &TunnelConfig, u: &'a [u8]) -> Inner<'a> {
    if u.len() < 8 {
        return Inner::Malformed;
    }
    let (sport, dport) = (be16(u, 0), be16(u, 2));
    let len = usize::from(be16(u, 4));
    if len < 8 && len != 0 {
        return Inner::Malformed;
    }
    // A zero length is what offloaded jumbo datagrams show; trust the captured bytes then.
    let end = if len == 0 { u.len() } else { len.min(u.len()) };
    let body = &u[8..end];
    if cfg.vxlan_ports.contains(&dport) {
        return vxlan(body);
    }
    if cfg.geneve_ports.contains(&dport) {
        return geneve(body);
    }
    let wg_port = cfg.wireguard_ports.contains(&sport) || cfg.wireguard_ports.contains(&dport);
    if wg_port && wireguard_shape(body, len.saturating_sub(8)) {
        return Inner::Sealed(EncryptionKind::Wireguard);
    }
    if (sport == ESP_IN_UDP_PORT || dport == ESP_IN_UDP_PORT)
        && body.len() >= 8
        && body[..4] != [0, 0, 0, 0]
    {
        // RFC 3948: a zero SPI position is the non-ESP marker of IKE; anything else is ESP.
        return Inner::Sealed(EncryptionKind::IpsecEsp);
    }
    Inner::Other
}

fn vxlan(v: &[u8]) -> Inner<'_> {
    if v.len() < 8 {
        return Inner::Malformed;
    }
    // The I flag says the VNI is valid; without it this is not VXLAN as RFC 7348 sends it.
    if v[0] & 0x08 == 0 {
        return Inner::Other;
    }
    Inner::Ethernet(TunnelKind::Vxlan, Some(be24(v, 4)), &v[8..])
}

fn geneve(g: &[u8]) -> Inner<'_> {
    if g.len() < 8 {
        return Inner::Malformed;
    }
    if g[0] >> 6 != 0 {
        return Inner::Other;
    }
    let header = 8 + usize::from(g[0] & 0x3f) * 4;
    if g.len() < header {
        return Inner::Malformed;
    }
    by_protocol(
        TunnelKind::Geneve,
        Some(be24(g, 4)),
        be16(g, 2),
        &g[header..],
    )
}

/// A GRE packet (IP protocol 47), version 0 only (version 1 is PPTP's).
pub fn gre(g: &[u8]) -> Inner<'_> {
    if g.len() < 4 {
        return Inner::Malformed;
    }
    let flags = be16(g, 0);
    // Routing present (RFC 1701's source routes, long obsolete) or another version.
    if flags & 0x4000 != 0 || flags & 0x0007 != 0 {
        return Inner::Other;
    }
    let mut at = 4;
    if flags & 0x8000 != 0 {
        at += 4; // checksum and reserved
    }
    let mut key = None;
    if flags & 0x2000 != 0 {
        if g.len() < at + 4 {
            return Inner::Malformed;
        }
        key = Some(u32::from_be_bytes([g[at], g[at + 1], g[at + 2], g[at + 3]]));
        at += 4;
    }
    if flags & 0x1000 != 0 {
        at += 4; // sequence number
    }
    if g.len() < at {
        return Inner::Malformed;
    }
    by_protocol(TunnelKind::Gre, key, be16(g, 2), &g[at..])
}

fn by_protocol(kind: TunnelKind, vni: Option<u32>, proto: u16, rest: &[u8]) -> Inner<'_> {
    match proto {
        ETHERTYPE_TEB => Inner::Ethernet(kind, vni, rest),
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Inner::Ip(kind, vni, rest),
        _ => Inner::Other,
    }
}

/// An ESP packet (IP protocol 50): the SPI and sequence number, then ciphertext.
pub fn esp(e: &[u8]) -> Inner<'static> {
    if e.len() < 8 || e[..4] == [0, 0, 0, 0] {
        return Inner::Malformed;
    }
    Inner::Sealed(EncryptionKind::IpsecEsp)
}

/// Whether a UDP payload has the shape of a WireGuard message: a known type, three zero
/// bytes, and that type's length. `wire_len` is the payload length on the wire (the
/// capture may have cut the bytes short).
pub fn wireguard_shape(body: &[u8], wire_len: usize) -> bool {
    if body.len() < 4 || body[1..4] != [0, 0, 0] {
        return false;
    }
    match body[0] {
        1 => wire_len == 148,
        2 => wire_len == 92,
        3 => wire_len == 64,
        4 => wire_len >= 32 && (wire_len - 32).is_multiple_of(16),
        _ => false,
    }
}

/// One packet of ciphertext between two addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// The encryption.
    pub kind: EncryptionKind,
    /// Sender (IPv4-mapped like [`super::Endpoint`]).
    pub src: [u8; 16],
    /// Receiver.
    pub dst: [u8; 16],
    /// Bytes above IP, as the IP header states.
    pub bytes: u64,
}

/// Encrypted links, aggregated per kind and address pair, in order of first packet.
#[derive(Debug, Default)]
pub struct SealedLinks {
    index: HashMap<(EncryptionKind, [u8; 16], [u8; 16]), usize>,
    links: Vec<EncryptedLink>,
}

impl SealedLinks {
    /// Counts one packet.
    pub fn add(&mut self, s: Sealed) {
        let pair = if s.src <= s.dst {
            (s.src, s.dst)
        } else {
            (s.dst, s.src)
        };
        let links = &mut self.links;
        let i = *self
            .index
            .entry((s.kind, pair.0, pair.1))
            .or_insert_with(|| {
                links.push(EncryptedLink {
                    kind: s.kind,
                    endpoints: [ip(s.src), ip(s.dst)],
                    packets: 0,
                    bytes: 0,
                });
                links.len() - 1
            });
        self.links[i].packets += 1;
        self.links[i].bytes += s.bytes;
    }

    /// The links, in order of first packet.
    pub fn into_links(self) -> Vec<EncryptedLink> {
        self.links
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_datagram(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(body);
        u
    }

    #[test]
    fn vxlan_on_both_default_ports_and_a_configured_one() {
        let cfg = TunnelConfig::default();
        let body = [0x08, 0, 0, 0, 0, 0, 42, 0, 0xaa];
        for port in [4789, 8472] {
            match udp(&cfg, &udp_datagram(40000, port, &body)) {
                Inner::Ethernet(TunnelKind::Vxlan, Some(42), rest) => assert_eq!(rest, [0xaa]),
                other => panic!("port {port}: {other:?}"),
            }
        }
        assert!(matches!(
            udp(&cfg, &udp_datagram(40000, 4790, &body)),
            Inner::Other
        ));
        let wider = TunnelConfig {
            vxlan_ports: vec![4790],
            ..TunnelConfig::default()
        };
        assert!(matches!(
            udp(&wider, &udp_datagram(40000, 4790, &body)),
            Inner::Ethernet(..)
        ));
        // Without the I flag it is not VXLAN.
        let mut no_i = body;
        no_i[0] = 0;
        assert!(matches!(
            udp(&cfg, &udp_datagram(1, 4789, &no_i)),
            Inner::Other
        ));
    }

    #[test]
    fn geneve_skips_its_options() {
        let cfg = TunnelConfig::default();
        // One 8-byte option (length 2 words), inner IPv4.
        let mut g = vec![0x02, 0, 0x08, 0x00, 0, 0x01, 0x02, 0];
        g.extend_from_slice(&[0xee; 8]);
        g.extend_from_slice(&[0x45, 1, 2]);
        match udp(&cfg, &udp_datagram(1, 6081, &g)) {
            Inner::Ip(TunnelKind::Geneve, Some(0x102), rest) => assert_eq!(rest, [0x45, 1, 2]),
            other => panic!("{other:?}"),
        }
        g[0] = 0x3f; // options longer than the packet
        assert!(matches!(
            udp(&cfg, &udp_datagram(1, 6081, &g)),
            Inner::Malformed
        ));
    }

    #[test]
    fn gre_with_checksum_key_and_sequence() {
        let mut g = vec![0xb0, 0x00, 0x65, 0x58];
        g.extend_from_slice(&[0; 4]); // checksum
        g.extend_from_slice(&7u32.to_be_bytes()); // key
        g.extend_from_slice(&[0; 4]); // sequence
        g.push(0xab);
        match gre(&g) {
            Inner::Ethernet(TunnelKind::Gre, Some(7), rest) => assert_eq!(rest, [0xab]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(gre(&g[..9]), Inner::Malformed));
        let pptp = [0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0];
        assert!(matches!(gre(&pptp), Inner::Other));
        let plain_v6 = [0, 0, 0x86, 0xdd, 0x60];
        assert!(matches!(
            gre(&plain_v6),
            Inner::Ip(TunnelKind::Gre, None, [0x60])
        ));
    }

    #[test]
    fn wireguard_by_port_and_shape_only() {
        let cfg = TunnelConfig::default();
        let mut init = vec![1, 0, 0, 0];
        init.resize(148, 0x5a);
        let mut data = vec![4, 0, 0, 0];
        data.resize(32 + 48, 0x5a);
        for (sport, dport, body) in [(51820, 40000, &init), (40000, 51871, &data)] {
            assert!(matches!(
                udp(&cfg, &udp_datagram(sport, dport, body)),
                Inner::Sealed(EncryptionKind::Wireguard)
            ));
        }
        // Right port, wrong shape (a DNS-sized datagram); right shape, wrong port.
        let mut odd = data.clone();
        odd.push(0);
        assert!(matches!(
            udp(&cfg, &udp_datagram(51820, 40000, &odd)),
            Inner::Other
        ));
        assert!(matches!(
            udp(&cfg, &udp_datagram(53, 40000, &init)),
            Inner::Other
        ));
    }

    #[test]
    fn esp_direct_and_in_udp_but_not_ike() {
        assert!(matches!(
            esp(&[0, 0, 1, 0, 0, 0, 0, 1, 9]),
            Inner::Sealed(EncryptionKind::IpsecEsp)
        ));
        assert!(matches!(esp(&[0; 12]), Inner::Malformed));
        let cfg = TunnelConfig::default();
        let esp_body = [0, 0, 1, 0, 0, 0, 0, 1, 9, 9];
        assert!(matches!(
            udp(&cfg, &udp_datagram(4500, 4500, &esp_body)),
            Inner::Sealed(EncryptionKind::IpsecEsp)
        ));
        let ike = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6];
        assert!(matches!(
            udp(&cfg, &udp_datagram(4500, 4500, &ike)),
            Inner::Other
        ));
    }

    #[test]
    fn links_aggregate_both_directions() {
        let a = [1u8; 16];
        let b = [2u8; 16];
        let mut links = SealedLinks::default();
        for (src, dst) in [(b, a), (a, b), (b, a)] {
            links.add(Sealed {
                kind: EncryptionKind::Wireguard,
                src,
                dst,
                bytes: 100,
            });
        }
        links.add(Sealed {
            kind: EncryptionKind::IpsecEsp,
            src: a,
            dst: b,
            bytes: 60,
        });
        let out = links.into_links();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].packets, out[0].bytes), (3, 300));
        assert_eq!(out[0].endpoints[0], ip(b));
        assert_eq!(out[1].kind, EncryptionKind::IpsecEsp);
    }
}
