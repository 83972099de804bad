//! Egress to a database outside the mesh, phase by phase of the shipped `mongodb-egress`
//! scenario: the PassthroughCluster, REGISTRY_ONLY, a ServiceEntry, and the egress gateway
//! with both of its legs.

use super::*;
use crate::wire::FlowClass;

fn matrix(phase: &str) -> Matrix {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let s = Scenario::load(&root, "mongodb-egress").expect("shipped scenario loads");
    let m = Matrix::for_scenario(&s, Some(phase)).unwrap();
    assert!(m.problems.is_empty(), "{phase}: {:?}", m.problems);
    m
}

fn row<'a>(m: &'a Matrix, client: &str, server: &str, port: u16) -> &'a Row {
    m.rows
        .iter()
        .find(|r| r.client.name() == client && r.server.name() == server && r.port == port)
        .unwrap_or_else(|| panic!("no row {client} -> {server}:{port}: {:#?}", m.rows))
}

#[test]
fn open_egress_passes_through_and_registry_only_blocks() {
    let open = matrix("allow-any");
    let r = row(&open, "ratings", "ratings-db", 27017);
    assert_eq!(
        (r.class, r.status.clone()),
        (FlowClass::Plaintext, Status::Ok)
    );
    assert!(
        r.notes.iter().any(|n| n.contains("PassthroughCluster")),
        "{:?}",
        r.notes
    );
    let blocked = matrix("registry-only");
    let r = row(&blocked, "ratings", "ratings-db", 27017);
    assert_eq!(consequence(r), Some(Consequence::Blocked));
    let outside = row(&blocked, "host", "ratings-db", 27017);
    assert!(outside.status.is_ok(), "the host is not in the mesh");
}

#[test]
fn a_service_entry_lets_the_sidecar_reach_the_database_in_plaintext() {
    let m = matrix("service-entry");
    let r = row(&m, "ratings", "ratings-db", 27017);
    assert_eq!(
        (r.class, r.client_tls, r.status.clone()),
        (FlowClass::Plaintext, ClientTls::Disable, Status::Ok)
    );
}

#[test]
fn the_egress_gateway_takes_the_traffic_in_two_legs() {
    let m = matrix("egress-gateway");
    assert!(
        !m.rows
            .iter()
            .any(|r| r.client.name() == "ratings" && r.server.name() == "ratings-db"),
        "no direct row once the VirtualService sends mesh traffic to the gateway"
    );
    let first = row(&m, "ratings", "egress-gateway", 443);
    assert_eq!(
        (
            first.class,
            first.client_tls,
            first.server_mode,
            first.status.clone()
        ),
        (
            FlowClass::IstioMtls,
            ClientTls::IstioMutual,
            MtlsMode::Strict,
            Status::Ok
        )
    );
    assert!(matches!(
        &first.client_tls_source,
        TlsSource::DestinationRule { name, .. } if name == "egressgateway-for-mongo"
    ));
    let second = row(&m, "egress-gateway", "ratings-db", 27017);
    assert_eq!(
        (second.class, second.status.clone()),
        (FlowClass::Plaintext, Status::Ok)
    );
    let flows = expected_flows(&m);
    assert!(
        flows
            .iter()
            .any(|f| f.from == "ratings" && f.to == "egress-gateway" && f.port == 443)
    );
}

#[test]
fn tls_passthrough_keeps_the_apps_tls_on_both_legs() {
    let m = matrix("tls-passthrough");
    let first = row(&m, "ratings", "egress-gateway", 443);
    assert_eq!(
        (first.class, first.client_tls, first.status.clone()),
        (FlowClass::Tls, ClientTls::Disable, Status::Ok)
    );
    let second = row(&m, "egress-gateway", "ratings-db-tls", 27017);
    assert_eq!(
        (second.class, second.status.clone()),
        (FlowClass::Tls, Status::Ok)
    );
}
