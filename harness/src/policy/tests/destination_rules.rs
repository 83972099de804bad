//! DestinationRule precedence and auto mTLS: host matching, portLevelSettings by Service
//! port, lookup order between namespaces, exportTo, workload selectors, merging, and the
//! headless-service rule.

use super::*;

const FQDN: &str = "web.demo.svc.cluster.local";

fn client_side(extra: &str, client_ns: &str, port: u16) -> OutboundPolicy {
    let other = namespace("other", "istio-injection: enabled")
        + &deployment("other", "client", &[], "", "");
    let yaml = format!("{}{other}{extra}", base());
    let svc = ServiceRef {
        name: "web",
        namespace: "demo",
    };
    outbound(
        &docs(&yaml),
        &Peer::workload("client", client_ns),
        svc,
        port,
        &MeshOptions::istio(),
    )
    .unwrap()
}

fn tls(extra: &str, client_ns: &str, port: u16) -> (ClientTls, String) {
    let out = client_side(extra, client_ns, port);
    (out.tls, out.tls_source.to_string())
}

#[test]
fn host_matching_and_port_level_table() {
    use ClientTls::*;
    let istio = "tls: {mode: ISTIO_MUTUAL}";
    let plain = "tls: {mode: DISABLE}";
    let table: Vec<(&str, String, u16, ClientTls, &str)> = vec![
        (
            "no rule: auto mTLS to a sidecar",
            String::new(),
            80,
            IstioMutual,
            "auto",
        ),
        (
            "exact FQDN",
            dest_rule("demo", "r", FQDN, plain, ""),
            80,
            Disable,
            "r/demo",
        ),
        (
            "short name resolves in the rule's namespace",
            dest_rule("demo", "r", "web", plain, ""),
            80,
            Disable,
            "r/demo",
        ),
        (
            "short name in another namespace does not match",
            dest_rule("other", "r", "web", plain, ""),
            80,
            IstioMutual,
            "auto",
        ),
        (
            "namespace wildcard",
            dest_rule("demo", "w", "*.demo.svc.cluster.local", plain, ""),
            80,
            Disable,
            "w/demo",
        ),
        (
            "exact beats wildcard",
            dest_rule("demo", "w", "*.demo.svc.cluster.local", plain, "")
                + &dest_rule("demo", "e", FQDN, istio, ""),
            80,
            IstioMutual,
            "e/demo",
        ),
        (
            "longer wildcard beats shorter",
            dest_rule("demo", "all", "*.svc.cluster.local", istio, "")
                + &dest_rule("demo", "ns", "*.demo.svc.cluster.local", plain, ""),
            80,
            Disable,
            "ns/demo",
        ),
        (
            "port level by Service port",
            dest_rule(
                "demo",
                "r",
                FQDN,
                &format!("{istio}, portLevelSettings: [{{port: {{number: 80}}, {plain}}}]"),
                "",
            ),
            80,
            Disable,
            "r/demo",
        ),
        (
            "other ports keep the top level",
            dest_rule(
                "demo",
                "r",
                FQDN,
                &format!("{istio}, portLevelSettings: [{{port: {{number: 80}}, {plain}}}]"),
                "",
            ),
            9090,
            IstioMutual,
            "r/demo",
        ),
        (
            "container port is not a key",
            dest_rule(
                "demo",
                "r",
                FQDN,
                &format!("{istio}, portLevelSettings: [{{port: {{number: 8080}}, {plain}}}]"),
                "",
            ),
            80,
            IstioMutual,
            "r/demo",
        ),
        // A port entry without tls replaces the top level: the cluster has no TLS setting
        // and auto mTLS decides, reading the rule's top-level mode per endpoint.
        (
            "port entry without tls: auto, top ISTIO",
            dest_rule(
                "demo",
                "r",
                FQDN,
                &format!(
                    "{istio}, portLevelSettings: [{{port: {{number: 80}}, connectionPool: {{tcp: {{maxConnections: 5}}}}}}]"
                ),
                "",
            ),
            80,
            IstioMutual,
            "auto",
        ),
        (
            "port entry without tls: auto, top DISABLE",
            dest_rule(
                "demo",
                "r",
                FQDN,
                &format!(
                    "{plain}, portLevelSettings: [{{port: {{number: 80}}, connectionPool: {{tcp: {{maxConnections: 5}}}}}}]"
                ),
                "",
            ),
            80,
            Disable,
            "auto",
        ),
    ];
    for (name, extra, port, want, source) in table {
        assert_eq!(
            tls(&extra, "demo", port),
            (want, source.to_string()),
            "{name}"
        );
    }
}

