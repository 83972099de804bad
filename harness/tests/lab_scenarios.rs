//! Lab tier: the project's own scenarios (pii-demo, rabbitmq, xnat, mongodb-egress), end to end, in the
//! Docker lab: provision, traffic, capture, classify, judge, report and teardown, all for
//! real. Plus the mutation test that proves the judgement can fail: with TLS dropped on one
//! port, the scenario fails with that flow's plaintext and canary as evidence.

use std::path::Path;

use meshproof::provider::RunContext;
use meshproof::provider::lab::config::{LabConfig, Mutation};
use meshproof::provider::lab::{DISCLAIMER, LabProvider, docker};
use meshproof::report::ScenarioReport;
use meshproof::reporter::NullReporter;
use meshproof::runner::{self, Cancel, RunOptions};
use meshproof::scenario::{Canary, Scenario};
use meshproof::verdict::{Judgement, Verdict};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

async fn run(name: &str, mutation: Option<Mutation>) -> (ScenarioReport, String) {
    let config = LabConfig {
        root: root().to_path_buf(),
        cache_dir: meshproof::env_vars::cache_dir(root()),
        workload_bin: env!("CARGO_BIN_EXE_meshproof-workload").into(),
        envoy_version: meshproof::provider::lab::config::envoy_version(root()).unwrap(),
        mutation,
    };
    let provider = LabProvider::with_config(config);
    let scenario = Scenario::load(root(), name).unwrap();
    let artifacts = tempfile::tempdir().unwrap();
    let run_id = format!("t-{name}-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let context = RunContext {
        run_id: run_id.clone(),
        artifacts: artifacts.path().to_path_buf(),
        canary: Canary::generate(),
        keep: false,
        reuse: None,
        context: None,
    };
    let opts = RunOptions {
        phase: None,
        context,
    };
    let (_handle, cancel) = Cancel::new();
    let report = runner::run(&scenario, &provider, &opts, &NullReporter, cancel).await;
    let engine = docker::connect().await.unwrap();
    assert_eq!(
        docker::leftovers(&engine, &run_id).await.unwrap(),
        0,
        "teardown left objects of {run_id}"
    );
    (report, run_id)
}

fn check<'a>(report: &'a ScenarioReport, name: &str) -> &'a Judgement {
    report
        .checks()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#?}"))
}

