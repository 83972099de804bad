//! `cargo xtask hpa check` as a user runs it: the xnat scenario's numbers and fixes, the
//! `--manifests` mode, and exit codes (0 clean, 1 skewed or broken HPA, 2 bad input).

use std::path::PathBuf;

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/xnat")
        .join(name)
}

#[test]
fn xnat_explains_the_skew_and_prints_valid_fixes() {
    cargo_bin_cmd!("xtask")
        .args(["hpa", "check", "xnat"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "target point 140m per pod: xnat-web 70m + istio-proxy 70m",
        ))
        .stdout(predicate::str::contains(
            "with istio-proxy at 10m the app must reach 130m",
        ))
        .stdout(predicate::str::contains(
            "reachable: NO: the app's CPU limit 120m is below the 146m it needs",
        ))
        .stdout(predicate::str::contains("type: ContainerResource"))
        .stdout(predicate::str::contains("averageValue: 80m"));
}

#[test]
fn manifests_mode_takes_the_proxy_usage_and_passes_a_fixed_hpa() {
    let files = [
        fixture("namespace.yaml"),
        fixture("web.yaml"),
        fixture("hpa-skewed.yaml"),
    ];
    cargo_bin_cmd!("xtask")
        .args(["hpa", "check", "--proxy-usage", "30m", "--manifests"])
        .args(&files)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("the app needs 110m at the target"))
        .stdout(predicate::str::contains("averageValue: 100m"));
    let files = [
        fixture("namespace.yaml"),
        fixture("web.yaml"),
        fixture("hpa-fixed.yaml"),
    ];
    cargo_bin_cmd!("xtask")
        .args(["hpa", "check", "--json", "--manifests"])
        .args(&files)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("\"container\": \"xnat-web\""));
}

#[test]
fn bad_input_exits_2() {
    cargo_bin_cmd!("xtask")
        .args(["hpa", "check", "xnat", "--proxy-usage", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--proxy-usage: `lots` is not a Kubernetes quantity",
        ));
    cargo_bin_cmd!("xtask")
        .args(["hpa", "check", "no-such-scenario"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no scenario named `no-such-scenario`",
        ));
}
