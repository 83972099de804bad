//! The Istio `Sidecar` resource that scopes a client's outbound side: which one applies,
//! whether it makes outbound traffic `REGISTRY_ONLY`, and which hosts it lets the client see.
//!
//! Istio 1.30.3, `pilot/pkg/model/push_context.go`:
//! - `initSidecarScopes` orders Sidecars with a selector first, then by age, and keeps the
//!   first selector-less Sidecar of the root namespace as `meshRootSidecarConfig`;
//! - `getSidecarScope` (`doGetSidecarScope`) gives a sidecar the first Sidecar of its own
//!   namespace whose selector its labels satisfy (an empty selector matches every pod), else
//!   that namespace's selector-less one, else the root namespace's: the root Sidecar is the
//!   default for every namespace without its own, and for pods no selector Sidecar matches.
//!
//! `pilot/pkg/model/sidecar.go` `convertIstioListenerToWrapper`: egress hosts are
//! `namespace/dnsName`; `.` is the client's own namespace (also for the root Sidecar),
//! `*` any namespace; a dnsName is exact, `*.suffix` or `*`. An egress listener with a
//! port claims that port; the others serve the rest. A Sidecar without egress listeners
//! sees everything. A host the client cannot see is not in its registry: under
//! `REGISTRY_ONLY` it goes to the BlackHoleCluster, under `ALLOW_ANY` to the
//! PassthroughCluster, which originates no TLS.

use std::collections::BTreeMap;

use super::cluster::Cluster;
use crate::crd::networking::{OutboundMode, Sidecar};

/// The Sidecar that applies to a pod with these labels in `namespace`, if any.
pub fn for_pod<'a>(
    c: &'a Cluster,
    root: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<&'a Sidecar> {
    let mut ordered: Vec<_> = c.sidecars.iter().collect();
    ordered.sort_by_key(|r| (r.object.spec.workload_selector.is_none(), r.rank));
    let selects = |s: &Sidecar| {
        s.spec
            .workload_selector
            .as_ref()
            .is_none_or(|w| w.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    ordered
        .iter()
        .map(|r| &r.object)
        .find(|s| s.namespace() == namespace && selects(s))
        .or_else(|| {
            ordered
                .iter()
                .map(|r| &r.object)
                .find(|s| s.namespace() == root && s.spec.workload_selector.is_none())
        })
}

/// `REGISTRY_ONLY` for a client under this Sidecar: its own setting, else the mesh's.
pub fn registry_only(sidecar: Option<&Sidecar>, mesh_registry_only: bool) -> bool {
    match sidecar.and_then(|s| s.spec.outbound_traffic_policy.as_ref()) {
        Some(p) => p.mode == OutboundMode::RegistryOnly,
        None => mesh_registry_only,
    }
}

/// Why a client under `sidecar` in `client_ns` does not see `host` (in `host_ns`) on
/// `port`, or `None` when it does.
pub fn hidden(
    sidecar: Option<&Sidecar>,
    client_ns: &str,
    host_ns: &str,
    host: &str,
    port: u16,
) -> Option<String> {
    let s = sidecar?;
    if s.spec.egress.is_empty() {
        return None;
    }
    let claimed: Vec<_> = s
        .spec
        .egress
        .iter()
        .filter(|l| l.port.as_ref().is_some_and(|p| p.number == u32::from(port)))
        .collect();
    let listeners = if claimed.is_empty() {
        s.spec.egress.iter().filter(|l| l.port.is_none()).collect()
    } else {
        claimed
    };
    let seen = listeners
        .iter()
        .flat_map(|l| &l.hosts)
        .any(|h| egress_host_matches(h, client_ns, host_ns, host));
    (!seen).then(|| {
        format!(
            "{host} is not among the egress hosts of Sidecar {}/{}",
            s.name(),
            s.namespace()
        )
    })
}

/// One `namespace/dnsName` egress host against a host in a namespace.
fn egress_host_matches(pattern: &str, client_ns: &str, host_ns: &str, host: &str) -> bool {
    let Some((ns, name)) = pattern.split_once('/') else {
        return false;
    };
    let ns = if ns == "." { client_ns } else { ns };
    let ns_ok = ns == "*" || ns == host_ns;
    let name_ok = match name.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => name == host,
    };
    ns_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_hosts() {
        let h = "web.demo.svc.cluster.local";
        assert!(egress_host_matches("./*", "demo", "demo", h));
        assert!(!egress_host_matches("./*", "other", "demo", h));
        assert!(egress_host_matches(
            "*/*.demo.svc.cluster.local",
            "x",
            "demo",
            h
        ));
        assert!(egress_host_matches(
            "demo/web.demo.svc.cluster.local",
            "x",
            "demo",
            h
        ));
        assert!(!egress_host_matches("~/*", "demo", "demo", h));
        assert!(!egress_host_matches("*", "demo", "demo", h));
    }
}
