//! Who gets a sidecar, and which ports it intercepts.
//!
//! Istio: the default-revision injection webhook's selectors (namespace label
//! `istio-injection` or `istio.io/rev`, pod labels `sidecar.istio.io/inject` and
//! `istio.io/rev`) followed by the injector's own `injectRequired` (label preferred over
//! the legacy annotation, `hostNetwork` and the ignored namespaces never injected), as in
//! Istio 1.30.3's `mutatingwebhook.yaml` and `pkg/kube/inject/inject.go`. Interception
//! follows the `traffic.sidecar.istio.io/*` annotations of pods the webhook admits
//! ([`super::inject_webhook`] decides that).
//!
//! Consul: `consul.hashicorp.com/connect-inject` and `.../transparent-proxy` (pod
//! annotation, then namespace label, then the install default).

use std::collections::BTreeMap;

use super::cluster::PodInfo;
use crate::crd::consul::annotations as consul;

/// Whether a pod has a mesh proxy, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// The pod runs a proxy.
    pub injected: bool,
    /// Why, for notes and tables.
    pub reason: String,
}

fn injection(injected: bool, reason: impl Into<String>) -> Injection {
    Injection {
        injected,
        reason: reason.into(),
    }
}

const INJECT: &str = "sidecar.istio.io/inject";
const REV: &str = "istio.io/rev";
const NS_INJECTION: &str = "istio-injection";

/// `IgnoredNamespaces` (`pkg/kube/inject/initializer.go` at 1.30.3): `injectRequired`
/// never injects pods there, whatever their labels.
const IGNORED_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// Whether Istio's default-revision injector adds a sidecar to pods of this template.
///
/// The default revision's webhooks (`mutatingwebhook.yaml` at 1.30.3) fire for: a
/// namespace labelled `istio-injection=enabled`; a namespace labelled `istio.io/rev=default`
/// without `istio-injection`; and, in a namespace with neither label, a pod labelled
/// `istio.io/rev=default`, or `sidecar.istio.io/inject=true` *without* `istio.io/rev` (a
/// pod naming another revision is that revision's, even with `inject=true`). In each case
/// a pod label `sidecar.istio.io/inject=false` opts out.
pub fn istio_sidecar(ns_labels: &BTreeMap<String, String>, pod: &PodInfo) -> Injection {
    if pod.host_network {
        return injection(false, "hostNetwork pods are never injected");
    }
    if IGNORED_NAMESPACES.contains(&pod.namespace.as_str()) {
        return injection(
            false,
            format!("namespace {} is never injected", pod.namespace),
        );
    }
    let pod_label = pod.labels.get(INJECT).map(String::as_str);
    let pod_rev = pod.labels.get(REV).map(String::as_str);
    let webhook = match (
        ns_labels.get(NS_INJECTION).map(String::as_str),
        ns_labels.get(REV).map(String::as_str),
    ) {
        (Some("enabled"), _) => pod_label != Some("false"),
        (Some(other), _) => {
            return injection(false, format!("namespace label {NS_INJECTION}={other}"));
        }
        (None, Some("default")) => pod_label != Some("false"),
        (None, Some(rev)) => {
            return injection(
                false,
                format!(
                    "namespace label {REV}={rev} selects revision {rev}, not the default revision"
                ),
            );
        }
        (None, None) => match pod_rev {
            Some("default") => pod_label != Some("false"),
            Some(rev) => {
                return injection(
                    false,
                    format!(
                        "pod label {REV}={rev} selects revision {rev}, not the default revision"
                    ),
                );
            }
            None => pod_label == Some("true"),
        },
    };
    if !webhook {
        return injection(false, "no injection label on the namespace or the pod");
    }
    // The injector itself prefers the pod label over the deprecated annotation.
    let selector = pod_label.or(pod.annotations.get(INJECT).map(String::as_str));
    if selector == Some("false") {
        return injection(false, format!("{INJECT}=\"false\" on the pod"));
    }
    let why = match ns_labels.get(NS_INJECTION) {
        Some(_) => format!("namespace label {NS_INJECTION}=enabled"),
        None if ns_labels.contains_key(REV) => format!("namespace label {REV}=default"),
        None if pod_rev.is_some() => format!("pod label {REV}=default"),
        None => format!("pod label {INJECT}=true"),
    };
    injection(true, why)
}

