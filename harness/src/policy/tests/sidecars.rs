//! Sidecar presence, port exclusions, Service port to target port, and what each
//! client/server combination does (the conflicts and their consequences).

use super::*;
use crate::wire::FlowClass;

fn with_web_labels(labels: &str, annotations: &str, ns_labels: &str) -> String {
    [
        namespace("demo", ns_labels),
        deployment(
            "demo",
            "web",
            &[("http", 8080), ("metrics", 9090)],
            labels,
            annotations,
        ),
        service(
            "demo",
            "web",
            "web",
            &[("http", 80, "http"), ("tcp-metrics", 9090, "9090")],
            false,
        ),
        deployment("demo", "client", &[], "sidecar.istio.io/inject: 'true'", ""),
    ]
    .concat()
}

#[test]
fn sidecar_presence_table() {
    let enabled = "istio-injection: enabled";
    let table = [
        ("namespace label", "", enabled, true),
        (
            "pod opts out",
            "sidecar.istio.io/inject: 'false'",
            enabled,
            false,
        ),
        (
            "pod opts in without a namespace label",
            "sidecar.istio.io/inject: 'true'",
            "",
            true,
        ),
        ("nothing", "", "", false),
        (
            "namespace disabled wins",
            "sidecar.istio.io/inject: 'true'",
            "istio-injection: disabled",
            false,
        ),
        ("revision label", "", "istio.io/rev: default", true),
    ];
    for (name, labels, ns, want) in table {
        let r = row(&with_web_labels(labels, "", ns), client_to_web(80));
        assert_eq!(r.server_sidecar, want, "{name}");
        assert_eq!(
            r.client_sidecar,
            !ns.ends_with("disabled"),
            "{name}: the client opts in by label"
        );
    }
}

#[test]
fn service_port_maps_to_target_port() {
    let by_name = row(&base(), client_to_web(80));
    assert_eq!(
        (by_name.port, by_name.target_port, by_name.wire_port),
        (80, Some(8080), Some(8080))
    );
    let by_number = row(&base(), client_to_web(9090));
    assert_eq!(by_number.target_port, Some(9090));
    let implicit = base().replace(
        "{name: tcp-metrics, port: 9090, targetPort: 9090}",
        "{name: tcp-metrics, port: 9090}",
    );
    assert_eq!(
        row(&implicit, client_to_web(9090)).target_port,
        Some(9090),
        "targetPort defaults to the port"
    );
    let wrong = base().replace("targetPort: http}", "targetPort: htttp}");
    let r = row(&wrong, client_to_web(80));
    assert_eq!(r.target_port, None);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("names no container port")),
        "{:?}",
        r.notes
    );
}

#[test]
fn excluded_inbound_port_bypasses_the_sidecar() {
    let yaml = with_web_labels(
        "",
        "traffic.sidecar.istio.io/excludeInboundPorts: '8080'",
        "istio-injection: enabled",
    );
    let r = row(&yaml, client_to_web(80));
    // Auto mTLS still sees a sidecar on the endpoint, so the client sends mTLS that the
    // application cannot read: the reason meshes needed DestinationRules for such ports.
    assert_eq!(r.class, FlowClass::IstioMtls);
    assert_eq!(r.server_source.to_string(), "port 8080 excluded");
    assert_eq!(consequence(&r), Some(Consequence::Unavailable503));
    let fix = dest_rule(
        "demo",
        "web",
        "web",
        "portLevelSettings: [{port: {number: 80}, tls: {mode: DISABLE}}]",
        "",
    );
    let r = row(&format!("{yaml}{fix}"), client_to_web(80));
    assert_eq!(
        (r.class, r.status.clone()),
        (FlowClass::Plaintext, Status::Ok)
    );
}

#[test]
fn excluded_outbound_port_sends_plaintext() {
    let client = deployment(
        "demo",
        "client",
        &[],
        "",
        "traffic.sidecar.istio.io/excludeOutboundPorts: '80'",
    );
    let yaml = base().replace(&deployment("demo", "client", &[], "", ""), &client)
        + &peer_authn("demo", "default", None, "STRICT", "");
    let r = row(&yaml, client_to_web(80));
    assert_eq!(r.client_tls_source.to_string(), "port 80 excluded");
    assert_eq!(
        (r.class, consequence(&r)),
        (FlowClass::Plaintext, Some(Consequence::Reset))
    );
}

