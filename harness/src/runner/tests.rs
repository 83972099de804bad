//! Runner tests with a scripted lab: ordering, phase selection, gating, teardown.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::manifest::Document;
use crate::provider::{
    CaptureResult, Observation, Peer, PeerMap, PlanEntry, ProviderError, StepOutcome,
};
use crate::reporter::NullReporter;
use crate::scenario::{Probe, WaitFor};
use crate::wire::{Analysis, Flow, FlowClass};

/// What the fake lab was asked to do, in order.
type Log = Arc<Mutex<Vec<String>>>;

struct FakeProvider {
    log: Log,
    db_class: FlowClass,
    fail_preflight: bool,
}

struct FakeLab {
    log: Log,
    db_class: FlowClass,
    canary: String,
}

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn plan(&self, _: &Scenario, _: &RunContext) -> Result<Vec<PlanEntry>, ProviderError> {
        Ok(vec![])
    }
    async fn preflight(&self, _: &Scenario, _: &RunContext) -> Result<(), ProviderError> {
        if self.fail_preflight {
            return Err(ProviderError::Preflight {
                problem: "no docker".into(),
                hint: "start it".into(),
            });
        }
        Ok(())
    }
    async fn provision(
        &self,
        _: &Scenario,
        ctx: &RunContext,
        _: &dyn Reporter,
    ) -> Result<Box<dyn Lab>, ProviderError> {
        self.log.lock().unwrap().push("provision".into());
        Ok(Box::new(FakeLab {
            log: self.log.clone(),
            db_class: self.db_class,
            canary: ctx.canary.to_string(),
        }))
    }
}

impl FakeLab {
    fn note(&self, what: String) -> Result<StepOutcome, ProviderError> {
        self.log.lock().unwrap().push(what.clone());
        Ok(StepOutcome::Done(what))
    }
}

#[async_trait]
impl Lab for FakeLab {
    fn notes(&self) -> Vec<String> {
        vec!["fake lab".into()]
    }
    async fn apply(
        &mut self,
        docs: &[Document],
        _: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError> {
        self.note(format!("apply {}", docs.len()))
    }
    async fn delete(
        &mut self,
        docs: &[Document],
        _: &dyn Reporter,
    ) -> Result<StepOutcome, ProviderError> {
        self.note(format!("delete {}", docs.len()))
    }
    async fn label_namespace(
        &mut self,
        ns: &str,
        _: &BTreeMap<String, Option<String>>,
    ) -> Result<StepOutcome, ProviderError> {
        self.note(format!("label {ns}"))
    }
    async fn restart(&mut self, w: &[String]) -> Result<StepOutcome, ProviderError> {
        self.note(format!("restart {}", w.join(",")))
    }
    async fn wait(
        &mut self,
        c: WaitFor,
        _: &[String],
        _: Duration,
    ) -> Result<StepOutcome, ProviderError> {
        if c == WaitFor::GatewayAddress {
            self.log.lock().unwrap().push("wait gateway".into());
            return Ok(StepOutcome::Skipped(
                "no gateway address in the fake lab".into(),
            ));
        }
        self.note(format!("wait {c:?}"))
    }
    async fn probe(&mut self, p: &Probe) -> Result<Observation, ProviderError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("probe {}", p.name.value));
        let carried = p
            .http
            .as_ref()
            .is_some_and(|h| h.form.values().any(|v| v.contains(&self.canary)));
        let reset = p.expect.reset == Some(true);
        Ok(Observation {
            answered: !reset,
            reset,
            status: (!reset).then_some(200),
            attempts: 1,
            body: format!("carried={carried}"),
            ..Observation::default()
        })
    }
    async fn start_capture(
        &mut self,
        name: &str,
        canaries: &[String],
    ) -> Result<(), ProviderError> {
        assert_eq!(canaries, [self.canary.clone()]);
        self.note(format!("capture {name}")).map(|_| ())
    }
    async fn stop_capture(&mut self) -> Result<CaptureResult, ProviderError> {
        self.log.lock().unwrap().push("stop".into());
        let flow = |c: &str, s: &str, class, hits| Flow {
            client: c.parse().unwrap(),
            server: s.parse().unwrap(),
            class,
            protocol: None,
            sni: None,
            alpn: vec![],
            tls_version: None,
            canary_hits: hits,
            canary_scan: Default::default(),
            canary_encodings: Vec::new(),
            frames: Default::default(),
            client_bytes: 1,
            server_bytes: 1,
            overlay: None,
        };
        let clear = self.db_class == FlowClass::Plaintext;
        let flows = vec![
            flow("10.0.0.1:4000", "10.0.0.9:80", FlowClass::Plaintext, 1),
            flow(
                "10.0.0.2:5000",
                "10.0.0.3:3306",
                self.db_class,
                u64::from(clear),
            ),
            flow("10.0.0.9:5001", "10.0.0.2:80", FlowClass::IstioMtls, 0),
        ];
        let mut peers = PeerMap::default();
        for (ip, w) in [
            ("10.0.0.1", "host"),
            ("10.0.0.2", "httpd-server"),
            ("10.0.0.3", "mysql-server"),
            ("10.0.0.9", "ingress-gateway"),
        ] {
            peers.peers.insert(
                ip.parse().unwrap(),
                Peer {
                    workload: w.into(),
                    instance: w.into(),
                    node: String::new(),
                },
            );
        }
        Ok(CaptureResult {
            pcap: "x.pcap".into(),
            analysis: Analysis {
                packets: 30,
                bytes: 3000,
                flows,
                links: vec![],
            },
            peers,
            point: "fake".into(),
            drops: Some(crate::capture::DropCounts::new(0, 0, "fake")),
        })
    }
    async fn collect_diagnostics(&mut self, _: &Path) -> Result<(), ProviderError> {
        self.log.lock().unwrap().push("diagnostics".into());
        Ok(())
    }
    async fn teardown(
        self: Box<Self>,
        _: &dyn Reporter,
    ) -> Result<crate::provider::Teardown, ProviderError> {
        self.log.lock().unwrap().push("teardown".into());
        Ok(crate::provider::Teardown::default())
    }
}

