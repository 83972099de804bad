//! Validation tests: each rule on small inline manifests, then every fixture the project
//! ships.

use std::path::{Path, PathBuf};

use super::*;
use crate::manifest::{load_file, parse_str};

fn errors(yaml: &str) -> Vec<CrdError> {
    let docs = parse_str(Path::new("t.yaml"), yaml).expect("test YAML parses");
    docs.iter()
        .flat_map(|d| validate(d).err().unwrap_or_default())
        .collect()
}

fn messages(yaml: &str) -> Vec<String> {
    errors(yaml).iter().map(ToString::to_string).collect()
}

const PEER: &str = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: rabbit, namespace: rabbitmq}
spec:
  selector: {matchLabels: {app: rabbitmq}}
  mtls: {mode: STRICT}
  portLevelMtls:
    4369: {mode: DISABLE}
";

#[test]
fn valid_peer_authentication_parses_with_integer_port_keys() {
    assert!(errors(PEER).is_empty(), "{:?}", messages(PEER));
    let doc = &parse_str(Path::new("t.yaml"), PEER).unwrap()[0];
    let pa: security::PeerAuthentication = parse(doc).unwrap();
    assert_eq!(
        pa.spec.port_level_mtls[&4369].mode,
        security::PeerMode::Disable
    );
    assert_eq!(pa.spec.mtls.unwrap().mode, security::PeerMode::Strict);
}

#[test]
fn crd_typos_are_unknown_fields_with_their_path() {
    let typo = PEER.replace("portLevelMtls", "portLevelMTLS");
    let found = messages(&typo);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("t.yaml:1:"), "{}", found[0]);
    assert!(
        found[0].contains("spec.portLevelMTLS: unknown field"),
        "{}",
        found[0]
    );

    let nested = PEER.replace("{mode: DISABLE}", "{mood: DISABLE}");
    let found = messages(&nested);
    assert!(
        found[0].contains("spec.portLevelMtls.4369.mood: unknown field"),
        "{}",
        found[0]
    );
}

#[test]
fn bad_enum_values_are_shape_errors() {
    let bad = PEER.replace("{mode: STRICT}", "{mode: STRIKT}");
    let found = errors(&bad);
    match &found[..] {
        [CrdError::Shape { path, message, .. }] => {
            assert_eq!(path.0, "spec.mtls.mode");
            assert!(message.contains("STRIKT"), "{message}");
        }
        other => panic!("expected one shape error, got {other:?}"),
    }
}

#[test]
fn metadata_typos_in_custom_resources_are_found() {
    let bad = PEER.replace("namespace: rabbitmq", "namspace: rabbitmq");
    let found = messages(&bad);
    assert!(
        found
            .iter()
            .any(|m| m.contains("metadata.namspace: unknown field")),
        "{found:?}"
    );
}

#[test]
fn authorization_policy_allow_nothing_and_rules() {
    let yaml = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: demo}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: xnat-all, namespace: xnat}
spec:
  selector: {matchLabels: {app: xnat-web}}
  rules:
    - to:
        - operation:
            methods: [GET, HEAD]
            ports: [\"8080\"]
";
    assert!(errors(yaml).is_empty(), "{:?}", messages(yaml));
    let broken = yaml.replace("- operation:", "- operations:");
    assert!(messages(&broken)[0].contains("spec.rules[0].to[0].operations: unknown field"));
    let int_port = yaml.replace("[\"8080\"]", "[8080]");
    assert!(
        matches!(&errors(&int_port)[..], [CrdError::Shape { path, .. }] if path.0.ends_with("ports[0]"))
    );
}

/// What istiod's validation webhook rejects (Istio 1.30.3
/// `pkg/config/validation/validation.go`: `ValidatePeerAuthentication`,
/// `ValidateAuthorizationPolicy`; `security.CheckServiceAccount`), located.
#[test]
fn objects_istiod_rejects_are_located_errors() {
    let ap = |spec: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: demo}}\nspec: {spec}\n"
        )
    };
    let table = [
        (
            PEER.replace("  selector: {matchLabels: {app: rabbitmq}}\n", ""),
            "spec.portLevelMtls: istiod rejects this object (ValidatePeerAuthentication): mesh/namespace peer authentication cannot have port level mTLS",
        ),
        (
            ap("{action: DENY}"),
            "spec.rules: istiod rejects this object (ValidateAuthorizationPolicy): DENY action without `rules` is meaningless",
        ),
        (
            ap("{action: DENY, rules: []}"),
            "DENY action without `rules`",
        ),
        (
            ap("{action: CUSTOM, rules: [{}]}"),
            "spec.provider.name: istiod rejects this object (ValidateAuthorizationPolicy): `provider.name` must not be empty",
        ),
        (
            ap("{rules: [{from: [{source: {serviceAccounts: ['demo/*']}}]}]}"),
            "spec.rules[0].from[0].source.serviceAccounts: istiod rejects this object (ValidateAuthorizationPolicy): wildcard not allowed, found in ServiceAccounts",
        ),
        (
            ap("{rules: [{from: [{source: {serviceAccounts: [a/b/c]}}]}]}"),
            "expected format 'serviceAccount' or 'namespace/serviceAccount'",
        ),
        (
            ap("{rules: [{from: [{source: {serviceAccounts: [a], namespaces: [demo]}}]}]}"),
            "cannot set serviceAccounts with namespaces or principals, found at rule 0",
        ),
        (
            ap("{rules: [{to: [{operation: {}}]}]}"),
            "spec.rules[0].to[0].operation: istiod rejects this object (ValidateAuthorizationPolicy): `to.operation` must not be empty",
        ),
    ];
    for (yaml, want) in table {
        let found = messages(&yaml);
        assert_eq!(found.len(), 1, "{yaml}: {found:?}");
        assert!(found[0].starts_with("t.yaml:1:1: "), "{}", found[0]);
        assert!(found[0].contains(want), "{yaml}: {}", found[0]);
    }
    for fine in [
        ap("{action: DENY, rules: [{}]}"),
        ap("{}"),
        ap("{rules: [{from: [{source: {serviceAccounts: [client, demo/web]}}]}]}"),
    ] {
        assert!(errors(&fine).is_empty(), "{fine}: {:?}", messages(&fine));
    }
}

