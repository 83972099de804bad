//! Tests of the HPA analysis: the seed's numbers, a table over requests, limits, targets,
//! missing requests, multiple containers and sidecar kinds, and the fixes parsed back
//! into `autoscaling/v2`.

use std::path::Path;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::{Value, json};

use super::analysis::{MetricKind, Reach, utilization_points, value_trigger};
use super::fix::FixKind;
use super::*;

fn doc(value: Value) -> Document {
    manifest::parse_str(Path::new("case.yaml"), &value.to_string())
        .unwrap()
        .remove(0)
}

fn namespace(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "xnat", "labels": labels}})
}

fn container(name: &str, request: Option<&str>, limit: Option<&str>) -> Value {
    let mut resources = json!({});
    if let Some(r) = request {
        resources["requests"] = json!({"cpu": r});
    }
    if let Some(l) = limit {
        resources["limits"] = json!({"cpu": l});
    }
    json!({"name": name, "image": "nginx:1.30.0-alpine", "resources": resources})
}

fn deployment(annotations: Value, spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "xnat-web", "namespace": "xnat"},
        "spec": {
            "selector": {"matchLabels": {"app": "xnat-web"}},
            "template": {"metadata": {"labels": {"app": "xnat-web"}, "annotations": annotations}, "spec": spec}
        }
    })
}

fn hpa_with(api_version: &str, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": "HorizontalPodAutoscaler", "metadata": {"name": "xnat-xnat-web", "namespace": "xnat"}, "spec": spec})
}

fn hpa(metrics: Value) -> Value {
    hpa_with(
        "autoscaling/v2",
        json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "xnat-web"},
            "minReplicas": 1, "maxReplicas": 3, "metrics": metrics
        }),
    )
}

fn cpu_utilization(target: i32) -> Value {
    json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}])
}

fn analyze_values(values: Vec<Value>) -> Result<HpaAnalysis, HpaError> {
    let docs: Vec<Document> = values.into_iter().map(doc).collect();
    let hpa = docs.iter().find(|d| is_hpa(d)).unwrap();
    let proxy = ProxyResources::default();
    analysis::analyze(hpa, &docs, Some(&proxy), &Assumptions::default(), "test")
}

/// The seed's pod: app 100m (limit as given), in an injected namespace.
fn seed(limit: Option<&str>, metrics: Value) -> HpaAnalysis {
    let spec = json!({"containers": [container("xnat-web", Some("100m"), limit)]});
    analyze_values(vec![
        namespace(json!({"istio-injection": "enabled"})),
        deployment(json!({}), spec),
        hpa(metrics),
    ])
    .unwrap()
}

fn worst(a: &HpaAnalysis) -> Option<Severity> {
    a.findings.iter().map(|f| f.severity).max()
}

#[test]
fn the_seeds_numbers_are_reproduced_exactly() {
    let a = seed(None, cpu_utilization(70));
    let m = &a.metrics[0];
    assert_eq!(m.kind, MetricKind::PodUtilization { target: 70 });
    assert_eq!(
        m.denominator,
        Some(Cpu::millis(200)),
        "app 100m + istio-proxy 100m"
    );
    assert_eq!(m.target_point, Some(140.0), "(100m + 100m) * 70% = 140m");
    assert_eq!(
        m.app_at_target,
        Some(130.0),
        "an idle proxy at 10m leaves 130m for the app"
    );
    assert_eq!(
        m.intended_at_target,
        Some(70.0),
        "without the mesh the app scales at 70m"
    );
    assert_eq!(m.app_request, Some(Cpu::millis(100)));
    let shares: Vec<(&str, f64)> = m
        .shares
        .iter()
        .map(|s| (s.container.as_str(), s.at_target))
        .collect();
    assert_eq!(shares, [("xnat-web", 70.0), ("istio-proxy", 70.0)]);
    // The controller acts only beyond the 10% tolerance: utilization 78% of 200m.
    assert_eq!(
        (m.trigger, m.trigger_utilization, m.app_at_trigger),
        (Some(Cpu::millis(156)), Some(78), Some(Cpu::millis(146)))
    );
    let skew = a
        .findings
        .iter()
        .find(|f| f.message.contains("skews"))
        .unwrap();
    for number in [
        "140m",
        "200m",
        "istio-proxy 100m",
        "10m",
        "130m",
        "130% of its 100m request",
        "instead of 70m",
    ] {
        assert!(
            skew.message.contains(number),
            "{number} missing from: {}",
            skew.message
        );
    }
    assert_eq!(skew.severity, Severity::Warning);
}

