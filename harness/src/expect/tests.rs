//! Table tests for the judging rules.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::*;
use crate::provider::Peer;
use crate::wire::{Analysis, FlowClass};

const STEP: &str = r#"
name: wire
probes:
  - name: submit
    from: host
    to: { workload: web, port: 80 }
    http: { method: POST }
expect:
  - name: db-is-mtls
    flow: { from: web, to: db, port: 3306 }
    class: istio-mtls
    canary: absent
    probes: [submit]
controls:
  - name: front-in-clear
    flow: { from: host, to: web, port: 80 }
    class: plaintext
    canary: present
    probes: [submit]
"#;

pub(super) fn step() -> CaptureStep {
    serde_saphyr::from_str(STEP).unwrap()
}

fn peers() -> PeerMap {
    let mut map = PeerMap::default();
    for (ip, workload, node) in [
        ("10.0.0.1", "host", ""),
        ("10.244.1.5", "web", "worker"),
        ("10.244.2.7", "db", "worker2"),
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        map.peers.insert(
            ip,
            Peer {
                workload: workload.into(),
                instance: format!("{workload}-0"),
                node: node.into(),
            },
        );
    }
    map
}

pub(super) fn flow(client: &str, server: &str, class: FlowClass, hits: u64) -> Flow {
    Flow {
        client: client.parse().unwrap(),
        server: server.parse().unwrap(),
        class,
        protocol: None,
        sni: None,
        alpn: vec![],
        tls_version: None,
        canary_hits: hits,
        canary_scan: Default::default(),
        canary_encodings: Vec::new(),
        frames: Default::default(),
        client_bytes: 100,
        server_bytes: 100,
        overlay: None,
    }
}

pub(super) fn capture(flows: Vec<Flow>) -> CaptureResult {
    let packets = flows.len() as u64 * 10;
    CaptureResult {
        pcap: PathBuf::from("wire.pcap"),
        analysis: Analysis {
            packets,
            bytes: packets * 100,
            flows,
            links: vec![],
        },
        peers: peers(),
        point: "br-test".into(),
        drops: Some(crate::capture::DropCounts::new(0, 0, "libpcap on br-test")),
    }
}

pub(super) fn front(hits: u64) -> Flow {
    flow(
        "10.0.0.1:40000",
        "10.244.1.5:80",
        FlowClass::Plaintext,
        hits,
    )
}

fn verdicts(flows: Vec<Flow>) -> Vec<(String, Verdict)> {
    let passed = BTreeMap::from([("submit".to_string(), Verdict::Pass)]);
    judge_capture(&step(), &capture(flows), &passed)
        .into_iter()
        .map(|j| (j.name, j.verdict))
        .collect()
}

#[test]
fn mtls_without_canary_passes_with_a_working_control() {
    let v = verdicts(vec![
        front(1),
        flow(
            "10.244.1.5:5000",
            "10.244.2.7:3306",
            FlowClass::IstioMtls,
            0,
        ),
    ]);
    assert_eq!(
        v,
        [
            ("front-in-clear".into(), Verdict::Pass),
            ("db-is-mtls".into(), Verdict::Pass)
        ]
    );
}

#[test]
fn plaintext_where_mtls_is_expected_fails() {
    let v = verdicts(vec![
        front(1),
        flow(
            "10.244.1.5:5000",
            "10.244.2.7:3306",
            FlowClass::Plaintext,
            2,
        ),
    ]);
    assert_eq!(v[1].1, Verdict::Fail);
}

#[test]
fn one_bad_flow_among_good_ones_fails() {
    let v = verdicts(vec![
        front(1),
        flow(
            "10.244.1.5:5000",
            "10.244.2.7:3306",
            FlowClass::IstioMtls,
            0,
        ),
        flow("10.244.1.5:5001", "10.244.2.7:3306", FlowClass::Tls, 0),
    ]);
    assert_eq!(v[1].1, Verdict::Fail);
}

#[test]
fn an_unseen_flow_is_not_a_pass() {
    let v = verdicts(vec![front(1)]);
    assert_eq!(v[1].1, Verdict::Fail);
}

