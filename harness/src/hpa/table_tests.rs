//! The table test of the HPA analysis: requests, limits, targets (Utilization,
//! AverageValue, ContainerResource), missing requests, several containers, classic and
//! native sidecars, proxy annotations and tolerance, each row with its expected numbers.

use super::*;

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