#[test]
fn the_seeds_fixes_parse_into_autoscaling_v2() {
    let a = seed(Some("120m"), cpu_utilization(70));
    assert_eq!(a.fixes.len(), 2);
    let parsed = |kind: FixKind| -> HorizontalPodAutoscaler {
        let fix = a.fixes.iter().find(|f| f.kind == kind).unwrap();
        let docs = manifest::parse_str(Path::new("fix.yaml"), &fix.yaml).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            (docs[0].api_version.as_str(), docs[0].name.as_str()),
            ("autoscaling/v2", "xnat-xnat-web")
        );
        docs[0].typed().unwrap()
    };
    let container = parsed(FixKind::ContainerResource);
    let metrics = container.spec.metrics.unwrap();
    assert_eq!(metrics.len(), 1);
    let source = metrics[0].container_resource.as_ref().unwrap();
    assert_eq!(
        (
            metrics[0].type_.as_str(),
            source.container.as_str(),
            source.name.as_str()
        ),
        ("ContainerResource", "xnat-web", "cpu")
    );
    assert_eq!(
        (
            source.target.type_.as_str(),
            source.target.average_utilization
        ),
        ("Utilization", Some(70))
    );
    assert_eq!(container.spec.scale_target_ref.name, "xnat-web");
    assert_eq!(container.spec.max_replicas, 3);
    let value = parsed(FixKind::AverageValue);
    let metrics = value.spec.metrics.unwrap();
    let target = &metrics[0].resource.as_ref().unwrap().target;
    assert_eq!(
        (
            target.type_.as_str(),
            target.average_value.as_ref().map(|q| q.0.as_str())
        ),
        ("AverageValue", Some("80m")),
        "70% of 100m + 10m"
    );
    let after = &a
        .fixes
        .iter()
        .find(|f| f.kind == FixKind::ContainerResource)
        .unwrap()
        .after;
    assert_eq!(
        after,
        &[
            "xnat-web at 70% of 100m: scales out at 78m and above (without the mesh: 78m)"
                .to_string()
        ]
    );
    let after = &a
        .fixes
        .iter()
        .find(|f| f.kind == FixKind::AverageValue)
        .unwrap()
        .after;
    assert!(
        after[0].contains("scales out at 79m"),
        "89m per pod minus the proxy's 10m: {after:?}"
    );
}

#[test]
fn below_the_limit_the_skewed_hpa_never_scales() {
    let a = seed(Some("120m"), cpu_utilization(70));
    assert_eq!(
        a.metrics[0].reach,
        Some(Reach::Unreachable {
            limit: Cpu::millis(120),
            needed: Cpu::millis(146)
        })
    );
    assert_eq!(worst(&a), Some(Severity::Error));
    let a = seed(Some("200m"), cpu_utilization(70));
    assert_eq!(
        a.metrics[0].reach,
        Some(Reach::Reachable {
            limit: Cpu::millis(200)
        })
    );
    assert_eq!(worst(&a), Some(Severity::Warning));
    assert_eq!(
        seed(None, cpu_utilization(70)).metrics[0].reach,
        Some(Reach::Unbounded)
    );
}

/// One row of the table: a pod and an HPA, and the numbers the analysis must give.
struct Row {
    name: &'static str,
    ns_labels: Value,
    annotations: Value,
    spec: Value,
    metrics: Value,
    denominator: Option<u64>,
    target_point: Option<f64>,
    app_at_target: Option<f64>,
    trigger: Option<u64>,
    worst: Option<Severity>,
}

