//! Report rendering tests.

use super::*;
use crate::verdict::{CheckKind, Evidence, FlowEvidence};

pub(crate) fn sample() -> RunReport {
    let flow = FlowEvidence {
        client: "httpd-server-0 (worker) 10.244.1.5:51234".into(),
        server: "mysql-server-0 (worker2) 10.244.2.7:3306".into(),
        class: "plaintext".into(),
        protocol: Some("mysql".into()),
        sni: None,
        alpn: vec![],
        canary_hits: 1,
        client_bytes: 420,
        server_bytes: 96,
        first_frame: 4,
        last_frame: 19,
        tshark_filter: "tcp.stream".into(),
    };
    let fail = Judgement {
        name: "db-is-mtls".into(),
        kind: CheckKind::Wire,
        verdict: Verdict::Fail,
        reason: "expected istio-mtls".into(),
        evidence: Evidence {
            flows: vec![flow],
            pcap: Some("a/strict.pcap".into()),
            drops: None,
            observation: None,
        },
    };
    let mut s = ScenarioReport::new("pii-demo");
    s.notes.push("lab note".into());
    s.setup.push(Judgement::bare(
        "provision",
        CheckKind::Step,
        Verdict::Pass,
        "ok",
    ));
    s.phases.push(PhaseReport {
        name: "strict-mtls".into(),
        checks: vec![
            Judgement::bare(
                "metallb",
                CheckKind::Step,
                Verdict::Skip,
                "no MetalLB in the lab",
            ),
            fail,
        ],
    });
    RunReport {
        run_id: "r1".into(),
        provider: "lab".into(),
        canary: "MESHPROOF-CANARY-x".into(),
        artifacts: "a".into(),
        analyzer_version: ANALYZER_VERSION.into(),
        scenarios: vec![s],
    }
}

#[test]
fn verdict_is_the_worst_check() {
    assert_eq!(sample().verdict(), Verdict::Fail);
}

#[test]
fn junit_has_a_case_per_check_with_failures_and_skips() {
    let xml = to_junit(&sample()).unwrap();
    assert!(xml.contains(r#"tests="3""#), "{xml}");
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    assert!(xml.contains(r#"skipped="1""#), "{xml}");
    assert!(xml.contains("strict-mtls/db-is-mtls"), "{xml}");
    assert!(
        xml.contains("mysql-server-0 (worker2)"),
        "evidence in system-out: {xml}"
    );
}

#[test]
fn text_shows_evidence_for_failures_only() {
    let text = to_text(&sample());
    assert!(
        text.contains("pii-demo on lab: FAIL (3 checks: 1 passed, 1 failed, 1 skipped)"),
        "{text}"
    );
    assert!(
        text.contains("✗ strict-mtls/db-is-mtls [wire] fail"),
        "{text}"
    );
    assert!(text.contains("pcap: a/strict.pcap"), "{text}");
    assert!(text.contains("- strict-mtls/metallb [step] skip"), "{text}");
    assert!(
        !text.contains("setup/provision"),
        "passing steps are quiet: {text}"
    );
}

#[test]
fn json_round_trips_the_verdicts() {
    let json: serde_json::Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
    assert_eq!(
        json["scenarios"][0]["phases"][0]["checks"][1]["verdict"],
        "fail"
    );
    assert_eq!(
        json["scenarios"][0]["phases"][0]["checks"][1]["evidence"]["flows"][0]["canary_hits"],
        1
    );
}
