//! Pods Istio's injection webhook refuses: when a pod is to be injected, the injector
//! first validates its annotations, and an invalid one fails the injection; the webhook's
//! `failurePolicy: Fail` makes the API server reject the pod, so it is never created.
//!
//! Istio 1.30.3: `RunTemplate` in `pkg/kube/inject/inject.go` calls `validateAnnotations`
//! (`pkg/kube/inject/validate.go`, the `AnnotationValidation` table) before rendering;
//! `failurePolicy: Fail` is in
//! `manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml`.
//! Port lists are `parsePorts` (comma-separated, each trimmed, 0..=65535, no `*` except a
//! whole `includeInboundPorts: "*"`); IP ranges are `netip.ParsePrefix` per comma-separated
//! entry, untrimmed (`includeOutboundIPRanges` may also be `*`).

use std::collections::BTreeMap;

/// What the webhook does with a pod it injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodAdmission {
    /// The annotations the model checks are valid: the pod is created.
    Created,
    /// An annotation is invalid: the pod is never created.
    Rejected(String),
    /// An annotation the model does not validate decides it.
    Unknown(String),
}

/// Annotations whose validation the model does not reproduce.
const NOT_VALIDATED: [&str; 4] = [
    "proxy.istio.io/config",
    "traffic.sidecar.istio.io/excludeInterfaces",
    "traffic.sidecar.istio.io/kubevirtInterfaces",
    "istio.io/reroute-virtual-interfaces",
];

/// Validates the annotations of a pod the injector is about to inject.
pub fn admission(annotations: &BTreeMap<String, String>) -> PodAdmission {
    let mut errors = Vec::new();
    for (name, value) in annotations {
        if let Some(check) = validator(name)
            && let Err(e) = check(value)
        {
            errors.push(format!(
                "invalid value '{value}' for annotation '{name}': {e}"
            ));
        }
    }
    if !errors.is_empty() {
        return PodAdmission::Rejected(format!(
            "the injection webhook (failurePolicy Fail) rejects the pod: {}",
            errors.join("; ")
        ));
    }
    match NOT_VALIDATED.iter().find(|a| annotations.contains_key(**a)) {
        Some(a) => PodAdmission::Unknown(format!(
            "whether the injection webhook accepts the pod depends on annotation {a}, which the model does not validate"
        )),
        None => PodAdmission::Created,
    }
}

type Check = fn(&str) -> Result<(), String>;

fn validator(name: &str) -> Option<Check> {
    let check: Check = match name {
        "sidecar.istio.io/interceptionMode" => |v| match v {
            "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
            _ => Err(format!(
                "interceptionMode invalid, use REDIRECT,TPROXY,NONE: {v}"
            )),
        },
        "status.sidecar.istio.io/port" => |v| port(v).map(|_| ()),
        "readiness.status.sidecar.istio.io/initialDelaySeconds"
        | "readiness.status.sidecar.istio.io/periodSeconds"
        | "readiness.status.sidecar.istio.io/failureThreshold" => {
            |v| v.parse::<u32>().map(|_| ()).map_err(|e| e.to_string())
        }
        "prometheus.istio.io/merge-metrics" => |v| match v {
            "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false"
            | "False" => Ok(()),
            _ => Err("not a boolean".into()),
        },
        "traffic.sidecar.istio.io/includeOutboundIPRanges" => |v| match v {
            "*" => Ok(()),
            _ => cidrs(v),
        },
        "traffic.sidecar.istio.io/excludeOutboundIPRanges" => cidrs,
        "traffic.sidecar.istio.io/includeInboundPorts" => |v| match v {
            "*" => Ok(()),
            _ => ports(v),
        },
        "traffic.sidecar.istio.io/excludeInboundPorts"
        | "traffic.sidecar.istio.io/excludeOutboundPorts" => ports,
        "sidecar.istio.io/proxyCPU"
        | "sidecar.istio.io/proxyMemory"
        | "sidecar.istio.io/proxyCPULimit"
        | "sidecar.istio.io/proxyMemoryLimit" => quantity,
        _ => return None,
    };
    Some(check)
}