#[test]
fn client_server_combinations() {
    use Consequence::*;
    let strict = peer_authn("demo", "default", None, "STRICT", "");
    let disable_dr = dest_rule("demo", "plain", "web", "tls: {mode: DISABLE}", "");
    let no_client_sidecar = base().replace(
        &deployment("demo", "client", &[], "", ""),
        &deployment(
            "demo",
            "client",
            &[],
            "sidecar.istio.io/inject: 'false'",
            "",
        ),
    );
    let no_server_sidecar = base().replace(
        &deployment("demo", "web", &[("http", 8080), ("metrics", 9090)], "", ""),
        &deployment(
            "demo",
            "web",
            &[("http", 8080), ("metrics", 9090)],
            "sidecar.istio.io/inject: 'false'",
            "",
        ),
    );
    let istio_dr = dest_rule("demo", "mtls", "web", "tls: {mode: ISTIO_MUTUAL}", "");
    let simple_dr = dest_rule("demo", "simple", "web", "tls: {mode: SIMPLE}", "");
    let table: Vec<(&str, String, u16, FlowClass, Option<Consequence>)> = vec![
        (
            "mesh to STRICT",
            format!("{}{strict}", base()),
            80,
            FlowClass::IstioMtls,
            None,
        ),
        (
            "DR DISABLE to STRICT, HTTP: 503",
            format!("{}{strict}{disable_dr}", base()),
            80,
            FlowClass::Plaintext,
            Some(Unavailable503),
        ),
        (
            "DR DISABLE to STRICT, TCP: reset",
            format!("{}{strict}{disable_dr}", base()),
            9090,
            FlowClass::Plaintext,
            Some(Reset),
        ),
        (
            "non-mesh client to STRICT: reset",
            format!("{no_client_sidecar}{strict}"),
            80,
            FlowClass::Plaintext,
            Some(Reset),
        ),
        (
            "non-mesh client to PERMISSIVE",
            no_client_sidecar.clone(),
            80,
            FlowClass::Plaintext,
            None,
        ),
        (
            "auto mTLS to a server without sidecar: plaintext",
            no_server_sidecar.clone(),
            80,
            FlowClass::Plaintext,
            None,
        ),
        (
            "forced mTLS to a server without sidecar: 503",
            format!("{no_server_sidecar}{istio_dr}"),
            80,
            FlowClass::IstioMtls,
            Some(Unavailable503),
        ),
        (
            "forced mTLS, TCP: reset",
            format!("{no_server_sidecar}{istio_dr}"),
            9090,
            FlowClass::IstioMtls,
            Some(Reset),
        ),
        (
            "SIMPLE TLS to a plaintext app: 503",
            format!("{}{simple_dr}", base()),
            80,
            FlowClass::Tls,
            Some(Unavailable503),
        ),
    ];
    for (name, yaml, port, class, want) in table {
        let r = row(&yaml, client_to_web(port));
        assert_eq!(
            (r.class, consequence(&r)),
            (class, want),
            "{name}: {:?}",
            r.status
        );
    }
}

#[test]
fn server_first_protocol_under_permissive_stalls_for_plaintext_clients() {
    let db = [
        namespace("demo", "istio-injection: enabled"),
        deployment("demo", "db", &[("mysql", 3306)], "", ""),
        service("demo", "db", "db", &[("tcp-mysql", 3306, "mysql")], false),
        deployment("demo", "app", &[], "sidecar.istio.io/inject: 'false'", ""),
        deployment("demo", "meshed", &[], "", ""),
    ]
    .concat();
    let mut p = pair(
        Peer::workload("app", "demo"),
        Peer::workload("db", "demo"),
        "db",
        "demo",
        3306,
    );
    p.protocols = [(3306, Protocol::Mysql)].into_iter().collect();
    assert_eq!(consequence(&row(&db, p.clone())), Some(Consequence::Stall));
    let strict = peer_authn("demo", "default", None, "DISABLE", "");
    assert_eq!(
        consequence(&row(&format!("{db}{strict}"), p.clone())),
        None,
        "DISABLE works"
    );
    p.client = Peer::workload("meshed", "demo");
    assert_eq!(
        consequence(&row(&db, p)),
        None,
        "an mTLS client speaks first"
    );
}

#[test]
fn no_mesh_means_plain_application_bytes() {
    let mut p = client_to_web(80);
    p.protocols.insert(8080, Protocol::Tls);
    let m = evaluate(&docs(&base()), &[p], &MeshOptions::none());
    let r = &m.rows[0];
    assert_eq!(
        (
            r.client_sidecar,
            r.server_sidecar,
            r.class,
            r.status.clone()
        ),
        (false, false, FlowClass::Tls, Status::Ok)
    );
}
