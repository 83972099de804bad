//! VirtualServices for mesh traffic: which DestinationRule subsets a sidecar client's
//! connection to a Service can be routed to, so that subset-level TLS is applied.
//!
//! Istio 1.30: a VirtualService applies to sidecars when its `gateways` is empty or lists
//! `mesh`; its hosts are resolved against its namespace; HTTP routes are tried in order
//! and the first match wins (`uri`, `method`, `port`, `gateways`, `sourceLabels`,
//! `sourceNamespace`); TCP routes match on `port`, `sourceLabels`, `sourceNamespace`. The
//! model answers with every subset the connection can take: one when a route surely
//! matches and has one destination, several when weights split or a match reads what the
//! model does not know (headers, query parameters, regexes, subnets). The caller decides
//! whether those subsets differ in what matters on the wire.

use std::collections::BTreeMap;

use super::context::Ctx;
use super::destination::resolve_host;
use super::gateway::host_matches;
use super::types::Request;
use crate::crd::StringMatch;
use crate::crd::networking::{Destination, HttpMatchRequest, L4MatchAttributes, VirtualService};

/// Where a client's connection to a Service can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// The VirtualService that routes it, `name/namespace`, if any.
    pub by: Option<String>,
    /// Every subset it can take (`""` for the whole Service).
    pub subsets: Vec<String>,
    /// Why the model cannot follow it, if a route leaves the Service.
    pub elsewhere: Option<String>,
}

/// What the client is and sends.
pub struct Client<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its pod labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The HTTP request, for HTTP ports, when known.
    pub request: Option<&'a Request>,
    /// The port speaks HTTP.
    pub http: bool,
}

/// The subsets a connection from `client` to `host` (a Service FQDN) on `port` can take.
pub fn routing(ctx: &Ctx, client: &Client, host: &str, port: u16) -> Routing {
    let Some(vs) = bound(ctx, client.namespace, host) else {
        return Routing {
            by: None,
            subsets: vec![String::new()],
            elsewhere: None,
        };
    };
    let by = format!("{}/{}", vs.name(), vs.namespace());
    let mut destinations: Vec<&Destination> = Vec::new();
    if client.http {
        for r in &vs.spec.http {
            let m = if r.matches.is_empty() {
                Some(true)
            } else {
                any(r.matches.iter().map(|m| http_match(m, client, port)))
            };
            if m == Some(false) {
                continue;
            }
            destinations.extend(r.route.iter().map(|d| &d.destination));
            if m == Some(true) {
                break;
            }
        }
    } else {
        for r in &vs.spec.tcp {
            let m = if r.matches.is_empty() {
                Some(true)
            } else {
                any(r.matches.iter().map(|m| l4_match(m, client, port)))
            };
            if m == Some(false) {
                continue;
            }
            destinations.extend(r.route.iter().map(|d| &d.destination));
            if m == Some(true) {
                break;
            }
        }
    }
    let elsewhere = destinations
        .iter()
        .map(|d| resolve_host(&d.host, vs.namespace(), &ctx.mesh.domain))
        .find(|h| h != host)
        .map(|h| {
            format!("VirtualService {by} may route it to {h}, which the model does not follow")
        });
    let mut subsets: Vec<String> = destinations.iter().map(|d| d.subset.clone()).collect();
    if subsets.is_empty() {
        // No route matches: the default route to the Service itself.
        subsets.push(String::new());
    }
    subsets.sort();
    subsets.dedup();
    Routing {
        by: Some(by),
        subsets,
        elsewhere,
    }
}

/// The oldest VirtualService for `host` that applies to sidecars in `client_ns`.
fn bound<'a>(ctx: &'a Ctx, client_ns: &str, host: &str) -> Option<&'a VirtualService> {
    ctx.cluster
        .virtual_services
        .iter()
        .map(|r| &r.object)
        .filter(|vs| vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh"))
        .filter(|vs| {
            vs.spec.export_to.is_empty()
                || vs.spec.export_to.iter().any(|e| {
                    e == "*" || e == client_ns || (e == "." && vs.namespace() == client_ns)
                })
        })
        .find(|vs| {
            vs.spec.hosts.iter().any(|h| {
                let resolved = resolve_host(h, vs.namespace(), &ctx.mesh.domain);
                host_matches(&resolved, Some(host))
            })
        })
}

/// Three-valued OR over matches.
fn any(results: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for r in results {
        match r {
            Some(true) => return Some(true),
            None => unknown = true,
            Some(false) => {}
        }
    }
    if unknown { None } else { Some(false) }
}

/// Three-valued AND.
fn all(results: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for r in results {
        match r {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown { None } else { Some(true) }
}

fn string(m: &StringMatch, value: Option<&str>) -> Option<bool> {
    let value = value?;
    if m.regex.is_some() {
        return None;
    }
    Some(
        m.exact.as_deref().is_none_or(|e| e == value)
            && m.prefix.as_deref().is_none_or(|p| value.starts_with(p)),
    )
}

fn source(labels: &BTreeMap<String, String>, ns: &str, c: &Client) -> Option<bool> {
    Some(
        labels.iter().all(|(k, v)| c.labels.get(k) == Some(v))
            && (ns.is_empty() || ns == c.namespace),
    )
}

fn mesh_gateway(gateways: &[String]) -> Option<bool> {
    Some(gateways.is_empty() || gateways.iter().any(|g| g == "mesh"))
}

fn http_match(m: &HttpMatchRequest, c: &Client, port: u16) -> Option<bool> {
    let unknown_fields = !m.headers.is_empty()
        || !m.query_params.is_empty()
        || !m.without_headers.is_empty()
        || m.scheme.is_some()
        || m.authority.is_some();
    all([
        if unknown_fields { None } else { Some(true) },
        m.uri.as_ref().map_or(Some(true), |u| {
            string(u, c.request.map(|r| r.path.as_str()))
        }),
        m.method.as_ref().map_or(Some(true), |u| {
            string(u, c.request.map(|r| r.method.as_str()))
        }),
        Some(m.port.is_none_or(|p| p == u32::from(port))),
        mesh_gateway(&m.gateways),
        source(&m.source_labels, &m.source_namespace, c),
    ])
}

fn l4_match(m: &L4MatchAttributes, c: &Client, port: u16) -> Option<bool> {
    all([
        if m.destination_subnets.is_empty() && m.source_subnet.is_empty() {
            Some(true)
        } else {
            None
        },
        Some(m.port.is_none_or(|p| p == u32::from(port))),
        mesh_gateway(&m.gateways),
        source(&m.source_labels, &m.source_namespace, c),
    ])
}