/// `parsePort`: the trimmed entry as an unsigned 16-bit number.
fn port(v: &str) -> Result<u16, String> {
    v.trim()
        .parse::<u16>()
        .map_err(|e| format!("failed parsing port '{v}': {e}"))
}

/// `parsePorts`: empty is fine, else every comma-separated entry is a port.
fn ports(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(());
    }
    v.split(',').try_for_each(|p| port(p).map(|_| ()))
}

/// `validateCIDRList`: every comma-separated entry is `address/bits`, untrimmed.
fn cidrs(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    v.split(',').try_for_each(|c| {
        let ok = c.split_once('/').is_some_and(|(ip, bits)| {
            match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
                (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32 && !bits.starts_with('+'),
                (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128 && !bits.starts_with('+'),
                _ => false,
            }
        });
        if ok {
            Ok(())
        } else {
            Err(format!("failed parsing cidr '{c}'"))
        }
    })
}

/// `resource.ParseQuantity`: a signed decimal number with an optional SI, binary or
/// exponent suffix; control characters never.
fn quantity(v: &str) -> Result<(), String> {
    if v.chars().any(char::is_control) {
        return Err("value contains control characters".into());
    }
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let digits = body
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits);
    let number_ok = !number.is_empty() && number != "." && number.matches('.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
        e.strip_prefix(['+', '-'])
            .unwrap_or(e)
            .parse::<u32>()
            .is_ok()
    });
    if number_ok && suffix_ok {
        Ok(())
    } else {
        Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> PodAdmission {
        admission(
            &[(name.to_string(), value.to_string())]
                .into_iter()
                .collect(),
        )
    }

    /// `validate.go` at 1.30.3: which values fail the injection (and so the pod).
    #[test]
    fn annotation_validation_table() {
        let t = "traffic.sidecar.istio.io/";
        let table = [
            (format!("{t}excludeInboundPorts"), "4369, 5671", true),
            (format!("{t}excludeInboundPorts"), "*", false),
            (format!("{t}excludeInboundPorts"), "4369,x", false),
            (format!("{t}excludeInboundPorts"), "80,,90", false),
            (format!("{t}excludeInboundPorts"), "", true),
            (format!("{t}excludeOutboundPorts"), "70000", false),
            (format!("{t}includeInboundPorts"), "*", true),
            (format!("{t}includeInboundPorts"), "8080, *", false),
            // Not validated by the injector at all.
            (format!("{t}includeOutboundPorts"), "x", true),
            (format!("{t}includeOutboundIPRanges"), "", true),
            (format!("{t}includeOutboundIPRanges"), "*", true),
            (format!("{t}includeOutboundIPRanges"), "10.96.0.0/12", true),
            // A bare address is no prefix; entries are not trimmed.
            (format!("{t}excludeOutboundIPRanges"), "10.0.0.1", false),
            (
                format!("{t}excludeOutboundIPRanges"),
                "10.0.0.0/8, 10.1.0.0/16",
                false,
            ),
            ("sidecar.istio.io/interceptionMode".into(), "TPROXY", true),
            ("sidecar.istio.io/interceptionMode".into(), "tproxy", false),
            ("status.sidecar.istio.io/port".into(), "15020", true),
            ("sidecar.istio.io/proxyCPU".into(), "100m", true),
            ("sidecar.istio.io/proxyMemory".into(), "1Gi", true),
            ("sidecar.istio.io/proxyCPU".into(), "100m\t", false),
            ("sidecar.istio.io/proxyCPU".into(), "invalid", false),
            ("sidecar.istio.io/proxyCPU".into(), "", false),
        ];
        for (name, value, created) in table {
            let got = with(&name, value);
            assert_eq!(
                got == PodAdmission::Created,
                created,
                "{name}={value:?}: {got:?}"
            );
            if !created {
                assert!(
                    matches!(&got, PodAdmission::Rejected(why) if why.contains(&name)),
                    "{got:?}"
                );
            }
        }
        assert!(matches!(
            with(
                "proxy.istio.io/config",
                "holdApplicationUntilProxyStarts: true"
            ),
            PodAdmission::Unknown(_)
        ));
    }
}