/// Ports a sidecar does or does not intercept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interception {
    /// Inbound ports listed in `includeInboundPorts`; `None` means every port (`*`).
    pub include_inbound: Option<Vec<u16>>,
    /// `excludeInboundPorts`.
    pub exclude_inbound: Vec<u16>,
    /// `excludeOutboundPorts`.
    pub exclude_outbound: Vec<u16>,
    /// `includeOutboundPorts`: captured whatever the IP ranges say.
    pub include_outbound_ports: Vec<u16>,
    /// `includeOutboundIPRanges` is empty: nothing else is captured outbound.
    pub no_outbound_ranges: bool,
    /// IP ranges decide what is captured outbound (`includeOutboundIPRanges` other than
    /// empty or `*`, or `excludeOutboundIPRanges`): the model has no addresses to apply them.
    pub outbound_ranges: Option<String>,
    /// Annotations we could not read, or could not evaluate without IP addresses.
    pub notes: Vec<String>,
}

impl Interception {
    /// True when inbound traffic to this container port goes through the sidecar.
    pub fn inbound(&self, port: u16) -> bool {
        let included = self
            .include_inbound
            .as_ref()
            .is_none_or(|ports| ports.contains(&port));
        included && !self.exclude_inbound.contains(&port)
    }

    /// True when outbound traffic to this destination port goes through the sidecar.
    pub fn outbound(&self, port: u16) -> bool {
        if self.exclude_outbound.contains(&port) {
            return false;
        }
        !self.no_outbound_ranges || self.include_outbound_ports.contains(&port)
    }
}

/// Reads Istio's `traffic.sidecar.istio.io/*` annotations.
pub fn istio_interception(pod: &PodInfo) -> Interception {
    let a = |key: &str| {
        pod.annotations
            .get(&format!("traffic.sidecar.istio.io/{key}"))
    };
    let mut notes = Vec::new();
    let mut ports = |key: &str| {
        a(key)
            .map(|v| port_list(key, v, &mut notes))
            .unwrap_or_default()
    };
    let include_inbound = match a("includeInboundPorts").map(|v| v.trim()) {
        None | Some("*") => None,
        Some(_) => Some(ports("includeInboundPorts")),
    };
    let exclude_inbound = ports("excludeInboundPorts");
    let exclude_outbound = ports("excludeOutboundPorts");
    let include_outbound_ports = ports("includeOutboundPorts");
    let no_outbound_ranges = a("includeOutboundIPRanges").is_some_and(|v| v.trim().is_empty());
    let outbound_ranges = match (
        a("includeOutboundIPRanges").map(|v| v.trim()),
        a("excludeOutboundIPRanges").map(|v| v.trim()),
    ) {
        (Some(include), _) if !include.is_empty() && include != "*" => {
            Some(format!("includeOutboundIPRanges {include}"))
        }
        (_, Some(exclude)) if !exclude.is_empty() => {
            Some(format!("excludeOutboundIPRanges {exclude}"))
        }
        _ => None,
    };
    Interception {
        include_inbound,
        exclude_inbound,
        exclude_outbound,
        include_outbound_ports,
        no_outbound_ranges,
        outbound_ranges,
        notes,
    }
}

/// Parses `"4369, 5671"`; entries that are not ports are reported and skipped.
pub fn port_list(key: &str, value: &str, notes: &mut Vec<String>) -> Vec<u16> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "*")
        .filter_map(|s| match s.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) => {
                notes.push(format!("{key}: `{s}` is not a port; ignored"));
                None
            }
        })
        .collect()
}

/// Consul settings that decide whether a pod is in the mesh and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConsulDefaults {
    /// `connectInject.default`.
    pub inject: bool,
    /// `connectInject.transparentProxy.defaultEnabled`.
    pub transparent_proxy: bool,
}

/// Whether consul-k8s injects the Consul dataplane into pods of this template.
pub fn consul_injected(pod: &PodInfo, defaults: ConsulDefaults) -> Injection {
    match pod.annotations.get(consul::INJECT).map(String::as_str) {
        Some("true") => injection(true, format!("{}=\"true\"", consul::INJECT)),
        Some("false") => injection(false, format!("{}=\"false\"", consul::INJECT)),
        _ if defaults.inject => injection(true, "connectInject.default is true"),
        _ => injection(
            false,
            "connectInject.default is false and the pod does not opt in",
        ),
    }
}

