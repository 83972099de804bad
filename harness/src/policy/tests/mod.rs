//! Policy model tests: one table per precedence rule, the xnat sequence, the seed's
//! tls-check table from the shipped rabbitmq fixtures, Consul, gateways and conflicts.
//!
//! Manifests are written inline as YAML so each test shows exactly what Istio would see.

mod authorization;
mod consul;
mod destination_rules;
mod egress;
mod external;
mod gateways;
mod istio_1_30;
mod mtls;
mod scenarios;
mod scope_and_undecided;
mod sidecars;
mod xnat;

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::manifest::parse_str;
use crate::scenario::Protocol;

/// Parses inline YAML documents; their order is their creation order.
pub(crate) fn docs(yaml: &str) -> Vec<Document> {
    parse_str(Path::new("test.yaml"), yaml).expect("test YAML parses")
}

/// A namespace, optionally with labels such as `istio-injection: enabled`.
pub(crate) fn namespace(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n---\n"
    )
}

/// A Deployment `name` (label `app: name`, ServiceAccount `name`) with container ports
/// `(name, port)`, pod labels and annotations given as YAML flow-map bodies.
pub(crate) fn deployment(
    ns: &str,
    name: &str,
    ports: &[(&str, u16)],
    labels: &str,
    annotations: &str,
) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|(n, p)| format!("{{name: {n}, containerPort: {p}}}"))
        .collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}{sep}{labels}}}
      annotations: {{{annotations}}}
    spec:
      serviceAccountName: {name}
      containers: [{{name: app, image: 'app:1.0', ports: [{ports}]}}]
---
",
        sep = if labels.is_empty() { "" } else { ", " },
        ports = ports.join(", "),
    )
}

/// A Service selecting `app: <selects>` with ports `(name, port, targetPort)`.
pub(crate) fn service(
    ns: &str,
    name: &str,
    selects: &str,
    ports: &[(&str, u16, &str)],
    headless: bool,
) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|(n, p, t)| format!("{{name: {n}, port: {p}, targetPort: {t}}}"))
        .collect();
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  {headless}selector: {{app: {selects}}}
  ports: [{ports}]
---
",
        headless = if headless { "clusterIP: None\n  " } else { "" },
        ports = ports.join(", "),
    )
}

/// The base mesh used by most tests: namespace `demo` with injection, a `web` server on
/// container port 8080 (`http`) behind Service `web:80`, and a `client`.
pub(crate) fn base() -> String {
    [
        namespace("demo", "istio-injection: enabled"),
        deployment("demo", "web", &[("http", 8080), ("metrics", 9090)], "", ""),
        service(
            "demo",
            "web",
            "web",
            &[("http", 80, "http"), ("tcp-metrics", 9090, "9090")],
            false,
        ),
        deployment("demo", "client", &[], "", ""),
    ]
    .concat()
}

/// A PeerAuthentication.
pub(crate) fn peer_authn(
    ns: &str,
    name: &str,
    selector: Option<&str>,
    mode: &str,
    ports: &str,
) -> String {
    let selector = selector
        .map(|s| format!("  selector: {{matchLabels: {{{s}}}}}\n"))
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        String::new()
    } else {
        format!("  portLevelMtls: {{{ports}}}\n")
    };
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {ns}}}
spec:
{selector}  mtls: {{mode: {mode}}}
{ports}---
"
    )
}

/// A DestinationRule with a YAML flow-map `trafficPolicy` body and extra spec lines.
pub(crate) fn dest_rule(
    ns: &str,
    name: &str,
    host: &str,
    traffic_policy: &str,
    extra: &str,
) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: '{host}'
  trafficPolicy: {{{traffic_policy}}}
{extra}---
"
    )
}

/// A pair from a workload (or built-in peer) to a Service port, served by `server`.
pub(crate) fn pair(client: Peer, server: Peer, service: &str, ns: &str, port: u16) -> Pair {
    Pair {
        client,
        server,
        service: service.into(),
        namespace: ns.into(),
        port,
        subset: String::new(),
        request: None,
        origin: "test".into(),
        protocols: BTreeMap::new(),
        onward: Vec::new(),
    }
}

/// `client` in `demo` calling `web:80`, whose app speaks HTTP on 8080.
pub(crate) fn client_to_web(port: u16) -> Pair {
    let mut p = pair(
        Peer::workload("client", "demo"),
        Peer::workload("web", "demo"),
        "web",
        "demo",
        port,
    );
    p.protocols = [(8080, Protocol::Http), (9090, Protocol::Tcp)]
        .into_iter()
        .collect();
    p
}

/// An HTTP request.
pub(crate) fn request(method: &str, path: &str, host: Option<&str>) -> Option<Request> {
    Some(Request {
        method: method.into(),
        path: path.into(),
        host: host.map(str::to_string),
    })
}

/// Evaluates one pair under Istio and returns its row.
pub(crate) fn row(yaml: &str, p: Pair) -> Row {
    let m = evaluate(&docs(yaml), std::slice::from_ref(&p), &MeshOptions::istio());
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    m.rows
        .into_iter()
        .find(|r| r.client == p.client && r.port == p.port && r.request == p.request)
        .expect("a row for the pair")
}

/// The consequence of a row's conflict, or `None` when it is OK. A row the model cannot
/// predict is neither: the test fails, naming why.
pub(crate) fn consequence(r: &Row) -> Option<Consequence> {
    match &r.status {
        Status::Ok => None,
        Status::Conflict { consequence, .. } => Some(*consequence),
        Status::CannotPredict { why, .. } => panic!("the model cannot predict this row: {why}"),
    }
}
