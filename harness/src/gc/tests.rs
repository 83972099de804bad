//! gc against the real Docker daemon, with containers, a network and a volume the test
//! creates and labels itself.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptionsBuilder;

use super::*;
use crate::testsupport::{TinyImage, docker, suffix};

#[tokio::test]
#[allow(clippy::print_stderr)] // A skipped test says why.
async fn gc_removes_labelled_leftovers_and_a_meshproof_kind_cluster_then_finds_nothing() {
    let Some(docker) = docker().await else {
        eprintln!("skipped: no Docker daemon");
        return;
    };
    let run = format!("mp-gctest-{}", suffix());
    let image = TinyImage::build(&run).await;
    let net_name = format!("meshproof-{run}");
    let mut net = bollard::models::NetworkCreateRequest {
        name: net_name.clone(),
        ..Default::default()
    };
    net.labels = Some(HashMap::from([(RUN_LABEL.to_string(), run.clone())]));
    docker.create_network(net).await.unwrap();
    image
        .run_container(
            &docker,
            &format!("meshproof-{run}-pod"),
            &[(RUN_LABEL, &run)],
            Some(&net_name),
        )
        .await;
    let cluster = crate::provider::kind::cluster_name(&run);
    // A stand-in for a kind node: kind labels its nodes with the cluster name only.
    image
        .run_container(
            &docker,
            &format!("{cluster}-control-plane"),
            &[(KIND_CLUSTER_LABEL, &cluster)],
            None,
        )
        .await;
    let vol = bollard::models::VolumeCreateRequest {
        name: Some(format!("meshproof-{run}-vol")),
        labels: Some(HashMap::from([(RUN_LABEL.to_string(), run.clone())])),
        ..Default::default()
    };
    docker.create_volume(vol).await.unwrap();

    let filter = GcFilter {
        run: Some(run.clone()),
        liveness: Liveness {
            named: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let first = sweep(&docker, &Exec::new(), &filter).await;
    let second = sweep(&docker, &Exec::new(), &filter).await;
    let opts = ListContainersOptionsBuilder::default().all(true).build();
    let left: Vec<String> = docker
        .list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .filter(|n| n.contains(&run))
        .collect();
    image.remove(&docker).await;

    let first = first.unwrap();
    assert_eq!(first.clusters, vec![cluster.clone()]);
    assert_eq!(first.containers.len(), 2, "{first:?}");
    assert_eq!(first.networks, vec![net_name]);
    assert_eq!(first.volumes, vec![format!("meshproof-{run}-vol")]);
    assert!(first.failures.is_empty(), "{first:?}");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(second.unwrap().is_empty());
}

#[tokio::test]
#[allow(clippy::print_stderr)] // A skipped test says why.
async fn gc_for_one_run_leaves_other_runs_alone() {
    let Some(docker) = docker().await else {
        eprintln!("skipped: no Docker daemon");
        return;
    };
    let mine = format!("mp-gcmine-{}", suffix());
    let other = format!("mp-gcother-{}", suffix());
    let image = TinyImage::build(&mine).await;
    image
        .run_container(
            &docker,
            &format!("meshproof-{other}-pod"),
            &[(RUN_LABEL, &other)],
            None,
        )
        .await;
    let report = sweep(
        &docker,
        &Exec::new(),
        &GcFilter {
            run: Some(mine.clone()),
            liveness: Liveness {
                named: true,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let cleanup = sweep(
        &docker,
        &Exec::new(),
        &GcFilter {
            run: Some(other.clone()),
            liveness: Liveness {
                named: true,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    image.remove(&docker).await;
    assert!(report.unwrap().is_empty());
    assert_eq!(
        cleanup.unwrap().containers,
        vec![format!("meshproof-{other}-pod")]
    );
}

/// Two runs' objects: one whose ledger owner is this test process (alive), one whose owner
/// is gone. `--check` lists and removes nothing; gc then removes only the dead run's.
#[tokio::test]
#[allow(clippy::print_stderr)] // A skipped test says why.
async fn check_removes_nothing_and_gc_spares_a_live_run() {
    let Some(docker) = docker().await else {
        eprintln!("skipped: no Docker daemon");
        return;
    };
    let live = format!("mp-gclive-{}", suffix());
    let dead = format!("mp-gcdead-{}", suffix());
    let image = TinyImage::build(&live).await;
    let ledgers = tempfile::tempdir().unwrap();
    let me = crate::ledger::Item::owner_of_this_process().unwrap();
    let gone = crate::ledger::Item::Owner {
        pid: u32::MAX - 1,
        started: 1,
    };
    for (run, owner) in [(&live, me), (&dead, gone)] {
        crate::ledger::Ledger::open(&ledgers.path().join(run).join("ledger.jsonl"), run)
            .unwrap()
            .record(owner)
            .unwrap();
        let mut net = bollard::models::NetworkCreateRequest {
            name: format!("meshproof-{run}"),
            ..Default::default()
        };
        net.labels = Some(HashMap::from([(RUN_LABEL.to_string(), run.clone())]));
        docker.create_network(net).await.unwrap();
        let pod = format!("meshproof-{run}-pod");
        image
            .run_container(
                &docker,
                &pod,
                &[(RUN_LABEL, run)],
                Some(&format!("meshproof-{run}")),
            )
            .await;
    }
    let exec = Exec::new();
    // `--check` over every run on the engine (others' too): lists, touches nothing.
    let all = GcFilter {
        list_only: true,
        liveness: Liveness {
            ledgers: Some(ledgers.path().to_path_buf()),
            ..Default::default()
        },
        ..Default::default()
    };
    let everything = sweep(&docker, &exec, &all).await.unwrap();
    let after_all = [
        crate::provider::lab::docker::leftovers(&docker, &live)
            .await
            .unwrap(),
        crate::provider::lab::docker::leftovers(&docker, &dead)
            .await
            .unwrap(),
    ];
    let mut results = Vec::new();
    for (run, list_only) in [(&live, true), (&dead, true), (&live, false), (&dead, false)] {
        let filter = GcFilter {
            run: Some(run.clone()),
            list_only,
            liveness: Liveness {
                ledgers: Some(ledgers.path().to_path_buf()),
                named: true,
                older_than: None,
            },
            ..Default::default()
        };
        let report = sweep(&docker, &exec, &filter).await.unwrap();
        let left = crate::provider::lab::docker::leftovers(&docker, run)
            .await
            .unwrap();
        results.push((report, left));
    }
    // Whatever happened, remove the live run's objects (the dead one's are gone or go now).
    for run in [&live, &dead] {
        let filter = GcFilter {
            run: Some(run.clone()),
            liveness: Liveness {
                named: true,
                ..Default::default()
            },
            ..Default::default()
        };
        sweep(&docker, &exec, &filter).await.unwrap();
    }
    image.remove(&docker).await;

    let [
        (check_live, left1),
        (check_dead, left2),
        (gc_live, left3),
        (gc_dead, left4),
    ] = <[_; 4]>::try_from(results).unwrap();
    assert_eq!(after_all, [2, 2], "an unfiltered --check removed something");
    assert!(
        everything
            .containers
            .contains(&format!("meshproof-{dead}-pod"))
    );
    assert!(
        !everything
            .containers
            .contains(&format!("meshproof-{live}-pod"))
    );
    assert!(check_live.is_empty(), "{check_live:?}");
    assert!(check_live.spared[0].contains("alive"), "{check_live:?}");
    assert_eq!(check_dead.containers, vec![format!("meshproof-{dead}-pod")]);
    assert_eq!(check_dead.networks, vec![format!("meshproof-{dead}")]);
    assert_eq!((left1, left2), (2, 2), "--check removed something");
    assert!(gc_live.is_empty(), "{gc_live:?}");
    assert_eq!(left3, 2, "gc touched a live run");
    assert_eq!(gc_dead.containers, vec![format!("meshproof-{dead}-pod")]);
    assert_eq!(left4, 0, "gc left a dead run's objects");
}
