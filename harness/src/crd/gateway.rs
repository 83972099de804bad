//! `networking.istio.io/v1` `Gateway`: the listeners of an ingress or egress gateway.
//!
//! Spellings follow `istio/api` 1.30 `networking/v1alpha3/gateway.proto`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{NamedPort, Object, ServerTlsSettings};

/// A `Gateway` object.
pub type Gateway = Object<GatewaySpec>;

/// `Gateway` spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The listeners.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Labels of the gateway pods this configures, such as `istio: ingressgateway`.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

/// One listener.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    /// Port (the gateway Service's port), protocol and name.
    pub port: NamedPort,
    /// Address to bind to.
    #[serde(default)]
    pub bind: String,
    /// Hosts exposed, optionally `namespace/host`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// TLS termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Default destination (`127.0.0.1:PORT` or a unix socket).
    #[serde(default)]
    pub default_endpoint: String,
    /// A name for the server.
    #[serde(default)]
    pub name: String,
}
