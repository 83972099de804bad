//! AuthorizationPolicy: ALLOW, DENY and allow-nothing; methods, paths, principals and
//! namespaces; TCP ports; the root namespace; requests the model cannot see.

use super::*;

fn policy(ns: &str, name: &str, selector: Option<&str>, action: &str, rules: &str) -> String {
    let selector = selector
        .map(|s| format!("  selector: {{matchLabels: {{{s}}}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
{selector}  action: {action}
  {rules}
---
"
    )
}

fn outcome(
    extra: &str,
    client_sidecar: bool,
    port: u16,
    method: &str,
    path: &str,
) -> Option<Consequence> {
    let mut yaml = format!("{}{extra}", base());
    if !client_sidecar {
        yaml = yaml.replace(
            &deployment("demo", "client", &[], "", ""),
            &deployment(
                "demo",
                "client",
                &[],
                "sidecar.istio.io/inject: 'false'",
                "",
            ),
        );
    }
    let mut p = client_to_web(port);
    p.request = request(method, path, Some("web.demo"));
    consequence(&row(&yaml, p))
}

#[test]
fn allow_deny_and_allow_nothing_table() {
    use Consequence::*;
    let web = Some("app: web");
    let table: Vec<(&str, String, &str, &str, Option<Consequence>)> = vec![
        ("no policy", String::new(), "GET", "/", None),
        ("allow-nothing", policy("demo", "deny-all", None, "ALLOW", "rules: []"), "GET", "/", Some(Forbidden403)),
        ("allow-nothing as spec {}", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: none, namespace: demo}\nspec: {}\n---\n".into(), "GET", "/", Some(Forbidden403)),
        ("allow everything", policy("demo", "all", web, "ALLOW", "rules: [{}]"), "POST", "/", None),
        ("ALLOW methods: listed", policy("demo", "m", web, "ALLOW", "rules: [{to: [{operation: {methods: [GET, HEAD]}}]}]"), "GET", "/", None),
        ("ALLOW methods: not listed", policy("demo", "m", web, "ALLOW", "rules: [{to: [{operation: {methods: [GET, HEAD]}}]}]"), "POST", "/", Some(Forbidden403)),
        ("DENY methods", policy("demo", "d", web, "DENY", "rules: [{to: [{operation: {methods: [DELETE]}}]}]"), "DELETE", "/", Some(Forbidden403)),
        ("DENY other method", policy("demo", "d", web, "DENY", "rules: [{to: [{operation: {methods: [DELETE]}}]}]"), "GET", "/", None),
        ("DENY beats ALLOW", policy("demo", "a", web, "ALLOW", "rules: [{}]") + &policy("demo", "d", web, "DENY", "rules: [{to: [{operation: {paths: ['/admin*']}}]}]"), "GET", "/admin/x", Some(Forbidden403)),
        ("path prefix", policy("demo", "p", web, "ALLOW", "rules: [{to: [{operation: {paths: ['/api/*']}}]}]"), "GET", "/api/v1", None),
        ("path prefix miss", policy("demo", "p", web, "ALLOW", "rules: [{to: [{operation: {paths: ['/api/*']}}]}]"), "GET", "/other", Some(Forbidden403)),
        ("notMethods", policy("demo", "not-post", web, "ALLOW", "rules: [{to: [{operation: {notMethods: [POST]}}]}]"), "POST", "/", Some(Forbidden403)),
        ("port condition", policy("demo", "p", web, "DENY", "rules: [{to: [{operation: {ports: ['8080']}}]}]"), "GET", "/", Some(Forbidden403)),
        ("port condition is the container port", policy("demo", "p", web, "DENY", "rules: [{to: [{operation: {ports: ['80']}}]}]"), "GET", "/", None),
        ("principal matches over mTLS", policy("demo", "pr", web, "ALLOW", "rules: [{from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]}]"), "GET", "/", None),
        ("principal mismatch", policy("demo", "pr", web, "ALLOW", "rules: [{from: [{source: {principals: [cluster.local/ns/demo/sa/other]}}]}]"), "GET", "/", Some(Forbidden403)),
        ("namespace matches", policy("demo", "ns", web, "ALLOW", "rules: [{from: [{source: {namespaces: [demo]}}]}]"), "GET", "/", None),
        ("notNamespaces", policy("demo", "ns", web, "ALLOW", "rules: [{from: [{source: {notNamespaces: [demo]}}]}]"), "GET", "/", Some(Forbidden403)),
        ("root namespace applies mesh-wide", policy("istio-system", "mesh-deny", None, "ALLOW", "rules: []"), "GET", "/", Some(Forbidden403)),
        ("selector must match", policy("demo", "x", Some("app: other"), "ALLOW", "rules: []"), "GET", "/", None),
        ("other namespaces do not count", policy("elsewhere", "x", None, "ALLOW", "rules: []"), "GET", "/", None),
    ];
    for (name, extra, method, path, want) in table {
        assert_eq!(outcome(&extra, true, 80, method, path), want, "{name}");
    }
}

#[test]
fn plaintext_peers_have_no_identity() {
    let by_namespace = policy(
        "demo",
        "ns",
        Some("app: web"),
        "ALLOW",
        "rules: [{from: [{source: {namespaces: [demo]}}]}]",
    );
    assert_eq!(
        outcome(&by_namespace, false, 80, "GET", "/"),
        Some(Consequence::Forbidden403)
    );
    let not_ns = policy(
        "demo",
        "ns",
        Some("app: web"),
        "DENY",
        "rules: [{from: [{source: {notNamespaces: [demo]}}]}]",
    );
    assert_eq!(
        outcome(&not_ns, false, 80, "GET", "/"),
        Some(Consequence::Forbidden403)
    );
}

#[test]
fn tcp_ports_drop_http_only_rules() {
    let allow_methods = policy(
        "demo",
        "m",
        Some("app: web"),
        "ALLOW",
        "rules: [{to: [{operation: {methods: [GET]}}]}]",
    );
    assert_eq!(
        outcome(&allow_methods, true, 9090, "GET", "/"),
        Some(Consequence::RbacClosed),
        "a smaller allow: nothing left"
    );
    let deny_methods = policy(
        "demo",
        "m",
        Some("app: web"),
        "DENY",
        "rules: [{to: [{operation: {methods: [POST]}}]}]",
    );
    assert_eq!(
        outcome(&deny_methods, true, 9090, "GET", "/"),
        Some(Consequence::RbacClosed),
        "a wider deny: everything"
    );
    let allow_ports = policy(
        "demo",
        "p",
        Some("app: web"),
        "ALLOW",
        "rules: [{to: [{operation: {ports: ['9090']}}]}]",
    );
    assert_eq!(outcome(&allow_ports, true, 9090, "GET", "/"), None);
}

#[test]
fn calls_without_a_request_depend_on_it() {
    let allow_methods = policy(
        "demo",
        "m",
        Some("app: web"),
        "ALLOW",
        "rules: [{to: [{operation: {methods: [GET]}}]}]",
    );
    // A call names no request: whether it passes is not predicted (the class still is).
    let r = row(&format!("{}{allow_methods}", base()), client_to_web(80));
    assert_eq!(
        r.status,
        Status::cannot_predict(
            "ALLOW policy m/demo reads the HTTP request, which a workload call does not name"
        )
    );
    assert_eq!(r.class, crate::wire::FlowClass::IstioMtls);
}

#[test]
fn inbound_policy_lists_rules_per_port() {
    let allow_methods = policy(
        "demo",
        "m",
        Some("app: web"),
        "ALLOW",
        "rules: [{to: [{operation: {methods: [GET]}}]}]",
    );
    let deny_post = policy(
        "demo",
        "d",
        Some("app: web"),
        "DENY",
        "rules: [{to: [{operation: {methods: [POST]}}]}]",
    );
    let yaml = format!("{}{allow_methods}{deny_post}", base());
    let inbound = inbound(
        &docs(&yaml),
        &Peer::workload("web", "demo"),
        &MeshOptions::istio(),
    )
    .unwrap();
    let http = inbound.port(8080).unwrap();
    assert_eq!(http.protocol, AppProtocol::Http);
    assert_eq!(
        http.authz.iter().map(|p| p.rules.len()).collect::<Vec<_>>(),
        [1, 1]
    );
    let tcp = inbound.port(9090).unwrap();
    assert_eq!(tcp.protocol, AppProtocol::Tcp);
    assert!(
        tcp.authz[0].rules.is_empty(),
        "the ALLOW rule is dropped on TCP"
    );
    assert!(
        tcp.authz[1].rules[0].to[0].operation.methods.is_empty(),
        "the DENY rule loses its HTTP fields"
    );
}
