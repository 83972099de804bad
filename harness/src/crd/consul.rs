//! `consul.hashicorp.com/v1alpha1`: `ServiceIntentions` and `ServiceDefaults`.
//!
//! Spellings follow consul-k8s v2.0.3 `control-plane/api/v1alpha1/*_types.go`. The rarely
//! used nested parts of `ServiceDefaults` (upstream overrides, rate limits, Envoy
//! extensions) are kept as raw JSON: their top-level keys are still checked.

use serde::{Deserialize, Serialize};

use super::common::Object;

/// A `ServiceIntentions` object.
pub type ServiceIntentions = Object<ServiceIntentionsSpec>;

/// A `ServiceDefaults` object.
pub type ServiceDefaults = Object<ServiceDefaultsSpec>;

/// Who may call one destination service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceIntentionsSpec {
    /// The service these intentions protect (`*` for all).
    #[serde(default)]
    pub destination: IntentionDestination,
    /// Sources, most specific first when Consul evaluates them.
    #[serde(default)]
    pub sources: Vec<SourceIntention>,
    /// JWT requirements for every source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<serde_json::Value>,
}

/// `IntentionDestination`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntentionDestination {
    /// Consul service name, or `*`.
    #[serde(default)]
    pub name: String,
    /// Consul namespace (Enterprise), or `*`.
    #[serde(default)]
    pub namespace: String,
}

/// `SourceIntention`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceIntention {
    /// Calling service name, or `*`.
    #[serde(default)]
    pub name: String,
    /// Consul namespace.
    #[serde(default)]
    pub namespace: String,
    /// Cluster peer.
    #[serde(default)]
    pub peer: String,
    /// Admin partition.
    #[serde(default)]
    pub partition: String,
    /// Sameness group.
    #[serde(default)]
    pub sameness_group: String,
    /// `allow` or `deny`; absent when `permissions` are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<IntentionAction>,
    /// L7 permissions, first match wins.
    #[serde(default)]
    pub permissions: Vec<IntentionPermission>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentionAction {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// `IntentionPermission`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntentionPermission {
    /// What a match does.
    pub action: IntentionAction,
    /// HTTP conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<IntentionHttpPermission>,
    /// JWT conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<serde_json::Value>,
}

/// `IntentionHTTPPermission`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntentionHttpPermission {
    /// Exact path.
    #[serde(default)]
    pub path_exact: String,
    /// Path prefix.
    #[serde(default)]
    pub path_prefix: String,
    /// Path regex.
    #[serde(default)]
    pub path_regex: String,
    /// Header conditions.
    #[serde(default)]
    pub header: Vec<IntentionHeaderPermission>,
    /// Methods.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// `IntentionHTTPHeaderPermission`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntentionHeaderPermission {
    /// Header name.
    pub name: String,
    /// Must be present.
    #[serde(default)]
    pub present: bool,
    /// Exact value.
    #[serde(default)]
    pub exact: String,
    /// Prefix.
    #[serde(default)]
    pub prefix: String,
    /// Suffix.
    #[serde(default)]
    pub suffix: String,
    /// Substring.
    #[serde(default)]
    pub contains: String,
    /// Regex.
    #[serde(default)]
    pub regex: String,
    /// Case-insensitive match.
    #[serde(default)]
    pub ignore_case: bool,
    /// Negate.
    #[serde(default)]
    pub invert: bool,
}

/// `ServiceDefaultsSpec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceDefaultsSpec {
    /// `tcp`, `http`, `http2` or `grpc`: decides L4 or L7 intentions.
    #[serde(default)]
    pub protocol: String,
    /// `transparent` or `direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Transparent proxy settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparent_proxy: Option<TransparentProxy>,
    /// `strict` or `permissive`.
    #[serde(default, rename = "mutualTLSMode")]
    pub mutual_tls_mode: String,
    /// Mesh gateway mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_gateway: Option<MeshGateway>,
    /// Paths exposed without mTLS (health checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Expose>,
    /// SNI for terminating gateways.
    #[serde(default, rename = "externalSNI")]
    pub external_sni: String,
    /// Upstream defaults and overrides (not checked field by field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_config: Option<serde_json::Value>,
    /// Destination addresses for terminating gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<serde_json::Value>,
    /// Maximum inbound connections.
    #[serde(default)]
    pub max_inbound_connections: i64,
    /// Local connect timeout.
    #[serde(default)]
    pub local_connect_timeout_ms: i64,
    /// Local request timeout.
    #[serde(default)]
    pub local_request_timeout_ms: i64,
    /// Inbound connection balancing.
    #[serde(default)]
    pub balance_inbound_connections: String,
    /// Rate limits (not checked field by field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<serde_json::Value>,
    /// Envoy extensions (not checked field by field).
    #[serde(default)]
    pub envoy_extensions: Vec<serde_json::Value>,
}

/// `TransparentProxy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransparentProxy {
    /// Outbound listener port (15001).
    #[serde(default)]
    pub outbound_listener_port: i64,
    /// Let clients dial instances directly.
    #[serde(default)]
    pub dialed_directly: bool,
}

/// `MeshGateway`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshGateway {
    /// `local`, `remote` or `none`.
    #[serde(default)]
    pub mode: String,
}

/// `Expose`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expose {
    /// Expose health checks.
    #[serde(default)]
    pub checks: bool,
    /// Exposed paths.
    #[serde(default)]
    pub paths: Vec<ExposePath>,
}

/// `ExposePath`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExposePath {
    /// Listener port.
    #[serde(default)]
    pub listener_port: i64,
    /// Path.
    #[serde(default)]
    pub path: String,
    /// Local port.
    #[serde(default)]
    pub local_path_port: i64,
    /// `http` or `http2`.
    #[serde(default)]
    pub protocol: String,
}

/// Annotation and label names consul-k8s reads on pods and namespaces.
pub mod annotations {
    /// `"true"`/`"false"`: inject the Consul dataplane.
    pub const INJECT: &str = "consul.hashicorp.com/connect-inject";
    /// Pod annotation or namespace label: transparent proxy on or off.
    pub const TRANSPARENT_PROXY: &str = "consul.hashicorp.com/transparent-proxy";
    /// Explicit upstreams, `service:localPort[,...]`.
    pub const UPSTREAMS: &str = "consul.hashicorp.com/connect-service-upstreams";
    /// The Consul service name, when it differs from the Kubernetes Service.
    pub const SERVICE: &str = "consul.hashicorp.com/connect-service";
    /// Inbound ports not redirected to the proxy.
    pub const EXCLUDE_INBOUND: &str =
        "consul.hashicorp.com/transparent-proxy-exclude-inbound-ports";
    /// Outbound ports not redirected to the proxy.
    pub const EXCLUDE_OUTBOUND: &str =
        "consul.hashicorp.com/transparent-proxy-exclude-outbound-ports";
}
