//! The kind Docker network: its IPv4 subnet and the host bridge behind it.
//!
//! kind puts every node on one user-defined bridge network (`kind` unless
//! `KIND_EXPERIMENTAL_DOCKER_NETWORK` says otherwise), usually with an IPv4 and an IPv6
//! ULA subnet. MetalLB's pool is carved from the IPv4 one; captures listen on its bridge.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use bollard::models::NetworkInspect;

use super::KindError;

/// An IPv4 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// The number of addresses in the network.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The last address (the broadcast address).
    pub fn last(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + (self.size() - 1) as u32)
    }

    /// Whether an address lies inside.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        };
        u32::from(ip) & mask == u32::from(self.addr)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not in CIDR form"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 network"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("`{s}` has a bad prefix"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        Ok(Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What meshproof needs to know about the kind network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindNetwork {
    /// The network's name.
    pub name: String,
    /// Docker's network id.
    pub id: String,
    /// The IPv4 subnet the nodes get addresses from.
    pub ipv4: Ipv4Net,
    /// The host interface that bridges the network (`br-<id[..12]>` by default).
    pub bridge: String,
    /// The host's address on the network (the IPv4 gateway), when Docker reports one.
    pub gateway: Option<Ipv4Addr>,
}

impl KindNetwork {
    /// Reads the answer of Docker's network inspect.
    pub fn from_inspect(net: &NetworkInspect) -> Result<KindNetwork, KindError> {
        let name = net.name.clone().unwrap_or_default();
        let id = net.id.clone().unwrap_or_default();
        let bad = |message: String| KindError::Network {
            network: name.clone(),
            message,
        };
        if net.driver.as_deref() != Some("bridge") {
            return Err(bad(format!("driver is {:?}, not bridge", net.driver)));
        }
        let configs = net
            .ipam
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .into_iter()
            .flatten();
        let (ipv4, gateway) = configs
            .filter_map(|c| {
                let subnet = c.subnet.as_deref()?.parse::<Ipv4Net>().ok()?;
                Some((
                    subnet,
                    c.gateway
                        .as_deref()
                        .and_then(|g| g.parse::<Ipv4Addr>().ok()),
                ))
            })
            .next()
            .ok_or_else(|| bad("has no IPv4 subnet".into()))?;
        if id.len() < 12 {
            return Err(bad(format!("has a malformed id `{id}`")));
        }
        let options = net.options.clone().unwrap_or_default();
        let bridge =
            crate::capture::bridge_interface(&id, &options).map_err(|e| bad(e.to_string()))?;
        Ok(KindNetwork {
            name,
            id,
            ipv4,
            bridge,
            gateway,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> NetworkInspect {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/recorded/docker")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn dual_stack_network_yields_its_ipv4_subnet_and_default_bridge() {
        // Recorded from `GET /networks/NAME` on this machine for a network created like
        // kind creates its own (bridge, IPv6 ULA subnet, MTU option).
        let net = KindNetwork::from_inspect(&recorded("network-inspect-dual-stack.json")).unwrap();
        assert_eq!(net.ipv4.to_string(), "172.21.0.0/16");
        assert_eq!(net.gateway, Some(Ipv4Addr::new(172, 21, 0, 1)));
        assert_eq!(net.bridge, format!("br-{}", &net.id[..12]));
    }

    #[test]
    fn an_explicit_bridge_name_wins() {
        let net =
            KindNetwork::from_inspect(&recorded("network-inspect-named-bridge.json")).unwrap();
        assert_eq!(net.bridge, "mp-br-rec");
    }

    #[test]
    fn a_network_without_ipv4_is_an_error() {
        let mut inspect = recorded("network-inspect-dual-stack.json");
        if let Some(cfg) = inspect.ipam.as_mut().and_then(|i| i.config.as_mut()) {
            cfg.retain(|c| c.subnet.as_deref().is_some_and(|s| s.contains(':')));
        }
        let err = KindNetwork::from_inspect(&inspect).unwrap_err();
        assert!(err.to_string().contains("no IPv4 subnet"), "{err}");
    }

    #[test]
    fn cidr_parsing_normalises_and_checks() {
        let net: Ipv4Net = "172.18.3.4/16".parse().unwrap();
        assert_eq!(net.to_string(), "172.18.0.0/16");
        assert_eq!(net.last(), Ipv4Addr::new(172, 18, 255, 255));
        assert!(net.contains(Ipv4Addr::new(172, 18, 255, 200)));
        assert!(!net.contains(Ipv4Addr::new(172, 19, 0, 1)));
        assert!("fc00::/64".parse::<Ipv4Net>().is_err());
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
    }
}
