//! The lab's Docker operations, through bollard: networks, containers, files, execs and
//! the sweep that removes everything a run created.
//!
//! Every object is named `meshproof-...` and labelled `meshproof.dev/run=<run>`, so a sweep
//! by label finds all of it even after a crash (and so does `cargo xtask gc`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::StreamExt;

use super::LabError;

/// The label every lab object carries.
pub const RUN_LABEL: &str = "meshproof.dev/run";
/// The label naming the workload a container belongs to.
pub const WORKLOAD_LABEL: &str = "meshproof.dev/workload";
/// The label saying whether a container is the app or its sidecar.
pub const ROLE_LABEL: &str = "meshproof.dev/role";

fn docker_error(operation: &str) -> impl FnOnce(bollard::errors::Error) -> LabError + '_ {
    move |e| LabError::Docker {
        operation: operation.to_string(),
        message: e.to_string(),
    }
}

/// Connects to the local engine and agrees on an API version it speaks.
pub async fn connect() -> Result<Docker, LabError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(docker_error("connect to the Docker engine"))?;
    docker
        .negotiate_version()
        .await
        .map_err(docker_error("reach the Docker engine"))
}

/// What the lab knows about its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNetwork {
    /// Docker's network id.
    pub id: String,
    /// The network name.
    pub name: String,
    /// The host interface that bridges it (where captures run).
    pub bridge: String,
    /// The host's address on the network (probes from `host` come from here).
    pub gateway: Option<IpAddr>,
}

/// The host interface of a bridge network: `br-<id[..12]>` unless the network names it.
pub fn bridge_interface(id: &str, options: &HashMap<String, String>) -> String {
    options
        .get("com.docker.network.bridge.name")
        .cloned()
        .unwrap_or_else(|| format!("br-{}", &id[..id.len().min(12)]))
}

/// Creates the run's bridge network.
pub async fn create_network(
    docker: &Docker,
    name: &str,
    run_id: &str,
) -> Result<LabNetwork, LabError> {
    let labels = HashMap::from([(RUN_LABEL.to_string(), run_id.to_string())]);
    let request = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        labels: Some(labels),
        ..Default::default()
    };
    let created = docker
        .create_network(request)
        .await
        .map_err(docker_error("create the lab network"))?;
    let net = docker
        .inspect_network(
            &created.id,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .map_err(docker_error("inspect the lab network"))?;
    let gateway = net
        .ipam
        .and_then(|ipam| ipam.config)
        .into_iter()
        .flatten()
        .filter_map(|c| c.gateway?.parse::<IpAddr>().ok())
        .find(IpAddr::is_ipv4);
    let options = net.options.unwrap_or_default();
    Ok(LabNetwork {
        bridge: bridge_interface(&created.id, &options),
        id: created.id,
        name: name.to_string(),
        gateway,
    })
}

/// How to create one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Hostname (pods only; a sidecar shares its pod's).
    pub hostname: Option<String>,
    /// The network to join with these DNS aliases, for a pod.
    pub network: Option<(String, Vec<String>)>,
    /// `container:<id>` for a sidecar.
    pub network_mode: Option<String>,
    /// Labels besides the run label.
    pub labels: HashMap<String, String>,
    /// Files to place before start: path and contents.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Creates a container, uploads its files and starts it; returns its id.
pub async fn run_container(
    docker: &Docker,
    run_id: &str,
    spec: ContainerSpec,
) -> Result<String, LabError> {
    let mut labels = spec.labels.clone();
    labels.insert(RUN_LABEL.to_string(), run_id.to_string());
    let networking_config = spec
        .network
        .as_ref()
        .map(|(net, aliases)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                net.clone(),
                EndpointSettings {
                    aliases: Some(aliases.clone()),
                    ..Default::default()
                },
            )])),
        });
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        hostname: spec.hostname.clone(),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: spec
                .network_mode
                .clone()
                .or_else(|| spec.network.as_ref().map(|(n, _)| n.clone())),
            ..Default::default()
        }),
        networking_config,
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(docker_error("create a container"))?;
    if !spec.files.is_empty() {
        let archive = tar_of(&spec.files)?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        docker
            .upload_to_container(
                &created.id,
                Some(options),
                bollard::body_full(archive.into()),
            )
            .await
            .map_err(docker_error("copy files into a container"))?;
    }
    docker
        .start_container(
            &created.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(docker_error("start a container"))?;
    Ok(created.id)
}

