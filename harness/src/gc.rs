//! `cargo xtask gc`: removes everything meshproof left behind, by label, idempotently.
//!
//! Containers, networks and volumes carry `meshproof.dev/run`; kind's node containers
//! carry kind's own `io.x-k8s.kind.cluster` label with a cluster name that starts with
//! `meshproof-`. Clusters are deleted with `kind delete cluster` when kind is available
//! and by force-removing their node containers otherwise. Anything already gone counts as
//! removed, so running gc twice is safe.
//!
//! Only runs that are no longer alive are touched ([`liveness`]): a concurrent run's lab
//! is spared. With [`GcFilter::list_only`] nothing is removed, only listed.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

pub use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use crate::exec::{Cmd, Exec};

pub mod liveness;
pub use liveness::Liveness;

/// The label on everything meshproof creates.
pub const RUN_LABEL: &str = "meshproof.dev/run";
/// kind's label on its node containers.
pub const KIND_CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// Prefix of every kind cluster meshproof creates.
pub const CLUSTER_PREFIX: &str = "meshproof-";

/// Errors that stop gc from even looking.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Docker could not be asked.
    #[error("cannot list Docker objects: {0}")]
    Docker(#[from] bollard::errors::Error),
}

/// What to sweep.
#[derive(Debug, Clone, Default)]
pub struct GcFilter {
    /// Only this run's objects (and the cluster named after it); all runs when `None`.
    pub run: Option<String>,
    /// kind's binary, to delete clusters the way kind does; node containers are
    /// force-removed when `None`.
    pub kind: Option<Cmd>,
    /// List what would be removed and remove nothing (`gc --check`).
    pub list_only: bool,
    /// Which runs are alive and must be spared.
    pub liveness: Liveness,
}

/// What gc did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// kind clusters deleted.
    pub clusters: Vec<String>,
    /// Containers removed (names).
    pub containers: Vec<String>,
    /// Networks removed (names).
    pub networks: Vec<String>,
    /// Volumes removed (names).
    pub volumes: Vec<String>,
    /// Things that could not be removed, with the reason.
    pub failures: Vec<String>,
    /// Runs left alone, with the reason (alive, owner unknown).
    pub spared: Vec<String>,
}

impl GcReport {
    /// True when nothing was found to remove.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
            && self.containers.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
    }
}

