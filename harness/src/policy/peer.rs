//! PeerAuthentication: the mTLS mode a workload's sidecar accepts on each port.
//!
//! Istio 1.30 (`pilot/pkg/security/authn/policy_applier.go`, `ComposePeerAuthentication`,
//! and `pilot/pkg/model/authentication.go`):
//! - the mesh policy (root namespace, no selector) < the namespace policy < one workload
//!   policy (with a selector, outside the root namespace); the oldest wins within a scope;
//! - `UNSET` inherits from the scope above; nothing at all means PERMISSIVE;
//! - `portLevelMtls` keys are container ports; a policy without a selector cannot have them
//!   (istiod's validation rejects it, see `crd::rejections`);
//! - selector policies in the root namespace are ignored.

use super::cluster::{Cluster, PodInfo, Ranked};
use super::types::{MtlsMode, PeerSource};
use crate::crd::security::{PeerAuthentication, PeerMode};

/// The mode for one port and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDecision {
    /// The effective mode.
    pub mode: MtlsMode,
    /// The policy it came from.
    pub source: PeerSource,
    /// Policies that exist but do not count, and why.
    pub notes: Vec<String>,
}

fn has_selector(pa: &PeerAuthentication) -> bool {
    pa.spec.selector.as_ref().is_some_and(|s| !s.is_empty())
}

fn mode_of(pa: &PeerAuthentication) -> PeerMode {
    pa.spec.mtls.map(|m| m.mode).unwrap_or_default()
}

fn convert(mode: PeerMode) -> Option<MtlsMode> {
    match mode {
        PeerMode::Unset => None,
        PeerMode::Disable => Some(MtlsMode::Disable),
        PeerMode::Permissive => Some(MtlsMode::Permissive),
        PeerMode::Strict => Some(MtlsMode::Strict),
    }
}

fn source(pa: &PeerAuthentication, scope: &'static str) -> PeerSource {
    PeerSource::PeerAuthentication {
        name: pa.name().to_string(),
        namespace: pa.namespace().to_string(),
        scope,
    }
}

/// The oldest policy without a selector in `namespace`.
fn namespace_wide<'a>(c: &'a Cluster, namespace: &str) -> Option<&'a PeerAuthentication> {
    oldest(
        c.peer_authentications
            .iter()
            .filter(|p| p.object.namespace() == namespace && !has_selector(&p.object)),
    )
}

fn oldest<'a>(
    it: impl Iterator<Item = &'a Ranked<PeerAuthentication>>,
) -> Option<&'a PeerAuthentication> {
    it.min_by_key(|p| p.rank).map(|p| &p.object)
}

/// The effective mode of `pod`'s sidecar for container port `port`.
pub fn workload_mode(c: &Cluster, root: &str, pod: &PodInfo, port: u16) -> PeerDecision {
    let mut notes = Vec::new();
    let applicable: Vec<&Ranked<PeerAuthentication>> = c
        .peer_authentications
        .iter()
        .filter(|p| {
            let ns = p.object.namespace();
            (ns == pod.namespace || ns == root)
                && p.object
                    .spec
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.selects(&pod.labels))
        })
        .collect();
    for p in &applicable {
        if has_selector(&p.object) && p.object.namespace() == root && pod.namespace != root {
            notes.push(format!(
                "PeerAuthentication {}/{root} has a selector in the root namespace and is ignored",
                p.object.name()
            ));
        }
    }
    let mesh = namespace_wide(c, root);
    let namespace = (pod.namespace != root)
        .then(|| namespace_wide(c, &pod.namespace))
        .flatten();
    let workloads: Vec<_> = applicable
        .iter()
        .filter(|p| has_selector(&p.object) && p.object.namespace() != root)
        .collect();
    if workloads.len() > 1 {
        notes.push(format!(
            "{} workload PeerAuthentications select {}; the oldest, {}, wins",
            workloads.len(),
            pod.name,
            workloads
                .iter()
                .min_by_key(|p| p.rank)
                .map(|p| p.object.name())
                .unwrap_or_default()
        ));
    }
    let workload = oldest(workloads.into_iter().copied());

    let (mut mode, mut src) = (MtlsMode::Permissive, PeerSource::MeshDefault);
    for (pa, scope) in [
        (mesh, "mesh"),
        (namespace, "namespace"),
        (workload, "workload"),
    ] {
        if let Some(pa) = pa
            && let Some(m) = convert(mode_of(pa))
        {
            (mode, src) = (m, source(pa, scope));
        }
    }
    if let Some(pa) = workload
        && let Some(port_mtls) = pa.spec.port_level_mtls.get(&u32::from(port))
        && let Some(m) = convert(port_mtls.mode)
    {
        (mode, src) = (m, source(pa, "port"));
    }
    PeerDecision {
        mode,
        source: src,
        notes,
    }
}

/// Istio's `GetNamespaceMutualTLSMode`: the namespace policy, else the mesh policy, else
/// `None` (unknown). Auto mTLS on the client side reads only this.
pub fn namespace_mode(c: &Cluster, root: &str, namespace: &str) -> Option<MtlsMode> {
    let global =
        namespace_wide(c, root).map(|pa| convert(mode_of(pa)).unwrap_or(MtlsMode::Permissive));
    if namespace == root {
        return global;
    }
    match namespace_wide(c, namespace) {
        Some(pa) => Some(convert(mode_of(pa)).unwrap_or(global.unwrap_or(MtlsMode::Permissive))),
        None => global,
    }
}
