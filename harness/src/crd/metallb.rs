//! `metallb.io/v1beta1`: `IPAddressPool` and `L2Advertisement`.
//!
//! Spellings follow MetalLB v0.16.1 `api/v1beta1/*_types.go`. Label selectors are the
//! standard Kubernetes `LabelSelector`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use super::common::Object;

/// An `IPAddressPool` object.
pub type IpAddressPool = Object<IpAddressPoolSpec>;

/// An `L2Advertisement` object.
pub type L2Advertisement = Object<L2AdvertisementSpec>;

/// `IPAddressPoolSpec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpAddressPoolSpec {
    /// Ranges (`a-b`) or CIDRs.
    pub addresses: Vec<String>,
    /// Hand out addresses automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Skip `.0` and `.255` addresses.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Which services may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// `ServiceAllocation`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Pool priority.
    #[serde(default)]
    pub priority: i32,
    /// Namespaces allowed.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespace selectors.
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Service selectors.
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// `L2AdvertisementSpec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools announced; all pools when empty.
    #[serde(default, rename = "ipAddressPools")]
    pub ip_address_pools: Vec<String>,
    /// Pool selectors.
    #[serde(default, rename = "ipAddressPoolSelectors")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce.
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Services announced.
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}
