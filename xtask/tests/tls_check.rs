//! `cargo xtask tls-check`: the table, the JSON and the exit codes, through the binary.

use assert_cmd::Command;
use predicates::str::contains;

fn xtask() -> Command {
    Command::cargo_bin("xtask").expect("the xtask binary builds")
}

#[test]
fn prints_the_rabbitmq_table() {
    xtask()
        .args(["tls-check", "rabbitmq"])
        .assert()
        .success()
        .stdout(contains("HOST:PORT"))
        .stdout(contains("rabbitmq.rabbitmq.svc.cluster.local:5671"))
        .stdout(contains("rabbitmq-nodes.rabbitmq.svc.cluster.local:4369"));
}

#[test]
fn json_has_rows_and_expected_flows() {
    let out = xtask()
        .args(["tls-check", "pii-demo", "--phase", "strict-mtls", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["matrix"]["rows"].as_array().map(Vec::len), Some(4));
    let flows = doc["expected_flows"].as_array().unwrap();
    assert!(flows.iter().any(|f| f["from"] == "httpd-server"
        && f["to"] == "mysql-server"
        && f["class"] == "istio-mtls"));
}

#[test]
fn unknown_phase_and_scenario_exit_2() {
    xtask()
        .args(["tls-check", "pii-demo", "--phase", "strict"])
        .assert()
        .code(2)
        .stderr(contains("phases: baseline, strict-mtls"));
    xtask()
        .args(["tls-check", "nope"])
        .assert()
        .code(2)
        .stderr(contains("no scenario named `nope`"));
}

#[test]
fn rows_the_model_cannot_decide_say_so() {
    // xnat's ALLOW policy reads methods; the proxy's call to XNAT names no request.
    xtask()
        .args(["tls-check", "xnat"])
        .assert()
        .success()
        .stdout(contains("CANNOT PREDICT"))
        .stdout(contains(
            "cannot predict: ALLOW policy xnat-all/xnat reads the HTTP request",
        ));
    let out = xtask()
        .args(["tls-check", "xnat", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rows = doc["matrix"]["rows"].as_array().unwrap();
    assert!(rows.iter().any(
        |r| r["status"]["status"] == "cannot-predict" && r["status"]["undecided"] == "outcome"
    ));
}
