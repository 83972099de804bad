//! A stand-in Kubernetes API for unit tests: a `tower::service_fn` under a real
//! `kube::Client`, answering each request from a function of method and path, and
//! logging every request so tests can check order.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use ::kube::client::Body;
use serde_json::{Value, json};

use super::Kube;

/// The requests the fake answered, as `METHOD /path?query`, in order.
pub type RequestLog = Arc<Mutex<Vec<String>>>;

/// The URL the fake pretends to be, as errors name it.
pub const URL: &str = "https://fake-apiserver.test:6443";

/// A client whose every request is answered by `answer(method, path_and_query)`.
pub fn kube<F>(answer: F) -> (Kube, RequestLog)
where
    F: Fn(&str, &str) -> (u16, Value) + Send + Sync + 'static,
{
    let log: RequestLog = Arc::default();
    let seen = log.clone();
    let answer = Arc::new(answer);
    let service = tower::service_fn(move |req: http::Request<Body>| {
        let method = req.method().to_string();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        if let Ok(mut log) = seen.lock() {
            log.push(format!("{method} {path}"));
        }
        let (code, body) = answer(&method, &path);
        async move {
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string().into_bytes()))
                .expect("a valid response");
            Ok::<_, Infallible>(response)
        }
    });
    let client = ::kube::Client::new(service, "default");
    (Kube::from_client(client, URL), log)
}

/// An API `Status` failure, as the server sends it.
pub fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// Aggregated discovery for `/api` (core group) or `/apis`: each resource as
/// `(group, version, kind, plural, namespaced)`.
pub fn discovery(path: &str, resources: &[(&str, &str, &str, &str, bool)]) -> (u16, Value) {
    let core = path.starts_with("/api?") || path == "/api";
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for (group, version, kind, plural, namespaced) in resources {
        if group.is_empty() != core {
            continue;
        }
        let resource = json!({
            "resource": plural, "singularResource": kind.to_lowercase(),
            "responseKind": {"group": group, "version": version, "kind": kind},
            "scope": if *namespaced { "Namespaced" } else { "Cluster" },
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]
        });
        let name = format!("{group}/{version}");
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push(resource),
            None => groups.push((name, vec![resource])),
        }
    }
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(name, resources)| {
            let (group, version) = name.split_once('/').unwrap_or_default();
            json!({"metadata": {"name": group},
                   "versions": [{"version": version, "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    (
        200,
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
               "metadata": {}, "items": items}),
    )
}

/// True for the discovery requests (`/api`, `/apis`).
pub fn is_discovery(path: &str) -> bool {
    let bare = path.split('?').next().unwrap_or_default();
    bare == "/api" || bare == "/apis"
}