#[test]
fn lookup_order_between_namespaces() {
    use ClientTls::*;
    let in_service_ns = dest_rule("demo", "svc-side", FQDN, "tls: {mode: ISTIO_MUTUAL}", "");
    let in_client_ns = dest_rule("other", "client-side", FQDN, "tls: {mode: DISABLE}", "");
    let in_root = dest_rule(
        "istio-system",
        "mesh-wide",
        "*.local",
        "tls: {mode: DISABLE}",
        "",
    );
    let both = format!("{in_service_ns}{in_client_ns}");
    assert_eq!(
        tls(&both, "other", 80),
        (Disable, "client-side/other".into()),
        "client namespace first"
    );
    assert_eq!(
        tls(&both, "demo", 80),
        (IstioMutual, "svc-side/demo".into()),
        "then the service's"
    );
    assert_eq!(
        tls(&in_root, "other", 80),
        (Disable, "mesh-wide/istio-system".into()),
        "then the root namespace"
    );
    let both = format!("{in_root}{in_service_ns}");
    assert_eq!(
        tls(&both, "other", 80),
        (IstioMutual, "svc-side/demo".into()),
        "the service's before the root's"
    );
    let private = dest_rule(
        "demo",
        "private",
        FQDN,
        "tls: {mode: DISABLE}",
        "  exportTo: ['.']\n",
    );
    assert_eq!(
        tls(&private, "other", 80),
        (IstioMutual, "auto".into()),
        "exportTo . hides it from other namespaces"
    );
    assert_eq!(
        tls(&private, "demo", 80),
        (Disable, "private/demo".into()),
        "but not from its own"
    );
    let to_other = dest_rule(
        "demo",
        "shared",
        FQDN,
        "tls: {mode: DISABLE}",
        "  exportTo: [other]\n",
    );
    assert_eq!(tls(&to_other, "other", 80), (Disable, "shared/demo".into()));
}

#[test]
fn workload_selector_rules() {
    use ClientTls::*;
    let selected = dest_rule(
        "other",
        "for-client",
        FQDN,
        "tls: {mode: DISABLE}",
        "  workloadSelector: {matchLabels: {app: client}}\n",
    );
    let not_selected = dest_rule(
        "other",
        "for-nobody",
        FQDN,
        "tls: {mode: DISABLE}",
        "  workloadSelector: {matchLabels: {app: nobody}}\n",
    );
    let service_side = dest_rule("demo", "svc-side", FQDN, "tls: {mode: SIMPLE}", "");
    assert_eq!(
        tls(&selected, "other", 80),
        (Disable, "for-client/other".into())
    );
    // A selector rule in the client's namespace ends the lookup there even when it does
    // not select the client: Istio then uses no rule at all.
    assert_eq!(
        tls(&format!("{not_selected}{service_side}"), "other", 80),
        (IstioMutual, "auto".into())
    );
}

#[test]
fn rules_for_one_host_merge_oldest_first() {
    use ClientTls::*;
    let subsets_only = dest_rule(
        "demo",
        "first",
        FQDN,
        "",
        "  subsets: [{name: v1, labels: {version: v1}}]\n",
    )
    .replace("  trafficPolicy: {}\n", "");
    let with_tls = dest_rule("demo", "second", FQDN, "tls: {mode: DISABLE}", "");
    assert_eq!(
        tls(&format!("{subsets_only}{with_tls}"), "demo", 80),
        (Disable, "first/demo".into())
    );
    let out = client_side(&format!("{subsets_only}{with_tls}"), "demo", 80);
    assert!(
        out.notes.iter().any(|n| n.contains("first, second merged")),
        "{:?}",
        out.notes
    );
    let older = dest_rule("demo", "older", FQDN, "tls: {mode: ISTIO_MUTUAL}", "");
    assert_eq!(
        tls(&format!("{older}{with_tls}"), "demo", 80).0,
        IstioMutual,
        "the oldest top-level policy wins"
    );
}

#[test]
fn sni_alpn_and_sans_for_istio_mutual() {
    let out = client_side("", "demo", 80);
    assert_eq!(
        out.sni.as_deref(),
        Some("outbound_.80_._.web.demo.svc.cluster.local")
    );
    assert_eq!(out.cluster, "outbound|80||web.demo.svc.cluster.local");
    assert_eq!(out.alpn, ["istio-http/1.1", "istio", "http/1.1"]);
    assert_eq!(
        out.subject_alt_names,
        ["spiffe://cluster.local/ns/demo/sa/web"]
    );
    let tcp = client_side("", "demo", 9090);
    assert_eq!(tcp.alpn, ["istio-peer-exchange", "istio"]);
    let custom = dest_rule(
        "demo",
        "r",
        FQDN,
        "tls: {mode: ISTIO_MUTUAL, sni: custom.example}",
        "",
    );
    assert_eq!(
        client_side(&custom, "demo", 80).sni.as_deref(),
        Some("custom.example")
    );
}

