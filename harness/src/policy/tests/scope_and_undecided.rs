//! What issue 19 listed as not modelled: Sidecar egress hosts, VirtualService subsets for
//! mesh traffic, CUSTOM and AUDIT, ipBlocks, path templates and outbound IP ranges; and
//! that rows the model cannot decide say so in the table and in the expected flows.

use super::*;
use crate::wire::FlowClass;

fn egress_sidecar(hosts: &str, mode: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: scope, namespace: demo}}
spec:
  egress: [{{hosts: [{hosts}]}}]
  outboundTrafficPolicy: {{mode: {mode}}}
---
"
    )
}

/// `convertIstioListenerToWrapper` (`pilot/pkg/model/sidecar.go`): a Service outside the
/// egress hosts is not in the client's registry: blocked under REGISTRY_ONLY, else the
/// PassthroughCluster carries it in plaintext (no auto mTLS), which STRICT refuses.
#[test]
fn sidecar_egress_hosts_decide_what_a_client_sees() {
    let strict = peer_authn("demo", "default", None, "STRICT", "");
    let table = [
        ("'./*'", "REGISTRY_ONLY", ClientTls::IstioMutual, None),
        (
            "'istio-system/*'",
            "REGISTRY_ONLY",
            ClientTls::Disable,
            Some(Consequence::Blocked),
        ),
        (
            "'istio-system/*'",
            "ALLOW_ANY",
            ClientTls::Disable,
            Some(Consequence::Unavailable503),
        ),
        (
            "'*/web.demo.svc.cluster.local'",
            "ALLOW_ANY",
            ClientTls::IstioMutual,
            None,
        ),
    ];
    for (hosts, mode, tls, want) in table {
        let yaml = format!("{}{strict}{}", base(), egress_sidecar(hosts, mode));
        let r = row(&yaml, client_to_web(80));
        assert_eq!(
            (r.client_tls, consequence(&r)),
            (tls, want),
            "{hosts} {mode}"
        );
    }
}

fn subsets_rule(v2_tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web, namespace: demo}}
spec:
  host: web
  subsets:
  - {{name: v1, labels: {{app: web}}}}
  - {{name: v2, labels: {{app: web}}, trafficPolicy: {{tls: {{mode: {v2_tls}}}}}}}
---
"
    )
}

fn mesh_route(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: demo}}
spec:
  hosts: [web]
  http: {http}
---
"
    )
}

/// Subset-level TLS through a mesh VirtualService (`MergeSubsetTrafficPolicy` once the
/// route picks the subset); a split whose subsets differ on the wire cannot be predicted.
#[test]
fn virtual_service_subsets_decide_subset_tls() {
    let base_yaml = format!("{}{}", base(), subsets_rule("DISABLE"));
    let to = |s: &str| format!("{{destination: {{host: web, subset: {s}}}}}");
    let table = [
        ("[{route: [".to_string() + &to("v2") + "]}]", Some(ClientTls::Disable)),
        ("[{route: [".to_string() + &to("v1") + "]}]", Some(ClientTls::IstioMutual)),
        (
            format!("[{{match: [{{uri: {{prefix: /v2}}}}], route: [{}]}}, {{route: [{}]}}]", to("v2"), to("v1")),
            Some(ClientTls::IstioMutual),
        ),
        (
            "[{route: [{destination: {host: web, subset: v1}, weight: 50}, {destination: {host: web, subset: v2}, weight: 50}]}]".to_string(),
            None,
        ),
        (
            format!("[{{match: [{{headers: {{x-version: {{exact: beta}}}}}}], route: [{}]}}, {{route: [{}]}}]", to("v2"), to("v1")),
            None,
        ),
    ];
    for (http, want) in table {
        let mut p = client_to_web(80);
        p.request = request("GET", "/", None);
        let r = row(&format!("{base_yaml}{}", mesh_route(&http)), p);
        match want {
            Some(tls) => assert_eq!(
                (r.client_tls, r.status.wire_undecided()),
                (tls, None),
                "{http}"
            ),
            None => assert!(
                r.status
                    .wire_undecided()
                    .is_some_and(|w| w.contains("subsets whose TLS differs")),
                "{http}: {:?}",
                r.status
            ),
        }
    }
}

fn policy(action: &str, rules: &str, extra: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: p, namespace: demo}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  action: {action}
{extra}  rules: {rules}
---
"
    )
}

fn get(path: &str, extra: &str) -> Status {
    let mut p = client_to_web(80);
    p.request = request("GET", path, Some("web.demo"));
    row(&format!("{}{extra}", base()), p).status
}

/// CUSTOM delegates to an authorizer the model cannot see; AUDIT never decides; peer IPs
/// are unknown; path templates follow `TestAuthz_PathTemplating`.
#[test]
fn authorization_the_model_decides_or_says_it_cannot() {
    let custom = policy(
        "CUSTOM",
        "[{to: [{operation: {paths: ['/admin/*']}}]}]",
        "  provider: {name: ext-authz}\n",
    );
    let audit = policy("AUDIT", "[{}]", "");
    let ip = policy(
        "ALLOW",
        "[{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]",
        "",
    );
    let template = policy(
        "ALLOW",
        "[{to: [{operation: {paths: ['/store/{*}/cart']}}]}]",
        "",
    );
    let undecided = |s: &Status, part: &str| matches!(s, Status::CannotPredict { why, undecided: Undecided::Outcome } if why.contains(part));
    assert!(undecided(&get("/admin/x", &custom), "external authorizer"));
    assert!(
        get("/public", &custom).is_ok(),
        "CUSTOM rules that cannot match do not apply"
    );
    assert!(get("/", &audit).is_ok());
    assert!(undecided(&get("/", &ip), "peer IP (ipBlocks)"));
    assert!(get("/store/shoes/cart", &template).is_ok());
    assert!(!get("/store/a/b/cart", &template).is_ok());
}

/// Outbound IP ranges decide interception, and the model has no addresses: the row, the
/// table and the expected flow all say it cannot predict.
#[test]
fn outbound_ip_ranges_make_the_wire_undecided() {
    let yaml = base().replace(
        &deployment("demo", "client", &[], "", ""),
        &deployment(
            "demo",
            "client",
            &[],
            "",
            "traffic.sidecar.istio.io/includeOutboundIPRanges: '10.96.0.0/12'",
        ),
    );
    let m = evaluate(&docs(&yaml), &[client_to_web(80)], &MeshOptions::istio());
    let r = &m.rows[0];
    assert!(
        r.status
            .wire_undecided()
            .is_some_and(|w| w.contains("includeOutboundIPRanges")),
        "{:?}",
        r.status
    );
    let table = render_table(&m);
    assert!(
        table.contains("CANNOT PREDICT") && table.contains("Cannot predict:"),
        "{table}"
    );
    let flows = expected_flows(&m);
    assert_eq!(flows.len(), 1);
    assert!(
        flows[0]
            .cannot_predict
            .as_deref()
            .is_some_and(|w| w.contains("includeOutboundIPRanges"))
    );
    // Unchanged when the ranges are `*`, and a decided flow carries no reason.
    let all = yaml.replace("'10.96.0.0/12'", "'*'");
    let flows = expected_flows(&evaluate(
        &docs(&all),
        &[client_to_web(80)],
        &MeshOptions::istio(),
    ));
    assert_eq!(
        (flows[0].class, flows[0].cannot_predict.clone()),
        (FlowClass::IstioMtls, None)
    );
}
