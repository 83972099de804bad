//! What istiod's validation webhook rejects in Istio security objects that parse: such
//! an apply fails, so the object never exists. Reported located, like any bad input.
//!
//! Istio 1.30.3, `pkg/config/validation/validation.go`:
//! - `ValidatePeerAuthentication`: `portLevelMtls` needs a selector with labels ("mesh/
//!   namespace peer authentication cannot have port level mTLS"); ports are 1..=65535;
//! - `ValidateAuthorizationPolicy`: DENY (and CUSTOM) without `rules` "is meaningless as it
//!   will never be triggered"; CUSTOM needs `provider.name`, other actions take no
//!   `provider`; one of `selector`, `targetRef`, `targetRefs`; `serviceAccounts` may not be
//!   combined with `namespaces` or `principals`; `from.source` and `to.operation` may not
//!   be empty; CUSTOM rules take no identity fields;
//! - `security.CheckServiceAccount` (`pkg/config/security/security.go`): no wildcard, at
//!   most one `/`, neither part empty.

use super::security::{AuthorizationPolicy, AuthzAction, PeerAuthentication, Source};
use super::{CrdError, DocRef, FieldPath, parse};
use crate::manifest::Document;

/// The validation webhook's findings for a document (none for kinds it does not cover, or
/// for documents that do not parse, which [`parse`] reports).
pub fn rejections(doc: &Document) -> Vec<CrdError> {
    let found = match (doc.group(), doc.kind.as_str()) {
        ("security.istio.io", "PeerAuthentication") => parse::<PeerAuthentication>(doc)
            .map(|pa| peer_authentication(&pa))
            .unwrap_or_default(),
        ("security.istio.io", "AuthorizationPolicy") => parse::<AuthorizationPolicy>(doc)
            .map(|ap| authorization_policy(&ap))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    found
        .into_iter()
        .map(|(path, message, by)| CrdError::Rejected {
            doc: DocRef::of(doc),
            path: FieldPath(path),
            message,
            by,
        })
        .collect()
}

type Finding = (String, String, &'static str);

const PA: &str = "ValidatePeerAuthentication";
const AP: &str = "ValidateAuthorizationPolicy";

fn peer_authentication(pa: &PeerAuthentication) -> Vec<Finding> {
    let mut out = Vec::new();
    let no_selector = pa.spec.selector.as_ref().is_none_or(|s| s.is_empty());
    if no_selector && !pa.spec.port_level_mtls.is_empty() {
        out.push((
            "spec.portLevelMtls".into(),
            "mesh/namespace peer authentication cannot have port level mTLS".into(),
            PA,
        ));
    }
    for port in pa.spec.port_level_mtls.keys() {
        if !(1..=65535).contains(port) {
            out.push((
                format!("spec.portLevelMtls.{port}"),
                "port must be in range 1..65535".into(),
                PA,
            ));
        }
    }
    out
}

fn authorization_policy(ap: &AuthorizationPolicy) -> Vec<Finding> {
    let spec = &ap.spec;
    let mut out = Vec::new();
    let mut push = |path: &str, message: String| out.push((path.to_string(), message, AP));
    let attachments = [
        spec.selector.is_some(),
        spec.target_ref.is_some(),
        !spec.target_refs.is_empty(),
    ];
    if attachments.iter().filter(|set| **set).count() > 1 {
        push(
            "spec",
            "only one of targetRefs or workloadSelector can be set".into(),
        );
    }
    match spec.action {
        AuthzAction::Deny | AuthzAction::Custom if spec.rules.is_empty() => push(
            "spec.rules",
            format!(
                "{} action without `rules` is meaningless as it will never be triggered, add an empty rule `{{}}` if you want it be triggered for every request",
                action_name(spec.action)
            ),
        ),
        AuthzAction::Custom if spec.provider.as_ref().is_none_or(|p| p.name.is_empty()) => push(
            "spec.provider.name",
            "`provider.name` must not be empty".into(),
        ),
        _ => {}
    }
    if spec.provider.is_some() && spec.action != AuthzAction::Custom {
        push(
            "spec.provider",
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                action_name(spec.action)
            ),
        );
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        for (j, from) in rule.from.iter().enumerate() {
            let at = format!("spec.rules[{i}].from[{j}].source");
            for (field, message) in source(&from.source, i, spec.action == AuthzAction::Custom) {
                push(&format!("{at}{field}"), message);
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            let o = &to.operation;
            let lists = [&o.ports, &o.methods, &o.paths, &o.hosts];
            let negated = [&o.not_ports, &o.not_methods, &o.not_paths, &o.not_hosts];
            if lists.iter().chain(&negated).all(|v| v.is_empty()) {
                push(
                    &format!("spec.rules[{i}].to[{j}].operation"),
                    format!("`to.operation` must not be empty, found at rule {i}"),
                );
            }
        }
    }
    out
}

fn action_name(a: AuthzAction) -> &'static str {
    match a {
        AuthzAction::Allow => "ALLOW",
        AuthzAction::Deny => "DENY",
        AuthzAction::Audit => "AUDIT",
        AuthzAction::Custom => "CUSTOM",
    }
}

/// Findings in one `from.source`, as `(path suffix, message)`.
fn source(s: &Source, rule: usize, custom: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let identities = [
        &s.principals,
        &s.not_principals,
        &s.request_principals,
        &s.not_request_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.service_accounts,
        &s.not_service_accounts,
        &s.trust_domains,
        &s.not_trust_domains,
    ];
    let addresses = [
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
    ];
    if identities.iter().chain(&addresses).all(|v| v.is_empty()) {
        out.push((
            String::new(),
            format!("`from.source` must not be empty, found at rule {rule}"),
        ));
    }
    let accounts = s.service_accounts.len() + s.not_service_accounts.len();
    let others =
        s.principals.len() + s.not_principals.len() + s.namespaces.len() + s.not_namespaces.len();
    if accounts > 0 && others > 0 {
        out.push((
            String::new(),
            format!(
                "cannot set serviceAccounts with namespaces or principals, found at rule {rule}"
            ),
        ));
    }
    for (field, values) in [
        ("ServiceAccounts", &s.service_accounts),
        ("NotServiceAccounts", &s.not_service_accounts),
    ] {
        if let Err(message) = check_service_accounts(field, values) {
            let mut path = format!(".{field}");
            path[1..2].make_ascii_lowercase();
            out.push((path, message));
        }
    }
    if custom && identities.iter().any(|v| !v.is_empty()) {
        out.push((
            String::new(),
            "identity fields (principals, namespaces, serviceAccounts, trustDomains, requestPrincipals) are currently not supported with CUSTOM action".into(),
        ));
    }
    out
}

/// `security.CheckServiceAccount`.
fn check_service_accounts(key: &str, values: &[String]) -> Result<(), String> {
    if values.len() > 16 {
        return Err("may not have more than 16 values".into());
    }
    for value in values {
        if value.is_empty() {
            return Err(format!("empty value not allowed, found in {key}"));
        }
        if value.contains('*') {
            return Err(format!("wildcard not allowed, found in {key}"));
        }
        if value.matches('/').count() > 1 {
            return Err(format!(
                "expected format 'serviceAccount' or 'namespace/serviceAccount', found {value:?} in {key}"
            ));
        }
        if value.len() > 320 {
            return Err(format!(
                "value cannot exceed 320 characters, found {value:?} in {key}"
            ));
        }
        if let Some((ns, sa)) = value.split_once('/')
            && (ns.is_empty() || sa.is_empty())
        {
            return Err(format!(
                "expected format 'serviceAccount' or 'namespace/serviceAccount', found an empty part in {value:?} in {key}"
            ));
        }
    }
    Ok(())
}
