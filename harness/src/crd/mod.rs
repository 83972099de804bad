//! Project-owned types for the custom resources meshproof's fixtures use, and the offline
//! validation every fixture manifest goes through.
//!
//! [`validate`] accepts a document only if:
//! - a standard kind parses into its `k8s-openapi` type (feature `v1_36`) with no key the
//!   type does not know ([`standard`] finds them by a serialize round trip);
//! - an Istio, MetalLB or Consul resource parses into this module's types, which reject
//!   unknown keys at every level;
//! - an Istio security object passes what istiod's validation webhook checks
//!   ([`rejections`]): a PeerAuthentication with `portLevelMtls` and no selector, or a DENY
//!   policy without rules, is a failed apply, not an ignored setting;
//! - every container image is pinned to a tag other than `latest` (or to a digest).
//!
//! Every error names the document (`file:line:column`) and the field path.

mod admission;
mod common;
pub mod consul;
mod destination_rule;
mod gateway;
mod images;
pub mod metallb;
pub mod security;
mod service_entry;
mod sidecar;
mod standard;
mod virtual_service;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::manifest::{Document, SourceRef};

pub use admission::rejections;
pub use common::{
    LabelSelector, NamedPort, Object, Percent, PolicyTargetReference, PortSelector, ServerTlsMode,
    ServerTlsSettings, StringMatch, TlsCertificate, TlsProtocol, WorkloadSelector,
};

/// `networking.istio.io` resources.
pub mod networking {
    pub use super::destination_rule::*;
    pub use super::gateway::*;
    pub use super::service_entry::*;
    pub use super::sidecar::*;
    pub use super::virtual_service::*;
}

/// The document an error is about: where it starts, its kind and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRef {
    /// Where the document starts.
    pub at: SourceRef,
    /// The document's kind.
    pub kind: String,
    /// The document's name.
    pub name: String,
}

impl DocRef {
    fn of(doc: &Document) -> Box<DocRef> {
        Box::new(DocRef {
            at: doc.at.clone(),
            kind: doc.kind.clone(),
            name: doc.name.clone(),
        })
    }
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.at, self.kind, self.name)
    }
}

/// Errors from validating or parsing a manifest document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdError {
    /// A value has the wrong type or an enum the API does not define.
    #[error("{doc}: {path}: {message}")]
    Shape {
        /// The document.
        doc: Box<DocRef>,
        /// The field path, such as `spec.mtls.mode` (`-` for the document itself).
        path: FieldPath,
        /// What serde said.
        message: String,
    },
    /// A key the kind does not define (often a typo).
    #[error("{doc}: {path}: unknown field")]
    UnknownField {
        /// The document.
        doc: Box<DocRef>,
        /// The path of the unknown key.
        path: FieldPath,
    },
    /// A kind meshproof has no type for, so it cannot check it.
    #[error(
        "{}: {api_version} {} {}: meshproof cannot validate this kind{}",
        doc.at, doc.kind, doc.name,
        hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default()
    )]
    UnsupportedKind {
        /// The document.
        doc: Box<DocRef>,
        /// The document's apiVersion.
        api_version: String,
        /// What to use instead, for removed APIs.
        hint: Option<String>,
    },
    /// An object that parses but that istiod's validation webhook rejects: the apply
    /// fails and the object never exists.
    #[error("{doc}: {path}: istiod rejects this object ({by}): {message}")]
    Rejected {
        /// The document.
        doc: Box<DocRef>,
        /// The offending field.
        path: FieldPath,
        /// Istio's message.
        message: String,
        /// The Istio validation function that rejects it.
        by: &'static str,
    },
    /// A container image without a pinned tag.
    #[error("{doc}: {path}: image `{image}` is not pinned: {why}")]
    UnpinnedImage {
        /// The document.
        doc: Box<DocRef>,
        /// The path of the `image` field.
        path: FieldPath,
        /// The image as written.
        image: String,
        /// Why it is not pinned.
        why: String,
    },
}

/// A field path inside a document, such as `spec.portLevelMtls.4369.mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(pub String);

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Validates one manifest document; returns every problem found.
pub fn validate(doc: &Document) -> Result<(), Vec<CrdError>> {
    let mut errors = match custom_checker(doc.group(), version(doc), &doc.kind) {
        Some(Custom::Check(check)) => check(doc),
        Some(Custom::Removed(hint)) => vec![unsupported(doc, Some(hint.to_string()))],
        None => match standard::checker(&doc.api_version, &doc.kind) {
            Some(check) => check(&doc.value)
                .into_iter()
                .map(|f| finding(doc, f))
                .collect(),
            None => vec![unsupported(doc, None)],
        },
    };
    errors.extend(
        images::unpinned(&doc.kind, &doc.value)
            .into_iter()
            .map(|u| CrdError::UnpinnedImage {
                doc: DocRef::of(doc),
                path: FieldPath(u.path),
                image: u.image,
                why: u.why.to_string(),
            }),
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Parses a document into `T` with a located error naming the offending field.
pub fn parse<T: DeserializeOwned>(doc: &Document) -> Result<T, CrdError> {
    serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        shape_or_unknown(doc, &path, &message)
    })
}