#[test]
fn auto_mtls_follows_namespace_policy_and_endpoint_mode() {
    use ClientTls::*;
    let ns_disable = peer_authn("demo", "default", None, "DISABLE", "");
    assert_eq!(
        tls(&ns_disable, "demo", 80).0,
        Disable,
        "namespace DISABLE turns auto mTLS off"
    );
    let port_disable = peer_authn(
        "demo",
        "web",
        Some("app: web"),
        "STRICT",
        "8080: {mode: DISABLE}",
    );
    let out = client_side(&port_disable, "demo", 80);
    assert_eq!(
        out.tls, Disable,
        "the endpoint's port-level DISABLE is honoured for ClusterIP services"
    );
    assert_eq!(out.endpoints[0].tls, Disable);
    assert_eq!(tls(&port_disable, "demo", 9090).0, IstioMutual);
}

fn headless_rows(extra: &str) -> Row {
    let yaml = format!(
        "{}{}{extra}",
        base(),
        service(
            "demo",
            "web-nodes",
            "web",
            &[("tcp-epmd", 4369, "4369")],
            true
        )
    );
    let mut p = pair(
        Peer::workload("client", "demo"),
        Peer::workload("web", "demo"),
        "web-nodes",
        "demo",
        4369,
    );
    p.protocols = [(4369, Protocol::Epmd)].into_iter().collect();
    row(&yaml, p)
}

#[test]
fn headless_services_infer_client_mode_from_namespace_policy_only() {
    let strict_ns = peer_authn("demo", "default", None, "STRICT", "");
    let port_off = peer_authn(
        "demo",
        "web",
        Some("app: web"),
        "STRICT",
        "4369: {mode: DISABLE}",
    );
    // Without a DestinationRule the client sends mTLS (namespace STRICT), and the
    // server's port-level DISABLE hands the TLS bytes to the application.
    let r = headless_rows(&format!("{strict_ns}{port_off}"));
    assert_eq!(
        (r.client_tls, r.class),
        (ClientTls::IstioMutual, crate::wire::FlowClass::IstioMtls)
    );
    assert_eq!(consequence(&r), Some(Consequence::Reset));
    // The DestinationRule for the headless host fixes it, as the rabbitmq fixture does.
    let fix = dest_rule(
        "demo",
        "nodes",
        "web-nodes.demo.svc.cluster.local",
        "tls: {mode: ISTIO_MUTUAL}, portLevelSettings: [{port: {number: 4369}, tls: {mode: DISABLE}}]",
        "",
    );
    let r = headless_rows(&format!("{strict_ns}{port_off}{fix}"));
    assert_eq!(
        (r.client_tls, r.class, r.status.clone()),
        (
            ClientTls::Disable,
            crate::wire::FlowClass::Plaintext,
            Status::Ok
        )
    );
}

#[test]
fn headless_service_with_an_endpoint_without_sidecar_gets_plaintext() {
    let no_sidecar = deployment(
        "demo",
        "legacy",
        &[("epmd", 4369)],
        "sidecar.istio.io/inject: 'false'",
        "",
    );
    let yaml = format!(
        "{}{}{}",
        base(),
        no_sidecar,
        service(
            "demo",
            "mixed",
            "legacy",
            &[("tcp-epmd", 4369, "4369")],
            true
        )
    );
    let out = outbound(
        &docs(&yaml),
        &Peer::workload("client", "demo"),
        ServiceRef {
            name: "mixed",
            namespace: "demo",
        },
        4369,
        &MeshOptions::istio(),
    )
    .unwrap();
    assert_eq!(out.tls, ClientTls::Disable);
    assert!(out.headless);
}

#[test]
fn auto_mtls_follows_the_running_pods_not_the_manifest() {
    let svc = ServiceRef {
        name: "web",
        namespace: "demo",
    };
    let tls = |yaml: &str, web_runs_a_proxy: bool| {
        let mut ctx = context::Ctx::new(&docs(yaml), &MeshOptions::istio());
        ctx.running.insert("demo/web".into(), web_runs_a_proxy);
        ctx.running.insert("demo/client".into(), true);
        outbound_in(&ctx, &Peer::workload("client", "demo"), svc, 80, None)
            .unwrap()
            .tls
    };
    // The namespace is labelled, but web's pods predate the label: no mTLS until restarted.
    assert_eq!(tls(&base(), false), ClientTls::Disable);
    assert_eq!(tls(&base(), true), ClientTls::IstioMutual);
    // The label is gone, but web's pods still carry the sidecar they were created with.
    let unlabelled = base().replace("labels: {istio-injection: enabled}", "labels: {}");
    assert_ne!(unlabelled, base());
    assert_eq!(tls(&unlabelled, true), ClientTls::IstioMutual);
    assert_eq!(tls(&unlabelled, false), ClientTls::Disable);
}
