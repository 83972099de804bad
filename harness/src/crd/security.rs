//! `security.istio.io/v1`: `PeerAuthentication` and `AuthorizationPolicy`.
//!
//! Spellings follow `istio/api` 1.30 `security/v1beta1/*.proto` (served as `v1` since Istio
//! 1.22). Every struct rejects unknown keys, so a misspelt `portLevelMTLS` fails validation
//! instead of silently meaning "no port-level setting".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{Object, PolicyTargetReference, WorkloadSelector};

/// A `PeerAuthentication` object.
pub type PeerAuthentication = Object<PeerAuthenticationSpec>;

/// An `AuthorizationPolicy` object.
pub type AuthorizationPolicy = Object<AuthorizationPolicySpec>;

/// What mutual TLS a workload's sidecar accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    /// The workloads it applies to; without one it is a namespace (or, in the root
    /// namespace, a mesh) policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// The mode for every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Per container port overrides; only honoured on policies with a selector.
    #[serde(default)]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

/// `PeerAuthentication.MutualTLS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MutualTls {
    /// The mode; `UNSET` inherits from the parent scope.
    #[serde(default)]
    pub mode: PeerMode,
}

/// The four PeerAuthentication modes, as written in manifests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PeerMode {
    /// Inherit from the parent scope (mesh default: PERMISSIVE).
    #[default]
    Unset,
    /// Plaintext only: the sidecar does not terminate mTLS.
    Disable,
    /// Both mTLS and plaintext.
    Permissive,
    /// mTLS only.
    Strict,
}

/// Access control for the workloads it selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// The workloads it applies to; without one, every workload in the namespace (or, in
    /// the root namespace, in the mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A Gateway API resource it attaches to instead of a selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Several attachment targets.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The rules; none with `ALLOW` is the allow-nothing policy.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What a match does.
    #[serde(default)]
    pub action: AuthzAction,
    /// The external authorizer for `CUSTOM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

/// Authorization actions. Envoy evaluates CUSTOM, then DENY, then ALLOW.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthzAction {
    /// Allow matching requests; once any ALLOW policy applies, everything else is denied.
    #[default]
    Allow,
    /// Deny matching requests.
    Deny,
    /// Log matching requests; never changes the outcome.
    Audit,
    /// Delegate to an external authorizer.
    Custom,
}

/// `AuthorizationPolicy.ExtensionProvider`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// A provider declared in the mesh config.
    pub name: String,
}

/// One rule: it matches when any `from`, any `to` and every `when` match. Empty parts
/// match everything, so `{}` matches every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Sources; any may match.
    #[serde(default)]
    pub from: Vec<RuleFrom>,
    /// Operations; any may match.
    #[serde(default)]
    pub to: Vec<RuleTo>,
    /// Extra conditions; all must match.
    #[serde(default)]
    pub when: Vec<Condition>,
}

/// `Rule.From`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleFrom {
    /// The source.
    #[serde(default)]
    pub source: Source,
}

/// `Rule.To`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleTo {
    /// The operation.
    #[serde(default)]
    pub operation: Operation,
}

/// Who sent the request. Fields are ANDed; values within a field are ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// Peer identities from mTLS, `<trust domain>/ns/<ns>/sa/<sa>`.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Negated `principals`.
    #[serde(default)]
    pub not_principals: Vec<String>,
    /// JWT identities, `<iss>/<sub>` (HTTP only).
    #[serde(default)]
    pub request_principals: Vec<String>,
    /// Negated `requestPrincipals`.
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    /// Peer namespaces from mTLS.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Negated `namespaces`.
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    /// Peer service accounts from mTLS, `<ns>/<sa>`.
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// Negated `serviceAccounts`.
    #[serde(default)]
    pub not_service_accounts: Vec<String>,
    /// Peer IPs or CIDRs.
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    /// Negated `ipBlocks`.
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    /// Original client IPs (X-Forwarded-For or PROXY protocol).
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    /// Negated `remoteIpBlocks`.
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
    /// Peer trust domains.
    #[serde(default)]
    pub trust_domains: Vec<String>,
    /// Negated `trustDomains`.
    #[serde(default)]
    pub not_trust_domains: Vec<String>,
}

/// What the request does. Fields are ANDed; values within a field are ORed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Operation {
    /// `Host` header values (HTTP only).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Negated `hosts`.
    #[serde(default)]
    pub not_hosts: Vec<String>,
    /// Destination (container) ports, as strings.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Negated `ports`.
    #[serde(default)]
    pub not_ports: Vec<String>,
    /// HTTP methods (HTTP only).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Negated `methods`.
    #[serde(default)]
    pub not_methods: Vec<String>,
    /// Paths: exact, `prefix*`, `*suffix` or `*` (HTTP only).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Negated `paths`.
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// `Condition`: an attribute key and the values it must (not) have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    /// Such as `source.namespace` or `request.headers[version]`.
    pub key: String,
    /// Accepted values.
    #[serde(default)]
    pub values: Vec<String>,
    /// Rejected values.
    #[serde(default)]
    pub not_values: Vec<String>,
}
