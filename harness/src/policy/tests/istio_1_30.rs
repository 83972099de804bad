//! The eight disagreements of issue 19, each as a table that names the Istio 1.30.3
//! source it follows. (Revisions and ignored namespaces, number 7, are tabled next to the
//! injector in `injection.rs`; annotation validation, number 6, in `inject_webhook.rs`.)

use super::*;
use crate::wire::FlowClass;

fn authz(ns: &str, name: &str, action: &str, rules: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  action: {action}
  {rules}
---
"
    )
}

fn get(yaml: &str) -> Row {
    let mut p = client_to_web(80);
    p.request = request("GET", "/", Some("web.demo"));
    row(yaml, p)
}

/// Disagreement 1: `serviceAccountRegex(defaultNamespace, value)` in
/// `pilot/pkg/security/authz/model/generator.go`: `sa` alone is `<policy namespace>/sa`;
/// `security.CheckServiceAccount` rejects wildcards at admission.
#[test]
fn service_accounts_short_form_is_the_policy_namespace() {
    let sa = |ns: &str, list: &str| {
        authz(
            ns,
            "by-sa",
            "ALLOW",
            &format!("rules: [{{from: [{{source: {{serviceAccounts: {list}}}}}]}}]"),
        )
    };
    let table = [
        ("short form, own namespace", sa("demo", "[client]"), None),
        ("qualified", sa("demo", "[demo/client]"), None),
        (
            "other namespace",
            sa("demo", "[other/client]"),
            Some(Consequence::Forbidden403),
        ),
        (
            "other account",
            sa("demo", "[web]"),
            Some(Consequence::Forbidden403),
        ),
        (
            "short form in the root namespace means istio-system/client",
            sa("istio-system", "[client]").replace("  selector: {matchLabels: {app: web}}\n", ""),
            Some(Consequence::Forbidden403),
        ),
        (
            "notServiceAccounts short form",
            authz(
                "demo",
                "not-sa",
                "DENY",
                "rules: [{from: [{source: {notServiceAccounts: [client]}}]}]",
            ),
            None,
        ),
    ];
    for (name, extra, want) in table {
        assert_eq!(
            consequence(&get(&format!("{}{extra}", base()))),
            want,
            "{name}"
        );
    }
    let wildcard = sa("demo", "['*']");
    let m = evaluate(
        &docs(&format!("{}{wildcard}", base())),
        &[client_to_web(80)],
        &MeshOptions::istio(),
    );
    assert!(
        m.problems
            .iter()
            .any(|p| p.contains("wildcard not allowed, found in ServiceAccounts")),
        "{:?}",
        m.problems
    );
}