/// A tar archive of files (mode 0644, parents implied), for uploads.
pub fn tar_of(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, LabError> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path.trim_start_matches('/'), data.as_slice())
            .map_err(|e| LabError::Archive(format!("{path}: {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| LabError::Archive(format!("finish: {e}")))
}

/// The container's IPv4 address on `network`.
pub async fn container_ip(docker: &Docker, id: &str, network: &str) -> Result<IpAddr, LabError> {
    let info = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(docker_error("inspect a container"))?;
    info.network_settings
        .and_then(|s| s.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|e| e.ip_address)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| LabError::Docker {
            operation: "find a pod IP".into(),
            message: format!("{id} has no address on {network}"),
        })
}

/// What an exec printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code, when the exec finished.
    pub code: Option<i64>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs a command in a running container and collects its output, within `limit`.
pub async fn exec(
    docker: &Docker,
    id: &str,
    cmd: Vec<String>,
    limit: Duration,
) -> Result<ExecOutput, LabError> {
    let display = cmd.join(" ");
    let options = CreateExecOptions {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(cmd),
        ..Default::default()
    };
    let created = docker
        .create_exec(id, options)
        .await
        .map_err(docker_error("create an exec"))?;
    let start = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    let collect = async {
        let mut out = ExecOutput::default();
        if let StartExecResults::Attached { mut output, .. } = docker
            .start_exec(&created.id, Some(start))
            .await
            .map_err(docker_error("start an exec"))?
        {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(docker_error("read an exec's output"))? {
                    bollard::container::LogOutput::StdOut { message } => {
                        out.stdout.push_str(&String::from_utf8_lossy(&message))
                    }
                    bollard::container::LogOutput::StdErr { message } => {
                        out.stderr.push_str(&String::from_utf8_lossy(&message))
                    }
                    _ => {}
                }
            }
        }
        Ok::<_, LabError>(out)
    };
    let mut out = tokio::time::timeout(limit, collect)
        .await
        .map_err(|_| LabError::Docker {
            operation: format!("exec `{display}`"),
            message: format!("no end within {limit:?}"),
        })??;
    out.code = docker
        .inspect_exec(&created.id)
        .await
        .map_err(docker_error("inspect an exec"))?
        .exit_code;
    Ok(out)
}

/// A container's log (both streams), for diagnostics.
pub async fn logs(docker: &Docker, id: &str) -> Result<String, LabError> {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail("2000")
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(
            &chunk
                .map_err(docker_error("read container logs"))?
                .to_string(),
        );
    }
    Ok(text)
}

/// Removes one container, running or not; a missing one is not an error.
pub async fn remove_container(docker: &Docker, id: &str) -> Result<(), LabError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(docker_error("remove a container")(e)),
    }
}

/// Removes every container and network labelled with this run; returns how many objects
/// went. Sidecars go before their pods, since they share the pods' network namespaces.
pub async fn sweep(docker: &Docker, run_id: &str) -> Result<usize, LabError> {
    let filter = HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    let mut containers = docker
        .list_containers(Some(options))
        .await
        .map_err(docker_error("list lab containers"))?;
    containers.sort_by_key(|c| {
        let sidecar = c
            .labels
            .as_ref()
            .and_then(|l| l.get(ROLE_LABEL))
            .is_some_and(|r| r == "sidecar");
        !sidecar
    });
    let mut removed = 0;
    for c in containers.iter().filter_map(|c| c.id.as_deref()) {
        remove_container(docker, c).await?;
        removed += 1;
    }
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filter)
        .build();
    let networks = docker
        .list_networks(Some(options))
        .await
        .map_err(docker_error("list lab networks"))?;
    for n in networks.iter().filter_map(|n| n.id.as_deref()) {
        docker
            .remove_network(n)
            .await
            .map_err(docker_error("remove the lab network"))?;
        removed += 1;
    }
    Ok(removed)
}

/// Counts what is left of a run (containers and networks), for tests and teardown checks.
pub async fn leftovers(docker: &Docker, run_id: &str) -> Result<usize, LabError> {
    let filter = HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filter)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(docker_error("list lab containers"))?;
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filter)
        .build();
    let networks = docker
        .list_networks(Some(options))
        .await
        .map_err(docker_error("list lab networks"))?;
    Ok(containers.len() + networks.len())
}

/// Sweeps a run's objects when dropped, unless disarmed: the lab's last line of defence
/// on panic or early return. It runs the sweep on a thread of its own with a fresh
/// runtime, so it works from inside or outside an async context.
#[derive(Debug)]
pub struct SweepGuard {
    run_id: String,
    armed: bool,
}

impl SweepGuard {
    /// Guards everything labelled with `run_id`.
    pub fn new(run_id: &str) -> SweepGuard {
        SweepGuard {
            run_id: run_id.to_string(),
            armed: true,
        }
    }

    /// Keeps the objects (for `--keep`, or after an orderly teardown).
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Sweeps now, blocking the calling thread; returns the number of objects removed.
    pub fn sweep_blocking(run_id: &str) -> Result<usize, LabError> {
        let run_id = run_id.to_string();
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| LabError::Setup(format!("cleanup runtime: {e}")))?;
            runtime.block_on(async {
                let docker = connect().await?;
                sweep(&docker, &run_id).await
            })
        });
        worker
            .join()
            .unwrap_or_else(|_| Err(LabError::Setup("the cleanup thread panicked".into())))
    }
}

impl Drop for SweepGuard {
    fn drop(&mut self) {
        if self.armed {
            // Nothing can be reported from a destructor; gc finds whatever this misses.
            let _ = SweepGuard::sweep_blocking(&self.run_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_name_defaults_to_the_id_prefix() {
        let id = "0123456789abcdef0123";
        assert_eq!(bridge_interface(id, &HashMap::new()), "br-0123456789ab");
        let named = HashMap::from([(
            "com.docker.network.bridge.name".to_string(),
            "mp0".to_string(),
        )]);
        assert_eq!(bridge_interface(id, &named), "mp0");
    }

    #[test]
    fn tar_entries_are_relative_and_complete() {
        let tar = tar_of(&[("/etc/meshproof/role.json".into(), b"{}".to_vec())]).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(
            entry.path().unwrap().to_str(),
            Some("etc/meshproof/role.json")
        );
        assert_eq!(entry.header().size().unwrap(), 2);
    }
}
