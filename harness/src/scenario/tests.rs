//! Loader tests: the shipped scenarios load, and each kind of mistake gives a located
//! error with a useful message.

use std::path::Path;

use super::*;

/// A small valid scenario; each test breaks one thing in it.
const BASE: &str = r#"apiVersion: meshproof.dev/v1alpha1
kind: Scenario
name: demo
summary: a test scenario
requires:
  workers: 2
  mesh: { name: istio }
workloads:
  - name: web
    namespace: demo
    ports: [{ port: 80, protocol: http }]
    calls: [{ to: db, port: 3306 }]
  - name: db
    namespace: demo
    ports: [{ port: 3306, protocol: mysql }]
phases:
  - name: baseline
    steps:
      - apply: [app.yaml]
      - wait: { for: rollout, workloads: [web, db], timeout: 2m }
      - capture:
          name: wire
          probes:
            - name: submit
              from: host
              to: { workload: web, port: 80 }
              http: { method: POST, form: { name: "{{canary}}" } }
              expect: { status: 200 }
          expect:
            - name: clear
              flow: { from: web, to: db, port: 3306 }
              class: plaintext
              canary: present
              probes: [submit]
"#;

const APP: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n";

fn load(text: &str) -> Result<Scenario, ScenarioError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.yaml"), APP).unwrap();
    let path = dir.path().join("demo.yaml");
    std::fs::write(&path, text).unwrap();
    Scenario::load_path(&path, dir.path())
}

/// Loads `BASE` with `from` replaced by `to`, and returns the problems.
fn problems(from: &str, to: &str) -> Vec<Problem> {
    assert!(
        BASE.contains(from),
        "test mutation `{from}` not found in BASE"
    );
    match load(&BASE.replacen(from, to, 1)) {
        Err(ScenarioError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems after replacing `{from}`, got {other:?}"),
    }
}

/// Asserts exactly one problem, on `line`, whose message contains `needle`.
fn one(from: &str, to: &str, line: u32, needle: &str) -> Problem {
    let found = problems(from, to);
    assert_eq!(found.len(), 1, "{found:#?}");
    let p = found.into_iter().next().unwrap();
    assert_eq!(p.at.line, line, "{p}");
    assert!(p.at.column > 0, "{p}");
    assert!(
        p.message.contains(needle),
        "`{}` lacks `{needle}`",
        p.message
    );
    p
}

#[test]
fn base_loads_and_folds_state() {
    let s = load(BASE).unwrap();
    assert_eq!(s.name(), "demo");
    assert_eq!(s.state_after(None).len(), 1);
    assert!(s.workload("db").is_some());
}

#[test]
fn shipped_scenarios_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let all = load_all(root).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = all.iter().map(Scenario::name).collect();
    assert!(
        names.contains(&"pii-demo") && names.contains(&"rabbitmq"),
        "{names:?}"
    );
    for s in &all {
        assert!(!s.file.summary.is_empty(), "{} has no summary", s.name());
        assert!(!s.manifests.is_empty(), "{} applies no manifests", s.name());
    }
}

#[test]
fn pii_demo_namespace_label_is_folded_into_state() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let s = Scenario::load(root, "pii-demo").unwrap();
    let label = |phase| {
        s.state_after(Some(phase))
            .into_iter()
            .find(|d| d.kind == "Namespace")
            .and_then(|d| d.value.pointer("/metadata/labels/istio-injection").cloned())
    };
    assert_eq!(label("baseline"), None);
    assert_eq!(label("strict-mtls"), Some(serde_json::json!("enabled")));
}

#[test]
fn unknown_key() {
    let p = one(
        "    namespace: demo\n    ports: [{ port: 80",
        "    namespace: demo\n    replicaz: 2\n    ports: [{ port: 80",
        11,
        "unknown field",
    );
    assert!(p.hint.is_some());
}

#[test]
fn unknown_step_kind() {
    one(
        "      - apply: [app.yaml]",
        "      - aply: [app.yaml]",
        19,
        "unknown variant",
    );
}

#[test]
fn wrong_value_type() {
    one("  workers: 2", "  workers: two", 6, "");
}

#[test]
fn unknown_workload_in_call_suggests_the_closest() {
    let p = one(
        "calls: [{ to: db, port: 3306 }]",
        "calls: [{ to: dbb, port: 3306 }]",
        12,
        "`dbb` is not a declared workload",
    );
    assert_eq!(p.hint.as_deref(), Some("did you mean `db`?"));
}

#[test]
fn unknown_workload_in_wait() {
    one(
        "workloads: [web, db]",
        "workloads: [web, cache]",
        20,
        "`cache`",
    );
}

#[test]
fn missing_manifest() {
    let p = one(
        "apply: [app.yaml]",
        "apply: [ap.yaml]",
        19,
        "manifest `ap.yaml` does not exist",
    );
    assert!(p.hint.unwrap().contains("manifests are read from"));
}

#[test]
fn expectation_naming_no_probe() {
    one(
        "              probes: [submit]\n",
        "              probes: []\n",
        30,
        "names no probe",
    );
}

#[test]
fn expectation_naming_an_unknown_probe() {
    let p = one("probes: [submit]\n", "probes: [sumbit]\n", 34, "`sumbit`");
    assert_eq!(p.hint.as_deref(), Some("did you mean `submit`?"));
}

