//! AuthorizationPolicy: which policies apply to a workload, the rules Envoy gets for one
//! port, and the decision for one request.
//!
//! Istio 1.30 semantics (`pilot/pkg/security/authz/builder`, `model`):
//! - policies in the workload's namespace apply (all, or those whose selector matches);
//!   policies in the root namespace apply mesh-wide; `targetRef(s)` policies attach to
//!   gateways and waypoints, not sidecars;
//! - Envoy runs CUSTOM, then DENY, then ALLOW. Any matching DENY denies. If any ALLOW
//!   policy applies, a request no ALLOW rule matches is denied; an ALLOW policy without
//!   rules (`spec: {}`) is the allow-nothing policy;
//! - on TCP ports, an ALLOW rule using an HTTP-only field is dropped (a smaller allow);
//!   in DENY and AUDIT rules the HTTP-only fields are dropped (a wider deny);
//! - a denied HTTP request gets `403 RBAC: access denied`; a denied TCP connection is closed;
//! - `serviceAccounts: [sa]` means `<the policy's namespace>/sa` (`serviceAccountRegex` in
//!   `pilot/pkg/security/authz/model/generator.go` at 1.30.3), compared exactly: admission
//!   (`security.CheckServiceAccount`) rejects wildcards there;
//! - path templates: `{*}` is one non-empty segment, `{**}` any string, slashes included
//!   (`pilot/pkg/security/authz/matcher/template.go`, `TestAuthz_PathTemplating` in
//!   `tests/integration/security/authz_test.go`);
//! - AUDIT never changes the outcome; a CUSTOM policy whose rules may match hands the
//!   request to an external authorizer the model cannot see, so the outcome is undecided;
//!   so are rules on peer IPs (`ipBlocks`, `remoteIpBlocks`) the model has no addresses for.

use serde::Serialize;

use super::cluster::PodInfo;
pub use super::patterns::string_match;
use super::patterns::{is_path_template, template_match};
use super::types::Request;
use crate::crd::security::{AuthorizationPolicy, AuthzAction, Condition, Operation, Rule, Source};

/// One policy as it applies to a workload port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedPolicy {
    /// `name/namespace`.
    pub name: String,
    /// The action.
    pub action: AuthzAction,
    /// The rules Envoy gets for this port; empty with ALLOW means allow nothing.
    pub rules: Vec<Rule>,
}

/// The policies that apply to a pod, in creation order, with notes on ignored ones.
pub fn applicable<'a>(
    policies: impl Iterator<Item = &'a AuthorizationPolicy>,
    root: &str,
    pod: &PodInfo,
    notes: &mut Vec<String>,
) -> Vec<&'a AuthorizationPolicy> {
    policies
        .filter(|p| p.namespace() == pod.namespace || p.namespace() == root)
        .filter(|p| {
            p.spec
                .selector
                .as_ref()
                .is_none_or(|s| s.selects(&pod.labels))
        })
        .filter(|p| {
            let targeted = p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty();
            if targeted {
                notes.push(format!(
                    "AuthorizationPolicy {}/{} uses targetRef, which sidecars ignore",
                    p.name(),
                    p.namespace()
                ));
            }
            !targeted
        })
        .collect()
}

/// The rules of `policy` as Envoy's RBAC filter for one port gets them, with short
/// service accounts qualified by the policy's namespace.
pub fn for_port(policy: &AuthorizationPolicy, http: bool) -> AppliedPolicy {
    let action = policy.spec.action;
    let rules = policy
        .spec
        .rules
        .iter()
        .map(|r| qualify_service_accounts(r, policy.namespace()))
        .filter_map(|r| if http { Some(r) } else { tcp_rule(&r, action) })
        .collect();
    AppliedPolicy {
        name: format!("{}/{}", policy.name(), policy.namespace()),
        action,
        rules,
    }
}

/// `serviceAccountRegex`: a value without `/` names a ServiceAccount in the policy's own
/// namespace, in `from.source` and in `source.serviceAccount` conditions alike.
fn qualify_service_accounts(r: &Rule, namespace: &str) -> Rule {
    let qualify = |values: &mut Vec<String>| {
        for v in values.iter_mut().filter(|v| !v.contains('/')) {
            *v = format!("{namespace}/{v}");
        }
    };
    let mut r = r.clone();
    for f in &mut r.from {
        qualify(&mut f.source.service_accounts);
        qualify(&mut f.source.not_service_accounts);
    }
    for c in r
        .when
        .iter_mut()
        .filter(|c| c.key == "source.serviceAccount")
    {
        qualify(&mut c.values);
        qualify(&mut c.not_values);
    }
    r
}

fn http_only(r: &Rule) -> bool {
    let src = r.from.iter().any(|f| {
        !f.source.request_principals.is_empty() || !f.source.not_request_principals.is_empty()
    });
    let op = r.to.iter().any(|t| {
        let o = &t.operation;
        [
            &o.hosts,
            &o.not_hosts,
            &o.methods,
            &o.not_methods,
            &o.paths,
            &o.not_paths,
        ]
        .iter()
        .any(|v| !v.is_empty())
    });
    src || op || r.when.iter().any(|c| c.key.starts_with("request."))
}

