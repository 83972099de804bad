//! MetalLB's address pool, carved from the kind network, and its L2 advertisement.
//!
//! Docker hands out container addresses from the bottom of a subnet, so the pool takes
//! the top of it, below the broadcast address: `x.y.255.200-x.y.255.250` for kind's usual
//! /16, the same convention as kind's own MetalLB guide.

use std::net::Ipv4Addr;

use serde_json::json;

use super::KindError;
use super::network::Ipv4Net;
use crate::manifest::{self, Document};

/// The namespace the native manifest installs MetalLB into.
pub const NAMESPACE: &str = "metallb-system";
/// The name of meshproof's pool and advertisement.
pub const POOL_NAME: &str = "meshproof";

/// A range of addresses for LoadBalancer services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// First address.
    pub first: Ipv4Addr,
    /// Last address.
    pub last: Ipv4Addr,
}

impl Pool {
    /// `first-last`, as MetalLB's `spec.addresses` takes it.
    pub fn range(&self) -> String {
        format!("{}-{}", self.first, self.last)
    }

    /// Whether an address is in the pool.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.first)..=u32::from(self.last)).contains(&u32::from(ip))
    }
}

/// Carves at most 51 addresses from the top of `subnet`, keeping the last four free.
pub fn pool_for(subnet: Ipv4Net) -> Result<Pool, KindError> {
    if subnet.size() < 64 {
        return Err(KindError::Network {
            network: subnet.to_string(),
            message: "is smaller than /26; too small to share between nodes and a MetalLB pool"
                .into(),
        });
    }
    let count = (subnet.size() / 4).min(51) as u32;
    let last = u32::from(subnet.last()) - 5;
    Ok(Pool {
        first: Ipv4Addr::from(last - count + 1),
        last: Ipv4Addr::from(last),
    })
}

/// The `IPAddressPool` and `L2Advertisement` documents, labelled with the run.
pub fn documents(pool: Pool, run_id: &str) -> Result<Vec<Document>, KindError> {
    let labels = json!({ "meshproof.dev/run": run_id });
    let pool_doc = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": { "name": POOL_NAME, "namespace": NAMESPACE, "labels": labels },
        "spec": { "addresses": [pool.range()] },
    });
    let l2 = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": { "name": POOL_NAME, "namespace": NAMESPACE, "labels": labels },
        "spec": { "ipAddressPools": [POOL_NAME] },
    });
    let text = [pool_doc, l2]
        .iter()
        .map(|d| serde_saphyr::to_string(d).map_err(|e| KindError::Generate(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    manifest::parse_str(std::path::Path::new("<generated metallb pool>"), &text)
        .map_err(|e| KindError::Generate(e.to_string()))
}

/// The generated documents as one YAML text, for plans and artifacts.
pub fn yaml(pool: Pool, run_id: &str) -> Result<String, KindError> {
    let docs = documents(pool, run_id)?;
    docs.iter()
        .map(|d| serde_saphyr::to_string(&d.value).map_err(|e| KindError::Generate(e.to_string())))
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_usual_slash_16_gets_the_documented_range() {
        let pool = pool_for("172.18.0.0/16".parse().unwrap()).unwrap();
        assert_eq!(pool.range(), "172.18.255.200-172.18.255.250");
    }

    #[test]
    fn small_subnets_get_a_quarter_below_the_broadcast() {
        let pool = pool_for("10.1.2.64/26".parse().unwrap()).unwrap();
        assert_eq!(pool.range(), "10.1.2.107-10.1.2.122");
        let subnet: Ipv4Net = "10.1.2.64/26".parse().unwrap();
        assert!(subnet.contains(pool.first) && subnet.contains(pool.last));
        assert!(pool_for("10.1.2.0/27".parse().unwrap()).is_err());
    }

    #[test]
    fn pool_manifests_snapshot() {
        let pool = pool_for("172.18.0.0/16".parse().unwrap()).unwrap();
        insta::assert_snapshot!(yaml(pool, "mp-test-run").unwrap());
        let docs = documents(pool, "mp-test-run").unwrap();
        assert_eq!(docs[0].key(), "IPAddressPool/metallb-system/meshproof");
        assert_eq!(docs[1].group(), "metallb.io");
    }
}
