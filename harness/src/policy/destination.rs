//! DestinationRule lookup and the client TLS it sets for one service port.
//!
//! Istio 1.30 (`pilot/pkg/model/push_context.go` `destinationRule`, `destination_rule.go`,
//! `sidecar.go`, `networking/util` `MergeSubsetTrafficPolicy`):
//! - short hosts resolve against the rule's namespace (`rabbitmq` ->
//!   `rabbitmq.<ns>.svc.cluster.local`); `*.ns.svc.cluster.local` wildcards match by suffix
//!   and the most specific host wins (exact beats wildcard, longer beats shorter);
//! - lookup order: the client's namespace, then rules exported from the service's
//!   namespace, then the root namespace; the first namespace with a match decides;
//! - rules for the same host in one namespace merge as `mergeDestinationRule` does (see
//!   [`merge`]): the oldest top-level traffic policy wins, subsets are concatenated, and a
//!   selector-less rule exported to `.` merges into the selector rules;
//! - a rule with a `workloadSelector` applies only to matching clients in its namespace;
//! - `portLevelSettings` are keyed by Service port and replace the top level entirely: a
//!   port entry without `tls` means "no TLS setting" (auto mTLS), not "inherit".

use std::collections::BTreeMap;

use super::cluster::Cluster;
use crate::crd::WorkloadSelector;
use crate::crd::networking::{ClientTlsMode, ClientTlsSettings, Subset, TrafficPolicy};

/// DestinationRules for one host in one namespace, merged as Istio merges them.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedRule {
    /// The resolved host.
    pub host: String,
    /// The namespace the rules live in.
    pub namespace: String,
    /// `name` of every merged rule, oldest first.
    pub from: Vec<String>,
    /// The effective top-level traffic policy.
    pub traffic_policy: Option<TrafficPolicy>,
    /// Subsets from every merged rule.
    pub subsets: Vec<Subset>,
    /// The client selector, if any.
    pub selector: Option<WorkloadSelector>,
    exported: Vec<String>,
}

/// Resolves a short host against a namespace, as `ResolveShortnameToFQDN` does.
pub fn resolve_host(host: &str, namespace: &str, domain: &str) -> String {
    if host == "*" || host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.{domain}")
    }
}

fn is_wildcard(host: &str) -> bool {
    host.starts_with('*')
}

/// `host.MoreSpecific`: non-wildcards before wildcards, then longer, then alphabetical.
fn more_specific(a: &str, b: &str) -> bool {
    match (is_wildcard(a), is_wildcard(b)) {
        (true, false) => false,
        (false, true) => true,
        _ if a.len() == b.len() => a < b,
        _ => a.len() > b.len(),
    }
}

/// `MostSpecificHostMatch` over the hosts of `rules`.
fn most_specific<'a>(needle: &str, rules: &'a [MergedRule]) -> Option<&'a str> {
    if let Some(exact) = rules
        .iter()
        .find(|r| !is_wildcard(&r.host) && r.host == needle)
    {
        return Some(&exact.host);
    }
    rules
        .iter()
        .filter(|r| is_wildcard(&r.host) && needle.ends_with(&r.host[1..]))
        .map(|r| r.host.as_str())
        .reduce(|best, h| if more_specific(h, best) { h } else { best })
}

/// Visibility of a rule's `exportTo` set (empty means the mesh default, `*`).
fn visible_to(exported: &[String], own: &str, client: &str) -> bool {
    exported.is_empty()
        || exported
            .iter()
            .any(|e| e == "*" || e == client || (e == "." && own == client))
}

fn private_only(exported: &[String], own: &str) -> bool {
    exported.len() == 1 && (exported[0] == "." || exported[0] == own)
}

/// All rules indexed per namespace and merged per host, in creation order.
pub struct RuleIndex {
    local: BTreeMap<String, Vec<MergedRule>>,
    exported: BTreeMap<String, Vec<MergedRule>>,
    root_local: Vec<MergedRule>,
}

