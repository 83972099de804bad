//! Docker tier: the project's kind workload image, built for real from local files (no
//! base image, no pull), inspected and run; and the capture helper that runs from it on
//! the host network, capturing two containers' traffic on a test bridge.
//!
//! Both build the image under a test repository name, so a run never retags the real
//! `meshproof-workload:<version>` another run may be using.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use meshproof::capture::helper::{HelperCapture, HelperConfig};
use meshproof::exec::Exec;
use meshproof::image::{self, TagPolicy, WORKLOAD_PATH};
use meshproof::provider::lab::docker::{self, SweepGuard};
use meshproof::provider::lab::pod::{self, PodContext};
use meshproof::reporter::NullReporter;
use meshproof::scenario::Protocol;
use meshproof::wire::{AnalyzerConfig, FlowClass};
use meshproof::workload::{Listener, ProbeKind, ProbeRequest, Role};

const RUN_LABEL: &str = "meshproof.dev/run";

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Builds the workload image as `meshproof-test-<run>:1` and returns the built image.
async fn test_image(engine: &bollard::Docker, run: &str) -> image::BuiltImage {
    let exec = Exec::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_meshproof-workload"));
    let mut spec = image::workload_image(&exec, bin).await.unwrap();
    spec.repository = format!("meshproof-test-{run}");
    spec.tag = TagPolicy::Fixed("1".into());
    image::ensure_image(engine, &spec, &NullReporter)
        .await
        .unwrap()
}

