//! Expectations: judging what probes and captures saw against what the scenario says.
//!
//! Everything here is a pure function of the scenario, the observations and the capture,
//! so every rule is unit-tested without a lab. Three rules keep a pass honest:
//! - an expectation about a flow only passes if the capture saw that flow at all;
//! - a capture that saw no packets, or whose negative controls failed, turns every other
//!   verdict of that capture into an error, never a pass;
//! - a capture that lost packets, or a canary search that could not decode everything,
//!   cannot show that something is absent: every verdict that rests on absence (canary
//!   absent, every flow of one class, no flow at all) is then an error naming the loss;
//! - an expectation whose probes were not answered is judged anyway, but says so;
//! - a capture in which the CNI encrypted node-to-node traffic (WireGuard, IPsec) cannot
//!   show the flows inside: an expectation it did not see in clear, or a pass that claims
//!   every flow (a class, an absent canary), is an error there, never a pass.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::policy::ExpectedFlow;
use crate::provider::{CaptureResult, Observation, PeerMap};
use crate::scenario::{Canary, CanaryRule, CaptureStep, Probe, WireExpectation, peers, render};
use crate::verdict::{CheckKind, Evidence, FlowEvidence, Judgement, Verdict};
use crate::wire::{CanaryScanState, Flow, FlowClass};

/// Judges a probe's observation against its `expect`.
pub fn judge_probe(probe: &Probe, obs: &Observation, canary: &Canary) -> Judgement {
    let name = &probe.name.value;
    let expect = &probe.expect;
    let mut wrong = Vec::new();
    if expect.reset == Some(true) {
        if obs.answered && !obs.reset {
            wrong.push(format!(
                "expected the connection to be refused or reset, but it was answered{}",
                status_text(obs)
            ));
        }
    } else if !obs.answered {
        let why = obs.error.clone().unwrap_or_else(|| "no answer".into());
        wrong.push(format!(
            "no answer after {} attempt(s): {why}",
            obs.attempts
        ));
    }
    if let Some(status) = expect.status
        && obs.answered
        && obs.status != Some(status)
    {
        wrong.push(format!(
            "expected HTTP {status}, got {}",
            obs.status.map_or("no status".into(), |s| s.to_string())
        ));
    }
    if let Some(needle) = &expect.body_contains {
        let needle = render(needle, canary);
        if obs.answered && !obs.body.contains(&needle) {
            wrong.push(format!("the answer does not contain `{needle}`"));
        }
    }
    let (verdict, reason) = if wrong.is_empty() {
        (
            Verdict::Pass,
            format!("answered as expected{}", status_text(obs)),
        )
    } else {
        (Verdict::Fail, wrong.join("; "))
    };
    Judgement {
        name: name.clone(),
        kind: CheckKind::Probe,
        verdict,
        reason,
        evidence: Evidence {
            observation: Some(obs.clone()),
            ..Evidence::default()
        },
    }
}

fn status_text(obs: &Observation) -> String {
    obs.status
        .map(|s| format!(" (HTTP {s})"))
        .unwrap_or_default()
}

/// Judges every expectation and control of one capture.
///
/// `probe_verdicts` maps probe names to their own verdicts, so an expectation can say
/// that the traffic it judges may be missing because its probe failed.
pub fn judge_capture(
    step: &CaptureStep,
    capture: &CaptureResult,
    probe_verdicts: &BTreeMap<String, Verdict>,
) -> Vec<Judgement> {
    let controls: Vec<Judgement> = step
        .controls
        .iter()
        .map(|e| judge_wire(e, CheckKind::Control, capture, probe_verdicts))
        .collect();
    let mut expectations: Vec<Judgement> = step
        .expect
        .iter()
        .map(|e| judge_wire(e, CheckKind::Wire, capture, probe_verdicts))
        .collect();
    let gate = if capture.analysis.packets == 0 {
        Some(format!(
            "the capture at {} saw no packets at all, so it proves nothing",
            capture.point
        ))
    } else {
        controls
            .iter()
            .find(|c| c.verdict != Verdict::Pass)
            .map(|c| format!("negative control `{}` failed, so this capture cannot be trusted to see what it says is absent", c.name))
    };
    if let Some(why) = gate {
        for j in expectations
            .iter_mut()
            .filter(|j| j.verdict == Verdict::Pass)
        {
            j.verdict = Verdict::Error;
            j.reason = format!("{why} (on its own it would pass: {})", j.reason);
        }
    }
    controls.into_iter().chain(expectations).collect()
}

