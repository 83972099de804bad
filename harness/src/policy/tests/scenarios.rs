//! The shipped scenarios: the seed's tls-check table reproduced from the rabbitmq
//! fixtures, pii-demo before and after STRICT, and the model agreeing with every wire
//! expectation the scenarios state themselves.

use super::*;
use crate::scenario::Step;
use crate::wire::FlowClass;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(name: &str) -> Scenario {
    Scenario::load(&root(), name).expect("shipped scenario loads")
}

/// (client, service, port) -> (server mode or "-", client TLS or "-", class, OK?)
fn summary(
    m: &Matrix,
    client: &str,
    service: &str,
    port: u16,
) -> (String, String, FlowClass, bool) {
    let r = m
        .rows
        .iter()
        .find(|r| r.client.name() == client && r.service == service && r.port == port)
        .unwrap_or_else(|| panic!("no row {client} -> {service}:{port}"));
    let server = match r.server_source {
        PeerSource::NotIntercepted { .. } => "-".to_string(),
        _ => r.server_mode.as_str().to_string(),
    };
    let client_tls = match r.client_tls_source {
        TlsSource::NotIntercepted { .. } => "-".to_string(),
        _ => r.client_tls.as_str().to_string(),
    };
    (server, client_tls, r.class, r.status.is_ok())
}

fn s(a: &str) -> String {
    a.to_string()
}

#[test]
fn rabbitmq_reproduces_the_seed_tls_check_table() {
    // The seed: 5671 plaintext (HTTP/HTTP), 5672, 9419 and 15672 mTLS. The fixture serves
    // metrics on 15692 (rabbitmq_prometheus) where the old chart had the exporter on 9419.
    let m = Matrix::for_scenario(&load("rabbitmq"), None).unwrap();
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    let c = "amqp-client";
    assert_eq!(
        summary(&m, c, "rabbitmq", 5671),
        (s("DISABLE"), s("DISABLE"), FlowClass::Tls, true)
    );
    assert_eq!(
        summary(&m, c, "rabbitmq", 5672),
        (s("STRICT"), s("ISTIO_MUTUAL"), FlowClass::IstioMtls, true)
    );
    assert_eq!(
        summary(&m, c, "rabbitmq", 15672),
        (s("STRICT"), s("ISTIO_MUTUAL"), FlowClass::IstioMtls, true)
    );
    assert_eq!(
        summary(&m, c, "rabbitmq", 15692),
        (s("STRICT"), s("ISTIO_MUTUAL"), FlowClass::IstioMtls, true)
    );
    assert_eq!(
        summary(&m, "rabbitmq", "rabbitmq-nodes", 4369),
        (s("DISABLE"), s("DISABLE"), FlowClass::Plaintext, true)
    );
    assert_eq!(
        summary(&m, "rabbitmq", "rabbitmq-nodes", 25672),
        (s("STRICT"), s("ISTIO_MUTUAL"), FlowClass::IstioMtls, true)
    );
    assert_eq!(
        summary(&m, "ingress-gateway", "rabbitmq", 15672),
        (s("STRICT"), s("ISTIO_MUTUAL"), FlowClass::IstioMtls, true)
    );
    assert_eq!(
        summary(&m, "host", "istio-ingressgateway", 80),
        (s("DISABLE"), s("-"), FlowClass::Plaintext, true)
    );
    let r5671 = m.rows.iter().find(|r| r.port == 5671).unwrap();
    assert_eq!(
        (
            r5671.server_source.to_string(),
            r5671.client_tls_source.to_string()
        ),
        (s("rabbitmq-disable-mtls/rabbitmq"), s("rabbitmq/rabbitmq"))
    );
    let table = render_table(&m);
    assert!(table.starts_with("CLIENT"), "{table}");
    assert!(
        table.contains("rabbitmq.rabbitmq.svc.cluster.local:5672"),
        "{table}"
    );
    assert!(!table.contains("Conflicts:"), "{table}");
}

#[test]
fn rabbitmq_needs_its_headless_destination_rule() {
    // Without the DestinationRule for the headless Service, clients infer mTLS from the
    // namespace policy and send it to epmd, whose port-level mode is DISABLE.
    let s = load("rabbitmq");
    let docs: Vec<Document> = creation_order(&s, None)
        .into_iter()
        .filter(|d| d.key() != "DestinationRule/rabbitmq/rabbitmq-nodes")
        .collect();
    let pairs = pairs::from_scenario(&s, None, &MeshOptions::istio());
    let m = evaluate(&docs, &pairs, &MeshOptions::istio());
    let epmd = m.rows.iter().find(|r| r.port == 4369).unwrap();
    assert_eq!(
        (epmd.class, consequence(epmd)),
        (FlowClass::IstioMtls, Some(Consequence::Reset))
    );
}