fn rows() -> Vec<Row> {
    let on = || json!({"istio-injection": "enabled"});
    let app = |r: Option<&str>, l: Option<&str>| container("xnat-web", r, l);
    let proxy = |r: &str| container("istio-proxy", Some(r), None);
    let mut native = proxy("100m");
    native["restartPolicy"] = json!("Always");
    let container_metric = |c: &str, t: Value| json!([{"type": "ContainerResource", "containerResource": {"name": "cpu", "container": c, "target": t}}]);
    let utilization = |p: i32| json!({"type": "Utilization", "averageUtilization": p});
    let value = |v: &str| json!({"type": "AverageValue", "averageValue": v});
    vec![
        Row {
            name: "no mesh: the app alone",
            ns_labels: json!({}),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: cpu_utilization(70),
            denominator: Some(100),
            target_point: Some(70.0),
            app_at_target: Some(70.0),
            trigger: Some(78),
            worst: None,
        },
        Row {
            name: "classic sidecar in containers",
            ns_labels: json!({}),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None), proxy("100m")]}),
            metrics: cpu_utilization(70),
            denominator: Some(200),
            target_point: Some(140.0),
            app_at_target: Some(130.0),
            trigger: Some(156),
            worst: Some(Severity::Warning),
        },
        Row {
            name: "native sidecar in initContainers",
            ns_labels: json!({}),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)], "initContainers": [native]}),
            metrics: cpu_utilization(70),
            denominator: Some(200),
            target_point: Some(140.0),
            app_at_target: Some(130.0),
            trigger: Some(156),
            worst: Some(Severity::Warning),
        },
        Row {
            name: "proxyCPU annotation 50m",
            ns_labels: on(),
            annotations: json!({"sidecar.istio.io/proxyCPU": "50m"}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: cpu_utilization(70),
            denominator: Some(150),
            target_point: Some(105.0),
            app_at_target: Some(95.0),
            trigger: Some(117),
            worst: Some(Severity::Warning),
        },
        Row {
            name: "proxyCPULimit alone becomes the request",
            ns_labels: on(),
            annotations: json!({"sidecar.istio.io/proxyCPULimit": "500m"}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: cpu_utilization(70),
            denominator: Some(600),
            target_point: Some(420.0),
            app_at_target: Some(410.0),
            trigger: Some(468),
            worst: Some(Severity::Warning),
        },
        Row {
            name: "proxyMemory alone leaves the proxy without a CPU request",
            ns_labels: on(),
            annotations: json!({"sidecar.istio.io/proxyMemory": "256Mi"}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: cpu_utilization(70),
            denominator: None,
            target_point: None,
            app_at_target: None,
            trigger: None,
            worst: Some(Severity::Error),
        },
        Row {
            name: "app without a request",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(None, None)]}),
            metrics: cpu_utilization(70),
            denominator: None,
            target_point: None,
            app_at_target: None,
            trigger: None,
            worst: Some(Severity::Error),
        },
        Row {
            name: "app with only a limit",
            ns_labels: json!({}),
            annotations: json!({}),
            spec: json!({"containers": [app(None, Some("300m"))]}),
            metrics: cpu_utilization(50),
            denominator: Some(300),
            target_point: Some(150.0),
            app_at_target: Some(150.0),
            trigger: Some(168),
            worst: None,
        },
        Row {
            name: "two app containers and a proxy",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None), container("worker", Some("200m"), None)]}),
            metrics: cpu_utilization(50),
            denominator: Some(400),
            target_point: Some(200.0),
            app_at_target: Some(190.0),
            trigger: Some(224),
            worst: Some(Severity::Warning),
        },
        Row {
            name: "pod-level request replaces the sum",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)], "resources": {"requests": {"cpu": "300m"}}}),
            metrics: cpu_utilization(70),
            denominator: Some(300),
            target_point: Some(210.0),
            app_at_target: Some(200.0),
            trigger: Some(234),
            worst: Some(Severity::Info),
        },
        Row {
            name: "ContainerResource on the app ignores the proxy",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), Some("120m"))]}),
            metrics: container_metric("xnat-web", utilization(70)),
            denominator: Some(100),
            target_point: Some(70.0),
            app_at_target: Some(70.0),
            trigger: Some(78),
            worst: None,
        },
        Row {
            name: "ContainerResource on a missing container",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: container_metric("web", utilization(70)),
            denominator: None,
            target_point: None,
            app_at_target: None,
            trigger: None,
            worst: Some(Severity::Error),
        },
        Row {
            name: "ContainerResource without the container's request",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(None, None)]}),
            metrics: container_metric("xnat-web", utilization(70)),
            denominator: None,
            target_point: None,
            app_at_target: None,
            trigger: None,
            worst: Some(Severity::Error),
        },
        Row {
            name: "ContainerResource on the proxy",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: container_metric("istio-proxy", utilization(70)),
            denominator: Some(100),
            target_point: Some(70.0),
            app_at_target: None,
            trigger: Some(78),
            worst: Some(Severity::Warning),
        },
        Row {
            name: "AverageValue counts the proxy's usage only",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), Some("120m"))]}),
            metrics: json!([{"type": "Resource", "resource": {"name": "cpu", "target": value("80m")}}]),
            denominator: None,
            target_point: Some(80.0),
            app_at_target: Some(70.0),
            trigger: Some(89),
            worst: Some(Severity::Info),
        },
        Row {
            name: "ContainerResource AverageValue",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: container_metric("xnat-web", value("60m")),
            denominator: None,
            target_point: Some(60.0),
            app_at_target: Some(60.0),
            trigger: Some(67),
            worst: None,
        },
        Row {
            name: "memory is not analysed",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: json!([{"type": "Resource", "resource": {"name": "memory", "target": utilization(70)}}]),
            denominator: None,
            target_point: None,
            app_at_target: None,
            trigger: None,
            worst: Some(Severity::Info),
        },
        Row {
            name: "a 5% tolerance moves the trigger",
            ns_labels: on(),
            annotations: json!({}),
            spec: json!({"containers": [app(Some("100m"), None)]}),
            metrics: cpu_utilization(70),
            denominator: Some(200),
            target_point: Some(140.0),
            app_at_target: Some(130.0),
            trigger: Some(148),
            worst: Some(Severity::Warning),
        },
    ]
}