/// Judges one wire expectation against a capture.
pub fn judge_wire(
    e: &WireExpectation,
    kind: CheckKind,
    capture: &CaptureResult,
    probe_verdicts: &BTreeMap<String, Verdict>,
) -> Judgement {
    if e.reached == Some(false) {
        return judge_unreached(e, kind, capture);
    }
    let flows: Vec<&Flow> = capture
        .analysis
        .flows
        .iter()
        .filter(|f| selects(e, f, &capture.peers))
        .collect();
    let selector = format!(
        "{} → {}:{}",
        e.flow.from.value, e.flow.to.value, e.flow.port
    );
    let evidence = capture_evidence(&flows, capture);
    let hidden = cni_encrypted(capture);
    let (verdict, reason) = if let (true, Some(why)) = (flows.is_empty(), &hidden) {
        (
            Verdict::Error,
            format!("no flow {selector} was seen in clear; {why}"),
        )
    } else if flows.is_empty() {
        let failed: Vec<&str> = e
            .probes
            .iter()
            .map(|p| p.value.as_str())
            .filter(|p| probe_verdicts.get(*p).is_some_and(|v| *v != Verdict::Pass))
            .collect();
        let mut reason = format!(
            "no flow {selector} was captured; an expectation only counts when its flow is seen"
        );
        if !failed.is_empty() {
            reason.push_str(&format!(
                " (probe {} did not pass, so the traffic may never have been sent)",
                failed.join(", ")
            ));
        }
        (Verdict::Fail, reason)
    } else {
        match (check_flows(e, &flows, &selector), hidden) {
            // What was seen in clear still proves a failure, or a canary's presence; a
            // claim about every flow (a class, an absent canary) may be contradicted by
            // flows inside the encrypted links.
            ((Verdict::Pass, seen), Some(why)) if claims_every_flow(e) => (
                Verdict::Error,
                format!("{seen}, but more flows {selector} may be inside encrypted links; {why}"),
            ),
            (judged, _) => judged,
        }
    };
    let rests_on_absence = match verdict {
        Verdict::Pass => e.class.is_some() || e.canary == Some(CanaryRule::Absent),
        Verdict::Fail => flows.is_empty(),
        Verdict::Skip | Verdict::Error => false,
    };
    let (verdict, reason) = match lost_packets(capture) {
        Some(loss) if rests_on_absence => (
            Verdict::Error,
            format!(
                "{loss}, so it cannot show that anything is absent (on its own: {verdict}, {reason})"
            ),
        ),
        _ => (verdict, with_unknown_drops(reason, capture)),
    };
    Judgement {
        name: e.name.value.clone(),
        kind,
        verdict,
        reason,
        evidence,
    }
}

/// Why a capture cannot judge pod flows: the CNI encrypted node-to-node traffic, seen
/// as `cni-encrypted` links. `None` when the capture saw no such link.
pub fn cni_encrypted(capture: &CaptureResult) -> Option<String> {
    let links = &capture.analysis.links;
    if links.is_empty() {
        return None;
    }
    let list: Vec<String> = links
        .iter()
        .map(|l| {
            format!(
                "{} {} <-> {} ({} packets)",
                l.kind, l.endpoints[0], l.endpoints[1], l.packets
            )
        })
        .collect();
    Some(format!(
        "the CNI encrypts node-to-node traffic here ({} at {}); capture at the pods' interfaces to judge the mesh",
        list.join(", "),
        capture.point
    ))
}