impl RuleIndex {
    /// Builds the index as `setDestinationRules` does.
    pub fn new(c: &Cluster, root: &str, domain: &str) -> RuleIndex {
        let mut rules: Vec<_> = c.destination_rules.iter().collect();
        // Rules with a selector first, then by age, as `sortConfigBySelectorAndCreationTime`.
        rules.sort_by_key(|r| (r.object.spec.workload_selector.is_none(), r.rank));
        let mut index = RuleIndex {
            local: BTreeMap::new(),
            exported: BTreeMap::new(),
            root_local: Vec::new(),
        };
        for r in rules {
            let ns = r.object.namespace().to_string();
            let spec = &r.object.spec;
            let exported = if spec.workload_selector.is_some() {
                vec![".".to_string()]
            } else {
                spec.export_to.clone()
            };
            let rule = MergedRule {
                host: resolve_host(&spec.host, &ns, domain),
                namespace: ns.clone(),
                from: vec![r.object.name().to_string()],
                traffic_policy: spec.traffic_policy.clone(),
                subsets: spec.subsets.clone(),
                selector: spec.workload_selector.clone(),
                exported: exported.clone(),
            };
            if visible_to(&exported, &ns, &ns) || exported.iter().any(|e| e == ".") {
                merge(index.local.entry(ns.clone()).or_default(), rule.clone());
            }
            if !private_only(&exported, &ns) {
                merge(index.exported.entry(ns.clone()).or_default(), rule);
            } else if ns == root {
                merge(&mut index.root_local, rule);
            }
        }
        index
    }

    /// The rule a client in `client_ns` with `client_labels` uses for `host`, if any.
    pub fn lookup(
        &self,
        root: &str,
        client_ns: &str,
        client_labels: &BTreeMap<String, String>,
        host: &str,
        service_ns: &str,
    ) -> Option<&MergedRule> {
        let candidates = self.candidates(root, client_ns, host, service_ns);
        // `SidecarScope.DestinationRule`: a matching selector rule in the client's own
        // namespace wins; otherwise the (last) rule without a selector.
        let mut catch_all = None;
        for rule in candidates {
            match &rule.selector {
                None => catch_all = Some(rule),
                Some(sel) if rule.namespace == client_ns && sel.selects(client_labels) => {
                    return Some(rule);
                }
                Some(_) => {}
            }
        }
        catch_all
    }

    fn candidates(
        &self,
        root: &str,
        client_ns: &str,
        host: &str,
        service_ns: &str,
    ) -> Vec<&MergedRule> {
        fn pick<'a>(host: &str, rules: &'a [MergedRule]) -> Option<Vec<&'a MergedRule>> {
            let best = most_specific(host, rules)?;
            Some(rules.iter().filter(|r| r.host == best).collect())
        }
        let local = if client_ns == root {
            Some(self.root_local.as_slice())
        } else {
            self.local.get(client_ns).map(Vec::as_slice)
        };
        if let Some(found) = local.and_then(|rules| pick(host, rules)) {
            return found;
        }
        for ns in [service_ns, root] {
            if let Some(found) = self
                .exported
                .get(ns)
                .map(Vec::as_slice)
                .and_then(|rules| pick(host, rules))
            {
                let visible: Vec<_> = found
                    .into_iter()
                    .filter(|r| visible_to(&r.exported, &r.namespace, client_ns))
                    .collect();
                if !visible.is_empty() {
                    return visible;
                }
            }
        }
        Vec::new()
    }
}