fn tcp_rule(r: &Rule, action: AuthzAction) -> Option<Rule> {
    if !http_only(r) {
        return Some(r.clone());
    }
    if action == AuthzAction::Allow {
        return None;
    }
    let mut r = r.clone();
    for f in &mut r.from {
        f.source.request_principals.clear();
        f.source.not_request_principals.clear();
    }
    for t in &mut r.to {
        let o = &mut t.operation;
        for v in [
            &mut o.hosts,
            &mut o.not_hosts,
            &mut o.methods,
            &mut o.not_methods,
            &mut o.paths,
            &mut o.not_paths,
        ] {
            v.clear();
        }
    }
    r.when.retain(|c| !c.key.starts_with("request."));
    Some(r)
}

/// What a request is known to carry.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The peer identity (`cluster.local/ns/x/sa/y`) when the connection is Istio mTLS.
    pub principal: Option<String>,
    /// The destination (container) port.
    pub port: u16,
    /// The HTTP request, when known.
    pub request: Option<&'a Request>,
}

/// The outcome of authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied by this policy.
    Deny {
        /// `name/namespace`, or a description for allow-lists.
        by: String,
    },
    /// Depends on what the request carries (method, path, IP) that the model does not know.
    Depends {
        /// Which policy makes it depend.
        why: String,
    },
}

/// A three-valued match: the model may not know an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Unknown,
}

impl Tri {
    fn and(self, o: Tri) -> Tri {
        match (self, o) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Unknown,
        }
    }
    fn or(self, o: Tri) -> Tri {
        match (self, o) {
            (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
            (Tri::No, Tri::No) => Tri::No,
            _ => Tri::Unknown,
        }
    }
    fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Unknown => Tri::Unknown,
        }
    }
    fn from(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }
}

/// Decides one request against the policies of a port (from [`for_port`]), in Envoy's
/// order: CUSTOM, DENY, ALLOW. AUDIT policies only log.
pub fn decide(policies: &[AppliedPolicy], facts: &Facts) -> Decision {
    for p in policies.iter().filter(|p| p.action == AuthzAction::Custom) {
        if any_rule(&p.rules, facts) != Tri::No {
            return Decision::Depends {
                why: format!(
                    "CUSTOM policy {} hands the request to an external authorizer, whose answer the model cannot know",
                    p.name
                ),
            };
        }
    }
    for p in policies.iter().filter(|p| p.action == AuthzAction::Deny) {
        match any_rule(&p.rules, facts) {
            Tri::Yes => return Decision::Deny { by: p.name.clone() },
            Tri::Unknown => {
                return Decision::Depends {
                    why: format!("DENY policy {} {}", p.name, unknown_inputs(&p.rules, facts)),
                };
            }
            Tri::No => {}
        }
    }
    let allows: Vec<_> = policies
        .iter()
        .filter(|p| p.action == AuthzAction::Allow)
        .collect();
    if allows.is_empty() {
        return Decision::Allow;
    }
    let outcome = allows
        .iter()
        .fold(Tri::No, |acc, p| acc.or(any_rule(&p.rules, facts)));
    let names = allows
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match outcome {
        Tri::Yes => Decision::Allow,
        Tri::Unknown => {
            let rules: Vec<Rule> = allows.iter().flat_map(|p| p.rules.clone()).collect();
            Decision::Depends {
                why: format!("ALLOW policy {names} {}", unknown_inputs(&rules, facts)),
            }
        }
        Tri::No => Decision::Deny {
            by: format!("no rule of ALLOW policy {names} matches"),
        },
    }
}

/// What the undecided rules read that the model does not know, as a clause.
fn unknown_inputs(rules: &[Rule], f: &Facts) -> String {
    let mut inputs: Vec<&str> = Vec::new();
    for r in rules {
        for s in r.from.iter().map(|f| &f.source) {
            if !s.ip_blocks.is_empty() || !s.not_ip_blocks.is_empty() {
                inputs.push("the peer IP (ipBlocks)");
            }
            if !s.remote_ip_blocks.is_empty() || !s.not_remote_ip_blocks.is_empty() {
                inputs.push("the original client IP (remoteIpBlocks)");
            }
        }
        if f.request.is_none() && http_only(r) {
            inputs.push("the HTTP request, which a workload call does not name");
        }
        for c in &r.when {
            if condition(c, f) == Tri::Unknown {
                inputs.push("a `when` condition on an attribute the model does not know");
            }
        }
    }
    inputs.sort();
    inputs.dedup();
    if inputs.is_empty() {
        "reads what the model does not know".into()
    } else {
        format!("reads {}", inputs.join(" and "))
    }
}

fn any_rule(rules: &[Rule], f: &Facts) -> Tri {
    rules.iter().fold(Tri::No, |acc, r| acc.or(rule(r, f)))
}