#[test]
fn table_over_requests_limits_targets_and_sidecars() {
    for row in rows() {
        let mut h = hpa(row.metrics.clone());
        if row.name.contains("tolerance") {
            h["spec"]["behavior"] = json!({"scaleUp": {"tolerance": "0.05"}});
        }
        let values = vec![
            namespace(row.ns_labels.clone()),
            deployment(row.annotations.clone(), row.spec.clone()),
            h,
        ];
        let a = analyze_values(values).unwrap_or_else(|e| panic!("{}: {e}", row.name));
        let m = &a.metrics[0];
        assert_eq!(
            m.denominator.map(Cpu::as_millis),
            row.denominator,
            "{}: denominator",
            row.name
        );
        assert_eq!(
            m.target_point, row.target_point,
            "{}: target point",
            row.name
        );
        assert_eq!(
            m.app_at_target, row.app_at_target,
            "{}: app at target",
            row.name
        );
        assert_eq!(
            m.trigger.map(Cpu::as_millis),
            row.trigger,
            "{}: trigger",
            row.name
        );
        assert_eq!(
            worst(&a),
            row.worst,
            "{}: findings {:#?}",
            row.name,
            a.findings
        );
        for fix in &a.fixes {
            let parsed = manifest::parse_str(Path::new("fix.yaml"), &fix.yaml).unwrap();
            parsed[0]
                .typed::<HorizontalPodAutoscaler>()
                .unwrap_or_else(|e| panic!("{}: {e}", row.name));
        }
    }
}

#[test]
fn missing_requests_name_the_container_and_the_istio_cause() {
    let spec = json!({"containers": [container("xnat-web", Some("100m"), None)]});
    let notes = json!({"sidecar.istio.io/proxyMemory": "256Mi"});
    let a = analyze_values(vec![
        namespace(json!({"istio-injection": "enabled"})),
        deployment(notes, spec),
        hpa(cpu_utilization(70)),
    ])
    .unwrap();
    let f = &a.findings[0];
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.message
            .contains("container istio-proxy has no CPU request"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("sidecar.istio.io/proxyCPU"),
        "{}",
        f.message
    );
    assert!(
        a.fixes.is_empty(),
        "nothing to fix until the HPA can compute utilization"
    );
}

#[test]
fn fixes_keep_other_metrics_and_cover_every_app_container() {
    let spec = json!({"containers": [container("xnat-web", Some("100m"), None), container("worker", Some("200m"), None)]});
    let mut metrics = cpu_utilization(50);
    metrics.as_array_mut().unwrap().push(json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}));
    let a = analyze_values(vec![
        namespace(json!({"istio-injection": "enabled"})),
        deployment(json!({}), spec),
        hpa(metrics),
    ])
    .unwrap();
    let fix = a
        .fixes
        .iter()
        .find(|f| f.kind == FixKind::ContainerResource)
        .unwrap();
    let hpa: HorizontalPodAutoscaler = manifest::parse_str(Path::new("fix.yaml"), &fix.yaml)
        .unwrap()[0]
        .typed()
        .unwrap();
    let kinds: Vec<String> = hpa
        .spec
        .metrics
        .unwrap()
        .iter()
        .map(|m| match (&m.container_resource, &m.resource) {
            (Some(c), _) => format!("{} {}", c.container, c.name),
            (_, Some(r)) => format!("pod {}", r.name),
            _ => String::new(),
        })
        .collect();
    assert_eq!(kinds, ["xnat-web cpu", "worker cpu", "pod memory"]);
    let value = a
        .fixes
        .iter()
        .find(|f| f.kind == FixKind::AverageValue)
        .unwrap();
    assert!(
        value.yaml.contains("averageValue: 160m"),
        "50% of 300m + 10m:\n{}",
        value.yaml
    );
}