#[test]
fn networking_resources_parse_and_reject_typos() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: rabbitmq}
spec:
  host: rabbitmq.rabbitmq.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
      - port: {number: 5671}
        tls: {mode: DISABLE}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: rabbitmq}
spec:
  hosts: [rabbit.meshproof.test]
  gateways: [gw]
  http:
    - match: [{uri: {prefix: /api}}]
      route: [{destination: {host: rabbitmq, port: {number: 15672}}}]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: gw, namespace: rabbitmq}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo, namespace: bookinfo}
spec:
  hosts: [my-mongo.tcp.svc]
  addresses: [172.18.0.50/32]
  ports: [{number: 27017, name: tcp, protocol: TCP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 172.18.0.50}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bookinfo}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egress: [{hosts: ['./*', 'istio-system/*']}]
";
    assert!(errors(yaml).is_empty(), "{:?}", messages(yaml));
    let typo = yaml.replace("portLevelSettings", "portSettings");
    assert!(messages(&typo)[0].contains("spec.trafficPolicy.portSettings: unknown field"));
    let typo = yaml.replace("resolution: STATIC", "resolution: STATIK");
    assert!(messages(&typo)[0].contains("spec.resolution"));
}

#[test]
fn metallb_and_consul_resources_parse() {
    let yaml = "\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: kind-pool, namespace: metallb-system}
spec: {addresses: [172.18.255.200-172.18.255.250], avoidBuggyIPs: true}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: counting, namespace: default}
spec:
  destination: {name: counting}
  sources:
    - {name: dashboard, action: deny}
    - name: web
      permissions: [{action: allow, http: {pathPrefix: /api, methods: [GET]}}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: counting, namespace: default}
spec: {protocol: http, transparentProxy: {dialedDirectly: false}}
";
    assert!(errors(yaml).is_empty(), "{:?}", messages(yaml));
    let typo = yaml.replace("action: deny", "action: block");
    assert!(messages(&typo)[0].contains("spec.sources[0].action"));
}

#[test]
fn standard_kinds_are_checked_and_images_pinned() {
    let yaml = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: 'nginx:latest', imagePullPolcy: Never}
";
    let found = errors(yaml);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(matches!(&found[0], CrdError::UnknownField { path, .. }
        if path.0 == "spec.template.spec.containers[0].imagePullPolcy"));
    assert!(matches!(&found[1], CrdError::UnpinnedImage { image, .. } if image == "nginx:latest"));
}

#[test]
fn removed_and_unknown_kinds_are_refused() {
    let yaml = "\
apiVersion: authentication.istio.io/v1alpha1
kind: Policy
metadata: {name: default, namespace: rabbitns}
spec: {peers: [{mtls: {}}]}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
";
    let found = messages(yaml);
    assert_eq!(found.len(), 2);
    assert!(found[0].contains("removed in Istio 1.6"), "{}", found[0]);
    assert!(
        found[1].contains("meshproof cannot validate this kind"),
        "{}",
        found[1]
    );
}

/// Every `.yaml`/`.yml` file under `fixtures/`, except recorded outputs and captures.
fn fixture_manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "recorded" && name != "captures" {
            fixture_manifests(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn every_fixture_manifest_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut files = Vec::new();
    fixture_manifests(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 9,
        "expected the pii-demo and rabbitmq fixtures, found {files:?}"
    );
    let mut problems = Vec::new();
    for file in &files {
        match load_file(file) {
            Ok(docs) => {
                assert!(!docs.is_empty(), "{} has no documents", file.display());
                for doc in &docs {
                    if let Err(errs) = validate(doc) {
                        problems.extend(errs.iter().map(ToString::to_string));
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    assert!(
        problems.is_empty(),
        "fixture problems:\n{}",
        problems.join("\n")
    );
}