#[test]
fn expectation_checking_nothing() {
    one(
        "              class: plaintext\n              canary: present\n",
        "",
        30,
        "checks nothing",
    );
}

#[test]
fn bad_duration() {
    one("timeout: 2m", "timeout: 2 minutes", 20, "");
}

#[test]
fn probe_without_a_kind() {
    one(
        "              http: { method: POST, form: { name: \"{{canary}}\" } }\n",
        "",
        24,
        "exactly one of http",
    );
}

#[test]
fn unknown_placeholder() {
    one(
        "{{canary}}",
        "{{run_id}}",
        24,
        "unknown placeholder `{{run_id}}`",
    );
}

#[test]
fn name_must_match_file() {
    one("name: demo", "name: other", 3, "differs from the file name");
}

#[test]
fn wrong_api_version() {
    let p = one(
        "meshproof.dev/v1alpha1",
        "meshproof.dev/v2",
        1,
        "unsupported apiVersion",
    );
    assert!(p.hint.unwrap().contains("v1alpha1"));
}

#[test]
fn duplicate_probe_names() {
    let dup = "          expect:\n            - name: clear";
    let extra = "            - name: submit\n              from: host\n              to: { workload: db, port: 3306 }\n              tcp: { send: x }\n          expect:\n            - name: clear";
    let found = problems(dup, extra);
    assert!(
        found.iter().any(|p| p.message.contains("declared twice")),
        "{found:#?}"
    );
}

#[test]
fn gateway_without_ingress() {
    let to_gateway = BASE.replacen(
        "to: { workload: web, port: 80 }",
        "to: { workload: ingress-gateway, port: 80 }",
        1,
    );
    assert!(
        load(&to_gateway).is_ok(),
        "istio has an ingress gateway by default"
    );
    let text = to_gateway.replacen(
        "mesh: { name: istio }",
        "mesh: { name: istio, ingressGateway: false }",
        1,
    );
    let Err(ScenarioError::Invalid { problems, .. }) = load(&text) else {
        panic!("expected problems")
    };
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].at.line, 26);
    assert!(
        problems[0].message.contains("mesh has none"),
        "{problems:#?}"
    );
}

#[test]
fn several_problems_are_reported_together_in_file_order() {
    let text = BASE.replacen("to: db", "to: dbx", 1).replacen(
        "apply: [app.yaml]",
        "apply: [nope.yaml]",
        1,
    );
    let Err(err) = load(&text) else { panic!() };
    let ScenarioError::Invalid { problems, .. } = &err else {
        panic!()
    };
    assert_eq!(problems.len(), 2);
    assert!(problems[0].at.line < problems[1].at.line);
    assert!(err.to_string().starts_with("2 problems in "), "{err}");
}

#[test]
fn unknown_scenario_lists_known_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let err = Scenario::load(root, "rabitmq").unwrap_err();
    assert!(err.to_string().contains("known: "), "{err}");
}

/// The single problem of a refused file, with its location.
fn refused(text: &str) -> String {
    let err = load(text).unwrap_err();
    let ScenarioError::Invalid { problems, .. } = &err else {
        panic!("not a located problem: {err}");
    };
    assert_eq!(problems.len(), 1, "{err}");
    problems[0].to_string()
}

#[test]
fn an_alias_bomb_is_refused_with_its_location() {
    // Under a field that takes any JSON (a MongoDB workload's seed data), so nothing but
    // the alias budget can refuse it.
    let mut text = String::from(
        "apiVersion: meshproof.dev/v1alpha1\nkind: Scenario\nname: demo\nsummary: s\nrequires: { workers: 2 }\nworkloads:\n  - name: db\n    namespace: d\n    kind: deployment\n    data:\n      test.c:\n        - &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..10 {
        let prev = i - 1;
        // 30 aliases a level: 270 in all (over the cap), 30^9 nodes if expanded.
        let refs = vec![format!("*a{prev}"); 30].join(", ");
        text.push_str(&format!("        - &a{i} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let problem = refused(&text);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Whichever cap trips first (aliases, or the anchor events they replay), it trips here.
    assert!(problem.contains("budget breached"), "{problem}");
    assert!(problem.contains("demo.yaml:"), "{problem}");
    assert!(!problem.contains("demo.yaml:0:0"), "not located: {problem}");
}

#[test]
fn absurd_nesting_is_refused_with_its_location() {
    for text in [
        format!("name: {}{}", "[".repeat(10_000), "]".repeat(10_000)),
        (0..200).fold(String::new(), |acc, i| {
            format!("{acc}{}k{i}:\n", "  ".repeat(i))
        }),
    ] {
        let problem = refused(&text);
        assert!(problem.contains("demo.yaml:"), "{problem}");
        assert!(!problem.contains("demo.yaml:0:0"), "not located: {problem}");
    }
}

#[test]
fn an_oversized_file_is_refused_before_it_is_parsed() {
    let text = format!("# {}\n{BASE}", "x".repeat(limits::MAX_BYTES as usize));
    let problem = refused(&text);
    assert!(problem.contains("demo.yaml:1:1: the file is"), "{problem}");
    assert!(problem.contains("at most 1048576 bytes"), "{problem}");
}