fn pii_demo() -> Scenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Scenario::load(root, "pii-demo").unwrap()
}

fn options(phase: Option<&str>, dir: &Path) -> RunOptions {
    let dir = dir.to_path_buf();
    RunOptions {
        phase: phase.map(str::to_string),
        context: RunContext {
            run_id: "t".into(),
            artifacts: dir,
            canary: Canary::fixed("MESHPROOF-CANARY-test"),
            keep: false,
            reuse: None,
            context: None,
        },
    }
}

async fn run_fake(db_class: FlowClass, phase: Option<&str>) -> (ScenarioReport, Vec<String>) {
    let log = Log::default();
    let provider = FakeProvider {
        log: log.clone(),
        db_class,
        fail_preflight: false,
    };
    let (_handle, cancel) = Cancel::new();
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        &pii_demo(),
        &provider,
        &options(phase, dir.path()),
        &NullReporter,
        cancel,
    )
    .await;
    assert!(
        dir.path()
            .join("pii-demo")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "analysis saved"
    );
    let log = log.lock().unwrap().clone();
    (report, log)
}

#[tokio::test]
async fn runs_every_step_in_order_and_tears_down() {
    let (report, log) = run_fake(FlowClass::IstioMtls, None).await;
    assert_eq!(log.first().map(String::as_str), Some("provision"));
    assert_eq!(log.last().map(String::as_str), Some("teardown"));
    let capture = log.iter().position(|l| l == "capture strict-wire").unwrap();
    let stop = log.iter().rposition(|l| l == "stop").unwrap();
    assert!(
        log[capture..stop]
            .iter()
            .any(|l| l == "probe submit-pii-gateway"),
        "{log:?}"
    );
    assert_eq!(report.notes, ["fake lab"]);
    // The baseline expects plaintext web->db but the fake lab says mTLS: it must fail.
    let baseline = &report.phases[0].checks;
    assert!(
        baseline
            .iter()
            .any(|j| j.name == "pii-in-clear-between-nodes" && j.verdict == Verdict::Fail),
        "{baseline:#?}"
    );
    assert!(
        log.contains(&"diagnostics".to_string()),
        "diagnostics after a failure: {log:?}"
    );
}

#[tokio::test]
async fn a_skipped_step_is_reported_as_skip_not_pass() {
    let (report, _) = run_fake(FlowClass::IstioMtls, Some("strict-mtls")).await;
    let strict = &report.phases[1].checks;
    let gateway = strict
        .iter()
        .find(|j| j.name.starts_with("wait for the ingress"))
        .unwrap();
    assert_eq!(gateway.verdict, Verdict::Skip);
}