/// `mergeDestinationRule` (`pilot/pkg/model/destination_rule.go` at 1.30.3, with
/// `ENABLE_ENHANCED_DESTINATIONRULE_MERGE` on, its default). For each rule already kept
/// for the host: equal exportTo sets merge; an incoming set that is a superset of a
/// non-empty existing one merges and is also kept on its own; other sets do not merge.
/// Two different selectors never merge. A selector-less rule meeting a selector rule
/// (rules with selectors come first and are exported to `.` only) gives it its subsets,
/// and its traffic policy when the selector rule has none; with exportTo exactly `["."]`
/// it is then not a rule of its own (`TestSetDestinationRuleWithWorkloadSelector`).
fn merge(list: &mut Vec<MergedRule>, rule: MergedRule) {
    let mut append_separately = true;
    let incoming = set(&rule.exported);
    for m in list.iter_mut().filter(|m| m.host == rule.host) {
        let existing = set(&m.exported);
        if incoming == existing {
            append_separately = false;
        } else if !existing.is_empty() && incoming.is_superset(&existing) {
            append_separately = true;
        } else {
            append_separately = true;
            continue;
        }
        let labels = |r: &MergedRule| r.selector.as_ref().map(|s| s.match_labels.clone());
        match (labels(&*m), labels(&rule)) {
            (Some(a), Some(b)) if a != b => {
                append_separately = true;
                continue;
            }
            (Some(_), Some(_)) | (None, None) => append_separately = false,
            _ => {}
        }
        m.from.extend(rule.from.iter().cloned());
        for s in &rule.subsets {
            if !m.subsets.iter().any(|e| e.name == s.name) {
                m.subsets.push(s.clone());
            }
        }
        if m.traffic_policy.is_none() {
            m.traffic_policy = rule.traffic_policy.clone();
        }
    }
    if append_separately {
        list.push(rule);
    }
}

fn set(values: &[String]) -> std::collections::BTreeSet<&str> {
    values.iter().map(String::as_str).collect()
}

/// `GetPortLevelTrafficPolicy` followed by the TLS of the result, plus whether a port
/// entry matched.
fn port_tls(policy: Option<&TrafficPolicy>, port: u16) -> (Option<ClientTlsSettings>, bool) {
    let Some(policy) = policy else {
        return (None, false);
    };
    match policy
        .port_level_settings
        .iter()
        .find(|p| p.port.is_some_and(|s| s.number == u32::from(port)))
    {
        Some(entry) => (entry.tls.clone(), true),
        None => (policy.tls.clone(), false),
    }
}

/// The TLS settings the client-side cluster gets for a Service port and subset
/// (`MergeSubsetTrafficPolicy`); `None` means auto mTLS decides.
pub fn cluster_tls(rule: &MergedRule, port: u16, subset: &str) -> Option<ClientTlsSettings> {
    let (top, _) = port_tls(rule.traffic_policy.as_ref(), port);
    let subset_policy = rule
        .subsets
        .iter()
        .find(|s| s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    let Some(subset_policy) = subset_policy else {
        return top;
    };
    let (sub, has_port_level) = port_tls(Some(subset_policy), port);
    if rule.traffic_policy.is_none() || sub.is_some() || has_port_level {
        sub
    } else {
        top
    }
}

/// The mode the endpoint builder's mTLS checker reads from a rule
/// (`tlsModeForDestinationRule`): a port entry counts only if it sets `tls`.
pub fn endpoint_tls_mode(rule: &MergedRule, port: u16, subset: &str) -> Option<ClientTlsMode> {
    let policy = if subset.is_empty() {
        rule.traffic_policy.as_ref()
    } else {
        rule.subsets
            .iter()
            .find(|s| s.name == subset)?
            .traffic_policy
            .as_ref()
    }?;
    let port_level = policy
        .port_level_settings
        .iter()
        .find(|p| p.port.is_some_and(|s| s.number == u32::from(port)) && p.tls.is_some())
        .and_then(|p| p.tls.as_ref());
    port_level.or(policy.tls.as_ref()).map(|t| t.mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_resolution_and_specificity() {
        assert_eq!(
            resolve_host("rabbitmq", "mq", "cluster.local"),
            "rabbitmq.mq.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("*.mq.svc.cluster.local", "x", "cluster.local"),
            "*.mq.svc.cluster.local"
        );
        assert_eq!(resolve_host("*", "x", "cluster.local"), "*");
        assert!(more_specific(
            "a.mq.svc.cluster.local",
            "*.mq.svc.cluster.local"
        ));
        assert!(more_specific("*.mq.svc.cluster.local", "*.cluster.local"));
        assert!(!more_specific("*", "*.cluster.local"));
    }
}