#[test]
fn flows_to_other_ports_or_peers_are_not_selected() {
    let v = verdicts(vec![
        front(1),
        flow(
            "10.244.1.5:5000",
            "10.244.2.7:3307",
            FlowClass::IstioMtls,
            0,
        ),
        flow("10.0.0.1:5000", "10.244.2.7:3306", FlowClass::IstioMtls, 0),
    ]);
    assert_eq!(v[1].1, Verdict::Fail, "neither flow is web -> db:3306");
}

#[test]
fn a_failed_control_turns_passes_into_errors() {
    let v = verdicts(vec![
        front(0),
        flow(
            "10.244.1.5:5000",
            "10.244.2.7:3306",
            FlowClass::IstioMtls,
            0,
        ),
    ]);
    assert_eq!(
        v,
        [
            ("front-in-clear".into(), Verdict::Fail),
            ("db-is-mtls".into(), Verdict::Error)
        ]
    );
}

#[test]
fn an_empty_capture_proves_nothing() {
    let passed = BTreeMap::new();
    let mut empty = capture(vec![]);
    empty.analysis.packets = 0;
    let js = judge_capture(&step(), &empty, &passed);
    assert!(js.iter().all(|j| j.verdict != Verdict::Pass), "{js:#?}");
}

#[test]
fn evidence_names_peers() {
    let js = judge_capture(&step(), &capture(vec![front(1)]), &BTreeMap::new());
    let e = &js[0].evidence.flows[0];
    assert_eq!(e.client, "host-0 10.0.0.1:40000");
    assert_eq!(e.server, "web-0 (worker) 10.244.1.5:80");
    assert_eq!(
        js[0].evidence.pcap.as_deref(),
        Some(std::path::Path::new("wire.pcap"))
    );
}

fn probe(expect: &str) -> Probe {
    let text = format!(
        "name: p\nfrom: host\nto: {{ workload: web, port: 80 }}\nhttp: {{}}\nexpect: {expect}\n"
    );
    serde_saphyr::from_str(&text).unwrap()
}

fn obs(answered: bool, status: Option<u16>, body: &str, reset: bool) -> Observation {
    Observation {
        answered,
        status,
        body: body.into(),
        reset,
        attempts: 1,
        ..Observation::default()
    }
}

#[test]
fn probe_rules() {
    let c = Canary::fixed("MESHPROOF-CANARY-t");
    let cases = [
        (
            "{ status: 200 }",
            obs(true, Some(200), "", false),
            Verdict::Pass,
        ),
        (
            "{ status: 200 }",
            obs(true, Some(502), "", false),
            Verdict::Fail,
        ),
        ("{ status: 200 }", obs(false, None, "", true), Verdict::Fail),
        ("{ reset: true }", obs(false, None, "", true), Verdict::Pass),
        (
            "{ reset: true }",
            obs(true, Some(200), "", false),
            Verdict::Fail,
        ),
        (
            "{ bodyContains: \"{{canary}}\" }",
            obs(true, None, "got MESHPROOF-CANARY-t", false),
            Verdict::Pass,
        ),
        (
            "{ bodyContains: \"{{canary}}\" }",
            obs(true, None, "got nothing", false),
            Verdict::Fail,
        ),
        (
            "{ status: 403, bodyContains: \"RBAC: access denied\" }",
            obs(true, Some(403), "RBAC: access denied", false),
            Verdict::Pass,
        ),
    ];
    for (expect, o, want) in cases {
        let j = judge_probe(&probe(expect), &o, &c);
        assert_eq!(j.verdict, want, "{expect} with {o:?}: {}", j.reason);
    }
}

pub(super) fn model(from: &str, to: &str, port: u16, class: FlowClass) -> ExpectedFlow {
    ExpectedFlow {
        from: from.into(),
        to: to.into(),
        port,
        class,
        because: "test policy".into(),
        cannot_predict: None,
    }
}