/// Whether the pod runs with Consul's transparent proxy.
pub fn consul_transparent_proxy(
    ns_labels: &BTreeMap<String, String>,
    pod: &PodInfo,
    defaults: ConsulDefaults,
) -> bool {
    let read = |v: Option<&String>| v.and_then(|v| v.parse::<bool>().ok());
    read(pod.annotations.get(consul::TRANSPARENT_PROXY))
        .or_else(|| read(ns_labels.get(consul::TRANSPARENT_PROXY)))
        .unwrap_or(defaults.transparent_proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PodInfo {
        let map = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        PodInfo {
            name: "web".into(),
            namespace: "demo".into(),
            labels: map(labels),
            annotations: map(annotations),
            ..PodInfo::default()
        }
    }

    fn ns(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn istio_injection_table() {
        let enabled = ns(&[(NS_INJECTION, "enabled")]);
        let disabled = ns(&[(NS_INJECTION, "disabled")]);
        let rev = ns(&[(REV, "default")]);
        let none = ns(&[]);
        let table = [
            (&enabled, pod(&[], &[]), true),
            (&enabled, pod(&[(INJECT, "false")], &[]), false),
            (&enabled, pod(&[], &[(INJECT, "false")]), false),
            // The label wins over the deprecated annotation.
            (
                &enabled,
                pod(&[(INJECT, "true")], &[(INJECT, "false")]),
                true,
            ),
            (&disabled, pod(&[(INJECT, "true")], &[]), false),
            (&rev, pod(&[], &[]), true),
            (&none, pod(&[], &[]), false),
            (&none, pod(&[(INJECT, "true")], &[]), true),
            // The annotation alone does not trigger the webhook.
            (&none, pod(&[], &[(INJECT, "true")]), false),
            (&none, pod(&[(REV, "default")], &[]), true),
            // Another revision's pod is not the default revision's, even with inject=true
            // (the `object.` webhook requires `istio.io/rev` DoesNotExist).
            (&none, pod(&[(INJECT, "true"), (REV, "canary")], &[]), false),
            (&none, pod(&[(REV, "canary")], &[]), false),
            (
                &ns(&[(REV, "canary")]),
                pod(&[(INJECT, "true")], &[]),
                false,
            ),
            (&rev, pod(&[(REV, "canary")], &[]), true),
        ];
        for (i, (labels, p, want)) in table.into_iter().enumerate() {
            assert_eq!(istio_sidecar(labels, &p).injected, want, "case {i}");
        }
        let mut host = pod(&[], &[]);
        host.host_network = true;
        assert!(!istio_sidecar(&enabled, &host).injected);
        // `IgnoredNamespaces` at 1.30.3.
        for ignored in IGNORED_NAMESPACES {
            let mut p = pod(&[(INJECT, "true")], &[]);
            p.namespace = ignored.into();
            assert!(!istio_sidecar(&enabled, &p).injected, "{ignored}");
        }
    }

    #[test]
    fn interception_annotations() {
        let p = pod(
            &[],
            &[
                ("traffic.sidecar.istio.io/excludeInboundPorts", "4369, 5671"),
                ("traffic.sidecar.istio.io/excludeOutboundPorts", "3306,x"),
            ],
        );
        let i = istio_interception(&p);
        assert!(!i.inbound(4369) && !i.inbound(5671) && i.inbound(5672));
        assert!(!i.outbound(3306) && i.outbound(80));
        assert_eq!(
            i.notes,
            ["excludeOutboundPorts: `x` is not a port; ignored"]
        );

        let only = istio_interception(&pod(
            &[],
            &[("traffic.sidecar.istio.io/includeInboundPorts", "8080")],
        ));
        assert!(only.inbound(8080) && !only.inbound(9090));
        let none_out = istio_interception(&pod(
            &[],
            &[
                ("traffic.sidecar.istio.io/includeOutboundIPRanges", ""),
                ("traffic.sidecar.istio.io/includeOutboundPorts", "443"),
            ],
        ));
        assert!(!none_out.outbound(80) && none_out.outbound(443));
    }

    #[test]
    fn consul_injection_and_transparent_proxy() {
        let d = ConsulDefaults {
            inject: false,
            transparent_proxy: true,
        };
        assert!(consul_injected(&pod(&[], &[(consul::INJECT, "true")]), d).injected);
        assert!(!consul_injected(&pod(&[], &[]), d).injected);
        let on = ConsulDefaults { inject: true, ..d };
        assert!(!consul_injected(&pod(&[], &[(consul::INJECT, "false")]), on).injected);

        let off = pod(&[], &[(consul::TRANSPARENT_PROXY, "false")]);
        assert!(!consul_transparent_proxy(&ns(&[]), &off, d));
        assert!(consul_transparent_proxy(&ns(&[]), &pod(&[], &[]), d));
        assert!(!consul_transparent_proxy(
            &ns(&[(consul::TRANSPARENT_PROXY, "false")]),
            &pod(&[], &[]),
            d
        ));
    }
}