/// Whether the expectation says something about every selected flow, which flows hidden
/// from the capture could contradict.
fn claims_every_flow(e: &WireExpectation) -> bool {
    e.class.is_some() || e.canary == Some(CanaryRule::Absent)
}

/// `reached: false`: no connection attempt from the client to the server port, with or
/// without payload. Passing on an empty selection is what this check means; the capture's
/// controls (required beside it) are what make that emptiness evidence.
fn judge_unreached(e: &WireExpectation, kind: CheckKind, capture: &CaptureResult) -> Judgement {
    let selector = format!(
        "{} → {}:{}",
        e.flow.from.value, e.flow.to.value, e.flow.port
    );
    let flows: Vec<&Flow> = capture
        .analysis
        .flows
        .iter()
        .filter(|f| endpoints_match(e, f, &capture.peers))
        .collect();
    // Emptiness proves nothing when packets were lost or hidden in an encrypted CNI link.
    let hidden = lost_packets(capture).or_else(|| cni_encrypted(capture));
    let (verdict, reason) = if let Some(why) = hidden.filter(|_| flows.is_empty()) {
        (
            Verdict::Error,
            format!("no connection {selector} seen in clear, but {why}"),
        )
    } else if flows.is_empty() {
        (
            Verdict::Pass,
            format!(
                "no connection {selector} in {} captured packets",
                capture.analysis.packets
            ),
        )
    } else {
        (
            Verdict::Fail,
            format!(
                "expected no connection {selector}, but {} were captured",
                flows.len()
            ),
        )
    };
    Judgement {
        name: e.name.value.clone(),
        kind,
        verdict,
        reason,
        evidence: capture_evidence(&flows, capture),
    }
}

/// The capture's packet loss as a sentence, when it lost any.
fn lost_packets(capture: &CaptureResult) -> Option<String> {
    capture
        .drops
        .as_ref()
        .filter(|d| d.total() > 0)
        .map(|d| format!("the capture at {} lost packets: {d}", capture.point))
}

fn with_unknown_drops(reason: String, capture: &CaptureResult) -> String {
    if capture.drops.is_none() {
        format!("{reason} (the capturing tool did not report how many packets it dropped)")
    } else {
        reason
    }
}

/// The evidence every wire verdict of a capture carries.
fn capture_evidence(flows: &[&Flow], capture: &CaptureResult) -> Evidence {
    Evidence {
        flows: flows
            .iter()
            .map(|f| flow_evidence(f, &capture.peers))
            .collect(),
        pcap: Some(capture.pcap.clone()),
        drops: capture.drops.clone(),
        observation: None,
    }
}

fn check_flows(e: &WireExpectation, flows: &[&Flow], selector: &str) -> (Verdict, String) {
    let mut wrong = Vec::new();
    if let Some(class) = e.class {
        let off: Vec<String> = flows
            .iter()
            .filter(|f| f.class != class)
            .map(|f| format!("{} → {} was {}", f.client, f.server, f.class))
            .collect();
        if !off.is_empty() {
            wrong.push(format!(
                "expected every flow {selector} to be {class}, but {}",
                off.join(", ")
            ));
        }
    }
    let hits: u64 = flows.iter().map(|f| f.canary_hits).sum();
    match e.canary {
        Some(CanaryRule::Present) if hits == 0 => wrong.push(format!(
            "the canary was not seen in clear in any of {} flow(s) {selector}",
            flows.len()
        )),
        Some(CanaryRule::Absent) if hits > 0 => wrong.push(format!(
            "the canary was seen in clear {hits} time(s) in flows {selector}"
        )),
        _ => {}
    }
    let partial: Vec<String> = flows
        .iter()
        .filter(|f| f.canary_scan == CanaryScanState::Partial)
        .map(|f| format!("{} → {}", f.client, f.server))
        .collect();
    if wrong.is_empty() && e.canary == Some(CanaryRule::Absent) && !partial.is_empty() {
        return (
            Verdict::Error,
            format!(
                "the canary search of {} could not decode everything (canary_scan: partial: over a decoding limit, malformed or an unknown coding), so it cannot show the canary is absent",
                partial.join(", ")
            ),
        );
    }
    if wrong.is_empty() {
        let class = e.class.map(|c| format!(", all {c}")).unwrap_or_default();
        let canary = match e.canary {
            Some(CanaryRule::Present) => format!(", canary seen {hits} time(s)"),
            Some(CanaryRule::Absent) => ", canary nowhere in clear".to_string(),
            None => String::new(),
        };
        (
            Verdict::Pass,
            format!("{} flow(s) {selector}{class}{canary}", flows.len()),
        )
    } else {
        (Verdict::Fail, wrong.join("; "))
    }
}