#[test]
fn rabbitmq_deploy_phase_is_permissive() {
    let m = Matrix::for_scenario(&load("rabbitmq"), Some("deploy")).unwrap();
    assert!(
        m.rows
            .iter()
            .all(|r| r.status.is_ok() && r.server_mode == MtlsMode::Permissive),
        "{:#?}",
        m.rows
    );
    assert_eq!(
        summary(&m, "rabbitmq", "rabbitmq-nodes", 4369).2,
        FlowClass::IstioMtls,
        "auto mTLS everywhere"
    );
}

#[test]
fn pii_demo_before_and_after_strict() {
    let s = load("pii-demo");
    let base = Matrix::for_scenario(&s, Some("baseline")).unwrap();
    assert_eq!(
        summary(&base, "httpd-server", "mysql-server", 3306),
        (s_("-"), s_("-"), FlowClass::Plaintext, true)
    );
    assert_eq!(
        summary(&base, "host", "httpd-server", 80),
        (s_("-"), s_("-"), FlowClass::Plaintext, true)
    );
    let strict = Matrix::for_scenario(&s, Some("strict-mtls")).unwrap();
    assert!(strict.problems.is_empty(), "{:?}", strict.problems);
    assert_eq!(
        summary(&strict, "httpd-server", "mysql-server", 3306),
        (s_("STRICT"), s_("ISTIO_MUTUAL"), FlowClass::IstioMtls, true)
    );
    assert_eq!(
        summary(&strict, "ingress-gateway", "httpd-server", 80),
        (s_("STRICT"), s_("ISTIO_MUTUAL"), FlowClass::IstioMtls, true)
    );
    assert_eq!(
        summary(&strict, "host", "istio-ingressgateway", 80),
        (s_("DISABLE"), s_("-"), FlowClass::Plaintext, true)
    );
    let nodeport = strict
        .rows
        .iter()
        .find(|r| r.client == Peer::Host && r.service == "httpd-server")
        .unwrap();
    assert_eq!(
        consequence(nodeport),
        Some(Consequence::Reset),
        "the NodePort bypass probe expects a reset"
    );
    assert_eq!(
        strict.rows.len(),
        4,
        "baseline probes are not repeated: {:#?}",
        strict.rows
    );
}

fn s_(a: &str) -> String {
    a.to_string()
}

#[test]
fn the_model_agrees_with_every_wire_expectation_the_scenarios_state() {
    for s in crate::scenario::load_all(&root()).unwrap() {
        let name = s.name().to_string();
        for phase in &s.file.phases {
            let m = Matrix::for_scenario(&s, Some(&phase.name.value)).unwrap();
            let flows = expected_flows(&m);
            for step in &phase.steps {
                let Step::Capture(c) = step else { continue };
                for e in c.expect.iter().chain(&c.controls) {
                    let Some(class) = e.class else { continue };
                    let f = &e.flow;
                    let found = flows
                        .iter()
                        .find(|m| m.from == f.from.value && m.to == f.to.value && m.port == f.port);
                    let found = found.unwrap_or_else(|| {
                        panic!(
                            "{name}/{}: the model has no flow for {}: {flows:#?}",
                            phase.name.value, e.name.value
                        )
                    });
                    assert_eq!(
                        found.class, class,
                        "{name}/{}: {} ({})",
                        phase.name.value, e.name.value, found.because
                    );
                }
            }
        }
    }
}

#[test]
fn unknown_phase_is_an_error_naming_the_phases() {
    let err = Matrix::for_scenario(&load("pii-demo"), Some("strict")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "scenario pii-demo has no phase `strict`; phases: baseline, strict-mtls"
    );
}

#[test]
fn json_and_scenario_helpers() {
    let s = load("rabbitmq");
    let m = Matrix::for_scenario(&s, None).unwrap();
    let json = serde_json::to_value(&m).unwrap();
    let first = &json["rows"][0];
    assert_eq!(first["client"]["kind"], "workload");
    assert!(first["status"]["status"].is_string());
    let inbound = inbound_for_scenario(&s, None, "rabbitmq").unwrap();
    assert_eq!(
        inbound.spiffe_id,
        "spiffe://cluster.local/ns/rabbitmq/sa/rabbitmq"
    );
    assert_eq!(inbound.port(4369).map(|p| p.mtls), Some(MtlsMode::Disable));
    assert_eq!(
        inbound.port(5672).map(|p| (p.mtls, p.protocol)),
        Some((MtlsMode::Strict, AppProtocol::Tcp))
    );
    assert_eq!(
        inbound.port(15672).map(|p| p.protocol),
        Some(AppProtocol::Http)
    );
    let out = outbound_for_scenario(
        &s,
        None,
        "rabbitmq",
        ServiceRef {
            name: "rabbitmq-nodes",
            namespace: "rabbitmq",
        },
        25672,
    )
    .unwrap();
    assert_eq!(
        out.sni.as_deref(),
        Some("outbound_.25672_._.rabbitmq-nodes.rabbitmq.svc.cluster.local")
    );
    assert!(out.headless);
    let gw = outbound_for_scenario(
        &s,
        None,
        "ingress-gateway",
        ServiceRef {
            name: "rabbitmq",
            namespace: "rabbitmq",
        },
        15672,
    )
    .unwrap();
    assert_eq!(
        (gw.tls, gw.alpn.first().map(String::as_str)),
        (ClientTls::IstioMutual, Some("istio-http/1.1"))
    );
}

