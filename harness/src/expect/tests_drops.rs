//! Table tests for the rule that a capture which lost packets cannot show absence.

use std::collections::BTreeMap;

use super::tests::{capture, flow, front, model, step};
use super::*;
use crate::capture::DropCounts;

fn lossy(flows: Vec<Flow>, kernel: u64) -> CaptureResult {
    let mut c = capture(flows);
    c.drops = Some(DropCounts::new(kernel, 0, "libpcap on br-test"));
    c
}

fn judged(c: &CaptureResult) -> Vec<Judgement> {
    let passed = BTreeMap::from([("submit".to_string(), Verdict::Pass)]);
    judge_capture(&step(), c, &passed)
}

fn mtls_db(hits: u64) -> Flow {
    flow(
        "10.244.1.5:5000",
        "10.244.2.7:3306",
        FlowClass::IstioMtls,
        hits,
    )
}

#[test]
fn dropped_packets_turn_absence_verdicts_into_errors_naming_the_drops() {
    let js = judged(&lossy(vec![front(1), mtls_db(0)], 3));
    // The control passes on the canary it saw, but its class claim rests on absence too.
    assert_eq!(js[0].verdict, Verdict::Error);
    let db = &js[1];
    assert_eq!(db.verdict, Verdict::Error, "{db:#?}");
    assert!(
        db.reason
            .contains("lost packets: 3 packet(s) dropped by the kernel"),
        "{}",
        db.reason
    );
    assert_eq!(db.evidence.drops.as_ref().map(DropCounts::total), Some(3));
}

#[test]
fn without_drops_the_same_capture_passes() {
    let js = judged(&lossy(vec![front(1), mtls_db(0)], 0));
    assert!(js.iter().all(|j| j.verdict == Verdict::Pass), "{js:#?}");
    assert_eq!(
        js[1].evidence.drops.as_ref().map(DropCounts::total),
        Some(0)
    );
}

#[test]
fn interface_drops_count_too() {
    let mut c = capture(vec![front(1), mtls_db(0)]);
    c.drops = Some(DropCounts::new(0, 1, "libpcap on br-test"));
    assert_eq!(judged(&c)[1].verdict, Verdict::Error);
}

#[test]
fn a_missing_flow_is_an_error_when_packets_were_lost() {
    let js = judged(&lossy(vec![front(1)], 1));
    assert_eq!(js[1].verdict, Verdict::Error);
    assert!(js[1].reason.contains("no flow"), "{}", js[1].reason);
}

#[test]
fn positive_evidence_of_a_failure_stays_a_failure() {
    // A canary seen in clear was seen, whatever else was lost.
    let js = judged(&lossy(vec![front(1), mtls_db(2)], 5));
    assert_eq!(js[1].verdict, Verdict::Fail);
}

#[test]
fn the_model_check_cannot_pass_on_a_lossy_capture() {
    let m = [model("web", "db", 3306, FlowClass::IstioMtls)];
    let js = judge_model(&step(), &m, &lossy(vec![front(1), mtls_db(0)], 2));
    assert_eq!(js.len(), 1);
    assert_eq!(js[0].verdict, Verdict::Error, "{js:#?}");
}

#[test]
fn unknown_drop_counts_are_said() {
    let mut c = capture(vec![front(1), mtls_db(0)]);
    c.drops = None;
    let js = judged(&c);
    assert_eq!(js[1].verdict, Verdict::Pass);
    assert!(
        js[1]
            .reason
            .contains("did not report how many packets it dropped")
    );
}

#[test]
fn a_partial_canary_search_cannot_show_absence() {
    let mut db = mtls_db(0);
    db.class = FlowClass::Plaintext;
    db.canary_scan = crate::wire::CanaryScanState::Partial;
    let mut c = capture(vec![front(1), db.clone()]);
    let passed = BTreeMap::from([("submit".to_string(), Verdict::Pass)]);
    let js = judge_capture(&step(), &c, &passed);
    // Plaintext already fails the class check: positive evidence stays a failure.
    assert_eq!(js[1].verdict, Verdict::Fail);
    db.class = FlowClass::IstioMtls;
    c.analysis.flows[1] = db;
    let js = judge_capture(&step(), &c, &passed);
    assert_eq!(js[1].verdict, Verdict::Error, "{js:#?}");
    assert!(
        js[1].reason.contains("canary_scan: partial"),
        "{}",
        js[1].reason
    );
}
