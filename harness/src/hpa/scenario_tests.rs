//! The `hpa:` step in scenario files: the xnat scenario loads and explains its skew, and
//! each mistake in an `hpa:` step is a located problem.

use std::path::Path;

use super::analysis::Reach;
use super::*;
use crate::scenario::{Problem, ScenarioError};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_xnat_scenario_loads_and_explains_its_skew() {
    let xnat = Scenario::load(root(), "xnat").unwrap();
    assert!(xnat.file.requires.metrics_server);
    let report = check_scenario(&xnat, &Assumptions::default()).unwrap();
    let contexts: Vec<&str> = report.hpas.iter().map(|h| h.context.as_str()).collect();
    assert_eq!(
        contexts,
        [
            "phase hpa, hpa step sidecar-skew (skewed)",
            "phase hpa, hpa step sidecar-skew (fixed)"
        ]
    );
    let skewed = &report.hpas[0];
    let m = &skewed.metrics[0];
    assert_eq!(
        (m.target_point, m.app_at_target, m.intended_at_target),
        (Some(140.0), Some(130.0), Some(70.0))
    );
    assert_eq!(
        m.reach,
        Some(Reach::Unreachable {
            limit: Cpu::millis(120),
            needed: Cpu::millis(146)
        })
    );
    assert_eq!(skewed.fixes.len(), 2);
    let pod = skewed.pod.as_ref().unwrap();
    assert!(pod.injection.injected, "{}", pod.injection.reason);
    let fixed = &report.hpas[1];
    assert!(
        fixed.findings.iter().all(|f| f.severity == Severity::Info),
        "{:#?}",
        fixed.findings
    );
    assert!(fixed.fixes.is_empty());
    assert_eq!(
        fixed.metrics[0].reach,
        Some(Reach::Reachable {
            limit: Cpu::millis(120)
        })
    );
    assert_eq!(report.worst(), Some(Severity::Error));
}

#[test]
fn the_xnat_fixtures_are_what_the_checks_need() {
    let xnat = Scenario::load(root(), "xnat").unwrap();
    let all = xnat.state_after(None);
    let service = all
        .iter()
        .find(|d| d.kind == "Service" && d.name == "xnat-xnat-web")
        .unwrap();
    assert_eq!(
        service
            .value
            .pointer("/spec/ports/0/port")
            .and_then(|p| p.as_u64()),
        Some(80)
    );
    let rule = all.iter().find(|d| d.kind == "DestinationRule").unwrap();
    let port = rule
        .value
        .pointer("/spec/trafficPolicy/portLevelSettings/0/port/number");
    assert_eq!(
        port.and_then(|p| p.as_u64()),
        Some(80),
        "keyed by the Service port, not the seed's 8080"
    );
    for doc in all.iter().filter(|d| d.kind == "Deployment") {
        for image in doc
            .value
            .pointer("/spec/template/spec/containers")
            .and_then(|c| c.as_array())
            .unwrap()
        {
            let image = image["image"].as_str().unwrap();
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest", "{image} is not pinned");
        }
    }
    let ingress = all
        .iter()
        .find(|d| d.kind == "Namespace" && d.name == "xnat-ingress")
        .unwrap();
    assert_eq!(
        ingress
            .value
            .pointer("/metadata/labels/istio-injection")
            .and_then(|v| v.as_str()),
        Some("disabled")
    );
}

/// A scenario with one `hpa:` step, loaded from a temporary directory.
const BASE: &str = r#"apiVersion: meshproof.dev/v1alpha1
kind: Scenario
name: demo
summary: an hpa step
requires:
  mesh: { name: istio }
  metricsServer: true
workloads:
  - name: web
    namespace: demo
phases:
  - name: scale
    steps:
      - apply: [app.yaml]
      - hpa:
          name: skew
          workload: web
          container: web
          skewed: skewed.yaml
          fixed: fixed.yaml
          hold: 3m
          timeout: 8m
"#;

const APP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.30.0-alpine
          resources: {requests: {cpu: 100m}, limits: {cpu: 120m}}
";

fn hpa_text(name: &str, target: &str, metric: &str) -> String {
    format!(
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {name}, namespace: demo}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}
  maxReplicas: 3
  metrics: [{metric}]
"
    )
}

const POD_CPU: &str =
    "{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}";
const WEB_CPU: &str = "{type: ContainerResource, containerResource: {name: cpu, container: web, target: {type: Utilization, averageUtilization: 70}}}";

fn load(scenario: &str, skewed: &str, fixed: &str) -> Result<Scenario, ScenarioError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("app.yaml", APP),
        ("skewed.yaml", skewed),
        ("fixed.yaml", fixed),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("demo.yaml");
    std::fs::write(&path, scenario).unwrap();
    Scenario::load_path(&path, dir.path())
}

fn problems(scenario: &str, skewed: &str, fixed: &str) -> Vec<Problem> {
    match load(scenario, skewed, fixed) {
        Err(ScenarioError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

fn good() -> (String, String) {
    (
        hpa_text("web", "web", POD_CPU),
        hpa_text("web", "web", WEB_CPU),
    )
}

#[test]
fn a_valid_hpa_step_loads_and_analyses() {
    let (skewed, fixed) = good();
    let s = load(BASE, &skewed, &fixed).unwrap();
    let report = check_scenario(&s, &Assumptions::default()).unwrap();
    assert_eq!(report.hpas.len(), 2);
    assert_eq!(report.hpas[0].metrics[0].target_point, Some(140.0));
}

#[test]
fn hpa_step_mistakes_are_located() {
    let (skewed, fixed) = good();
    let cases: Vec<(String, String, String, &str, u32)> = vec![
        (
            BASE.replace("hold: 3m", "hold: 9m"),
            skewed.clone(),
            fixed.clone(),
            "hold 9m is not shorter than timeout 8m",
            21,
        ),
        (
            BASE.replace("  metricsServer: true\n", ""),
            skewed.clone(),
            fixed.clone(),
            "needs metrics-server",
            15,
        ),
        (
            BASE.replace("workload: web", "workload: wbe"),
            skewed.clone(),
            fixed.clone(),
            "hpa workload `wbe` is not a declared workload",
            17,
        ),
        (
            BASE.replace("fixed: fixed.yaml", "fixed: nope.yaml"),
            skewed.clone(),
            fixed.clone(),
            "manifest `nope.yaml` does not exist",
            20,
        ),
        (
            BASE.to_string(),
            skewed.clone(),
            hpa_text("other", "web", WEB_CPU),
            "must have the skewed HPA's name",
            20,
        ),
        (
            BASE.to_string(),
            hpa_text("web", "db", POD_CPU),
            fixed.clone(),
            "scales db, not workload `web`",
            19,
        ),
        (
            BASE.to_string(),
            format!("{skewed}---\n{}", hpa_text("two", "web", POD_CPU)),
            fixed.clone(),
            "exactly one HorizontalPodAutoscaler, not 2",
            19,
        ),
    ];
    for (scenario, skewed, fixed, message, line) in cases {
        let found = problems(&scenario, &skewed, &fixed);
        let p = found
            .iter()
            .find(|p| p.message.contains(message))
            .unwrap_or_else(|| panic!("{message:?} not in {found:#?}"));
        assert_eq!(p.at.line, line, "{message}: {p}");
    }
    let typo = BASE.replace("hold: 3m", "hodl: 3m");
    let found = problems(&typo, &skewed, &fixed);
    assert!(
        found[0].message.contains("unknown field") && found[0].at.line == 21,
        "{found:#?}"
    );
}