/// True when the flow matches the selector's endpoints. A connection attempt that carried
/// no payload either way (a SYN to a pod that was restarting, refused or unanswered) has
/// no class to judge, so it is not selected.
/// Whether a flow carried any payload. Connection attempts that were refused or closed
/// before a byte moved say nothing about encryption, so no check judges them, and every
/// check counts flows the same way.
fn carries_data(f: &Flow) -> bool {
    f.client_bytes > 0 || f.server_bytes > 0
}

fn selects(e: &WireExpectation, f: &Flow, peers_map: &PeerMap) -> bool {
    carries_data(f) && endpoints_match(e, f, peers_map)
}

fn endpoints_match(e: &WireExpectation, f: &Flow, peers_map: &PeerMap) -> bool {
    f.server.port() == e.flow.port
        && peer_is(&e.flow.to.value, f.server, peers_map)
        && (e.flow.from.value == peers::ANY || peer_is(&e.flow.from.value, f.client, peers_map))
}

fn peer_is(name: &str, addr: SocketAddr, peers_map: &PeerMap) -> bool {
    peers_map
        .peers
        .get(&addr.ip())
        .is_some_and(|p| p.workload == name)
}

fn describe(addr: SocketAddr, peers_map: &PeerMap) -> String {
    match peers_map.peers.get(&addr.ip()) {
        Some(p) if p.node.is_empty() => format!("{} {addr}", p.instance),
        Some(p) => format!("{} ({}) {addr}", p.instance, p.node),
        None => addr.to_string(),
    }
}

/// Checks a capture against the policy model: the scenario's own expectations must agree
/// with the model, and every captured flow the model has a prediction for must match it.
/// Flows the model says nothing about, and predictions no flow exercised, are not judged.
/// Where the model says it cannot predict the class, nothing is judged against it: an
/// expectation or a captured flow meeting such a row is a `skip` naming why.
pub fn judge_model(
    step: &CaptureStep,
    model: &[ExpectedFlow],
    capture: &CaptureResult,
) -> Vec<Judgement> {
    let mut out = Vec::new();
    for e in step.expect.iter().chain(&step.controls) {
        let Some(class) = e.class else { continue };
        let meets = |m: &&ExpectedFlow| {
            m.to == e.flow.to.value
                && m.port == e.flow.port
                && (e.flow.from.value == peers::ANY || m.from == e.flow.from.value)
        };
        let name = format!("model agrees with {}", e.name.value);
        if let Some(why) = model
            .iter()
            .filter(meets)
            .find_map(|m| m.cannot_predict.as_ref())
        {
            out.push(Judgement::bare(
                &name,
                CheckKind::Model,
                Verdict::Skip,
                format!("the policy model cannot predict this flow: {why}"),
            ));
            continue;
        }
        if let Some(m) = model.iter().filter(meets).find(|m| m.class != class) {
            let reason = format!(
                "the scenario expects {} → {}:{} to be {class}, but the policy model predicts {} ({})",
                e.flow.from.value, e.flow.to.value, e.flow.port, m.class, m.because
            );
            out.push(Judgement::bare(
                &name,
                CheckKind::Model,
                Verdict::Fail,
                reason,
            ));
        }
    }
    for m in model {
        let flows: Vec<&Flow> = capture
            .analysis
            .flows
            .iter()
            .filter(|f| {
                carries_data(f)
                    && f.server.port() == m.port
                    && peer_is(&m.to, f.server, &capture.peers)
                    && peer_is(&m.from, f.client, &capture.peers)
            })
            .collect();
        if flows.is_empty() {
            continue;
        }
        let (verdict, reason) = match &m.cannot_predict {
            Some(why) => (
                Verdict::Skip,
                format!("the policy model cannot predict this flow: {why}"),
            ),
            None => model_verdict(m, &flows, cni_encrypted(capture)),
        };
        // "Every flow is of the predicted class" rests on seeing every flow.
        let (verdict, reason) = match lost_packets(capture) {
            Some(loss) if verdict == Verdict::Pass => (
                Verdict::Error,
                format!(
                    "{loss}, so it cannot show that no flow was of another class (on its own: {reason})"
                ),
            ),
            _ => (verdict, reason),
        };
        out.push(Judgement {
            name: format!("policy {} → {}:{}", m.from, m.to, m.port),
            kind: CheckKind::Model,
            verdict,
            reason,
            evidence: capture_evidence(&flows, capture),
        });
    }
    out
}

