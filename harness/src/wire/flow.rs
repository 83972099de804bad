//! The analyzer's output: classified flows, the tunnels they travelled in and the
//! encrypted node-to-node links whose flows cannot be seen, in the stable JSON contract
//! of `cargo xtask capture analyze --json` (documented in `docs/analyzer.md`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::FlowClass;

/// The result of analysing one capture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Packets read, including non-TCP ones.
    pub packets: u64,
    /// Bytes of captured packet data read.
    pub bytes: u64,
    /// Every TCP connection seen, in order of first packet.
    pub flows: Vec<Flow>,
    /// Encrypted node-to-node links (WireGuard, IPsec ESP), in order of first packet:
    /// traffic the capture saw only as ciphertext. Absent in older expected files.
    #[serde(default)]
    pub links: Vec<EncryptedLink>,
}

/// Where a flow is in its capture file: frame numbers as tshark and Wireshark count them
/// (1-based, in file order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSpan {
    /// The flow's first TCP segment.
    pub first: u64,
    /// Its last TCP segment.
    pub last: u64,
    /// How many TCP segments it had.
    pub count: u64,
}

impl FrameSpan {
    /// Counts frame `n` into the span.
    pub fn add(&mut self, n: u64) {
        if self.count == 0 {
            self.first = n;
        }
        self.last = n;
        self.count += 1;
    }
}

/// How much of a flow's clear bytes the canary search covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryScanState {
    /// Everything clear was searched and decoded.
    #[default]
    Complete,
    /// Something was not decoded (over the limits, malformed, or an unknown coding).
    Partial,
}

/// One TCP connection, as classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// The side that sent the SYN (or, without a SYN, the best evidence: the side that
    /// sent the ClientHello, else the side with the ephemeral port).
    pub client: SocketAddr,
    /// The other side.
    pub server: SocketAddr,
    /// What the bytes were.
    pub class: FlowClass,
    /// The plaintext protocol recognised (`http`, `mysql`, `amqp`, `mongodb`, `postgres`,
    /// `epmd`, `erlang-dist`), or null.
    pub protocol: Option<String>,
    /// The ClientHello's server name, if any.
    pub sni: Option<String>,
    /// The ALPN protocols the client offered, in order.
    pub alpn: Vec<String>,
    /// The highest TLS version the client offered (`TLS1.3`), if TLS was seen.
    pub tls_version: Option<String>,
    /// How many times any canary can be read without a key, both directions together:
    /// in clear bytes and through the clear encodings the analyzer decodes.
    pub canary_hits: u64,
    /// Whether every clear byte that may hold the canary was searched (`complete`), or
    /// something was too large or malformed to decode (`partial`): a partial search
    /// cannot show that the canary is absent.
    #[serde(default)]
    pub canary_scan: CanaryScanState,
    /// The encodings through which canaries were recovered (`gzip`, `chunked`, `hpack`,
    /// ...), in a fixed order; empty when every hit was readable as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_encodings: Vec<String>,
    /// The flow's frames in the capture file.
    #[serde(default)]
    pub frames: FrameSpan,
    /// TCP payload bytes from client to server (retransmissions counted once).
    pub client_bytes: u64,
    /// TCP payload bytes from server to client.
    pub server_bytes: u64,
    /// The tunnel the connection travelled in, or null when it was not encapsulated.
    /// Absent in older expected files.
    #[serde(default)]
    pub overlay: Option<Overlay>,
}

/// An encapsulation the analyzer looks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelKind {
    /// VXLAN (RFC 7348) over UDP: Flannel, k3s, Calico's VXLAN mode, Cilium's default.
    Vxlan,
    /// Geneve (RFC 8926) over UDP: Cilium's other tunnel mode, OVN.
    Geneve,
    /// IP-in-IP: IPv4 (IP protocol 4, Calico's default) or IPv6 (protocol 41, 6in4) payloads.
    Ipip,
    /// GRE (RFC 2784/2890), carrying Ethernet (0x6558), IPv4 or IPv6.
    Gre,
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gre => "gre",
        })
    }
}

/// The tunnel around a flow: the innermost encapsulation that carried its segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// The encapsulation.
    pub kind: TunnelKind,
    /// The VXLAN or Geneve network identifier, or the GRE key; null when there is none.
    pub vni: Option<u32>,
    /// The tunnel's own addresses (the nodes): the client's side first.
    pub outer: [IpAddr; 2],
    /// How many encapsulations deep the flow was (1 for a single tunnel).
    pub depth: u8,
}

/// How a CNI encrypts node-to-node traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionKind {
    /// WireGuard over UDP (Calico, Cilium, Flannel's `wireguard` backend, k3s).
    Wireguard,
    /// IPsec ESP (IP protocol 50, or UDP 4500 with NAT traversal): Cilium, Calico Enterprise.
    IpsecEsp,
}

impl fmt::Display for EncryptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncryptionKind::Wireguard => "wireguard",
            EncryptionKind::IpsecEsp => "ipsec-esp",
        })
    }
}

/// Encrypted packets between two addresses: a `cni-encrypted` link. The flows inside
/// cannot be seen, so no expectation about them can be judged from this capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedLink {
    /// The encryption.
    pub kind: EncryptionKind,
    /// The two addresses, the sender of the first packet first.
    pub endpoints: [IpAddr; 2],
    /// Packets seen, both directions.
    pub packets: u64,
    /// Bytes those packets carried above IP, as their IP headers state (the UDP
    /// datagram for WireGuard, the ESP packet for IPsec), both directions.
    pub bytes: u64,
}

/// Adds the links seen by another capture of the same traffic (another node's): a link
/// both saw keeps the larger counts, as the same packets were seen twice.
pub fn merge_links(into: &mut Vec<EncryptedLink>, more: Vec<EncryptedLink>) {
    let same = |a: &EncryptedLink, b: &EncryptedLink| {
        a.kind == b.kind
            && (a.endpoints == b.endpoints || a.endpoints == [b.endpoints[1], b.endpoints[0]])
    };
    for link in more {
        match into.iter_mut().find(|l| same(l, &link)) {
            Some(l) if l.packets < link.packets => {
                l.packets = link.packets;
                l.bytes = link.bytes;
            }
            Some(_) => {}
            None => into.push(link),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: &str, b: &str, packets: u64) -> EncryptedLink {
        EncryptedLink {
            kind: EncryptionKind::Wireguard,
            endpoints: [a.parse().unwrap(), b.parse().unwrap()],
            packets,
            bytes: packets * 100,
        }
    }

    #[test]
    fn links_seen_from_two_nodes_count_once() {
        let mut all = vec![link("10.0.0.1", "10.0.0.2", 10)];
        merge_links(
            &mut all,
            vec![
                link("10.0.0.2", "10.0.0.1", 12),
                link("10.0.0.1", "10.0.0.3", 4),
            ],
        );
        assert_eq!(
            all,
            [
                link("10.0.0.1", "10.0.0.2", 12),
                link("10.0.0.1", "10.0.0.3", 4)
            ]
        );
    }
}
