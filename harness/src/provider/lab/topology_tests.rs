//! The lab layouts of the project's own scenarios.

use std::path::Path;

use super::*;
use crate::provider::lab::envoy::InboundMode;

fn scenario(name: &str) -> Scenario {
    Scenario::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap(),
        name,
    )
    .unwrap()
}

#[test]
fn pii_demo_baseline_dials_mysql_directly() {
    let s = scenario("pii-demo");
    let docs = crate::policy::creation_order(&s, Some("baseline"));
    let topo = Topology::new(&s, Mesh::for_scenario(&s, &docs));
    let web = s.workload("httpd-server").unwrap();
    let role = topo.role(web, "httpd-server-0", false, "c");
    assert_eq!(role.listeners[0].bind, "0.0.0.0:80".parse().unwrap());
    assert_eq!(
        role.upstreams[0].dial,
        "mysql-server.pii-demo.svc.cluster.local:3306"
    );
    assert_eq!(role.upstreams[0].protocol, Protocol::Mysql);
    assert!(
        topo.aliases(s.workload("mysql-server").unwrap(), "mysql-server-0")
            .contains(&"mysql-server.pii-demo.svc.cluster.local".to_string())
    );
}

#[test]
fn pii_demo_strict_goes_through_sidecars_with_istio_mtls() {
    let s = scenario("pii-demo");
    let docs = crate::policy::creation_order(&s, Some("strict-mtls"));
    let topo = Topology::new(&s, Mesh::for_scenario(&s, &docs));
    let web = s.workload("httpd-server").unwrap();
    let role = topo.role(web, "httpd-server-0", true, "c");
    assert_eq!(role.listeners[0].bind, "127.0.0.1:80".parse().unwrap());
    assert_eq!(role.upstreams[0].dial, "127.1.0.1:3306");
    let cfg = topo.sidecar(web, "httpd-server-0", "10.0.0.2".parse().unwrap(), &|_| {
        true
    });
    assert_eq!(cfg.inbound[0].mode, InboundMode::Strict);
    let tls = cfg.outbound[0]
        .cluster
        .tls
        .as_ref()
        .expect("mTLS to a sidecar-injected STRICT server");
    assert_eq!(
        tls.sni,
        "outbound_.3306_._.mysql-server.pii-demo.svc.cluster.local"
    );
    assert_eq!(
        tls.peer_identities,
        vec!["spiffe://cluster.local/ns/pii-demo/sa/mysql-server".to_string()]
    );
    let plain = topo.sidecar(web, "httpd-server-0", "10.0.0.2".parse().unwrap(), &|w| {
        w != "mysql-server"
    });
    assert!(
        plain.outbound[0].cluster.tls.is_none(),
        "auto mTLS sends plaintext to a pod without sidecar"
    );
    let gw = topo.gateway("10.0.0.9".parse().unwrap(), &|_| true);
    assert_eq!(gw.ingress[0].port, 80);
    assert_eq!(gw.ingress[0].cluster.target_port, 80);
    assert!(gw.ingress[0].cluster.tls.is_some());
}

#[test]
fn rabbitmq_peers_call_each_other_and_epmd_stays_plain() {
    let s = scenario("rabbitmq");
    let docs = crate::policy::creation_order(&s, Some("strict-mtls"));
    let topo = Topology::new(&s, Mesh::for_scenario(&s, &docs));
    let rabbit = s.workload("rabbitmq").unwrap();
    let dests = topo.destinations(rabbit, "rabbitmq-0", true);
    let hosts: Vec<(String, u16)> = dests
        .iter()
        .map(|d| (d.host.clone(), d.service_port))
        .collect();
    assert_eq!(
        hosts,
        vec![
            (
                "rabbitmq-1.rabbitmq-nodes.rabbitmq.svc.cluster.local".into(),
                4369
            ),
            (
                "rabbitmq-2.rabbitmq-nodes.rabbitmq.svc.cluster.local".into(),
                4369
            ),
            (
                "rabbitmq-1.rabbitmq-nodes.rabbitmq.svc.cluster.local".into(),
                25672
            ),
            (
                "rabbitmq-2.rabbitmq-nodes.rabbitmq.svc.cluster.local".into(),
                25672
            ),
        ]
    );
    let role = topo.role(rabbit, "rabbitmq-0", true, "c");
    assert_eq!(
        role.node,
        "rabbit@rabbitmq-0.rabbitmq-nodes.rabbitmq.svc.cluster.local"
    );
    assert!(
        !role.listeners.iter().any(|l| l.bind.port() == 5671),
        "no TLS listener, as in the fixture"
    );
    let cfg = topo.sidecar(rabbit, "rabbitmq-0", "10.0.0.3".parse().unwrap(), &|_| true);
    let mode = |port| cfg.inbound.iter().find(|p| p.port == port).unwrap().mode;
    assert_eq!(
        (mode(4369), mode(5672), mode(25672)),
        (
            InboundMode::Disable,
            InboundMode::Strict,
            InboundMode::Strict
        )
    );
    let tls = |port| {
        cfg.outbound
            .iter()
            .find(|r| r.cluster.service_port == port)
            .unwrap()
            .cluster
            .tls
            .is_some()
    };
    assert!(!tls(4369) && tls(25672));
    let client = s.workload("amqp-client").unwrap();
    let cfg = topo.sidecar(
        client,
        "amqp-client-0",
        "10.0.0.4".parse().unwrap(),
        &|_| true,
    );
    let to = |port| {
        cfg.outbound
            .iter()
            .find(|r| r.cluster.service_port == port)
            .unwrap()
            .cluster
            .tls
            .is_some()
    };
    assert!(to(5672) && to(15672) && !to(5671));
}