#[test]
fn rows_the_model_cannot_predict_are_skipped_never_judged() {
    // The scenario expects web -> db:3306 to be istio-mtls; the model says it cannot
    // predict that flow. Neither a plaintext nor an mTLS capture may pass or fail it.
    let mut undecided = model("web", "db", 3306, FlowClass::Plaintext);
    undecided.cannot_predict = Some("a weighted route splits between subsets".into());
    for seen in [FlowClass::Plaintext, FlowClass::IstioMtls] {
        let js = judge_model(
            &step(),
            std::slice::from_ref(&undecided),
            &capture(vec![flow("10.244.1.5:5000", "10.244.2.7:3306", seen, 0)]),
        );
        assert_eq!(js.len(), 2, "the expectation and the flow: {js:#?}");
        for j in &js {
            assert_eq!(j.verdict, Verdict::Skip, "{seen}: {j:#?}");
            assert!(j.reason.contains("weighted route"), "{}", j.reason);
        }
    }
}

#[test]
fn model_disagreement_with_the_scenario_is_a_failure() {
    let m = [model("web", "db", 3306, FlowClass::Plaintext)];
    let js = judge_model(&step(), &m, &capture(vec![]));
    assert_eq!(js.len(), 1, "{js:#?}");
    assert_eq!(js[0].kind, CheckKind::Model);
    assert_eq!(js[0].verdict, Verdict::Fail);
    assert!(
        js[0].reason.contains("predicts plaintext"),
        "{}",
        js[0].reason
    );
}

#[test]
fn model_predictions_are_checked_against_every_seen_flow() {
    let m = [
        model("web", "db", 3306, FlowClass::IstioMtls),
        model("host", "web", 80, FlowClass::Plaintext),
        model("db", "web", 80, FlowClass::IstioMtls),
    ];
    let good = judge_model(
        &step(),
        &m,
        &capture(vec![
            front(1),
            flow(
                "10.244.1.5:5000",
                "10.244.2.7:3306",
                FlowClass::IstioMtls,
                0,
            ),
        ]),
    );
    assert_eq!(
        good.len(),
        2,
        "the unexercised db -> web prediction is not judged: {good:#?}"
    );
    assert!(good.iter().all(|j| j.verdict == Verdict::Pass), "{good:#?}");
    let bad = judge_model(
        &step(),
        &m,
        &capture(vec![
            front(1),
            flow(
                "10.244.1.5:5000",
                "10.244.2.7:3306",
                FlowClass::Plaintext,
                0,
            ),
        ]),
    );
    assert!(
        bad.iter()
            .any(|j| j.verdict == Verdict::Fail && j.evidence.flows.len() == 1),
        "{bad:#?}"
    );
}

/// A connection attempt to the database that carried no payload (refused or reset),
/// and a real Istio mTLS flow to the same port.
fn refused_attempt_and_mtls_flow() -> (Flow, Flow) {
    let mut refused = flow("10.244.1.5:5001", "10.244.2.7:3306", FlowClass::Unknown, 0);
    (refused.client_bytes, refused.server_bytes) = (0, 0);
    let mtls = flow(
        "10.244.1.5:5000",
        "10.244.2.7:3306",
        FlowClass::IstioMtls,
        0,
    );
    (refused, mtls)
}

#[test]
fn refused_connection_attempts_are_not_judged() {
    let (refused, mtls) = refused_attempt_and_mtls_flow();
    let v = verdicts(vec![front(1), refused.clone(), mtls]);
    assert_eq!(v[1], ("db-is-mtls".into(), Verdict::Pass));
    let v = verdicts(vec![front(1), refused]);
    assert_eq!(
        v[1].1,
        Verdict::Fail,
        "a refused attempt alone is not a seen flow"
    );
}

#[test]
fn the_model_check_counts_flows_as_the_wire_checks_do() {
    let (refused, mtls) = refused_attempt_and_mtls_flow();
    let m = [model("web", "db", 3306, FlowClass::IstioMtls)];
    let js = judge_model(&step(), &m, &capture(vec![refused.clone(), mtls]));
    assert_eq!(js.len(), 1, "{js:#?}");
    assert_eq!(js[0].evidence.flows.len(), 1, "{js:#?}");
    assert!(
        js[0].reason.starts_with("1 flow(s) are istio-mtls"),
        "{js:#?}"
    );
    let js = judge_model(&step(), &m, &capture(vec![refused]));
    assert!(
        js.is_empty(),
        "an attempt without data is not judged: {js:#?}"
    );
}