fn summary(report: &ScenarioReport) -> String {
    report
        .checks()
        .map(|j| format!("{} {:?}: {}", j.name, j.verdict, j.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every check passes except the steps the lab cannot give meaning, which are skipped.
fn assert_passes(report: &ScenarioReport) {
    assert!(
        report.notes.iter().any(|n| n == DISCLAIMER),
        "the disclaimer is missing: {:?}",
        report.notes
    );
    for j in report.checks() {
        let allowed = j.verdict == Verdict::Pass
            || (j.verdict == Verdict::Skip
                && (j.reason.contains("no LoadBalancer in the lab")
                    || j.reason.contains("no HorizontalPodAutoscaler controller")));
        assert!(
            allowed,
            "{} is {:?}: {}\n\nall checks:\n{}",
            j.name,
            j.verdict,
            j.reason,
            summary(report)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pii_demo_passes_in_the_lab() {
    let (report, _) = run("pii-demo", None).await;
    assert_passes(&report);
    let baseline = check(&report, "pii-in-clear-between-nodes");
    assert!(
        baseline
            .evidence
            .flows
            .iter()
            .any(|f| f.class == "plaintext" && f.canary_hits > 0),
        "{baseline:#?}"
    );
    let strict = check(&report, "db-traffic-is-istio-mtls");
    assert!(!strict.evidence.flows.is_empty());
    assert!(
        strict
            .evidence
            .flows
            .iter()
            .all(|f| f.class == "istio-mtls" && f.canary_hits == 0),
        "{strict:#?}"
    );
    assert!(
        strict.evidence.flows.iter().all(|f| f.sni.as_deref()
            == Some("outbound_.3306_._.mysql-server.pii-demo.svc.cluster.local"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xnat_passes_in_the_lab() {
    let (report, _) = run("xnat", None).await;
    assert_passes(&report);
    // Mesh-wide STRICT refuses the proxy outside the mesh; the port-level DISABLE lets it
    // through in clear while DICOM stays mTLS; the method-level ALLOW denies POST.
    let refused = check(&report, "alb-gets-502");
    assert_eq!(
        refused.evidence.observation.as_ref().and_then(|o| o.status),
        Some(502),
        "{refused:#?}"
    );
    let clear = check(&report, "alb-to-web-is-plaintext");
    assert!(
        clear
            .evidence
            .flows
            .iter()
            .all(|f| f.class == "plaintext" && f.canary_hits > 0),
        "{clear:#?}"
    );
    let denied = check(&report, "post-denied");
    assert_eq!(
        denied.evidence.observation.as_ref().and_then(|o| o.status),
        Some(403),
        "{denied:#?}"
    );
    let hpa = report
        .checks()
        .find(|j| j.kind == meshproof::verdict::CheckKind::Autoscale)
        .expect("the HPA step is reported");
    assert_eq!(
        hpa.verdict,
        Verdict::Skip,
        "never a pass without a controller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_passes_in_the_lab() {
    let (report, _) = run("rabbitmq", None).await;
    assert_passes(&report);
    for name in ["amqp-is-istio-mtls", "cluster-links-are-istio-mtls"] {
        let j = check(&report, name);
        assert!(
            j.evidence
                .flows
                .iter()
                .all(|f| f.class == "istio-mtls" && f.canary_hits == 0),
            "{j:#?}"
        );
    }
    let epmd = check(&report, "epmd-stays-plaintext");
    assert!(
        epmd.evidence
            .flows
            .iter()
            .all(|f| f.class == "plaintext" && f.protocol.as_deref() == Some("epmd")),
        "{epmd:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_egress_passes_in_the_lab() {
    let (report, _) = run("mongodb-egress", None).await;
    assert_passes(&report);
    let mongodb = |name: &str, class: &str, canary: bool| {
        let j = check(&report, name);
        assert!(
            !j.evidence.flows.is_empty()
                && j.evidence.flows.iter().all(|f| f.class == class
                    && (f.canary_hits > 0) == canary
                    && (class != "plaintext" || f.protocol.as_deref() == Some("mongodb"))),
            "{j:#?}"
        );
    };
    mongodb("ratings-to-db-is-plaintext-mongodb", "plaintext", true);
    mongodb("sidecar-to-db-is-plaintext-mongodb", "plaintext", true);
    mongodb("sidecar-to-gateway-is-istio-mtls", "istio-mtls", false);
    mongodb("gateway-to-db-is-plaintext-mongodb", "plaintext", true);
    // The seeded ratings (1 and 1) prove the external database answered.
    let read = check(&report, "read-ratings-via-gateway");
    let body = &read.evidence.observation.as_ref().expect("observed").body;
    assert!(body.contains(r#"{"rating":1},{"rating":1}"#), "{body}");
    let blocked = check(&report, "read-ratings-blocked");
    assert!(
        blocked
            .evidence
            .observation
            .as_ref()
            .is_some_and(|o| o.reset && !o.answered),
        "{blocked:#?}"
    );
    for name in [
        "no-flow-from-the-sidecar-to-the-db",
        "no-direct-flow-from-the-sidecar",
        "no-direct-tls-flow-from-the-sidecar",
    ] {
        assert!(check(&report, name).evidence.flows.is_empty());
    }
    // The TLS variant: the application's TLS with the database's SNI on both legs.
    for name in [
        "sidecar-to-gateway-is-the-apps-tls",
        "gateway-to-db-is-the-apps-tls",
    ] {
        let j = check(&report, name);
        assert!(
            !j.evidence.flows.is_empty()
                && j.evidence.flows.iter().all(|f| f.class == "tls"
                    && f.sni.as_deref() == Some("ratings-db-tls.meshproof.test")),
            "{j:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_tls_on_one_port_fails_the_scenario_with_evidence() {
    let (report, _) = run("pii-demo", Some(Mutation::DropTls { port: 3306 })).await;
    assert!(
        report.notes.iter().any(|n| n.contains("FAULT INJECTED")),
        "{:?}",
        report.notes
    );
    assert_eq!(report.verdict(), Verdict::Fail, "{}", summary(&report));
    let broken = check(&report, "db-traffic-is-istio-mtls");
    assert_eq!(broken.verdict, Verdict::Fail, "{broken:#?}");
    assert!(
        broken.evidence.flows.iter().any(|f| f.class == "plaintext"
            && f.canary_hits > 0
            && f.protocol.as_deref() == Some("mysql")),
        "the evidence must show the INSERT in clear: {broken:#?}"
    );
    // The rest of the mesh is intact: only the mutated port fails.
    assert_eq!(
        check(&report, "gateway-to-web-is-istio-mtls").verdict,
        Verdict::Pass,
        "{}",
        summary(&report)
    );
}