#[test]
fn tls_check_tables_are_stable() {
    // Reviewed snapshots of `cargo xtask tls-check rabbitmq` and
    // `cargo xtask tls-check pii-demo --phase strict-mtls`.
    let rabbitmq = Matrix::for_scenario(&load("rabbitmq"), None).unwrap();
    insta::assert_snapshot!("tls_check_rabbitmq", render_table(&rabbitmq));
    let pii = Matrix::for_scenario(&load("pii-demo"), Some("strict-mtls")).unwrap();
    insta::assert_snapshot!("tls_check_pii_demo_strict_mtls", render_table(&pii));
}

#[test]
fn the_model_agrees_with_every_probe_outcome_the_scenarios_state() {
    let mut checked = 0;
    for s in crate::scenario::load_all(&root()).unwrap() {
        for phase in &s.file.phases {
            let m = Matrix::for_scenario(&s, Some(&phase.name.value)).unwrap();
            let probes = phase.steps.iter().flat_map(|step| match step {
                Step::Probe(list) => list.as_slice(),
                Step::Capture(c) => c.probes.as_slice(),
                _ => &[],
            });
            for probe in probes {
                let origin = format!("probe {}", probe.name.value);
                let Some(r) = m.rows.iter().find(|r| r.origins.contains(&origin)) else {
                    panic!("{}/{}: no row for {origin}", s.name(), phase.name.value);
                };
                // REGISTRY_ONLY closes a TCP client's connection: a reset to the probe.
                let predicted = match consequence(r) {
                    Some(Consequence::Blocked) if !r.protocol.is_http() => Some(Consequence::Reset),
                    other => other,
                };
                let expected = match (probe.expect.status, probe.expect.reset) {
                    (_, Some(true)) => Some(Some(Consequence::Reset)),
                    (Some(403), _) => Some(Some(Consequence::Forbidden403)),
                    (Some(404), _) => Some(Some(Consequence::NotFound404)),
                    (Some(502), _) => Some(Some(Consequence::BadGateway502)),
                    (Some(503), _) => Some(Some(Consequence::Unavailable503)),
                    (Some(200..=299), _) | (None, Some(false)) => Some(None),
                    _ => None,
                };
                if let Some(expected) = expected {
                    assert_eq!(
                        predicted,
                        expected,
                        "{}/{}: {origin}: {:?}",
                        s.name(),
                        phase.name.value,
                        r.status
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 8, "only {checked} probe outcomes were compared");
}

/// An object istiod's validation rejects is a failed apply: `tls-check` (which reads
/// [`Matrix::for_scenario`]) gets a located error, not a table that quietly ignores it.
#[test]
fn a_rejected_fixture_is_a_located_error_for_tls_check() {
    let dir = tempfile::tempdir().unwrap();
    let (scenarios, fixtures) = (
        dir.path().join("scenarios"),
        dir.path().join("fixtures/pii-demo"),
    );
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::create_dir_all(&fixtures).unwrap();
    std::fs::copy(
        root().join("scenarios/pii-demo.yaml"),
        scenarios.join("pii-demo.yaml"),
    )
    .unwrap();
    for entry in std::fs::read_dir(root().join("fixtures/pii-demo")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), fixtures.join(entry.file_name())).unwrap();
    }
    let istio = fixtures.join("istio.yaml");
    let mut text = std::fs::read_to_string(&istio).unwrap();
    text.push_str("\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-nothing, namespace: demo}\nspec: {action: DENY}\n");
    std::fs::write(&istio, text).unwrap();
    let s = Scenario::load(dir.path(), "pii-demo").expect("the scenario itself is fine");
    match Matrix::for_scenario(&s, None) {
        Err(PolicyError::Manifests { errors }) => {
            let text = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                text.contains("istio.yaml:") && text.contains("AuthorizationPolicy deny-nothing: spec.rules: istiod rejects this object (ValidateAuthorizationPolicy)"),
                "{text}"
            );
        }
        other => panic!("expected a manifest error, got {other:?}"),
    }
}