#[test]
fn v1_hpas_are_read_as_v2_and_removed_versions_are_located_errors() {
    let spec = json!({"containers": [container("xnat-web", Some("100m"), None)]});
    let v1 = hpa_with(
        "autoscaling/v1",
        json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "xnat-web"},
            "maxReplicas": 3, "targetCPUUtilizationPercentage": 70
        }),
    );
    let a = analyze_values(vec![
        namespace(json!({"istio-injection": "enabled"})),
        deployment(json!({}), spec.clone()),
        v1,
    ])
    .unwrap();
    assert_eq!(a.metrics[0].target_point, Some(140.0));
    assert_eq!(a.fixes.len(), 2);
    let old = hpa_with(
        "autoscaling/v2beta1",
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "xnat-web"}, "maxReplicas": 3}),
    );
    let err = analyze_values(vec![namespace(json!({})), deployment(json!({}), spec), old])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("case.yaml:1:") && err.contains("autoscaling/v2beta1"),
        "{err}"
    );
}

#[test]
fn unknown_targets_and_competing_hpas_are_flagged() {
    let a = analyze_values(vec![namespace(json!({})), hpa(cpu_utilization(70))]).unwrap();
    assert!(a.pod.is_none() && a.metrics.is_empty());
    assert_eq!(worst(&a), Some(Severity::Warning));
    let spec = json!({"containers": [container("xnat-web", Some("100m"), None)]});
    let mut other = hpa(cpu_utilization(50));
    other["metadata"]["name"] = json!("second");
    let a = analyze_values(vec![
        namespace(json!({})),
        deployment(json!({}), spec),
        hpa(cpu_utilization(70)),
        other,
    ])
    .unwrap();
    assert!(
        a.findings
            .iter()
            .any(|f| f.severity == Severity::Error && f.message.contains("AmbiguousSelector")),
        "{:#?}",
        a.findings
    );
}

#[test]
fn thresholds_follow_the_controllers_float_comparison() {
    assert_eq!(
        utilization_points(Cpu::millis(200), 70, 0.1),
        (140.0, Cpu::millis(156), 78)
    );
    assert_eq!(
        utilization_points(Cpu::millis(100), 70, 0.1),
        (70.0, Cpu::millis(78), 78)
    );
    // 55 / 50 is exactly 1 + 0.1 in float64, which is still within tolerance.
    assert_eq!(
        utilization_points(Cpu::millis(100), 50, 0.1),
        (50.0, Cpu::millis(56), 56)
    );
    assert_eq!(
        utilization_points(Cpu::millis(155), 70, 0.1).1,
        Cpu::millis(121)
    );
    assert_eq!(value_trigger(Cpu::millis(80), 0.1), Cpu::millis(89));
    assert_eq!(value_trigger(Cpu::millis(100), 0.1), Cpu::millis(111));
    assert_eq!(value_trigger(Cpu::millis(100), 0.0), Cpu::millis(101));
}

#[test]
fn the_report_renders_every_part() {
    let a = seed(Some("120m"), cpu_utilization(70));
    let report = Report {
        subject: "test".into(),
        assumptions: Assumptions::default(),
        hpas: vec![a],
    };
    let text = render::text(&report);
    for part in [
        "HPA xnat/xnat-xnat-web → Deployment xnat/xnat-web",
        "sidecar injected (namespace xnat has istio-injection=enabled)",
        "istio-proxy",
        "target point 140m per pod: xnat-web 70m + istio-proxy 70m",
        "the app needs 130m at the target, 146m to trigger",
        "reachable: NO: the app's CPU limit 120m is below the 146m it needs",
        "fix 1 (ContainerResource)",
        "fix 2 (AverageValue)",
        "averageValue: 80m",
        "1 error(s), 1 warning(s)",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    assert_eq!(report.worst(), Some(Severity::Error));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["hpas"][0]["metrics"][0]["target_point"], json!(140.0));
}