/// The capture of a node whose CNI encrypts node-to-node traffic with WireGuard: the
/// pod flows between nodes are only ciphertext.
fn encrypted(flows: Vec<Flow>) -> CaptureResult {
    let mut c = capture(flows);
    c.analysis.links.push(crate::wire::EncryptedLink {
        kind: crate::wire::EncryptionKind::Wireguard,
        endpoints: ["172.18.0.2".parse().unwrap(), "172.18.0.3".parse().unwrap()],
        packets: 40,
        bytes: 6000,
    });
    c
}

#[test]
fn a_pod_flow_seen_only_as_cni_ciphertext_is_an_error_never_a_pass() {
    let passed = BTreeMap::from([("submit".to_string(), Verdict::Pass)]);
    // Nothing in clear: neither the istio-mtls class nor `canary: absent` may pass, and
    // this is not the ordinary "no flow" failure either.
    let js = judge_capture(&step(), &encrypted(vec![front(1)]), &passed);
    let db = js.iter().find(|j| j.name == "db-is-mtls").unwrap();
    assert_eq!(db.verdict, Verdict::Error, "{db:#?}");
    assert!(
        db.reason
            .contains("the CNI encrypts node-to-node traffic here")
            && db
                .reason
                .contains("capture at the pods' interfaces to judge the mesh")
            && db.reason.contains("wireguard 172.18.0.2 <-> 172.18.0.3"),
        "{}",
        db.reason
    );
    // Flows that were seen in clear and look right still cannot pass: others may hide.
    let mtls = flow(
        "10.244.1.5:5000",
        "10.244.2.7:3306",
        FlowClass::IstioMtls,
        0,
    );
    let js = judge_capture(&step(), &encrypted(vec![front(1), mtls.clone()]), &passed);
    assert!(js.iter().all(|j| j.verdict == Verdict::Error), "{js:#?}");
    // The same capture without the encrypted link passes, so the link is what decides.
    let js = judge_capture(&step(), &capture(vec![front(1), mtls]), &passed);
    assert!(js.iter().all(|j| j.verdict == Verdict::Pass), "{js:#?}");
    // Plaintext seen in clear is a failure whatever else was hidden.
    let clear = flow(
        "10.244.1.5:5000",
        "10.244.2.7:3306",
        FlowClass::Plaintext,
        1,
    );
    let js = judge_capture(&step(), &encrypted(vec![front(1), clear]), &passed);
    let db = js.iter().find(|j| j.name == "db-is-mtls").unwrap();
    assert_eq!(db.verdict, Verdict::Fail, "{db:#?}");
}

#[test]
fn the_model_check_does_not_pass_through_cni_encryption() {
    let m = [model("web", "db", 3306, FlowClass::IstioMtls)];
    let mtls = flow(
        "10.244.1.5:5000",
        "10.244.2.7:3306",
        FlowClass::IstioMtls,
        0,
    );
    let js = judge_model(&step(), &m, &encrypted(vec![mtls]));
    assert_eq!(js.len(), 1, "{js:#?}");
    assert_eq!(js[0].verdict, Verdict::Error);
    assert!(
        js[0].reason.contains("the CNI encrypts"),
        "{}",
        js[0].reason
    );
}

#[test]
fn unreached_passes_only_without_any_connection_even_a_bare_syn() {
    let e: WireExpectation = serde_saphyr::from_str(
        "name: blocked\nflow: { from: web, to: db, port: 3306 }\nreached: false\nprobes: [submit]\n",
    )
    .unwrap();
    let judge = |flows| judge_wire(&e, CheckKind::Wire, &capture(flows), &BTreeMap::new());
    let nothing = judge(vec![front(1)]);
    assert_eq!(nothing.verdict, Verdict::Pass, "{}", nothing.reason);
    let mut syn = flow("10.244.1.5:5000", "10.244.2.7:3306", FlowClass::Unknown, 0);
    (syn.client_bytes, syn.server_bytes) = (0, 0);
    let attempted = judge(vec![front(1), syn]);
    assert_eq!(attempted.verdict, Verdict::Fail, "{}", attempted.reason);
    assert_eq!(attempted.evidence.flows.len(), 1);
}
