//! Consul Connect (the consul-vs-istio seed): intentions, transparent proxy on and off,
//! explicit upstreams on localhost, and the kube-DNS bypass.

use super::*;
use crate::wire::FlowClass;

const INJECT: &str = "consul.hashicorp.com/connect-inject: 'true'";

fn apps(dashboard_annotations: &str, counting_annotations: &str) -> String {
    [
        namespace("default", ""),
        deployment(
            "default",
            "counting",
            &[("http", 9001)],
            "",
            &format!("{INJECT}{counting_annotations}"),
        ),
        service(
            "default",
            "counting",
            "counting",
            &[("http", 9001, "9001")],
            false,
        ),
        deployment(
            "default",
            "dashboard",
            &[("http", 9002)],
            "",
            &format!("{INJECT}{dashboard_annotations}"),
        ),
        service(
            "default",
            "dashboard",
            "dashboard",
            &[("http", 9002, "9002")],
            false,
        ),
    ]
    .concat()
}

const DENY: &str = "apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: counting, namespace: default}
spec:
  destination: {name: counting}
  sources: [{name: dashboard, action: deny}, {name: '*', action: allow}]
---
";

const TPROXY_OFF: &str = ", consul.hashicorp.com/transparent-proxy: 'false'";
const UPSTREAM: &str = ", consul.hashicorp.com/connect-service-upstreams: 'counting:9001'";

fn dashboard_to(service: &str, yaml: &str) -> Row {
    let mut p = pair(
        Peer::workload("dashboard", "default"),
        Peer::workload("counting", "default"),
        service,
        "default",
        9001,
    );
    p.protocols = [(9001, Protocol::Http)].into_iter().collect();
    let m = evaluate(&docs(yaml), &[p], &MeshOptions::consul());
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    m.rows.into_iter().next().expect("a row")
}

#[test]
fn transparent_proxy_enforces_intentions() {
    let allowed = dashboard_to("counting", &apps("", ""));
    assert_eq!(
        (allowed.class, allowed.wire_port, allowed.client_tls),
        (FlowClass::ConsulMtls, Some(20000), ClientTls::ConsulMutual)
    );
    assert!(allowed.status.is_ok());
    let denied = dashboard_to("counting", &format!("{}{DENY}", apps("", "")));
    assert_eq!(
        consequence(&denied),
        Some(Consequence::Forbidden403),
        "http service: 403"
    );
    let tcp = apps("", "").replace("{name: http, port: 9001", "{name: tcp, port: 9001");
    let denied = dashboard_to("counting", &format!("{tcp}{DENY}"));
    assert_eq!(
        consequence(&denied),
        Some(Consequence::RbacClosed),
        "tcp service: closed"
    );
}

#[test]
fn without_transparent_proxy_kube_dns_bypasses_intentions() {
    let yaml = format!(
        "{}{DENY}",
        apps(&format!("{TPROXY_OFF}{UPSTREAM}"), TPROXY_OFF)
    );
    let upstream = dashboard_to("localhost", &yaml);
    assert_eq!(
        (upstream.class, consequence(&upstream)),
        (FlowClass::ConsulMtls, Some(Consequence::Forbidden403))
    );
    assert_eq!(
        upstream.client_tls_source.to_string(),
        "consul: upstream counting:9001"
    );
    let bypass = dashboard_to("counting", &yaml);
    assert_eq!(
        (bypass.class, bypass.wire_port, bypass.status.clone()),
        (FlowClass::Plaintext, Some(9001), Status::Ok)
    );
    assert!(
        bypass
            .notes
            .iter()
            .any(|n| n.contains("intentions are bypassed")),
        "{:?}",
        bypass.notes
    );
}

#[test]
fn transparent_proxy_on_the_server_refuses_the_bypass() {
    let yaml = format!("{}{DENY}", apps(&format!("{TPROXY_OFF}{UPSTREAM}"), ""));
    let r = dashboard_to("counting", &yaml);
    assert_eq!(
        (r.class, consequence(&r)),
        (FlowClass::Plaintext, Some(Consequence::Reset))
    );
}

#[test]
fn missing_upstream_and_defaults() {
    let r = dashboard_to("localhost", &apps(TPROXY_OFF, ""));
    assert_eq!(consequence(&r), Some(Consequence::Refused));
    let mut deny_by_default = MeshOptions::consul();
    deny_by_default.consul_default_allow = false;
    let mut p = pair(
        Peer::workload("dashboard", "default"),
        Peer::workload("counting", "default"),
        "counting",
        "default",
        9001,
    );
    p.protocols = [(9001, Protocol::Http)].into_iter().collect();
    let m = evaluate(&docs(&apps("", "")), &[p], &deny_by_default);
    assert_eq!(consequence(&m.rows[0]), Some(Consequence::Forbidden403));
}

#[test]
fn l7_permissions_decide_per_request() {
    let l7 = "apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: counting, namespace: default}
spec:
  destination: {name: counting}
  sources:
    - name: dashboard
      permissions: [{action: allow, http: {pathPrefix: /api, methods: [GET]}}, {action: deny, http: {pathPrefix: /}}]
---
";
    let yaml = format!("{}{l7}", apps("", ""));
    let mut p = pair(
        Peer::workload("dashboard", "default"),
        Peer::workload("counting", "default"),
        "counting",
        "default",
        9001,
    );
    p.protocols = [(9001, Protocol::Http)].into_iter().collect();
    p.request = request("GET", "/api/count", None);
    let mut post = p.clone();
    post.request = request("POST", "/api/count", None);
    let m = evaluate(&docs(&yaml), &[p, post], &MeshOptions::consul());
    let by_method = |m: &Matrix, method: &str| {
        consequence(
            m.rows
                .iter()
                .find(|r| r.request.as_ref().unwrap().method == method)
                .unwrap(),
        )
    };
    assert_eq!(by_method(&m, "GET"), None);
    assert_eq!(by_method(&m, "POST"), Some(Consequence::Forbidden403));
}
