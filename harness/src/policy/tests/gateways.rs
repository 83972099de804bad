//! The ingress gateway: Gateway servers, VirtualService routing, 404 and refused
//! connections, authorization at the gateway, and failures behind it becoming 503.

use super::*;
use crate::wire::FlowClass;

fn gateway(hosts: &str, tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web-gw, namespace: demo}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: [{hosts}]{tls}}}]
---
"
    )
}

fn virtual_service(host: &str, matches: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web-vs, namespace: demo}}
spec:
  hosts: [{host}]
  gateways: [web-gw]
  http:
    - {matches}route: [{{destination: {{host: web, port: {{number: 80}}}}}}]
---
"
    )
}

fn via_gateway(yaml: &str, method: &str, path: &str, host: &str) -> Matrix {
    let mut p = pair(
        Peer::Host,
        Peer::IngressGateway,
        "istio-ingressgateway",
        "istio-system",
        80,
    );
    p.request = request(method, path, Some(host));
    evaluate(&docs(yaml), &[p], &MeshOptions::istio())
}

fn front(m: &Matrix) -> &Row {
    m.rows
        .iter()
        .find(|r| r.client == Peer::Host)
        .expect("host row")
}

#[test]
fn routed_request_reaches_the_service_over_mtls() {
    let yaml = format!(
        "{}{}{}",
        base(),
        gateway("web.example", ""),
        virtual_service("web.example", "")
    );
    let m = via_gateway(&yaml, "GET", "/", "web.example");
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    let f = front(&m);
    assert_eq!(
        (f.class, f.wire_port, f.target_port, f.status.clone()),
        (FlowClass::Plaintext, Some(80), Some(8080), Status::Ok)
    );
    assert_eq!(f.server_source.to_string(), "gateway web-gw/demo");
    let back = m
        .rows
        .iter()
        .find(|r| r.client == Peer::IngressGateway)
        .expect("gateway row");
    assert_eq!(
        (back.service.as_str(), back.target_port, back.class),
        ("web", Some(8080), FlowClass::IstioMtls)
    );
    assert_eq!(back.protocol, AppProtocol::Http);
    let flows = expected_flows(&m);
    assert!(
        flows
            .iter()
            .any(|f| (f.from.as_str(), f.to.as_str(), f.port, f.class)
                == ("ingress-gateway", "web", 8080, FlowClass::IstioMtls))
    );
    assert!(
        flows
            .iter()
            .any(|f| (f.from.as_str(), f.to.as_str(), f.port, f.class)
                == ("host", "ingress-gateway", 80, FlowClass::Plaintext))
    );
}

#[test]
fn no_server_no_route_and_matches() {
    let none = via_gateway(&base(), "GET", "/", "web.example");
    assert_eq!(consequence(front(&none)), Some(Consequence::Refused));
    assert!(
        expected_flows(&none).is_empty(),
        "a refused connection carries no class"
    );
    let no_vs = via_gateway(
        &format!("{}{}", base(), gateway("'*'", "")),
        "GET",
        "/",
        "web.example",
    );
    assert_eq!(consequence(front(&no_vs)), Some(Consequence::NotFound404));
    let other_host = format!(
        "{}{}{}",
        base(),
        gateway("'*'", ""),
        virtual_service("other.example", "")
    );
    assert_eq!(
        consequence(front(&via_gateway(&other_host, "GET", "/", "web.example"))),
        Some(Consequence::NotFound404)
    );
    let prefix = format!(
        "{}{}{}",
        base(),
        gateway("'*'", ""),
        virtual_service("'*'", "match: [{uri: {prefix: /api}}]\n      ")
    );
    assert_eq!(
        consequence(front(&via_gateway(&prefix, "GET", "/api/x", "a"))),
        None
    );
    assert_eq!(
        consequence(front(&via_gateway(&prefix, "GET", "/x", "a"))),
        Some(Consequence::NotFound404)
    );
}

#[test]
fn gateway_expecting_tls_resets_plain_http() {
    let tls = gateway("'*'", ", tls: {mode: SIMPLE, credentialName: web-cert}");
    let yaml = format!("{}{tls}{}", base(), virtual_service("'*'", ""));
    assert_eq!(
        consequence(front(&via_gateway(&yaml, "GET", "/", "web.example"))),
        Some(Consequence::Reset)
    );
}

#[test]
fn failures_behind_the_gateway_are_503_and_403_passes_through() {
    let strict = peer_authn("demo", "default", None, "STRICT", "");
    let plain_from_gateway = dest_rule(
        "istio-system",
        "to-web",
        "web.demo.svc.cluster.local",
        "tls: {mode: DISABLE}",
        "  exportTo: ['.']\n",
    );
    let yaml = format!(
        "{}{}{}{strict}{plain_from_gateway}",
        base(),
        gateway("'*'", ""),
        virtual_service("'*'", "")
    );
    let m = via_gateway(&yaml, "GET", "/", "a");
    assert_eq!(consequence(front(&m)), Some(Consequence::Unavailable503));
    let deny = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: none, namespace: demo}\nspec: {selector: {matchLabels: {app: web}}}\n---\n";
    let yaml = format!(
        "{}{}{}{deny}",
        base(),
        gateway("'*'", ""),
        virtual_service("'*'", "")
    );
    assert_eq!(
        consequence(front(&via_gateway(&yaml, "GET", "/", "a"))),
        Some(Consequence::Forbidden403)
    );
    let at_gateway = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: gw, namespace: istio-system}\nspec: {selector: {matchLabels: {istio: ingressgateway}}, action: DENY, rules: [{to: [{operation: {paths: ['/admin*']}}]}]}\n---\n";
    let yaml = format!(
        "{}{}{}{at_gateway}",
        base(),
        gateway("'*'", ""),
        virtual_service("'*'", "")
    );
    assert_eq!(
        consequence(front(&via_gateway(&yaml, "GET", "/admin", "a"))),
        Some(Consequence::Forbidden403)
    );
    assert_eq!(
        consequence(front(&via_gateway(&yaml, "GET", "/", "a"))),
        None
    );
}