#[tokio::test]
async fn phase_selection_skips_earlier_observations() {
    let (report, log) = run_fake(FlowClass::IstioMtls, Some("strict-mtls")).await;
    assert!(
        !log.contains(&"capture baseline-wire".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"apply 3".to_string()),
        "earlier state changes still run: {log:?}"
    );
    let skipped = report.phases[0]
        .checks
        .iter()
        .find(|j| j.name == "capture baseline-wire")
        .unwrap();
    assert_eq!(skipped.verdict, Verdict::Skip);
    // In strict-mtls the fake lab shows mTLS on web->db and the canary in clear only on
    // the host->gateway leg, exactly what pii-demo expects.
    let strict = &report.phases[1];
    assert!(
        strict
            .checks
            .iter()
            .filter(|j| j.kind != CheckKind::Step)
            .all(|j| j.verdict == Verdict::Pass),
        "{strict:#?}"
    );
}

#[tokio::test]
async fn plaintext_under_strict_fails_with_evidence() {
    let (report, _) = run_fake(FlowClass::Plaintext, Some("strict-mtls")).await;
    let j = report.phases[1]
        .checks
        .iter()
        .find(|j| j.name == "db-traffic-is-istio-mtls")
        .unwrap();
    assert_eq!(j.verdict, Verdict::Fail);
    assert_eq!(j.evidence.flows.len(), 1);
    assert_eq!(j.evidence.flows[0].class, "plaintext");
    assert_eq!(report.verdict(), Verdict::Fail);
}

#[tokio::test]
async fn canary_is_rendered_into_probes() {
    let (report, _) = run_fake(FlowClass::IstioMtls, Some("strict-mtls")).await;
    let j = report.phases[1]
        .checks
        .iter()
        .find(|j| j.name == "submit-pii-gateway")
        .unwrap();
    assert_eq!(
        j.evidence.observation.as_ref().unwrap().body,
        "carried=true"
    );
}

#[tokio::test]
async fn preflight_failure_is_an_error_and_provisions_nothing() {
    let log = Log::default();
    let provider = FakeProvider {
        log: log.clone(),
        db_class: FlowClass::IstioMtls,
        fail_preflight: true,
    };
    let (_h, cancel) = Cancel::new();
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        &pii_demo(),
        &provider,
        &options(None, dir.path()),
        &NullReporter,
        cancel,
    )
    .await;
    assert_eq!(report.verdict(), Verdict::Error);
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn cancellation_still_tears_down() {
    let log = Log::default();
    let provider = FakeProvider {
        log: log.clone(),
        db_class: FlowClass::IstioMtls,
        fail_preflight: false,
    };
    let (handle, cancel) = Cancel::new();
    handle.cancel();
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        &pii_demo(),
        &provider,
        &options(None, dir.path()),
        &NullReporter,
        cancel,
    )
    .await;
    assert_eq!(report.verdict(), Verdict::Error);
    let log = log.lock().unwrap();
    assert_eq!(log.last().map(String::as_str), Some("teardown"), "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("apply")), "{log:?}");
}

#[tokio::test]
async fn a_lab_without_kubernetes_skips_the_hpa_step() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let xnat = Scenario::load(root, "xnat").unwrap();
    let log = Log::default();
    let provider = FakeProvider {
        log: log.clone(),
        db_class: FlowClass::IstioMtls,
        fail_preflight: false,
    };
    let (_h, cancel) = Cancel::new();
    let dir = tempfile::tempdir().unwrap();
    let opts = options(Some("hpa"), dir.path());
    let report = run(&xnat, &provider, &opts, &NullReporter, cancel).await;
    let hpa = report.phases.last().unwrap();
    assert_eq!(hpa.name, "hpa");
    let j = &hpa.checks[0];
    assert_eq!(
        (j.kind, j.verdict),
        (CheckKind::Autoscale, Verdict::Skip),
        "{j:#?}"
    );
    assert!(
        j.reason.contains("no HorizontalPodAutoscaler controller"),
        "{}",
        j.reason
    );
    assert_eq!(report.verdict(), Verdict::Skip, "a skip is never a pass");
}
