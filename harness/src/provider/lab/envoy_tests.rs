//! Snapshot and structural tests of the generated Envoy configuration.

use super::*;

fn web_sidecar() -> SidecarConfig {
    SidecarConfig {
        pod: "httpd-server-0".into(),
        namespace: "pii-demo".into(),
        workload: "httpd-server".into(),
        pod_ip: "172.30.0.2".parse().unwrap(),
        inbound: vec![InboundPort {
            port: 80,
            http: true,
            mode: InboundMode::Permissive,
            authz: None,
        }],
        outbound: vec![OutboundRoute {
            listen: "127.1.0.1:3306".parse().unwrap(),
            cluster: UpstreamCluster {
                http: false,
                host: "mysql-server.pii-demo.svc.cluster.local".into(),
                service_port: 3306,
                target_port: 3306,
                service_fqdn: "mysql-server.pii-demo.svc.cluster.local".into(),
                tls: Some(UpstreamTls {
                    sni: istio_sni(3306, "mysql-server.pii-demo.svc.cluster.local"),
                    alpn: ALPN_TCP.iter().map(|s| s.to_string()).collect(),
                    peer_identities: vec!["spiffe://cluster.local/ns/pii-demo/sa/mysql".into()],
                }),
            },
            blackhole: false,
        }],
        ingress: vec![],
        egress: Vec::new(),
    }
}

fn xnat_sidecar() -> SidecarConfig {
    SidecarConfig {
        pod: "xnat-web-0".into(),
        namespace: "xnat".into(),
        workload: "xnat-web".into(),
        pod_ip: "172.30.0.3".parse().unwrap(),
        inbound: vec![
            InboundPort {
                port: 8080,
                http: true,
                mode: InboundMode::Strict,
                authz: Some(Authz {
                    deny: vec![],
                    allow: Some(vec![AuthzRule {
                        methods: vec!["GET".into(), "HEAD".into()],
                        paths: vec!["/data/*".into()],
                        principals: vec!["cluster.local/ns/xnat/sa/proxy".into()],
                        namespaces: vec![],
                    }]),
                    sources: vec!["xnat-allow/xnat".into()],
                }),
            },
            InboundPort {
                port: 9000,
                http: false,
                mode: InboundMode::Disable,
                authz: None,
            },
        ],
        outbound: vec![],
        ingress: vec![],
        egress: Vec::new(),
    }
}

#[test]
fn web_sidecar_snapshot() {
    insta::assert_json_snapshot!(bootstrap(&web_sidecar()));
}

#[test]
fn xnat_sidecar_snapshot() {
    insta::assert_json_snapshot!(bootstrap(&xnat_sidecar()));
}

#[test]
fn outbound_carries_istio_sni_alpn_and_client_cert() {
    let cfg = bootstrap(&web_sidecar());
    let cluster = &cfg["static_resources"]["clusters"][1];
    let tls = &cluster["transport_socket"]["typed_config"];
    assert_eq!(
        tls["sni"],
        "outbound_.3306_._.mysql-server.pii-demo.svc.cluster.local"
    );
    assert_eq!(
        tls["common_tls_context"]["alpn_protocols"],
        serde_json::json!(["istio-peer-exchange", "istio"])
    );
    assert_eq!(
        tls["common_tls_context"]["tls_certificates"][0]["certificate_chain"]["filename"],
        CERT_CHAIN
    );
    let san = &tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0];
    assert_eq!(
        san["matcher"]["exact"],
        "spiffe://cluster.local/ns/pii-demo/sa/mysql"
    );
}

