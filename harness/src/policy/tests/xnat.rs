//! The xnat sequence of seed 003 as library tests, with this test's own manifests (the
//! seed's are broken: bad indentation, a DestinationRule on 8080 where the Service port is
//! 80). A non-mesh reverse proxy (`alb`, the AWS ALB stand-in) forwards to the XNAT web
//! app (`xnat-web`, container port 8080 behind Service `xnat-xnat-web:80`).

use super::*;
use crate::wire::FlowClass;

fn cluster() -> String {
    [
        namespace("xnat", "istio-injection: enabled"),
        namespace("alb", ""),
        deployment(
            "xnat",
            "xnat-web",
            &[("http", 8080), ("metrics", 9090)],
            "",
            "",
        ),
        service(
            "xnat",
            "xnat-xnat-web",
            "xnat-web",
            &[("http", 80, "http"), ("tcp-metrics", 9090, "metrics")],
            false,
        ),
        deployment("xnat", "xnat-cli", &[], "", ""),
        deployment("alb", "alb", &[("http", 8080)], "", ""),
        service("alb", "alb", "alb", &[("http", 80, "http")], false),
    ]
    .concat()
}

/// Phase 1: mesh-wide STRICT.
fn mesh_strict() -> String {
    peer_authn("istio-system", "default", None, "STRICT", "")
}

/// Phase 2: STRICT for xnat-web except 8080, and the client side to match.
fn port_8080_disabled() -> String {
    peer_authn(
        "xnat",
        "default",
        Some("app: xnat-web"),
        "STRICT",
        "8080: {mode: DISABLE}",
    ) + &dest_rule(
        "xnat",
        "xnat-xnat-web",
        "xnat-xnat-web.xnat.svc.cluster.local",
        "tls: {mode: ISTIO_MUTUAL}, portLevelSettings: [{port: {number: 80}, tls: {mode: DISABLE}}]",
        "",
    )
}

/// Phase 3: an AuthorizationPolicy allowing these methods.
fn allow_methods(methods: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: xnat-all, namespace: xnat}}
spec:
  selector: {{matchLabels: {{app: xnat-web}}}}
  rules:
    - to:
        - operation:
            methods: [{methods}]
---
"
    )
}

/// `host` -> `alb:80` with an HTTP request; the proxy forwards it to `xnat-xnat-web:80`.
fn through_alb(method: &str) -> Pair {
    let mut upstream = pair(
        Peer::workload("alb", "alb"),
        Peer::workload("xnat-web", "xnat"),
        "xnat-xnat-web",
        "xnat",
        80,
    );
    upstream.protocols = [(8080, Protocol::Http), (9090, Protocol::Tcp)]
        .into_iter()
        .collect();
    let mut metrics = upstream.clone();
    metrics.port = 9090;
    let mut front = pair(Peer::Host, Peer::workload("alb", "alb"), "alb", "alb", 80);
    front.request = request(method, "/", Some("xnat.example.com"));
    front.protocols = [(8080, Protocol::Http)].into_iter().collect();
    // The proxy's only HTTP upstream is xnat-web:80; its TCP call is not a forwarding hop.
    front.onward = vec![upstream, metrics];
    front
}

fn matrix(yaml: &str, pairs: &[Pair]) -> Matrix {
    let m = evaluate(&docs(yaml), pairs, &MeshOptions::istio());
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    m
}

fn find<'a>(m: &'a Matrix, client: &str, service: &str, port: u16) -> &'a Row {
    m.rows
        .iter()
        .find(|r| r.client.name() == client && r.service == service && r.port == port)
        .expect("row")
}