fn label_filter(filter: &GcFilter) -> HashMap<String, Vec<String>> {
    let label = match &filter.run {
        Some(run) => format!("{RUN_LABEL}={run}"),
        None => RUN_LABEL.to_string(),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

/// Removes every leftover matching the filter.
pub async fn sweep(docker: &Docker, exec: &Exec, filter: &GcFilter) -> Result<GcReport, GcError> {
    let mut report = GcReport::default();
    let mut seen = HashMap::new();
    clusters(docker, exec, filter, &mut report, &mut seen).await?;
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&label_filter(filter))
        .build();
    for c in docker.list_containers(Some(opts)).await? {
        if !may_remove(filter, c.labels.as_ref(), &mut seen) {
            continue;
        }
        let id = c.id.unwrap_or_default();
        let name = c
            .names
            .unwrap_or_default()
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or(id.clone());
        let rm = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        if filter.list_only {
            report.containers.push(name);
            continue;
        }
        outcome(
            docker.remove_container(&id, Some(rm)).await,
            name,
            &mut report.containers,
            &mut report.failures,
        );
    }
    let opts = ListNetworksOptionsBuilder::default()
        .filters(&label_filter(filter))
        .build();
    for n in docker.list_networks(Some(opts)).await? {
        if !may_remove(filter, n.labels.as_ref(), &mut seen) {
            continue;
        }
        let name = n.name.unwrap_or_default();
        if filter.list_only {
            report.networks.push(name);
            continue;
        }
        outcome(
            docker.remove_network(&n.id.unwrap_or_default()).await,
            name,
            &mut report.networks,
            &mut report.failures,
        );
    }
    let opts = ListVolumesOptionsBuilder::default()
        .filters(&label_filter(filter))
        .build();
    for v in docker
        .list_volumes(Some(opts))
        .await?
        .volumes
        .unwrap_or_default()
    {
        if !may_remove(filter, Some(&v.labels), &mut seen) {
            continue;
        }
        if filter.list_only {
            report.volumes.push(v.name);
            continue;
        }
        let rm = RemoveVolumeOptionsBuilder::default().force(true).build();
        outcome(
            docker.remove_volume(&v.name, Some(rm)).await,
            v.name.clone(),
            &mut report.volumes,
            &mut report.failures,
        );
    }
    report.spared = spared_list(&seen);
    Ok(report)
}

/// Whether the object with these labels belongs to a run gc may remove.
fn may_remove(
    filter: &GcFilter,
    labels: Option<&HashMap<String, String>>,
    seen: &mut HashMap<String, liveness::Spared>,
) -> bool {
    match labels.and_then(|l| l.get(RUN_LABEL)) {
        Some(run) => filter.liveness.judge(run, seen).is_none(),
        // The list was filtered by the label, so this does not happen; keep it anyway.
        None => false,
    }
}

fn spared_list(seen: &HashMap<String, liveness::Spared>) -> Vec<String> {
    let mut out: Vec<String> = seen
        .iter()
        .filter_map(|(run, why)| why.as_ref().map(|w| format!("{run}: {w}")))
        .collect();
    out.sort();
    out
}

/// Records a removal; "no such object" means someone else removed it first, which is fine.
fn outcome(
    result: Result<(), bollard::errors::Error>,
    name: String,
    done: &mut Vec<String>,
    failures: &mut Vec<String>,
) {
    match result {
        Ok(()) => done.push(name),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => failures.push(format!("{name}: {e}")),
    }
}

async fn clusters(
    docker: &Docker,
    exec: &Exec,
    filter: &GcFilter,
    report: &mut GcReport,
    seen: &mut HashMap<String, liveness::Spared>,
) -> Result<(), GcError> {
    let wanted = filter
        .run
        .as_deref()
        .map(crate::provider::kind::cluster_name);
    let label = HashMap::from([("label".to_string(), vec![KIND_CLUSTER_LABEL.to_string()])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&label)
        .build();
    let nodes = docker.list_containers(Some(opts)).await?;
    let mut names = BTreeSet::new();
    for node in &nodes {
        let Some(cluster) = node.labels.as_ref().and_then(|l| l.get(KIND_CLUSTER_LABEL)) else {
            continue;
        };
        let ours =
            cluster.starts_with(CLUSTER_PREFIX) && wanted.as_deref().is_none_or(|w| w == cluster);
        if ours {
            names.insert(cluster.clone());
        }
    }
    // The cluster is named after its run (`meshproof-<run>`), which owns the ledger.
    names.retain(|c| {
        let run = c.strip_prefix(CLUSTER_PREFIX).unwrap_or(c);
        filter.liveness.judge(run, seen).is_none()
    });
    if filter.list_only {
        report.clusters.extend(names);
        return Ok(());
    }
    for cluster in names {
        if let Some(kind) = &filter.kind {
            let cmd = kind
                .clone()
                .args(["delete", "cluster", "--name", &cluster])
                .timeout(Duration::from_secs(180));
            match exec.run(&cmd).await {
                Ok(_) => {
                    report.clusters.push(cluster);
                    continue;
                }
                Err(e) => report.failures.push(format!(
                    "kind delete cluster {cluster}: {e}; removing its nodes directly"
                )),
            }
        }
        for node in nodes
            .iter()
            .filter(|n| n.labels.as_ref().and_then(|l| l.get(KIND_CLUSTER_LABEL)) == Some(&cluster))
        {
            let id = node.id.clone().unwrap_or_default();
            let rm = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let name = node
                .names
                .clone()
                .unwrap_or_default()
                .first()
                .cloned()
                .unwrap_or(id.clone());
            outcome(
                docker.remove_container(&id, Some(rm)).await,
                name.trim_start_matches('/').to_string(),
                &mut report.containers,
                &mut report.failures,
            );
        }
        report.clusters.push(cluster);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
