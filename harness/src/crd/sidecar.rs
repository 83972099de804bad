//! `networking.istio.io/v1` `Sidecar`: what a sidecar listens on and may reach.
//!
//! Spellings follow `istio/api` 1.30 `networking/v1alpha3/sidecar.proto`.

use serde::{Deserialize, Serialize};

use super::common::{LabelSelector, NamedPort, Object, ServerTlsSettings};
use super::destination_rule::ConnectionPoolSettings;
use super::virtual_service::Destination;

/// A `Sidecar` object.
pub type Sidecar = Object<SidecarSpec>;

/// `Sidecar` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarSpec {
    /// Pods it applies to; the whole namespace without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// Inbound listeners.
    #[serde(default)]
    pub ingress: Vec<IngressListener>,
    /// Outbound listeners and reachable hosts.
    #[serde(default)]
    pub egress: Vec<EgressListener>,
    /// Inbound connection limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// `REGISTRY_ONLY` or `ALLOW_ANY` for these pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// `IstioIngressListener`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressListener {
    /// Port.
    pub port: NamedPort,
    /// Bind address.
    #[serde(default)]
    pub bind: String,
    /// Capture mode.
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// Where to forward.
    #[serde(default)]
    pub default_endpoint: String,
    /// TLS termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// `IstioEgressListener`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressListener {
    /// Port; all ports when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<NamedPort>,
    /// Bind address.
    #[serde(default)]
    pub bind: String,
    /// Capture mode.
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// Reachable hosts, `namespace/dnsName`.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `CaptureMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default.
    #[default]
    Default,
    /// iptables redirection.
    Iptables,
    /// No capture.
    None,
}

/// `OutboundTrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// The mode.
    #[serde(default)]
    pub mode: OutboundMode,
    /// Where unknown traffic goes under `ALLOW_ANY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// `OutboundTrafficPolicy.Mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    /// Only registered hosts.
    RegistryOnly,
    /// Anything.
    #[default]
    AllowAny,
}