fn shape_or_unknown(doc: &Document, path: &str, message: &str) -> CrdError {
    let path = if path == "." || path == "?" {
        String::new()
    } else {
        path.to_string()
    };
    // serde_path_to_error already ends the path with the unknown key itself.
    if message.starts_with("unknown field `") {
        return CrdError::UnknownField {
            doc: DocRef::of(doc),
            path: FieldPath(path),
        };
    }
    CrdError::Shape {
        doc: DocRef::of(doc),
        path: FieldPath(path),
        message: message.to_string(),
    }
}

fn finding(doc: &Document, f: standard::Finding) -> CrdError {
    if f.unknown_key {
        CrdError::UnknownField {
            doc: DocRef::of(doc),
            path: FieldPath(f.path),
        }
    } else {
        CrdError::Shape {
            doc: DocRef::of(doc),
            path: FieldPath(f.path),
            message: f.message,
        }
    }
}

fn unsupported(doc: &Document, hint: Option<String>) -> CrdError {
    CrdError::UnsupportedKind {
        doc: DocRef::of(doc),
        api_version: doc.api_version.clone(),
        hint,
    }
}

fn version(doc: &Document) -> &str {
    doc.api_version.rsplit('/').next().unwrap_or_default()
}

enum Custom {
    Check(fn(&Document) -> Vec<CrdError>),
    Removed(&'static str),
}

fn custom_checker(group: &str, version: &str, kind: &str) -> Option<Custom> {
    use Custom::Check;
    let istio_networking = matches!(version, "v1" | "v1beta1" | "v1alpha3");
    Some(match (group, kind) {
        ("security.istio.io", "PeerAuthentication") if matches!(version, "v1" | "v1beta1") => {
            Check(check_custom::<security::PeerAuthentication>)
        }
        ("security.istio.io", "AuthorizationPolicy") if matches!(version, "v1" | "v1beta1") => {
            Check(check_custom::<security::AuthorizationPolicy>)
        }
        ("networking.istio.io", "DestinationRule") if istio_networking => {
            Check(check_custom::<networking::DestinationRule>)
        }
        ("networking.istio.io", "Gateway") if istio_networking => {
            Check(check_custom::<networking::Gateway>)
        }
        ("networking.istio.io", "VirtualService") if istio_networking => {
            Check(check_custom::<networking::VirtualService>)
        }
        ("networking.istio.io", "ServiceEntry") if istio_networking => {
            Check(check_custom::<networking::ServiceEntry>)
        }
        ("networking.istio.io", "Sidecar") if istio_networking => {
            Check(check_custom::<networking::Sidecar>)
        }
        ("metallb.io", "IPAddressPool") if version == "v1beta1" => {
            Check(check_custom::<metallb::IpAddressPool>)
        }
        ("metallb.io", "L2Advertisement") if version == "v1beta1" => {
            Check(check_custom::<metallb::L2Advertisement>)
        }
        ("consul.hashicorp.com", "ServiceIntentions") if version == "v1alpha1" => {
            Check(check_custom::<consul::ServiceIntentions>)
        }
        ("consul.hashicorp.com", "ServiceDefaults") if version == "v1alpha1" => {
            Check(check_custom::<consul::ServiceDefaults>)
        }
        ("authentication.istio.io", _) => Custom::Removed(
            "authentication.istio.io was removed in Istio 1.6: use security.istio.io/v1 \
             PeerAuthentication (and RequestAuthentication)",
        ),
        _ => return None,
    })
}

/// Parses a custom resource strictly, applies what istiod's validation webhook checks
/// ([`rejections`]), then checks `metadata` (a `k8s-openapi` type, so lenient) by round
/// trip.
fn check_custom<T: DeserializeOwned>(doc: &Document) -> Vec<CrdError> {
    if let Err(e) = parse::<T>(doc) {
        return vec![e];
    }
    let rejected = rejections(doc);
    if !rejected.is_empty() {
        return rejected;
    }
    let meta = doc.value.get("metadata").cloned().unwrap_or(Value::Null);
    standard::check::<ObjectMeta>(&meta)
        .into_iter()
        .map(|mut f| {
            f.path = format!("metadata.{}", f.path);
            finding(doc, f)
        })
        .collect()
}