fn rule(r: &Rule, f: &Facts) -> Tri {
    let from = if r.from.is_empty() {
        Tri::Yes
    } else {
        r.from
            .iter()
            .fold(Tri::No, |a, s| a.or(source(&s.source, f)))
    };
    let to = if r.to.is_empty() {
        Tri::Yes
    } else {
        r.to.iter()
            .fold(Tri::No, |a, t| a.or(operation(&t.operation, f)))
    };
    r.when
        .iter()
        .fold(from.and(to), |a, c| a.and(condition(c, f)))
}

/// A field with values and negated values: ORed values, then NOT of ORed negations.
fn field(values: &[String], not_values: &[String], check: impl Fn(&str) -> Tri) -> Tri {
    let pos = if values.is_empty() {
        Tri::Yes
    } else {
        values.iter().fold(Tri::No, |a, v| a.or(check(v)))
    };
    let neg = if not_values.is_empty() {
        Tri::Yes
    } else {
        not_values.iter().fold(Tri::No, |a, v| a.or(check(v))).not()
    };
    pos.and(neg)
}

fn peer<'a>(f: &'a Facts, part: impl Fn(&'a str) -> Option<String>, pattern: &str) -> Tri {
    Tri::from(
        f.principal
            .as_deref()
            .and_then(part)
            .is_some_and(|v| string_match(pattern, &v)),
    )
}

fn principal_ns(p: &str) -> Option<String> {
    p.split("/ns/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(str::to_string)
}

fn principal_sa(p: &str) -> Option<String> {
    let ns = principal_ns(p)?;
    p.rsplit("/sa/").next().map(|sa| format!("{ns}/{sa}"))
}

fn trust_domain(p: &str) -> Option<String> {
    p.split('/').next().map(str::to_string)
}

fn source(s: &Source, f: &Facts) -> Tri {
    let unknown = |v: &[String], n: &[String]| {
        if v.is_empty() && n.is_empty() {
            Tri::Yes
        } else {
            Tri::Unknown
        }
    };
    field(&s.principals, &s.not_principals, |p| {
        peer(f, |x| Some(x.to_string()), p)
    })
    .and(field(&s.namespaces, &s.not_namespaces, |p| {
        peer(f, principal_ns, p)
    }))
    // Qualified by `for_port`; `serviceAccountRegex` quotes both parts: an exact match.
    .and(field(&s.service_accounts, &s.not_service_accounts, |p| {
        Tri::from(
            f.principal
                .as_deref()
                .and_then(principal_sa)
                .is_some_and(|v| v == p),
        )
    }))
    .and(field(&s.trust_domains, &s.not_trust_domains, |p| {
        peer(f, trust_domain, p)
    }))
    // Probes carry no JWT, so any requestPrincipals requirement fails.
    .and(field(
        &s.request_principals,
        &s.not_request_principals,
        |_| Tri::No,
    ))
    .and(unknown(&s.ip_blocks, &s.not_ip_blocks))
    .and(unknown(&s.remote_ip_blocks, &s.not_remote_ip_blocks))
}

fn request_field(
    f: &Facts,
    get: impl Fn(&Request) -> Option<&str>,
    pattern: &str,
    exact: bool,
) -> Tri {
    match f.request.and_then(get) {
        None => Tri::Unknown,
        Some(v) if exact => Tri::from(v == pattern),
        Some(v) => Tri::from(string_match(
            &pattern.to_ascii_lowercase(),
            &v.to_ascii_lowercase(),
        )),
    }
}

fn operation(o: &Operation, f: &Facts) -> Tri {
    field(&o.ports, &o.not_ports, |p| {
        Tri::from(p == f.port.to_string())
    })
    .and(field(&o.methods, &o.not_methods, |m| {
        request_field(f, |r| Some(&r.method), m, true)
    }))
    .and(field(&o.paths, &o.not_paths, |p| match f.request {
        Some(r) if is_path_template(p) => Tri::from(template_match(p, &r.path)),
        Some(r) => Tri::from(string_match(p, &r.path)),
        None => Tri::Unknown,
    }))
    .and(field(&o.hosts, &o.not_hosts, |h| {
        request_field(f, |r| r.host.as_deref(), h, false)
    }))
}

fn condition(c: &Condition, f: &Facts) -> Tri {
    let value: Option<String> = match c.key.as_str() {
        "source.principal" => f.principal.clone().or_default_empty(),
        "source.namespace" => f
            .principal
            .as_deref()
            .and_then(principal_ns)
            .or_default_empty(),
        "source.serviceAccount" => f
            .principal
            .as_deref()
            .and_then(principal_sa)
            .or_default_empty(),
        "source.trustDomain" => f
            .principal
            .as_deref()
            .and_then(trust_domain)
            .or_default_empty(),
        "destination.port" => Some(f.port.to_string()),
        "request.method" => f.request.map(|r| r.method.clone()),
        _ => None,
    };
    match value {
        None => Tri::Unknown,
        Some(v) => field(&c.values, &c.not_values, |p| Tri::from(string_match(p, &v))),
    }
}

/// A known-absent attribute is the empty string, which no pattern matches.
trait OrEmpty {
    fn or_default_empty(self) -> Option<String>;
}

impl OrEmpty for Option<String> {
    fn or_default_empty(self) -> Option<String> {
        Some(self.unwrap_or_default())
    }
}