fn sidecar(ns: &str, name: &str, selector: Option<&str>, mode: &str) -> String {
    let selector = selector
        .map(|s| format!("  workloadSelector: {{labels: {{{s}}}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {ns}}}
spec:
{selector}  outboundTrafficPolicy: {{mode: {mode}}}
---
"
    )
}

fn to_outside(yaml: &str) -> Row {
    let p = pair(
        Peer::workload("client", "demo"),
        Peer::workload("api", "external"),
        "api.example.com",
        "external",
        443,
    );
    let m = evaluate(&docs(yaml), &[p], &MeshOptions::istio());
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    m.rows.into_iter().next().expect("a row")
}

/// Disagreement 2: `initSidecarScopes` and `getSidecarScope` in `pilot/pkg/model/push_context.go`:
/// the root namespace's selector-less Sidecar (`meshRootSidecarConfig`) is the default
/// for namespaces without their own and for pods no selector Sidecar there matches.
#[test]
fn a_root_namespace_sidecar_is_the_default_scope() {
    let root = sidecar("istio-system", "default", None, "REGISTRY_ONLY");
    let table = [
        ("no Sidecar: mesh ALLOW_ANY", String::new(), None),
        (
            "root Sidecar only",
            root.clone(),
            Some(Consequence::Blocked),
        ),
        (
            "the namespace's own Sidecar wins",
            root.clone() + &sidecar("demo", "ns", None, "ALLOW_ANY"),
            None,
        ),
        (
            "a selector Sidecar that matches wins",
            root.clone() + &sidecar("demo", "sel", Some("app: client"), "ALLOW_ANY"),
            None,
        ),
        (
            "a selector Sidecar that does not match falls back to the root",
            root.clone() + &sidecar("demo", "sel", Some("app: other"), "ALLOW_ANY"),
            Some(Consequence::Blocked),
        ),
        (
            "a root Sidecar with a selector is no default",
            sidecar("istio-system", "sel", Some("app: client"), "REGISTRY_ONLY"),
            None,
        ),
    ];
    for (name, extra, want) in table {
        assert_eq!(
            consequence(&to_outside(&format!("{}{extra}", base()))),
            want,
            "{name}"
        );
    }
}

/// Disagreement 3: meshproof's own bug: rows keyed by method and path folded requests that differ only
/// in their Host, hiding a denied Host behind an allowed one.
#[test]
fn requests_differing_only_in_host_are_separate_rows() {
    let hosts = authz(
        "demo",
        "hosts",
        "ALLOW",
        "rules: [{to: [{operation: {hosts: [good.example]}}]}]",
    );
    let yaml = format!("{}{hosts}", base());
    let pairs: Vec<Pair> = ["good.example", "bad.example"]
        .iter()
        .map(|h| {
            let mut p = client_to_web(80);
            p.request = request("GET", "/", Some(h));
            p
        })
        .collect();
    let m = evaluate(&docs(&yaml), &pairs, &MeshOptions::istio());
    assert_eq!(m.rows.len(), 2, "{:#?}", m.rows);
    let by_host = |h: &str| {
        m.rows
            .iter()
            .find(|r| r.request.as_ref().and_then(|q| q.host.as_deref()) == Some(h))
            .map(consequence)
    };
    assert_eq!(by_host("good.example"), Some(None));
    assert_eq!(
        by_host("bad.example"),
        Some(Some(Consequence::Forbidden403))
    );
    let table = render_table(&m);
    assert!(table.contains("GET / Host: bad.example"), "{table}");
}

/// Disagreement 4: `buildUpstreamClusterTLSContext` in `pilot/pkg/networking/core/cluster_tls.go`, and
/// its test "tls mode SIMPLE, credentialName is set with proxy type Sidecar"
/// (`cluster_tls_test.go`): a sidecar gets no TLS context for SIMPLE or MUTUAL with a
/// credentialName unless the rule has a workloadSelector (or the credential is a
/// `configmap://`).
#[test]
fn credential_name_without_selector_is_plaintext_at_a_sidecar() {
    let dr = |mode: &str, cred: &str, selector: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tls, namespace: demo}}
spec:
  host: web
{selector}  trafficPolicy: {{tls: {{mode: {mode}, credentialName: '{cred}'}}}}
---
"
        )
    };
    let sel = "  workloadSelector: {matchLabels: {app: client}}\n";
    let table = [
        (
            dr("SIMPLE", "web-cred", ""),
            ClientTls::Disable,
            FlowClass::Plaintext,
        ),
        (
            dr("MUTUAL", "web-cred", ""),
            ClientTls::Disable,
            FlowClass::Plaintext,
        ),
        (
            dr("SIMPLE", "web-cred", sel),
            ClientTls::Simple,
            FlowClass::Tls,
        ),
        (
            dr("SIMPLE", "configmap://web-ca", ""),
            ClientTls::Simple,
            FlowClass::Tls,
        ),
        (dr("SIMPLE", "", ""), ClientTls::Simple, FlowClass::Tls),
    ];
    for (extra, tls, class) in table {
        let r = row(&format!("{}{extra}", base()), client_to_web(80));
        assert_eq!((r.client_tls, r.class), (tls, class), "{extra}");
    }
}

/// A second client in `demo` that no selector rule matches.
fn other_client() -> String {
    deployment("demo", "other", &[], "", "")
}

fn from(client: &str, yaml: &str) -> Row {
    let mut p = client_to_web(80);
    p.client = Peer::workload(client, "demo");
    row(yaml, p)
}

