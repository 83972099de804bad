//! `networking.istio.io/v1` `VirtualService`: routing for hosts, in the mesh or at a
//! gateway.
//!
//! Spellings follow `istio/api` 1.30 `networking/v1alpha3/virtual_service.proto`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{Object, Percent, PortSelector, StringMatch};

/// A `VirtualService` object.
pub type VirtualService = Object<VirtualServiceSpec>;

/// `VirtualService` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the routes apply to (`Host` header or SNI), wildcards allowed.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Gateways (`ns/name` or short names) and `mesh` for sidecars; `mesh` when empty.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// HTTP routes, first match wins.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// TLS passthrough routes.
    #[serde(default)]
    pub tls: Vec<TlsRoute>,
    /// Opaque TCP routes.
    #[serde(default)]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces that see the routes.
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// Where traffic goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Destination {
    /// A service host; short names resolve against the VirtualService's namespace.
    pub host: String,
    /// A DestinationRule subset.
    #[serde(default)]
    pub subset: String,
    /// The service port; may be omitted when the service has one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// An HTTP route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRoute {
    /// A name for logs.
    #[serde(default)]
    pub name: String,
    /// Conditions, ORed; none matches every request.
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<HttpRouteDestination>,
    /// A redirect instead of a route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// A fixed response instead of a route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Delegate to another VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// URI and authority rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// Deprecated single mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Mirrors.
    #[serde(default)]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated integer mirror percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Mirror percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// CORS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header manipulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// `Delegate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delegate {
    /// The delegate's name.
    pub name: String,
    /// Its namespace.
    #[serde(default)]
    pub namespace: String,
}

/// `Headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Headers {
    /// Request header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Response header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// `Headers.HeaderOperations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Overwrite.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A TLS (SNI) route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsRoute {
    /// Conditions, ORed.
    #[serde(default, rename = "match")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// An opaque TCP route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpRoute {
    /// Conditions, ORed.
    #[serde(default, rename = "match")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// `HTTPMatchRequest`: every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// A name for logs.
    #[serde(default)]
    pub name: String,
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Scheme match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Method match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Authority (Host) match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header matches.
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Port the request arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels of the calling workload.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match is limited to.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Case-insensitive path match.
    #[serde(default)]
    pub ignore_uri_case: bool,
    /// Headers that must be absent.
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Namespace of the calling workload.
    #[serde(default)]
    pub source_namespace: String,
    /// Stats prefix.
    #[serde(default)]
    pub stat_prefix: String,
}

/// A weighted HTTP destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// The destination.
    pub destination: Destination,
    /// Share of traffic.
    #[serde(default)]
    pub weight: i32,
    /// Header manipulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A weighted L4 destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteDestination {
    /// The destination.
    pub destination: Destination,
    /// Share of traffic.
    #[serde(default)]
    pub weight: i32,
}

/// `L4MatchAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L4MatchAttributes {
    /// Destination IPs or CIDRs.
    #[serde(default)]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Source CIDR.
    #[serde(default)]
    pub source_subnet: String,
    /// Labels of the calling workload.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match is limited to.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    #[serde(default)]
    pub source_namespace: String,
}

/// `TLSMatchAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsMatchAttributes {
    /// SNI values.
    #[serde(default)]
    pub sni_hosts: Vec<String>,
    /// Destination IPs or CIDRs.
    #[serde(default)]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels of the calling workload.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match is limited to.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Namespace of the calling workload.
    #[serde(default)]
    pub source_namespace: String,
}

/// `HTTPRedirect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRedirect {
    /// New path.
    #[serde(default)]
    pub uri: String,
    /// New authority.
    #[serde(default)]
    pub authority: String,
    /// New port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// `FROM_PROTOCOL_DEFAULT` or `FROM_REQUEST_PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<String>,
    /// New scheme.
    #[serde(default)]
    pub scheme: String,
    /// Status code (301 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<u32>,
}

/// `HTTPDirectResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpDirectResponse {
    /// Status code.
    pub status: u32,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// `HTTPBody`: `string` or base64 `bytes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpBody {
    /// Text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// Base64 body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// `HTTPRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Path (prefix) replacement.
    #[serde(default)]
    pub uri: String,
    /// New authority.
    #[serde(default)]
    pub authority: String,
    /// Regex path rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `RegexRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegexRewrite {
    /// RE2 pattern.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Replacement.
    #[serde(default)]
    pub rewrite: String,
}

/// `HTTPRetry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRetry {
    /// Attempts.
    #[serde(default)]
    pub attempts: i32,
    /// Per-try timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Retry conditions.
    #[serde(default)]
    pub retry_on: String,
    /// Retry in other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Avoid hosts already tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// `CorsPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Deprecated exact origins.
    #[serde(default)]
    pub allow_origin: Vec<String>,
    /// Origin matches.
    #[serde(default)]
    pub allow_origins: Vec<StringMatch>,
    /// Methods.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request headers.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Preflight cache time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Allow credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// `UNSPECIFIED`, `FORWARD` or `IGNORE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<String>,
}

/// `HTTPFaultInjection`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// `HTTPFaultInjection.Delay`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultDelay {
    /// Deprecated integer percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// Fixed delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<String>,
    /// Exponential delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<String>,
    /// Share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// `HTTPFaultInjection.Abort`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultAbort {
    /// HTTP status to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// gRPC status to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// `HTTPMirrorPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Mirror destination.
    pub destination: Destination,
    /// Share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}
