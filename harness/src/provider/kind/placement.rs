//! Node placement on kind: which slot each workload and gateway runs in, and whether
//! every flow an expectation names crosses the node-to-node capture point.
//!
//! The capture is taken between nodes (the kind bridge), so a flow whose ends share a
//! node never reaches it. Workloads pin themselves with `slot:`; the ingress gateway is
//! pinned here, by the IstioOperator's `k8s.nodeSelector`, to a slot none of its flow
//! partners uses, so the gateway's flows cross by construction.

use std::collections::BTreeSet;

use crate::scenario::{FlowSelector, Scenario, Step, peers};

/// Where one end of a flow runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A pinned slot.
    Slot(String),
    /// The host (outside every node): its flows always cross the bridge.
    Host,
    /// Not pinned: the scheduler decides.
    Anywhere,
}

/// Whether a flow crosses the capture point, given the placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crossing {
    /// Its ends are on different nodes (or one is the host).
    Crosses,
    /// Both ends are pinned to the same slot: never observable here.
    SameNode(String),
    /// At least one end is not pinned: observable only by luck.
    Unpinned,
}

/// Every wire expectation and control of every capture step.
pub fn expected_flows(s: &Scenario) -> Vec<(&str, &FlowSelector)> {
    s.file
        .phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .filter_map(|step| match step {
            Step::Capture(c) => Some(c),
            _ => None,
        })
        .flat_map(|c| c.expect.iter().chain(&c.controls))
        .map(|e| (e.name.value.as_str(), &e.flow))
        .collect()
}

/// The slots kind labels, one per worker: `a`, `b`, ...
fn slots(s: &Scenario) -> Vec<String> {
    (0..s.file.requires.workers.min(26))
        .map(|i| char::from(b'a' + i as u8).to_string())
        .collect()
}

/// The slot for the ingress gateway: the first one none of its flow partners is pinned to.
pub fn gateway_slot(s: &Scenario) -> Option<String> {
    let partners: BTreeSet<String> = expected_flows(s)
        .into_iter()
        .filter_map(|(_, f)| {
            if f.from.value == peers::INGRESS_GATEWAY {
                Some(f.to.value.clone())
            } else if f.to.value == peers::INGRESS_GATEWAY {
                Some(f.from.value.clone())
            } else {
                None
            }
        })
        .filter_map(|w| s.workload(&w)?.slot.clone())
        .collect();
    slots(s).into_iter().find(|slot| !partners.contains(slot))
}

/// Where a flow end named in a scenario runs.
pub fn end(s: &Scenario, name: &str, gateway: Option<&str>) -> End {
    if name == peers::HOST {
        return End::Host;
    }
    let slot = if name == peers::INGRESS_GATEWAY {
        gateway.map(str::to_string)
    } else {
        s.workload(name).and_then(|w| w.slot.clone())
    };
    slot.map_or(End::Anywhere, End::Slot)
}

/// Whether a flow crosses the node-to-node capture point.
pub fn crossing(s: &Scenario, flow: &FlowSelector, gateway: Option<&str>) -> Crossing {
    match (
        end(s, &flow.from.value, gateway),
        end(s, &flow.to.value, gateway),
    ) {
        (End::Host, _) | (_, End::Host) => Crossing::Crosses,
        (End::Slot(a), End::Slot(b)) if a == b => Crossing::SameNode(a),
        (End::Slot(_), End::Slot(_)) => Crossing::Crosses,
        _ => Crossing::Unpinned,
    }
}

/// The placement lines of the plan: each workload's and the gateway's slot.
pub fn lines(s: &Scenario) -> Vec<String> {
    let mut out: Vec<String> = s
        .file
        .workloads
        .iter()
        .map(|w| match &w.slot {
            Some(slot) => format!("{}: slot {slot}", w.name.value),
            None => format!("{}: any node (not pinned)", w.name.value),
        })
        .collect();
    if s.file
        .requires
        .mesh
        .as_ref()
        .is_some_and(|m| m.ingress_gateway)
    {
        out.push(match gateway_slot(s) {
            Some(slot) => format!(
                "{}: slot {slot} (k8s.nodeSelector in the IstioOperator)",
                peers::INGRESS_GATEWAY
            ),
            None => format!("{}: any node (no free slot)", peers::INGRESS_GATEWAY),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    fn not_crossing(name: &str) -> Vec<(String, Crossing)> {
        let s = scenario(name);
        let gw = gateway_slot(&s);
        expected_flows(&s)
            .into_iter()
            .map(|(n, f)| (n.to_string(), crossing(&s, f, gw.as_deref())))
            .filter(|(_, c)| *c != Crossing::Crosses)
            .collect()
    }

    #[test]
    fn pii_demo_gateway_is_pinned_away_from_the_web_tier() {
        let s = scenario("pii-demo");
        assert_eq!(gateway_slot(&s).as_deref(), Some("b"));
        assert!(lines(&s).contains(
            &"ingress-gateway: slot b (k8s.nodeSelector in the IstioOperator)".to_string()
        ));
    }

    #[test]
    fn every_expected_flow_crosses_the_capture_point_by_construction() {
        assert_eq!(not_crossing("pii-demo"), []);
        assert_eq!(not_crossing("xnat"), []);
    }

    #[test]
    fn flows_between_ends_on_one_slot_are_not_observable() {
        let s = scenario("xnat");
        let mut f = expected_flows(&s)[0].1.clone();
        f.from.value = "xnat-client".into();
        f.to.value = "alb-proxy".into();
        assert_eq!(crossing(&s, &f, None), Crossing::SameNode("b".into()));
    }
}