/// Pass when every classified flow has the predicted class, fail naming those that differ.
/// When the capture saw CNI-encrypted links (`encrypted`), flows that agree prove nothing
/// about the ones the capture could not see: an error, never a pass.
fn model_verdict(
    m: &ExpectedFlow,
    flows: &[&Flow],
    encrypted: Option<String>,
) -> (Verdict, String) {
    let off: Vec<&&Flow> = flows
        .iter()
        .filter(|f| f.class != m.class && f.class != FlowClass::Unknown)
        .collect();
    if let Some(why) = encrypted.filter(|_| off.is_empty()) {
        return (
            Verdict::Error,
            format!(
                "{} flow(s) are {} as the policy predicts, but others may be inside encrypted links; {why}",
                flows.len(),
                m.class
            ),
        );
    }
    if off.is_empty() {
        return (
            Verdict::Pass,
            format!(
                "{} flow(s) are {} as the policy predicts ({})",
                flows.len(),
                m.class,
                m.because
            ),
        );
    }
    let seen: Vec<String> = off
        .iter()
        .map(|f| format!("{} → {} was {}", f.client, f.server, f.class))
        .collect();
    (
        Verdict::Fail,
        format!(
            "the policy predicts {} ({}), but {}",
            m.class,
            m.because,
            seen.join(", ")
        ),
    )
}

/// A flow with names instead of bare addresses.
pub fn flow_evidence(f: &Flow, peers_map: &PeerMap) -> FlowEvidence {
    FlowEvidence {
        client: describe(f.client, peers_map),
        server: describe(f.server, peers_map),
        class: f.class.to_string(),
        protocol: f.protocol.clone(),
        sni: f.sni.clone(),
        alpn: f.alpn.clone(),
        canary_hits: f.canary_hits,
        client_bytes: f.client_bytes,
        server_bytes: f.server_bytes,
        first_frame: f.frames.first,
        last_frame: f.frames.last,
        tshark_filter: tshark_filter(f),
    }
}

/// A display filter for one flow's frames: both endpoints, and its frame range, since a
/// 4-tuple can be reused by a later connection.
pub fn tshark_filter(f: &Flow) -> String {
    let side = |a: SocketAddr, dir: &str| {
        let ip = if a.is_ipv4() { "ip" } else { "ipv6" };
        format!("{ip}.{dir}=={} && tcp.{dir}port=={}", a.ip(), a.port())
    };
    format!(
        "(({} && {}) || ({} && {})) && frame.number >= {} && frame.number <= {}",
        side(f.client, "src"),
        side(f.server, "dst"),
        side(f.server, "src"),
        side(f.client, "dst"),
        f.frames.first,
        f.frames.last
    )
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_drops;