#[test]
fn permissive_has_an_istio_alpn_chain_and_a_plaintext_chain() {
    let cfg = bootstrap(&web_sidecar());
    let listener = &cfg["static_resources"]["listeners"][0];
    assert_eq!(
        listener["address"]["socket_address"]["address"],
        "172.30.0.2"
    );
    let chains = listener["filter_chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2);
    assert_eq!(chains[0]["filter_chain_match"]["transport_protocol"], "tls");
    assert!(
        chains[0]["filter_chain_match"]["application_protocols"]
            .as_array()
            .unwrap()
            .contains(&"istio".into())
    );
    assert!(chains[1].get("transport_socket").is_none());
    assert_eq!(
        listener["listener_filters"][0]["name"],
        "envoy.filters.listener.tls_inspector"
    );
}

#[test]
fn strict_requires_a_client_certificate_and_disable_is_plain() {
    let cfg = bootstrap(&xnat_sidecar());
    let strict = &cfg["static_resources"]["listeners"][0]["filter_chains"];
    assert_eq!(strict.as_array().unwrap().len(), 1);
    assert_eq!(
        strict[0]["transport_socket"]["typed_config"]["require_client_certificate"],
        true
    );
    let plain = &cfg["static_resources"]["listeners"][1];
    assert!(plain["filter_chains"][0].get("transport_socket").is_none());
    assert!(plain.get("listener_filters").is_none());
}

#[test]
fn authorization_becomes_an_rbac_http_filter_before_the_router() {
    let cfg = bootstrap(&xnat_sidecar());
    let hcm =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = hcm["http_filters"].as_array().unwrap();
    assert_eq!(filters[0]["name"], "envoy.filters.http.rbac");
    assert_eq!(filters.last().unwrap()["name"], "envoy.filters.http.router");
    let rules = &filters[0]["typed_config"]["rules"];
    assert_eq!(rules["action"], "ALLOW");
    let policy = rules["policies"]["ns[xnat]-policy[xnat-allow/xnat]-rule[0]"].clone();
    let text = policy.to_string();
    assert!(text.contains(r#""exact":"HEAD""#), "{text}");
    assert!(text.contains(r#""prefix":"/data/""#), "{text}");
    assert!(
        text.contains("spiffe://cluster.local/ns/xnat/sa/proxy"),
        "{text}"
    );
}

#[test]
fn allow_nothing_is_an_allow_filter_without_policies() {
    let mut cfg = xnat_sidecar();
    cfg.inbound[0].authz = Some(Authz {
        deny: vec![],
        allow: Some(vec![]),
        sources: vec!["deny-all/xnat".into()],
    });
    let out = bootstrap(&cfg);
    let rbac = &out["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"][0];
    assert_eq!(rbac["typed_config"]["rules"]["action"], "ALLOW");
    assert_eq!(
        rbac["typed_config"]["rules"]["policies"],
        serde_json::json!({})
    );
}

#[test]
fn the_gateway_routes_by_host_to_mesh_clusters() {
    let cluster = web_sidecar().outbound[0].cluster.clone();
    let web = UpstreamCluster {
        http: true,
        host: "httpd-server.pii-demo.svc.cluster.local".into(),
        service_port: 80,
        target_port: 80,
        service_fqdn: "httpd-server.pii-demo.svc.cluster.local".into(),
        tls: cluster.tls.map(|t| UpstreamTls {
            sni: istio_sni(80, "httpd-server.pii-demo.svc.cluster.local"),
            ..t
        }),
    };
    let cfg = SidecarConfig {
        pod: "istio-ingressgateway-0".into(),
        namespace: "istio-system".into(),
        workload: "ingress-gateway".into(),
        pod_ip: "172.30.0.9".parse().unwrap(),
        inbound: vec![],
        outbound: vec![],
        ingress: vec![IngressRoute {
            port: 80,
            hosts: vec!["pii-demo.apps.hl.test".into()],
            cluster: web,
        }],
        egress: Vec::new(),
    };
    let out = bootstrap(&cfg);
    let listener = &out["static_resources"]["listeners"][0];
    assert_eq!(listener["address"]["socket_address"]["port_value"], 80);
    let vhost = &listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
        [0];
    assert_eq!(
        vhost["domains"],
        serde_json::json!(["pii-demo.apps.hl.test", "pii-demo.apps.hl.test:80"])
    );
    assert_eq!(
        vhost["routes"][0]["route"]["cluster"],
        "outbound|80||httpd-server.pii-demo.svc.cluster.local"
    );
    let tls = &out["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
    assert_eq!(
        tls["sni"],
        "outbound_.80_._.httpd-server.pii-demo.svc.cluster.local"
    );
}
