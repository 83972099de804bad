//! PeerAuthentication precedence: mesh < namespace < workload, UNSET inherits,
//! portLevelMtls keyed by container port and needing a selector, selector policies in the
//! root namespace ignored, the oldest policy winning within a scope.

use super::*;

fn mode_of(extra: &str, port: u16) -> (MtlsMode, String, &'static str, Vec<String>) {
    let yaml = format!("{}{extra}", base());
    let inbound = inbound(
        &docs(&yaml),
        &Peer::workload("web", "demo"),
        &MeshOptions::istio(),
    )
    .unwrap();
    let p = inbound.port(port).expect("port exists");
    let scope = match &p.mtls_source {
        PeerSource::PeerAuthentication { scope, .. } => scope,
        _ => "-",
    };
    (
        p.mtls,
        p.mtls_source.to_string(),
        scope,
        inbound.notes.clone(),
    )
}

#[test]
fn precedence_table() {
    use MtlsMode::*;
    let mesh = |m: &str| peer_authn("istio-system", "default", None, m, "");
    let ns = |m: &str| peer_authn("demo", "default", None, m, "");
    let wl = |m: &str, ports: &str| peer_authn("demo", "web-policy", Some("app: web"), m, ports);
    let table: Vec<(&str, String, MtlsMode, &str, &str)> = vec![
        (
            "nothing: PERMISSIVE",
            String::new(),
            Permissive,
            "mesh default",
            "-",
        ),
        (
            "mesh STRICT",
            mesh("STRICT"),
            Strict,
            "default/istio-system",
            "mesh",
        ),
        (
            "mesh UNSET is PERMISSIVE",
            mesh("UNSET"),
            Permissive,
            "mesh default",
            "-",
        ),
        (
            "namespace beats mesh",
            mesh("STRICT") + &ns("PERMISSIVE"),
            Permissive,
            "default/demo",
            "namespace",
        ),
        (
            "namespace UNSET inherits mesh",
            mesh("STRICT") + &ns("UNSET"),
            Strict,
            "default/istio-system",
            "mesh",
        ),
        (
            "workload beats namespace",
            ns("DISABLE") + &wl("STRICT", ""),
            Strict,
            "web-policy/demo",
            "workload",
        ),
        (
            "workload UNSET inherits namespace",
            ns("STRICT") + &wl("UNSET", ""),
            Strict,
            "default/demo",
            "namespace",
        ),
        (
            "port level beats workload",
            wl("STRICT", "8080: {mode: DISABLE}"),
            Disable,
            "web-policy/demo",
            "port",
        ),
        (
            "port UNSET inherits workload",
            ns("PERMISSIVE") + &wl("STRICT", "8080: {mode: UNSET}"),
            Strict,
            "web-policy/demo",
            "workload",
        ),
        (
            "port key is the container port",
            wl("STRICT", "80: {mode: DISABLE}"),
            Strict,
            "web-policy/demo",
            "workload",
        ),
        (
            // `ValidatePeerAuthentication` rejects it: the apply fails, nothing applies.
            "port level needs a selector",
            ns("STRICT").replace("---\n", "  portLevelMtls: {8080: {mode: DISABLE}}\n---\n"),
            Permissive,
            "mesh default",
            "-",
        ),
        (
            "root-namespace selector ignored",
            mesh("STRICT")
                + &peer_authn("istio-system", "web-off", Some("app: web"), "DISABLE", ""),
            Strict,
            "default/istio-system",
            "mesh",
        ),
        (
            "oldest namespace policy wins",
            ns("STRICT") + &peer_authn("demo", "later", None, "DISABLE", ""),
            Strict,
            "default/demo",
            "namespace",
        ),
        (
            "oldest workload policy wins",
            wl("DISABLE", "") + &peer_authn("demo", "later", Some("app: web"), "STRICT", ""),
            Disable,
            "web-policy/demo",
            "workload",
        ),
        (
            "selector must match",
            mesh("STRICT") + &peer_authn("demo", "other", Some("app: other"), "DISABLE", ""),
            Strict,
            "default/istio-system",
            "mesh",
        ),
        (
            "other namespaces do not count",
            peer_authn("elsewhere", "default", None, "STRICT", ""),
            Permissive,
            "mesh default",
            "-",
        ),
    ];
    for (name, extra, mode, source, scope) in table {
        let (got_mode, got_source, got_scope, _) = mode_of(&extra, 8080);
        assert_eq!(
            (got_mode, got_source.as_str(), got_scope),
            (mode, source, scope),
            "{name}"
        );
    }
}

#[test]
fn ignored_settings_are_explained() {
    let root_selector = peer_authn("istio-system", "web-off", Some("app: web"), "DISABLE", "");
    let notes = mode_of(&root_selector, 8080).3;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("selector in the root namespace and is ignored")),
        "{notes:?}"
    );
}

/// `ValidatePeerAuthentication` (Istio 1.30.3 `pkg/config/validation/validation.go`)
/// rejects `portLevelMtls` without a selector: the apply fails, so the policy never
/// exists (the namespace stays at the mesh default) and the matrix reports it, located.
#[test]
fn port_level_mtls_without_selector_is_a_failed_apply() {
    let ns_ports = peer_authn("demo", "default", None, "STRICT", "8080: {mode: DISABLE}");
    assert_eq!(mode_of(&ns_ports, 8080).0, MtlsMode::Permissive);
    let m = evaluate(
        &docs(&format!("{}{ns_ports}", base())),
        &[client_to_web(80)],
        &MeshOptions::istio(),
    );
    assert!(
        m.problems.iter().any(|p| p.starts_with("test.yaml:")
            && p.contains(
                "spec.portLevelMtls: istiod rejects this object (ValidatePeerAuthentication)"
            )),
        "{:?}",
        m.problems
    );
}

#[test]
fn other_ports_keep_the_workload_mode() {
    let yaml = peer_authn(
        "demo",
        "web-policy",
        Some("app: web"),
        "STRICT",
        "8080: {mode: DISABLE}",
    );
    assert_eq!(mode_of(&yaml, 8080).0, MtlsMode::Disable);
    assert_eq!(mode_of(&yaml, 9090).0, MtlsMode::Strict);
}
