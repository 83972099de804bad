//! The Istio rules the lab's data plane depends on, one case each.

use std::path::Path;

use super::*;
use crate::manifest::parse_str;

fn docs(yaml: &str) -> Vec<Document> {
    parse_str(Path::new("t.yaml"), yaml).unwrap()
}

const APP: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: x:1, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {ports: [{port: 80, targetPort: http}]}
";

#[test]
fn injection_follows_the_namespace_label_and_the_pod_opt_out() {
    let plain = docs(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: demo}}\n---{APP}"
    ));
    assert!(!Mesh::new(&plain).injected("demo", "web"));
    let labelled = docs(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: demo, labels: {{istio-injection: enabled}}}}\n---{APP}"
    ));
    assert!(Mesh::new(&labelled).injected("demo", "web"));
    let opt_out = APP.replace(
        "labels: {app: web}",
        "labels: {app: web, sidecar.istio.io/inject: \"false\"}",
    );
    let opted = docs(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: demo, labels: {{istio-injection: enabled}}}}\n---{opt_out}"
    ));
    assert!(!Mesh::new(&opted).injected("demo", "web"));
}

#[test]
fn named_target_ports_resolve_to_container_ports() {
    let d = docs(APP);
    let mesh = Mesh::new(&d);
    let svc = mesh.service("demo", "web").unwrap();
    assert_eq!(svc.ports[0].target, Target::Name("http".into()));
    assert_eq!(
        mesh.container_port("demo", "web", &svc.ports[0].target),
        Some(8080)
    );
    assert_eq!(svc.fqdn(), "web.demo.svc.cluster.local");
}

#[test]
fn peer_authentication_precedence() {
    let base = docs(APP);
    assert_eq!(
        Mesh::new(&base).inbound_mode("demo", "web", 8080).0,
        InboundMode::Permissive
    );
    let mesh_wide = docs(&format!(
        "{APP}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec: {{mtls: {{mode: STRICT}}}}\n"
    ));
    assert_eq!(
        Mesh::new(&mesh_wide).inbound_mode("demo", "web", 8080),
        (InboundMode::Strict, "default/istio-system".into())
    );
    let ns_disable = format!(
        "{APP}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: ns, namespace: demo}}\nspec: {{mtls: {{mode: DISABLE}}}}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec: {{mtls: {{mode: STRICT}}}}\n"
    );
    assert_eq!(
        Mesh::new(&docs(&ns_disable))
            .inbound_mode("demo", "web", 8080)
            .0,
        InboundMode::Disable
    );
    let port_level = format!(
        "{ns_disable}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: w, namespace: demo}}\nspec: {{selector: {{matchLabels: {{app: web}}}}, mtls: {{mode: STRICT}}, portLevelMtls: {{9000: {{mode: DISABLE}}}}}}\n"
    );
    let d = docs(&port_level);
    assert_eq!(
        Mesh::new(&d).inbound_mode("demo", "web", 8080),
        (InboundMode::Strict, "w/demo".into())
    );
    assert_eq!(
        Mesh::new(&d).inbound_mode("demo", "web", 9000).0,
        InboundMode::Disable
    );
}

#[test]
fn client_tls_auto_and_destination_rule() {
    let d = docs(APP);
    let mesh = Mesh::new(&d);
    let svc = mesh.service("demo", "web").unwrap();
    assert!(mesh.client_mtls(&svc, 80, true, InboundMode::Permissive));
    assert!(!mesh.client_mtls(&svc, 80, false, InboundMode::Permissive));
    assert!(!mesh.client_mtls(&svc, 80, true, InboundMode::Disable));
    let dr = docs(&format!(
        "{APP}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: web, namespace: demo}}\nspec: {{host: web.demo.svc.cluster.local, trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}, portLevelSettings: [{{port: {{number: 81}}, tls: {{mode: DISABLE}}}}]}}}}\n"
    ));
    let mesh = Mesh::new(&dr);
    assert!(
        mesh.client_mtls(&svc, 80, false, InboundMode::Permissive),
        "the rule wins over auto mTLS"
    );
    assert!(!mesh.client_mtls(&svc, 81, true, InboundMode::Strict));
}

#[test]
fn authorization_rules_by_action_and_port() {
    let none = docs(APP);
    assert_eq!(Mesh::new(&none).authz("demo", "web", 8080), None);
    let allow = docs(&format!(
        "{APP}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: a, namespace: demo}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  action: ALLOW\n  rules: [{{to: [{{operation: {{methods: [GET, HEAD], ports: [\"8080\"]}}}}]}}]\n"
    ));
    let a = Mesh::new(&allow).authz("demo", "web", 8080).unwrap();
    assert_eq!(a.allow.as_ref().unwrap()[0].methods, vec!["GET", "HEAD"]);
    let other_port = Mesh::new(&allow).authz("demo", "web", 9000).unwrap();
    assert_eq!(
        other_port.allow,
        Some(vec![]),
        "an ALLOW policy whose rules miss the port allows nothing there"
    );
    let deny_all = docs(&format!(
        "{APP}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: none, namespace: demo}}\nspec: {{}}\n"
    ));
    assert_eq!(
        Mesh::new(&deny_all)
            .authz("demo", "web", 8080)
            .unwrap()
            .allow,
        Some(vec![])
    );
}

#[test]
fn gateway_routes_join_gateways_and_virtual_services() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let d = crate::manifest::load_file(&root.join("fixtures/pii-demo/istio.yaml")).unwrap();
    let routes = Mesh::new(&d).gateway_routes();
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
