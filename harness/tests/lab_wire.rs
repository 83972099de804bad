//! Lab tier: the lab's capture on its bridge sees the workload's protocols with their real
//! framing, and the project's analyzer recognises them: MySQL, AMQP, epmd and Erlang
//! distribution between two plain pods, with the canary found in clear where it was sent.

use std::path::Path;
use std::time::Duration;

use meshproof::exec::Exec;
use meshproof::image;
use meshproof::provider::lab::capture;
use meshproof::provider::lab::config;
use meshproof::provider::lab::docker::{self, SweepGuard};
use meshproof::provider::lab::pod::{self, PodContext};
use meshproof::reporter::NullReporter;
use meshproof::scenario::Protocol;
use meshproof::workload::{Listener, ProbeKind, ProbeRequest, Role, Upstream};

const CANARY: &str = "MESHPROOF-CANARY-wiretest0000001";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

async fn lab_image(exec: &Exec) -> String {
    let version = config::envoy_version(root()).unwrap();
    let envoy = image::envoy::envoy_binary(exec, &meshproof::env_vars::cache_dir(root()), &version)
        .await
        .unwrap();
    let docker = docker::connect().await.unwrap();
    let workload = Path::new(env!("CARGO_BIN_EXE_meshproof-workload"));
    let spec = image::lab_image(exec, workload, &envoy).await.unwrap();
    image::ensure_image(&docker, &spec, &NullReporter)
        .await
        .unwrap()
        .reference
}

fn listener(port: u16, protocol: Protocol) -> Listener {
    Listener {
        bind: ([0, 0, 0, 0], port).into(),
        protocol,
        tls: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyzer_recognises_every_workload_protocol_on_the_lab_bridge() {
    let exec = Exec::new();
    let image = lab_image(&exec).await;
    let run_id = format!("w{:08x}", rand::random::<u32>());
    let _guard = SweepGuard::new(&run_id);
    let engine = docker::connect().await.unwrap();
    let net = docker::create_network(&engine, &format!("meshproof-{run_id}"), &run_id)
        .await
        .unwrap();
    let ctx = PodContext {
        run_id: run_id.clone(),
        image,
        network: net.name.clone(),
    };
    let server = Role {
        workload: "broker".into(),
        instance: "broker-0".into(),
        node: "rabbit@broker-0".into(),
        cookie: "cookie".into(),
        listeners: vec![
            listener(3306, Protocol::Mysql),
            listener(5672, Protocol::Amqp),
            listener(4369, Protocol::Epmd),
            listener(25672, Protocol::ErlangDist),
        ],
        upstreams: vec![],
        cluster_interval_ms: 1000,
        data: Default::default(),
    };
    let broker = pod::start_app(&engine, &ctx, &server, vec!["broker".into()])
        .await
        .unwrap();
    pod::wait_ready(&engine, &broker, &server, Duration::from_secs(30))
        .await
        .unwrap();
    // The peer contacts the broker's epmd and distribution port every 300 ms.
    let peer_role = Role {
        workload: "peer".into(),
        instance: "peer-0".into(),
        node: "rabbit@peer-0".into(),
        cookie: "cookie".into(),
        listeners: vec![],
        upstreams: vec![
            Upstream {
                workload: "broker".into(),
                protocol: Protocol::Epmd,
                dial: "broker:4369".into(),
                peer_node: Some("rabbit@broker-0".into()),
            },
            Upstream {
                workload: "broker".into(),
                protocol: Protocol::ErlangDist,
                dial: "broker:25672".into(),
                peer_node: Some("rabbit@broker-0".into()),
            },
        ],
        cluster_interval_ms: 300,
        data: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let cap = capture::start(&exec, &net, dir.path(), "wire", &[CANARY.to_string()])
        .await
        .unwrap();
    let peer = pod::start_app(&engine, &ctx, &peer_role, vec![])
        .await
        .unwrap();
    let probe = |kind| ProbeRequest {
        dial: "broker:0".into(),
        kind,
        timeout_ms: 5000,
        attempts: 3,
    };
    let mut mysql = probe(ProbeKind::Mysql {
        query: format!("INSERT INTO users (firstname) VALUES ('{CANARY}')"),
    });
    mysql.dial = "broker:3306".into();
    let mut amqp = probe(ProbeKind::Amqp {
        queue: "q".into(),
        publish: CANARY.into(),
        consume: true,
        quorum: false,
    });
    amqp.dial = "broker:5672".into();
    let out = pod::probe_from(&engine, &peer, &mysql).await.unwrap();
    assert_eq!(out.body, "OK affected=1 last_insert_id=1", "{out:?}");
    let out = pod::probe_from(&engine, &peer, &amqp).await.unwrap();
    assert!(
        out.body.ends_with(&format!("consumed: {CANARY}")),
        "{out:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let peers = capture::peer_map(&net, [&broker, &peer].into_iter());
    let result = capture::stop(cap, peers, &net).await.unwrap();
    let flows = &result.analysis.flows;
    let on = |port: u16| {
        flows
            .iter()
            .filter(move |f| f.server.port() == port && f.server.ip() == broker.ip)
    };
    for (port, protocol) in [
        (3306, "mysql"),
        (5672, "amqp"),
        (4369, "epmd"),
        (25672, "erlang-dist"),
    ] {
        let seen: Vec<_> = on(port).collect();
        assert!(!seen.is_empty(), "no flow to {port} in {flows:#?}");
        assert!(seen.iter().all(|f| f.protocol.as_deref() == Some(protocol) && f.class.as_str() == "plaintext"), "{port}: {seen:#?}");
    }
    assert!(
        on(3306).any(|f| f.canary_hits > 0),
        "the INSERT carried the canary in clear"
    );
    assert!(
        on(5672).map(|f| f.canary_hits).sum::<u64>() >= 2,
        "published and consumed in clear"
    );
    assert_eq!(result.peers.peers[&peer.ip].workload, "peer");
    docker::sweep(&engine, &run_id).await.unwrap();
}
