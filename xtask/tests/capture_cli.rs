//! `cargo xtask capture analyze`: the table, the JSON contract and the exit codes, through
//! the binary, on captures recorded with real tools (`fixtures/captures/record.sh`).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;

const CANARY: &str = "MESHPROOF-CANARY-fixture-0001";

fn xtask() -> Command {
    Command::cargo_bin("xtask").expect("the xtask binary builds")
}

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/captures")
        .join(name)
}

#[test]
fn json_is_the_documented_contract_with_every_field() {
    let out = xtask()
        .args(["capture", "analyze", "--json", "--canary", CANARY])
        .arg(capture("postgres.pcapng"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&doc), ["bytes", "flows", "links", "packets"]);
    assert_eq!(doc["links"], serde_json::json!([]));
    let flow = &doc["flows"][0];
    assert_eq!(
        keys(flow),
        [
            "alpn",
            "canary_hits",
            "canary_scan",
            "class",
            "client",
            "client_bytes",
            "frames",
            "overlay",
            "protocol",
            "server",
            "server_bytes",
            "sni",
            "tls_version"
        ]
    );
    assert_eq!(flow["class"], "plaintext");
    assert_eq!(flow["overlay"], serde_json::Value::Null);
    assert_eq!(flow["protocol"], "postgres");
    assert_eq!(flow["server"], "10.77.0.2:5432");
    assert_eq!(
        flow["canary_hits"], 1,
        "psql sent the canary as its user name"
    );
}

#[test]
fn table_shows_the_istio_flow_and_counters_go_to_stderr() {
    xtask()
        .args(["capture", "analyze"])
        .arg(capture("istio-mtls-split-hello.pcap"))
        .assert()
        .success()
        .stdout(contains("CLIENT"))
        .stdout(contains("istio-mtls"))
        .stdout(contains(
            "outbound_.5672_._.rabbitmq.rabbitmq.svc.cluster.local",
        ))
        .stdout(contains("istio-peer-exchange,istio"))
        .stderr(contains("retransmissions"));
}

#[test]
fn a_truncated_capture_exits_2_with_the_byte_offset() {
    let bytes = std::fs::read(capture("hbone.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    xtask()
        .args(["capture", "analyze"])
        .arg(&cut)
        .assert()
        .code(2)
        .stderr(contains("cut.pcap"))
        .stderr(contains("truncated at byte"));
}

#[test]
fn something_that_is_not_a_capture_exits_2_and_says_so() {
    xtask()
        .args(["capture", "analyze"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .assert()
        .code(2)
        .stderr(contains("not a pcap or pcapng capture"))
        .stderr(contains("at byte 0"));
}

#[test]
fn a_missing_file_exits_2() {
    xtask()
        .args(["capture", "analyze", "/nonexistent/meshproof.pcap"])
        .assert()
        .code(2)
        .stderr(contains("cannot open /nonexistent/meshproof.pcap"));
}

#[test]
fn tunnels_show_their_overlay_and_encryption_its_link() {
    let out = xtask()
        .args(["capture", "analyze", "--json", "--vxlan-port", "9999"])
        .arg(capture("vxlan-http.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["flows"][0]["overlay"],
        serde_json::json!({"kind": "vxlan", "vni": 1, "outer": ["10.78.0.1", "10.78.0.2"], "depth": 1})
    );
    xtask()
        .args(["capture", "analyze"])
        .arg(capture("vxlan-fragments.pcap"))
        .assert()
        .success()
        .stdout(contains("vxlan:4096 10.78.0.1>10.78.0.2"))
        .stderr(contains(
            "6 IP fragments: 3 datagrams reassembled, 0 fragments lost",
        ));
    xtask()
        .args(["capture", "analyze"])
        .arg(capture("wireguard.pcap"))
        .assert()
        .success()
        .stdout(contains(
            "cni-encrypted wireguard link 10.78.0.1 <-> 10.78.0.2: 34 packets",
        ));
}
