//! `networking.istio.io/v1` `DestinationRule`: what a client does once traffic is routed
//! to a host, including the TLS it originates.
//!
//! Spellings follow `istio/api` 1.30 `networking/v1alpha3/destination_rule.proto`.
//! Durations stay strings (`"5s"`), as in the protobuf JSON mapping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{Object, PortSelector};

/// A `DestinationRule` object.
pub type DestinationRule = Object<DestinationRuleSpec>;

/// `DestinationRule` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service host; short names resolve against the rule's namespace.
    pub host: String,
    /// Policies for every port and subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets of the service's endpoints.
    #[serde(default)]
    pub subsets: Vec<Subset>,
    /// Namespaces that see the rule (`.` own, `*` all); all by default.
    #[serde(default)]
    pub export_to: Vec<String>,
    /// Client workloads the rule applies to (same namespace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadMatch>,
}

/// `istio.type.v1beta1.WorkloadSelector` as used by `DestinationRule`.
pub type WorkloadMatch = super::common::WorkloadSelector;

/// Traffic settings for a destination.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS the client originates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Overrides per service port. A port entry replaces the top-level settings: fields
    /// it omits fall back to defaults, not to the top level.
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// HTTP CONNECT tunnelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// PROXY protocol towards the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Retry budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// `TrafficPolicy.PortTrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// The service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS the client originates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// `TrafficPolicy.TunnelSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TunnelSettings {
    /// `CONNECT` or `POST`.
    #[serde(default)]
    pub protocol: String,
    /// The tunnel's target host.
    pub target_host: String,
    /// The tunnel's target port.
    pub target_port: u32,
}

/// `TrafficPolicy.ProxyProtocol`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyProtocol {
    /// `V1` or `V2`.
    #[serde(default)]
    pub version: String,
}

/// `TrafficPolicy.RetryBudget`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetryBudget {
    /// Percentage of active requests that may be retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Retries always allowed.
    #[serde(default)]
    pub min_retry_concurrency: u32,
}

/// A named subset of a service's endpoints.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subset {
    /// The subset's name, used in routes and in the SNI.
    pub name: String,
    /// Endpoint labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides of the rule's traffic policy for this subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Load balancing; `simple` and `consistentHash` are a protobuf `oneof`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// A standard algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    /// Session affinity by hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality-aware balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Deprecated slow start duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<String>,
    /// Slow start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
}

/// Standard load balancing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Envoy's default.
    Unspecified,
    /// Deprecated spelling of `LEAST_REQUEST`.
    LeastConn,
    /// Random.
    Random,
    /// Forward to the original destination: no load balancing at all.
    Passthrough,
    /// Round robin.
    RoundRobin,
    /// Least outstanding requests.
    LeastRequest,
}

/// `LoadBalancerSettings.ConsistentHashLB`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsistentHashLb {
    /// Hash on this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash on this cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the source IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash on this query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Ring hash settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<MagLev>,
    /// Deprecated ring size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// `ConsistentHashLB.HTTPCookie`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name.
    pub name: String,
    /// Cookie path.
    #[serde(default)]
    pub path: String,
    /// Cookie lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Extra cookie attributes.
    #[serde(default)]
    pub attributes: Vec<CookieAttribute>,
}

/// `HTTPCookie.Attribute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CookieAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value.
    #[serde(default)]
    pub value: String,
}

/// `ConsistentHashLB.RingHash`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RingHash {
    /// Minimum ring size.
    #[serde(default)]
    pub minimum_ring_size: u64,
}

/// `ConsistentHashLB.MagLev`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MagLev {
    /// Lookup table size (prime).
    #[serde(default)]
    pub table_size: u64,
}

/// `LocalityLoadBalancerSetting`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Traffic weights between localities.
    #[serde(default)]
    pub distribute: Vec<LocalityDistribute>,
    /// Failover between regions.
    #[serde(default)]
    pub failover: Vec<LocalityFailover>,
    /// Label-ordered failover priority.
    #[serde(default)]
    pub failover_priority: Vec<String>,
    /// Turn locality balancing on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `LocalityLoadBalancerSetting.Distribute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalityDistribute {
    /// Originating locality.
    #[serde(default)]
    pub from: String,
    /// Target localities and weights.
    #[serde(default)]
    pub to: BTreeMap<String, u32>,
}

/// `LocalityLoadBalancerSetting.Failover`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalityFailover {
    /// Originating region.
    #[serde(default)]
    pub from: String,
    /// Region to fail over to.
    #[serde(default)]
    pub to: String,
}

/// `WarmupConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WarmupConfiguration {
    /// Warm-up duration.
    pub duration: String,
    /// Initial traffic percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_percent: Option<f64>,
    /// Curve of the ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

/// `ConnectionPoolSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// TCP limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpSettings {
    /// Maximum connections.
    #[serde(default)]
    pub max_connections: i32,
    /// Connect timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// TCP keepalive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Maximum connection lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<String>,
    /// Idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// `TCPSettings.TcpKeepalive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Probes before the connection is dead.
    #[serde(default)]
    pub probes: u32,
    /// Idle time before probing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Interval between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpSettings {
    /// Pending HTTP/1.1 requests.
    #[serde(default)]
    pub http1_max_pending_requests: i32,
    /// Concurrent HTTP/2 requests.
    #[serde(default)]
    pub http2_max_requests: i32,
    /// Requests per connection.
    #[serde(default)]
    pub max_requests_per_connection: i32,
    /// Concurrent retries.
    #[serde(default)]
    pub max_retries: i32,
    /// Idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// HTTP/2 upgrade of HTTP/1.1 connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Speak the client's protocol upstream.
    #[serde(default)]
    pub use_client_protocol: bool,
    /// Concurrent HTTP/2 streams.
    #[serde(default)]
    pub max_concurrent_streams: i32,
}

/// `HTTPSettings.H2UpgradePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// The mesh default.
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}

/// `OutlierDetection`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Deprecated consecutive error count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    /// Split local-origin and external errors.
    #[serde(default)]
    pub split_external_local_origin_errors: bool,
    /// Consecutive locally originated failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Consecutive 502/503/504s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Analysis interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Minimum ejection time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// Maximum ejected share.
    #[serde(default)]
    pub max_ejection_percent: i32,
    /// Minimum healthy share for detection to run.
    #[serde(default)]
    pub min_health_percent: i32,
}

/// `ClientTLSSettings`: TLS the client-side proxy originates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientTlsSettings {
    /// The mode.
    #[serde(default)]
    pub mode: ClientTlsMode,
    /// Client certificate path (MUTUAL).
    #[serde(default)]
    pub client_certificate: String,
    /// Private key path (MUTUAL).
    #[serde(default)]
    pub private_key: String,
    /// CA bundle path.
    #[serde(default)]
    pub ca_certificates: String,
    /// Secret with the certificates.
    #[serde(default)]
    pub credential_name: String,
    /// Accepted server SANs.
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    /// SNI to send.
    #[serde(default)]
    pub sni: String,
    /// Skip server certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list path.
    #[serde(default)]
    pub ca_crl: String,
}

/// Client TLS modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS without a client certificate.
    Simple,
    /// TLS with a client certificate the user supplies.
    Mutual,
    /// Istio mTLS with the proxy's mesh certificate.
    IstioMutual,
}