async fn remove_image(engine: &bollard::Docker, reference: &str) {
    let opts = bollard::query_parameters::RemoveImageOptionsBuilder::default()
        .force(true)
        .build();
    let _ = engine.remove_image(reference, Some(opts), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workload_image_builds_offline_and_runs_its_binary() {
    let engine = docker::connect().await.unwrap();
    let run = format!("img{}", suffix());
    let _guard = SweepGuard::new(&run);
    let started = Instant::now();
    let built = test_image(&engine, &run).await;
    let took = started.elapsed();
    assert!(built.built, "{built:?}");
    assert!(
        built.files.contains(&WORKLOAD_PATH.to_string()),
        "{built:?}"
    );
    assert!(
        built.files.iter().any(|f| f.contains("libpcap")),
        "libpcap (for `capture`) is in the image: {:?}",
        built.files
    );
    let inspect = engine.inspect_image(&built.reference).await.unwrap();
    let config = inspect.config.unwrap();
    assert_eq!(config.cmd, Some(vec![WORKLOAD_PATH.to_string()]));
    let labels = config.labels.unwrap();
    assert_eq!(labels[image::CONTENT_LABEL], built.content);
    // No base image: one layer, the imported rootfs.
    assert_eq!(inspect.root_fs.unwrap().layers.unwrap().len(), 1);

    // The binary runs in it: it serves HTTP, and a probe from inside prints its outcome.
    let net = docker::create_network(&engine, &format!("meshproof-{run}"), &run)
        .await
        .unwrap();
    let ctx = PodContext {
        run_id: run.clone(),
        image: built.reference.clone(),
        network: net.name.clone(),
    };
    let role = Role {
        workload: "idle".into(),
        instance: "idle-0".into(),
        node: "n".into(),
        cookie: "c".into(),
        listeners: vec![Listener {
            bind: ([127, 0, 0, 1], 8080).into(),
            protocol: Protocol::Http,
            tls: false,
        }],
        upstreams: vec![],
        cluster_interval_ms: 1000,
        data: Default::default(),
    };
    let idle = pod::start_app(&engine, &ctx, &role, vec![]).await;
    let outcome = match &idle {
        Ok(p) => pod::probe_from(
            &engine,
            p,
            &ProbeRequest {
                dial: "127.0.0.1:8080".into(),
                kind: ProbeKind::Http {
                    method: "GET".into(),
                    path: "/".into(),
                    headers: Default::default(),
                    body: String::new(),
                },
                timeout_ms: 2000,
                attempts: 3,
            },
        )
        .await
        .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };

    // Unchanged inputs reuse the image.
    let again = test_image(&engine, &run).await;
    docker::sweep(&engine, &run).await.unwrap();
    remove_image(&engine, &built.reference).await;
    assert!(!again.built, "{again:?}");
    assert_eq!(again.content, built.content);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.status, Some(200), "{outcome:?}");
    assert!(
        outcome.body.contains("\"instance\":\"idle-0\""),
        "{outcome:?}"
    );
    eprintln!(
        "built {} ({} files) in {:.1}s",
        built.reference,
        built.files.len(),
        took.as_secs_f64()
    );
}

fn server_role() -> Role {
    Role {
        workload: "server".into(),
        instance: "server-0".into(),
        node: "n".into(),
        cookie: "c".into(),
        listeners: vec![
            Listener {
                bind: ([0, 0, 0, 0], 8080).into(),
                protocol: Protocol::Http,
                tls: false,
            },
            Listener {
                bind: ([0, 0, 0, 0], 3306).into(),
                protocol: Protocol::Mysql,
                tls: false,
            },
        ],
        upstreams: vec![],
        cluster_interval_ms: 1000,
        data: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_helper_sees_every_flow_on_a_bridge_exactly() {
    let engine = docker::connect().await.unwrap();
    let run = format!("hlp{}", suffix());
    let _guard = SweepGuard::new(&run);
    let canary = format!("MESHPROOF-CANARY-{run}");
    let built = test_image(&engine, &run).await;
    let net = docker::create_network(&engine, &format!("meshproof-{run}"), &run)
        .await
        .unwrap();
    let outcome = exercise(&engine, &run, &built.reference, &net, &canary).await;
    let swept = docker::sweep(&engine, &run).await.unwrap();
    remove_image(&engine, &built.reference).await;
    let (summary, stop_took, server, client, helper_name) = outcome.unwrap();
    assert_eq!(
        swept, 3,
        "two pods and the network; the helper removed itself"
    );
    assert!(
        engine.inspect_container(&helper_name, None).await.is_err(),
        "the helper container is gone"
    );
    assert!(
        stop_took < Duration::from_secs(10),
        "stopping took {stop_took:?}"
    );
    assert_eq!(summary.drops.total(), 0);
    assert!(summary.packets > 0);
    let flows = &summary.analysis.flows;
    // Exactly the probes: three HTTP requests and one MySQL query, client to server.
    assert_eq!(flows.len(), 4, "{flows:#?}");
    assert!(
        flows
            .iter()
            .all(|f| f.client.ip() == client && f.server.ip() == server),
        "{flows:#?}"
    );
    let http: Vec<_> = flows.iter().filter(|f| f.server.port() == 8080).collect();
    assert_eq!(http.len(), 3, "{flows:#?}");
    for f in &http {
        assert_eq!(f.class, FlowClass::Plaintext, "{f:?}");
        assert_eq!(f.protocol.as_deref(), Some("http"), "{f:?}");
        assert!(f.canary_hits >= 1, "{f:?}");
    }
    let mysql: Vec<_> = flows.iter().filter(|f| f.server.port() == 3306).collect();
    assert_eq!(mysql.len(), 1, "{flows:#?}");
    assert_eq!(mysql[0].protocol.as_deref(), Some("mysql"), "{flows:#?}");
    assert!(mysql[0].canary_hits >= 1, "{flows:#?}");
    // The file on the host is the stream, byte for byte readable.
    let bytes = std::fs::read(&summary.pcap_path).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "a little-endian pcap"
    );
}

type Exercised = (
    meshproof::capture::CaptureSummary,
    Duration,
    std::net::IpAddr,
    std::net::IpAddr,
    String,
);

/// Starts server and client, then the helper on the bridge, sends the probes, stops.
async fn exercise(
    engine: &bollard::Docker,
    run: &str,
    image: &str,
    net: &docker::LabNetwork,
    canary: &str,
) -> Result<Exercised, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let ctx = PodContext {
        run_id: run.to_string(),
        image: image.to_string(),
        network: net.name.clone(),
    };
    let server_role = server_role();
    let server = pod::start_app(engine, &ctx, &server_role, vec!["server".into()])
        .await
        .map_err(|e| err(&e))?;
    pod::wait_ready(engine, &server, &server_role, Duration::from_secs(30))
        .await
        .map_err(|e| err(&e))?;
    let mut client_role = server_role.clone();
    client_role.workload = "client".into();
    client_role.instance = "client-0".into();
    let client = pod::start_app(engine, &ctx, &client_role, vec![])
        .await
        .map_err(|e| err(&e))?;
    let dir = tempfile::tempdir().map_err(|e| err(&e))?;
    let helper_name = format!("meshproof-{run}-capture");
    let helper = HelperCapture::start(
        engine,
        HelperConfig {
            image: image.to_string(),
            program: WORKLOAD_PATH.to_string(),
            name: helper_name.clone(),
            labels: HashMap::from([(RUN_LABEL.to_string(), run.to_string())]),
            interface: net.bridge.clone(),
            bpf: "tcp".into(),
            pcap_path: dir.path().join("helper.pcap"),
            analyzer: AnalyzerConfig {
                canaries: vec![canary.as_bytes().to_vec()],
                ..AnalyzerConfig::default()
            },
        },
    )
    .await
    .map_err(|e| err(&e))?;
    for i in 0..3 {
        let req = ProbeRequest {
            dial: "server:8080".into(),
            kind: ProbeKind::Http {
                method: "POST".into(),
                path: format!("/submit/{i}"),
                headers: [("host".to_string(), "server".to_string())].into(),
                body: format!("name={canary}"),
            },
            timeout_ms: 5000,
            attempts: 1,
        };
        let out = pod::probe_from(engine, &client, &req)
            .await
            .map_err(|e| err(&e))?;
        if out.status != Some(200) {
            return Err(format!("HTTP probe {i}: {out:?}"));
        }
    }
    let query = ProbeRequest {
        dial: "server:3306".into(),
        kind: ProbeKind::Mysql {
            query: format!("INSERT INTO users (firstname) VALUES ('{canary}')"),
        },
        timeout_ms: 5000,
        attempts: 1,
    };
    pod::probe_from(engine, &client, &query)
        .await
        .map_err(|e| err(&e))?;
    // The last packets (FIN/ACK) must be in before the stop: no sleep is needed for
    // correctness, since the helper drains on SIGTERM, which is what this proves.
    let seen_before_stop = helper.packets_seen();
    let stopping = Instant::now();
    let summary = helper.stop().await.map_err(|e| err(&e))?;
    let took = stopping.elapsed();
    if seen_before_stop == 0 {
        return Err("no packet arrived while the capture ran: the stream is not live".into());
    }
    let _ = dir.keep();
    Ok((summary, took, server.ip, client.ip, helper_name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_that_cannot_capture_says_why_and_leaves_nothing() {
    let engine = docker::connect().await.unwrap();
    let run = format!("hlx{}", suffix());
    let _guard = SweepGuard::new(&run);
    let built = test_image(&engine, &run).await;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("meshproof-{run}-capture");
    let started = Instant::now();
    let result = HelperCapture::start(
        &engine,
        HelperConfig {
            image: built.reference.clone(),
            program: WORKLOAD_PATH.to_string(),
            name: name.clone(),
            labels: HashMap::from([(RUN_LABEL.to_string(), run.clone())]),
            interface: "meshproof-nonexistent0".into(),
            bpf: "tcp".into(),
            pcap_path: dir.path().join("x.pcap"),
            analyzer: AnalyzerConfig::default(),
        },
    )
    .await;
    let gone = engine.inspect_container(&name, None).await.is_err();
    let leftovers = docker::sweep(&engine, &run).await.unwrap();
    remove_image(&engine, &built.reference).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains(&name), "{err}");
    assert!(
        err.contains("meshproof-nonexistent0"),
        "the helper's own words: {err}"
    );
    assert!(gone, "the failed helper was removed");
    assert_eq!(leftovers, 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
