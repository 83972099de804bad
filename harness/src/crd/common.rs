//! Pieces shared by several custom resources: the object envelope, selectors, ports and
//! string matches.
//!
//! Field names and JSON spellings follow the upstream API definitions (Istio's protos in
//! `istio/api` 1.30, MetalLB's and consul-k8s's Go types); the Rust code is this project's.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A custom resource: `apiVersion`, `kind`, `metadata` and a typed `spec`.
///
/// Unknown top-level keys are rejected. `status` is accepted (and ignored) because
/// recorded objects read back from a cluster carry one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    bound(deserialize = "S: Deserialize<'de> + Default")
)]
pub struct Object<S> {
    /// Such as `security.istio.io/v1`.
    pub api_version: String,
    /// Such as `PeerAuthentication`.
    pub kind: String,
    /// Standard Kubernetes metadata.
    pub metadata: ObjectMeta,
    /// The resource's specification; an absent `spec` is the empty one.
    #[serde(default)]
    pub spec: S,
    /// Whatever status a controller wrote; never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl<S> Object<S> {
    /// `metadata.name`, empty if absent.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, or `default` when the manifest does not say.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// Istio's `istio.type.v1beta1.WorkloadSelector`: pods whose labels include all of these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a pod must carry, all of them.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl WorkloadSelector {
    /// True when every selector label is on the pod. An empty selector selects everything.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// True when the selector has no labels (Istio treats it as no selector at all).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty()
    }
}

/// `networking.istio.io`'s `WorkloadSelector`, spelled `labels` rather than `matchLabels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels a pod must carry, all of them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Istio's `PolicyTargetReference`, used by policies attached to Gateway API objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// API group of the target, such as `gateway.networking.k8s.io`.
    #[serde(default)]
    pub group: String,
    /// Kind of the target, such as `Gateway`.
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace of the target; the policy's own when empty.
    #[serde(default)]
    pub namespace: String,
}

/// A port by number (`networking.istio.io` `PortSelector`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortSelector {
    /// The port number.
    pub number: u32,
}

/// A string match: exactly one of `exact`, `prefix` or `regex` (a protobuf `oneof`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// RE2 regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A percentage as a double (`networking.istio.io` `Percent`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Percent {
    /// 0.0 to 100.0.
    pub value: f64,
}

/// Istio's server-side TLS settings, shared by `Gateway` servers and `Sidecar` ingress.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerTlsSettings {
    /// Redirect plain HTTP to HTTPS.
    #[serde(default)]
    pub https_redirect: bool,
    /// How the server side terminates (or passes) TLS.
    #[serde(default)]
    pub mode: ServerTlsMode,
    /// Path to the server certificate.
    #[serde(default)]
    pub server_certificate: String,
    /// Path to the private key.
    #[serde(default)]
    pub private_key: String,
    /// Path to the CA bundle for client certificates.
    #[serde(default)]
    pub ca_certificates: String,
    /// Path to a certificate revocation list.
    #[serde(default)]
    pub ca_crl: String,
    /// Secret holding the certificate, key and CA.
    #[serde(default)]
    pub credential_name: String,
    /// Several secrets (RSA and ECDSA, for example).
    #[serde(default)]
    pub credential_names: Vec<String>,
    /// Secret holding only the CA certificate.
    #[serde(default)]
    pub ca_cert_credential_name: String,
    /// Inline certificate pairs by file path.
    #[serde(default)]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Accepted client certificate SANs.
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    /// Accepted client certificate SPKI hashes.
    #[serde(default)]
    pub verify_certificate_spki: Vec<String>,
    /// Accepted client certificate hashes.
    #[serde(default)]
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS version.
    #[serde(default)]
    pub min_protocol_version: TlsProtocol,
    /// Maximum TLS version.
    #[serde(default)]
    pub max_protocol_version: TlsProtocol,
    /// Allowed cipher suites.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}

/// One certificate pair in [`ServerTlsSettings::tls_certificates`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsCertificate {
    /// Path to the certificate.
    #[serde(default)]
    pub server_certificate: String,
    /// Path to the key.
    #[serde(default)]
    pub private_key: String,
    /// Path to the CA bundle.
    #[serde(default)]
    pub ca_certificates: String,
}

/// Server TLS modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward the TLS stream untouched, routed by SNI.
    #[default]
    Passthrough,
    /// Terminate TLS with a server certificate.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Pass through, using SNI-encoded cluster names (multi-network gateways).
    AutoPassthrough,
    /// Terminate Istio mTLS with the proxy's own mesh certificate.
    IstioMutual,
    /// Terminate TLS, asking for a client certificate without requiring one.
    OptionalMutual,
}

/// TLS protocol versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsProtocol {
    /// Envoy's default.
    #[default]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    Tlsv10,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    Tlsv11,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    Tlsv12,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    Tlsv13,
}

/// A port with its protocol (`Gateway` and `Sidecar` `Port`, `ServiceEntry` `ServicePort`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedPort {
    /// The port number.
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP` or `TLS`.
    #[serde(default)]
    pub protocol: String,
    /// A label for the port.
    #[serde(default)]
    pub name: String,
    /// Deprecated: the workload port traffic is forwarded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}
