//! `networking.istio.io/v1` `ServiceEntry`: services added to Istio's registry, such as
//! a database outside the cluster.
//!
//! Spellings follow `istio/api` 1.30 `networking/v1alpha3/service_entry.proto` and
//! `workload_entry.proto`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{LabelSelector, NamedPort, Object};

/// A `ServiceEntry` object.
pub type ServiceEntry = Object<ServiceEntrySpec>;

/// `ServiceEntry` spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    /// Host names.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDRs.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<NamedPort>,
    /// Inside or outside the mesh.
    #[serde(default)]
    pub location: Location,
    /// How endpoints are found.
    #[serde(default)]
    pub resolution: Resolution,
    /// Static endpoints.
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntry>,
    /// Pods or WorkloadEntries that back it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// Namespaces that see it.
    #[serde(default)]
    pub export_to: Vec<String>,
    /// Accepted server SANs.
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
}

/// `ServiceEntry.Location`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh: no mTLS.
    #[default]
    MeshExternal,
    /// Part of the mesh.
    MeshInternal,
}

/// `ServiceEntry.Resolution`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the original destination address.
    #[default]
    None,
    /// Use the static endpoints.
    Static,
    /// Resolve hosts (or endpoints) through DNS.
    Dns,
    /// DNS, one connection to the first address.
    DnsRoundRobin,
    /// Resolve per request.
    DynamicDns,
}

/// `WorkloadEntry`, as used in `ServiceEntry.endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP or host name.
    #[serde(default)]
    pub address: String,
    /// Port name to endpoint port.
    #[serde(default)]
    pub ports: BTreeMap<String, u32>,
    /// Endpoint labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Network.
    #[serde(default)]
    pub network: String,
    /// Locality.
    #[serde(default)]
    pub locality: String,
    /// Load balancing weight.
    #[serde(default)]
    pub weight: u32,
    /// Service account (for mTLS identities).
    #[serde(default)]
    pub service_account: String,
}