#[test]
fn mesh_strict_with_a_non_mesh_proxy_gives_502() {
    let m = matrix(
        &format!("{}{}", cluster(), mesh_strict()),
        &[through_alb("GET")],
    );
    let upstream = find(&m, "alb", "xnat-xnat-web", 80);
    assert_eq!(
        (upstream.client_sidecar, upstream.server_mode),
        (false, MtlsMode::Strict)
    );
    assert_eq!(consequence(upstream), Some(Consequence::Reset));
    let front = find(&m, "host", "alb", 80);
    assert_eq!(consequence(front), Some(Consequence::BadGateway502));
    let Status::Conflict { problem, .. } = &front.status else {
        unreachable!()
    };
    assert!(
        problem.contains("alb -> xnat-xnat-web:80: the server is STRICT"),
        "{problem}"
    );
}

#[test]
fn port_8080_disable_gives_plaintext_on_8080_and_ok() {
    let yaml = format!("{}{}{}", cluster(), mesh_strict(), port_8080_disabled());
    let mut cli = pair(
        Peer::workload("xnat-cli", "xnat"),
        Peer::workload("xnat-web", "xnat"),
        "xnat-xnat-web",
        "xnat",
        9090,
    );
    cli.protocols = [(9090, Protocol::Tcp)].into_iter().collect();
    let m = matrix(&yaml, &[through_alb("GET"), cli]);
    let upstream = find(&m, "alb", "xnat-xnat-web", 80);
    assert_eq!(
        (upstream.server_mode, upstream.class, upstream.wire_port),
        (MtlsMode::Disable, FlowClass::Plaintext, Some(8080))
    );
    assert_eq!(upstream.server_source.to_string(), "default/xnat");
    assert!(upstream.status.is_ok());
    assert!(find(&m, "host", "alb", 80).status.is_ok());
    // Other ports of xnat-web stay mTLS.
    let metrics = find(&m, "xnat-cli", "xnat-xnat-web", 9090);
    assert_eq!(
        (metrics.class, metrics.server_mode, metrics.status.clone()),
        (FlowClass::IstioMtls, MtlsMode::Strict, Status::Ok)
    );
    // Mesh clients follow the DestinationRule: plaintext to Service port 80 (container 8080).
    let mut mesh_client = pair(
        Peer::workload("xnat-cli", "xnat"),
        Peer::workload("xnat-web", "xnat"),
        "xnat-xnat-web",
        "xnat",
        80,
    );
    mesh_client.protocols = [(8080, Protocol::Http)].into_iter().collect();
    let r = row(&yaml, mesh_client);
    assert_eq!(
        (r.client_tls, r.client_tls_source.to_string(), r.class),
        (
            ClientTls::Disable,
            "xnat-xnat-web/xnat".into(),
            FlowClass::Plaintext
        )
    );
}

#[test]
fn authorization_without_post_gives_403_for_post() {
    let without_post = format!(
        "{}{}{}{}",
        cluster(),
        mesh_strict(),
        port_8080_disabled(),
        allow_methods("GET, HEAD, PUT, DELETE, OPTIONS")
    );
    let m = matrix(&without_post, &[through_alb("POST"), through_alb("GET")]);
    let post = m
        .rows
        .iter()
        .find(|r| r.client == Peer::Host && r.request.as_ref().is_some_and(|q| q.method == "POST"))
        .unwrap();
    assert_eq!(consequence(post), Some(Consequence::Forbidden403));
    assert_eq!(
        Consequence::Forbidden403.to_string(),
        "403 RBAC: access denied"
    );
    let get = m
        .rows
        .iter()
        .find(|r| r.client == Peer::Host && r.request.as_ref().is_some_and(|q| q.method == "GET"))
        .unwrap();
    assert!(get.status.is_ok());
    let with_post = format!(
        "{}{}{}{}",
        cluster(),
        mesh_strict(),
        port_8080_disabled(),
        allow_methods("GET, POST, HEAD, PUT, DELETE, OPTIONS")
    );
    let m = matrix(&with_post, &[through_alb("POST")]);
    assert!(m.rows.iter().all(|r| r.status.is_ok()), "{:?}", m.rows);
}
