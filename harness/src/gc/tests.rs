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
        kind: None,
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
            kind: None,
        },
    )
    .await;
    let cleanup = sweep(
        &docker,
        &Exec::new(),
        &GcFilter {
            run: Some(other.clone()),
            kind: None,
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
