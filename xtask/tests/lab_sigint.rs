//! Lab tier: a real `cargo xtask e2e --provider lab` run, interrupted with SIGINT or SIGTERM
//! while its lab is up, removes everything it created (containers, network, temp files),
//! still writes its partial report, and exits 130 or 143 as a shell would. Only this run's
//! objects are counted (by its run id): other runs may be live on the same engine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshproof::exec::{Cmd, Exec};
use meshproof::provider::lab::docker;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The workload binary cargo built for the harness's tests, built now if it is missing.
async fn workload_bin(exec: &Exec) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_xtask")).with_file_name("meshproof-workload");
    if !bin.is_file() {
        let cargo = meshproof::env_vars::cargo().unwrap_or_else(|| "cargo".into());
        let build = Cmd::new(cargo.display().to_string())
            .args(["build", "-p", "meshproof", "--bin", "meshproof-workload"])
            .cwd(repo_root());
        exec.run(&build).await.unwrap();
    }
    bin
}

/// Polls until `dir` holds the run's artifacts directory; its name is the run id.
async fn run_id(dir: &Path, deadline: Instant) -> String {
    loop {
        let found = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir());
        if let Some(entry) = found {
            return entry.file_name().to_string_lossy().into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the run never created its artifacts directory"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_and_sigterm_in_the_middle_of_a_lab_run_leave_nothing_behind() {
    // One after the other: the second reuses the image the first built.
    interrupt_a_lab_run("INT", 130).await;
    interrupt_a_lab_run("TERM", 143).await;
}

/// Starts a lab run, sends `signal` once its brokers run, and checks the aftermath.
async fn interrupt_a_lab_run(signal: &str, code: i32) {
    let exec = Exec::new();
    let artifacts = tempfile::tempdir().unwrap();
    let cmd = Cmd::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "--no-progress",
            "e2e",
            "rabbitmq",
            "--provider",
            "lab",
            "--artifacts",
        ])
        .arg(artifacts.path().display().to_string())
        .env(
            meshproof::env_vars::MESHPROOF_WORKLOAD_BIN.name,
            workload_bin(&exec).await.display().to_string(),
        )
        .cwd(repo_root());
    let child = exec.spawn(&cmd).unwrap();
    // A cold image build can take a while; after that the lab comes up in seconds.
    let deadline = Instant::now() + Duration::from_secs(600);
    let run = run_id(artifacts.path(), deadline).await;
    let engine = docker::connect().await.unwrap();
    // Wait until the brokers and their sidecars run: the middle of the run's work.
    while docker::leftovers(&engine, &run).await.unwrap() < 6 {
        assert!(Instant::now() < deadline, "the lab never came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = child.id().expect("the run is still going");
    exec.run(&Cmd::new("kill").args([format!("-{signal}"), pid.to_string()]))
        .await
        .unwrap();
    let out = child.wait(Duration::from_secs(300)).await.unwrap();
    let log = format!("{}\n{}", out.stdout_text(), out.stderr_text());
    assert_eq!(out.status, Some(code), "SIG{signal}: {log}");
    let report = artifacts.path().join(&run).join("report.json");
    assert!(report.is_file(), "SIG{signal}: no partial report: {log}");
    assert!(
        log.contains("Tearing down") || log.contains("teardown"),
        "{log}"
    );
    assert_eq!(
        docker::leftovers(&engine, &run).await.unwrap(),
        0,
        "SIG{signal}: objects left behind: {log}"
    );
    let temp = std::env::temp_dir().join(format!("meshproof-{run}"));
    assert!(!temp.exists(), "{} left behind", temp.display());
}