/// Disagreement 5: `mergeDestinationRule` in `pilot/pkg/model/destination_rule.go` and
/// `TestSetDestinationRuleWithWorkloadSelector` (`push_context_test.go`): a selector-less
/// rule whose exportTo includes `.` merges into the selector rule (its traffic policy
/// when the selector rule has none); with exactly `["."]` it is no rule of its own; with
/// exportTo `*` it does not merge.
#[test]
fn selector_less_rules_merge_into_selector_rules_by_export() {
    let selector_rule = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: for-client, namespace: demo}
spec:
  host: web
  workloadSelector: {matchLabels: {app: client}}
  subsets: [{name: v1, labels: {version: v1}}]
---
";
    let plain = |export: &str| {
        dest_rule(
            "demo",
            "plain",
            "web",
            "tls: {mode: DISABLE}",
            &format!("  exportTo: {export}\n"),
        )
    };
    // (exportTo of the selector-less rule, client's TLS, other's TLS)
    let table = [
        ("['.']", ClientTls::Disable, ClientTls::IstioMutual),
        ("['.', elsewhere]", ClientTls::Disable, ClientTls::Disable),
        ("['*']", ClientTls::IstioMutual, ClientTls::Disable),
    ];
    for (export, client, other) in table {
        let yaml = format!(
            "{}{}{selector_rule}{}",
            base(),
            other_client(),
            plain(export)
        );
        assert_eq!(
            from("client", &yaml).client_tls,
            client,
            "client, exportTo {export}"
        );
        assert_eq!(
            from("other", &yaml).client_tls,
            other,
            "other, exportTo {export}"
        );
    }
}

/// Disagreement 6: `RunTemplate` calls `validateAnnotations` (`pkg/kube/inject/inject.go`,
/// `validate.go`); the webhook's `failurePolicy: Fail` rejects the pod.
#[test]
fn invalid_interception_annotations_mean_the_pod_is_never_created() {
    let bad_web = base().replace(
        &deployment("demo", "web", &[("http", 8080), ("metrics", 9090)], "", ""),
        &deployment(
            "demo",
            "web",
            &[("http", 8080), ("metrics", 9090)],
            "",
            "traffic.sidecar.istio.io/excludeInboundPorts: '*'",
        ),
    );
    let r = from("client", &bad_web);
    match &r.status {
        Status::Conflict {
            problem,
            consequence,
        } => {
            assert_eq!(*consequence, Consequence::Unavailable503);
            assert!(
                problem.contains("never created") && problem.contains("excludeInboundPorts"),
                "{problem}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Not injected, not validated: the same annotation on an opted-out pod is harmless.
    let opted_out = bad_web.replace(
        "labels: {app: web}",
        "labels: {app: web, sidecar.istio.io/inject: 'false'}",
    );
    assert!(from("client", &opted_out).status.is_ok());
    // A client that is never created has no row, and the matrix says why.
    let bad_client = base().replace(
        &deployment("demo", "client", &[], "", ""),
        &deployment(
            "demo",
            "client",
            &[],
            "",
            "traffic.sidecar.istio.io/excludeOutboundPorts: '3306,x'",
        ),
    );
    let m = evaluate(
        &docs(&bad_client),
        &[client_to_web(80)],
        &MeshOptions::istio(),
    );
    assert!(m.rows.is_empty());
    assert!(m.problems[0].contains("never created"), "{:?}", m.problems);
}

/// Disagreement 8: `ValidateAuthorizationPolicy` (`pkg/config/validation/validation.go`): DENY without
/// rules is rejected; the apply fails and the matrix reports it, located.
#[test]
fn deny_without_rules_is_a_failed_apply() {
    for rules in ["rules: []", ""] {
        let deny = authz("demo", "deny-nothing", "DENY", rules);
        let m = evaluate(
            &docs(&format!("{}{deny}", base())),
            &[client_to_web(80)],
            &MeshOptions::istio(),
        );
        assert!(
            m.problems.iter().any(|p| p.starts_with("test.yaml:")
                && p.contains("AuthorizationPolicy deny-nothing: spec.rules: istiod rejects this object (ValidateAuthorizationPolicy): DENY action without `rules`")),
            "{rules}: {:?}",
            m.problems
        );
    }
}
