//! Destinations outside the cluster: ServiceEntries, REGISTRY_ONLY and its per-workload
//! override through a Sidecar resource.

use super::*;
use crate::wire::FlowClass;

const ENTRY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo, namespace: demo}
spec:
  hosts: [my-mongo.tcp.svc]
  addresses: [172.18.0.50/32]
  ports: [{number: 27017, name: tcp, protocol: TCP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 172.18.0.50}]
---
";

fn to_mongo(yaml: &str, mesh: &MeshOptions) -> Row {
    let mut p = pair(
        Peer::workload("client", "demo"),
        Peer::workload("mongo", "external"),
        "my-mongo.tcp.svc",
        "external",
        27017,
    );
    p.protocols = [(27017, Protocol::Mongodb)].into_iter().collect();
    let m = evaluate(&docs(yaml), &[p], mesh);
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    m.rows.into_iter().next().expect("a row")
}

#[test]
fn registry_only_blocks_unregistered_destinations() {
    let mut registry_only = MeshOptions::istio();
    registry_only.registry_only = true;
    let blocked = to_mongo(&base(), &registry_only);
    assert_eq!(consequence(&blocked), Some(Consequence::Blocked));
    let allowed = to_mongo(&format!("{}{ENTRY}", base()), &registry_only);
    assert_eq!(
        (allowed.class, allowed.client_tls, allowed.status.clone()),
        (FlowClass::Plaintext, ClientTls::Disable, Status::Ok)
    );
    let allow_any = to_mongo(&base(), &MeshOptions::istio());
    assert!(allow_any.status.is_ok());
    assert!(
        allow_any
            .notes
            .iter()
            .any(|n| n.contains("PassthroughCluster")),
        "{:?}",
        allow_any.notes
    );
}

#[test]
fn a_sidecar_resource_overrides_the_mesh_policy_for_its_namespace() {
    let sidecar = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: demo}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
---
";
    let r = to_mongo(&format!("{}{sidecar}", base()), &MeshOptions::istio());
    assert_eq!(consequence(&r), Some(Consequence::Blocked));
}

#[test]
fn tls_origination_to_an_external_tls_server() {
    let dr = dest_rule(
        "demo",
        "mongo-tls",
        "my-mongo.tcp.svc",
        "tls: {mode: SIMPLE}",
        "",
    );
    let mut p = pair(
        Peer::workload("client", "demo"),
        Peer::workload("mongo", "external"),
        "my-mongo.tcp.svc",
        "external",
        27017,
    );
    p.protocols = [(27017, Protocol::Tls)].into_iter().collect();
    let m = evaluate(
        &docs(&format!("{}{ENTRY}{dr}", base())),
        &[p],
        &MeshOptions::istio(),
    );
    let r = &m.rows[0];
    assert_eq!(
        (r.client_tls, r.class, r.status.clone()),
        (ClientTls::Simple, FlowClass::Tls, Status::Ok)
    );
}
