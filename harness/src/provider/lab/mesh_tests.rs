//! The lab's use of the policy model: that it asks the model with the scenario's mesh and
//! the running pods, and converts the answers to Envoy types faithfully. The Istio rules
//! themselves are pinned by the model's own tests (`policy/tests/`).

use std::path::Path;

use super::*;
use crate::manifest::parse_str;

fn docs(yaml: &str) -> Vec<Document> {
    parse_str(Path::new("t.yaml"), yaml).unwrap()
}

const NS: &str = "apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {istio-injection: enabled}}
---
";

const APP: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  template:
    metadata:
      labels: {app: web}
      annotations: {traffic.sidecar.istio.io/excludeInboundPorts: '9000'}
    spec:
      containers: [{name: web, image: x:1, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: demo}
spec:
  template:
    metadata: {labels: {app: client}}
    spec:
      containers: [{name: client, image: x:1}]
";

fn istio(d: &[Document]) -> Mesh<'_> {
    Mesh::new(d, &MeshOptions::istio())
}

#[test]
fn injection_and_interception_come_from_the_model_under_the_scenario_mesh() {
    let d = docs(&format!("{NS}{APP}"));
    assert!(istio(&d).injected("demo", "web"));
    assert!(
        !Mesh::new(&d, &MeshOptions::none()).injected("demo", "web"),
        "a namespace label means nothing without Istio"
    );
    assert!(!istio(&d).injected("demo", "absent"));
    let mesh = istio(&d);
    assert!(mesh.intercepts_inbound("demo", "web", 8080));
    assert!(!mesh.intercepts_inbound("demo", "web", 9000));
    assert!(mesh.intercepts_outbound("demo", "web", 9000));
}

#[test]
fn named_target_ports_resolve_to_container_ports() {
    let d = docs(APP);
    let mesh = istio(&d);
    let svc = mesh.service("demo", "web").unwrap();
    assert_eq!(svc.ports[0].target, Target::Name("http".into()));
    assert_eq!(
        mesh.container_port("demo", "web", &svc.ports[0].target),
        Some(8080)
    );
    assert_eq!(svc.fqdn(), "web.demo.svc.cluster.local");
    assert_eq!(mesh.services_for("demo", "web"), vec![svc]);
    assert!(mesh.services_for("demo", "client").is_empty());
}

#[test]
fn inbound_ports_carry_the_model_mode_and_skip_excluded_ports() {
    let d = docs(&format!(
        "{NS}{APP}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec: {{mtls: {{mode: STRICT}}}}\n"
    ));
    let ports = istio(&d).inbound_ports(
        "demo",
        "web",
        &[(8080, Protocol::Http), (9000, Protocol::Tcp)],
    );
    assert_eq!(
        ports,
        vec![envoy::InboundPort {
            port: 8080,
            http: true,
            mode: InboundMode::Strict,
            authz: None,
        }]
    );
}

#[test]
fn client_mtls_follows_the_running_pods() {
    let d = docs(&format!("{NS}{APP}"));
    let mesh = istio(&d);
    let svc = mesh.service("demo", "web").unwrap();
    let client = Peer::workload("client", "demo");
    let mtls = |running: &[(&str, bool)]| {
        let running = running
            .iter()
            .map(|(w, s)| (format!("demo/{w}"), *s))
            .collect();
        mesh.observing(running)
            .client_mtls(&client, &svc, 80, Protocol::Http, "web")
    };
    assert!(mtls(&[]), "both injected: auto mTLS");
    assert!(
        !mtls(&[("web", false)]),
        "web's pods predate injection: plaintext until restarted"
    );
    assert!(!mtls(&[("client", false)]), "no client sidecar: no mTLS");
    assert!(
        !mesh.client_mtls(&client, &svc, 80, Protocol::Http, "client"),
        "a workload the Service does not select is not one of its endpoints"
    );
}

fn rule(json: Value) -> Rule {
    serde_json::from_value(json).unwrap()
}

#[test]
fn authorization_converts_by_action_and_port() {
    assert_eq!(authz(&[], 8080), None);
    let allow = AppliedPolicy {
        name: "a/demo".into(),
        action: AuthzAction::Allow,
        rules: vec![rule(serde_json::json!({
            "to": [{"operation": {"methods": ["GET", "HEAD"], "ports": ["8080"]}}],
            "from": [{"source": {"namespaces": ["demo"]}}],
        }))],
    };
    let at = authz(std::slice::from_ref(&allow), 8080).unwrap();
    assert_eq!(
        at.allow,
        Some(vec![AuthzRule {
            methods: vec!["GET".into(), "HEAD".into()],
            namespaces: vec!["demo".into()],
            ..AuthzRule::default()
        }])
    );
    assert_eq!(
        authz(std::slice::from_ref(&allow), 9000).unwrap().allow,
        Some(vec![]),
        "an ALLOW policy whose rules miss the port allows nothing there"
    );
    let not_port = rule(serde_json::json!({"to": [{"operation": {"notPorts": ["8080"]}}]}));
    assert_eq!(authz_rule(&not_port, 8080), None);
    assert_eq!(authz_rule(&not_port, 9000), Some(AuthzRule::default()));
    let deny = AppliedPolicy {
        name: "d/demo".into(),
        action: AuthzAction::Deny,
        rules: vec![rule(
            serde_json::json!({"to": [{"operation": {"methods": ["POST"]}}]}),
        )],
    };
    let audit = AppliedPolicy {
        name: "log/demo".into(),
        action: AuthzAction::Audit,
        rules: vec![Rule::default()],
    };
    let both = authz(&[deny, audit], 8080).unwrap();
    assert_eq!(both.deny[0].methods, vec!["POST"]);
    assert_eq!(
        both.allow, None,
        "no ALLOW policy: everything else is allowed"
    );
    assert_eq!(both.sources, vec!["d/demo", "log/demo"]);
}

#[test]
fn authorization_on_a_port_comes_from_the_model() {
    let d = docs(&format!(
        "{NS}{APP}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: none, namespace: demo}}\nspec: {{}}\n"
    ));
    let ports = istio(&d).inbound_ports("demo", "web", &[(8080, Protocol::Http)]);
    let a = ports[0].authz.as_ref().unwrap();
    assert_eq!(
        (a.allow.clone(), a.sources.clone()),
        (Some(vec![]), vec!["none/demo".to_string()])
    );
}

#[test]
fn gateway_routes_join_gateways_and_virtual_services() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let d = crate::manifest::load_file(&root.join("fixtures/pii-demo/istio.yaml")).unwrap();
    let routes = istio(&d).gateway_routes();
    assert_eq!(
        routes,
        vec![GatewayRoute {
            port: 80,
            hosts: vec!["pii-demo.apps.hl.test".into()],
            destination: "httpd-server.pii-demo.svc.cluster.local".into(),
            destination_port: 80,
        }]
    );
}
