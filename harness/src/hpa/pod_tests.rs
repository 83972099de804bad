//! Tests of the effective pod: injection decisions, request defaulting, proxy resources.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::manifest;

fn doc(value: Value) -> Document {
    // JSON is YAML, so the parser (and its locations) is the real one.
    manifest::parse_str(Path::new("case.yaml"), &value.to_string())
        .unwrap()
        .remove(0)
}

fn namespace(labels: Value) -> Document {
    doc(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": labels}}),
    )
}

fn workload(labels: Value, annotations: Value, spec: Value) -> Document {
    doc(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}
        }
    }))
}

fn app(request: Option<&str>, limit: Option<&str>) -> Value {
    let mut resources = json!({});
    if let Some(r) = request {
        resources["requests"] = json!({"cpu": r});
    }
    if let Some(l) = limit {
        resources["limits"] = json!({"cpu": l});
    }
    json!({"name": "web", "image": "nginx:1.30.0-alpine", "resources": resources})
}

fn model(
    ns_labels: Value,
    labels: Value,
    annotations: Value,
    spec: Value,
    extra: Vec<Document>,
) -> PodModel {
    let mut docs = vec![namespace(ns_labels)];
    docs.extend(extra);
    let w = workload(labels, annotations, spec);
    let proxy = ProxyResources::default();
    let ctx = PodContext {
        docs: &docs,
        mesh_proxy: Some(&proxy),
        mode: InjectionMode::Auto,
    };
    pod_model(&w, &ctx).unwrap()
}

fn simple(ns_labels: Value, labels: Value, annotations: Value) -> PodModel {
    model(
        ns_labels,
        labels,
        annotations,
        json!({"containers": [app(Some("100m"), None)]}),
        Vec::new(),
    )
}

#[test]
fn injection_follows_istios_webhooks() {
    let cases = [
        (
            json!({"istio-injection": "enabled"}),
            json!({}),
            json!({}),
            true,
        ),
        (
            json!({"istio-injection": "disabled"}),
            json!({}),
            json!({}),
            false,
        ),
        (
            json!({"istio-injection": "disabled"}),
            json!({"sidecar.istio.io/inject": "true"}),
            json!({}),
            false,
        ),
        (
            json!({"istio-injection": "enabled"}),
            json!({"sidecar.istio.io/inject": "false"}),
            json!({}),
            false,
        ),
        (
            json!({"istio-injection": "enabled"}),
            json!({}),
            json!({"sidecar.istio.io/inject": "false"}),
            false,
        ),
        (
            json!({"istio.io/rev": "default"}),
            json!({}),
            json!({}),
            true,
        ),
        (
            json!({}),
            json!({"sidecar.istio.io/inject": "true"}),
            json!({}),
            true,
        ),
        (
            json!({}),
            json!({"istio.io/rev": "canary"}),
            json!({}),
            true,
        ),
        // The annotation alone never calls the webhook: only labels select pods.
        (
            json!({}),
            json!({}),
            json!({"sidecar.istio.io/inject": "true"}),
            false,
        ),
        (json!({}), json!({}), json!({}), false),
    ];
    for (ns, labels, notes, injected) in cases {
        let pod = simple(ns.clone(), labels.clone(), notes.clone());
        assert_eq!(
            pod.injection.injected, injected,
            "ns {ns} labels {labels} annotations {notes}: {}",
            pod.injection.reason
        );
        assert_eq!(pod.proxies().count(), usize::from(injected));
    }
}

#[test]
fn injected_proxy_takes_mesh_values_or_annotations() {
    let on = || json!({"istio-injection": "enabled"});
    let proxy = |notes: Value| {
        simple(on(), json!({}), notes)
            .container(PROXY_CONTAINER)
            .cloned()
            .unwrap()
    };
    let p = proxy(json!({}));
    assert_eq!(
        (p.request, p.limit, p.request_origin),
        (
            Some(Cpu::millis(100)),
            Some(Cpu::millis(2000)),
            Origin::MeshValues
        )
    );
    assert!(p.native_sidecar && p.injected);
    let p = proxy(json!({"sidecar.istio.io/proxyCPU": "50m"}));
    assert_eq!(
        (p.request, p.limit),
        (Some(Cpu::millis(50)), None),
        "annotations replace the values entirely"
    );
    let p = proxy(json!({"sidecar.istio.io/proxyCPULimit": "500m"}));
    assert_eq!(
        (p.request, p.limit, p.request_origin),
        (
            Some(Cpu::millis(500)),
            Some(Cpu::millis(500)),
            Origin::Limit
        )
    );
    let p = proxy(json!({"sidecar.istio.io/proxyMemory": "256Mi"}));
    assert_eq!(
        (p.request, p.request_origin),
        (None, Origin::Missing),
        "proxyMemory alone leaves no CPU request"
    );
}

#[test]
fn declared_sidecars_count_and_are_not_injected_twice() {
    let proxy = json!({"name": "istio-proxy", "image": "istio/proxyv2:1.30.3", "resources": {"requests": {"cpu": "100m"}}});
    let classic = model(
        json!({"istio-injection": "enabled"}),
        json!({}),
        json!({}),
        json!({"containers": [app(Some("100m"), None), proxy.clone()]}),
        Vec::new(),
    );
    assert_eq!(classic.containers.len(), 2);
    assert!(!classic.container(PROXY_CONTAINER).unwrap().native_sidecar);
    let mut native = proxy.clone();
    native["restartPolicy"] = json!("Always");
    let init_only = json!({"name": "migrate", "image": "busybox:1.37.0", "resources": {"requests": {"cpu": "500m"}}});
    let pod = model(
        json!({}),
        json!({}),
        json!({}),
        json!({"containers": [app(Some("100m"), None)], "initContainers": [init_only, native]}),
        Vec::new(),
    );
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["web", "istio-proxy"],
        "a plain init container does not run alongside and does not count"
    );
    assert!(pod.container(PROXY_CONTAINER).unwrap().native_sidecar);
}

#[test]
fn requests_default_from_limits_then_limit_ranges() {
    let pod = model(
        json!({}),
        json!({}),
        json!({}),
        json!({"containers": [app(None, Some("250m"))]}),
        Vec::new(),
    );
    let web = pod.container("web").unwrap();
    assert_eq!(
        (web.request, web.request_origin.clone()),
        (Some(Cpu::millis(250)), Origin::Limit)
    );
    let range = doc(json!({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults", "namespace": "shop"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "200m"}, "default": {"cpu": "1"}}]}
    }));
    let pod = model(
        json!({}),
        json!({}),
        json!({}),
        json!({"containers": [app(None, None)]}),
        vec![range],
    );
    let web = pod.container("web").unwrap();
    assert_eq!(
        (web.request, web.limit),
        (Some(Cpu::millis(200)), Some(Cpu::millis(1000)))
    );
    assert_eq!(web.request_origin, Origin::LimitRange("defaults".into()));
    let pod = model(
        json!({}),
        json!({}),
        json!({}),
        json!({"containers": [app(None, None)]}),
        Vec::new(),
    );
    assert_eq!(pod.missing_requests(), ["web"]);
}

#[test]
fn pod_level_requests_are_read() {
    let spec = json!({"containers": [app(Some("100m"), None)], "resources": {"requests": {"cpu": "300m"}}});
    let pod = model(json!({}), json!({}), json!({}), spec, Vec::new());
    assert_eq!(pod.pod_request, Some(Cpu::millis(300)));
}

#[test]
fn bad_quantities_are_located() {
    let docs = vec![namespace(json!({}))];
    let w = workload(
        json!({}),
        json!({}),
        json!({"containers": [app(Some("lots"), None)]}),
    );
    let ctx = PodContext {
        docs: &docs,
        mesh_proxy: None,
        mode: InjectionMode::Auto,
    };
    let err = pod_model(&w, &ctx).unwrap_err().to_string();
    assert!(err.starts_with("case.yaml:1:"), "{err}");
    assert!(
        err.contains("containers[web].resources.requests.cpu") && err.contains("`lots`"),
        "{err}"
    );
}

#[test]
fn modes_override_labels() {
    let docs = vec![namespace(json!({}))];
    let w = workload(
        json!({}),
        json!({}),
        json!({"containers": [app(Some("100m"), None)]}),
    );
    let proxy = ProxyResources::default();
    let always = PodContext {
        docs: &docs,
        mesh_proxy: Some(&proxy),
        mode: InjectionMode::Always,
    };
    assert!(pod_model(&w, &always).unwrap().injection.injected);
    let docs = vec![namespace(json!({"istio-injection": "enabled"}))];
    let never = PodContext {
        docs: &docs,
        mesh_proxy: Some(&proxy),
        mode: InjectionMode::Never,
    };
    assert!(!pod_model(&w, &never).unwrap().injection.injected);
    let no_mesh = PodContext {
        docs: &docs,
        mesh_proxy: None,
        mode: InjectionMode::Auto,
    };
    assert!(!pod_model(&w, &no_mesh).unwrap().injection.injected);
}
