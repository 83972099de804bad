//! Lab pods: an app container running `meshproof-workload`, and optionally an Envoy
//! sidecar container in the same network namespace, as Kubernetes runs an injected pod.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::Docker;

use super::LabError;
use super::docker::{self, ContainerSpec, ROLE_LABEL, WORKLOAD_LABEL};
use super::envoy::{self, SidecarConfig};
use super::pki::IssuedCert;
use crate::image::{ENVOY_PATH, WORKLOAD_PATH};
use crate::workload::{ProbeOutcome, ProbeRequest, Role};

/// Where the role file goes in the app container.
pub const ROLE_PATH: &str = "/etc/meshproof/role.json";
/// Where the Envoy bootstrap goes in the sidecar.
pub const ENVOY_CONFIG_PATH: &str = "/etc/meshproof/envoy.json";

/// The run-wide facts every pod needs.
#[derive(Debug, Clone)]
pub struct PodContext {
    /// The run id (names and labels).
    pub run_id: String,
    /// The image reference.
    pub image: String,
    /// The lab network's name.
    pub network: String,
}

/// A pod that is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningPod {
    /// The pod (instance) name.
    pub name: String,
    /// The scenario workload.
    pub workload: String,
    /// The app container's id.
    pub app: String,
    /// The sidecar container's id, when injected.
    pub sidecar: Option<String>,
    /// The pod IP.
    pub ip: IpAddr,
}

/// The container name of a pod's app container.
pub fn app_container_name(run_id: &str, pod: &str) -> String {
    format!("meshproof-{run_id}-{pod}")
}

/// Starts the app container and returns it with its IP (no sidecar yet).
pub async fn start_app(
    docker: &Docker,
    ctx: &PodContext,
    role: &Role,
    aliases: Vec<String>,
) -> Result<RunningPod, LabError> {
    let role_json =
        serde_json::to_vec_pretty(role).map_err(|e| LabError::Setup(format!("role JSON: {e}")))?;
    let spec = ContainerSpec {
        name: app_container_name(&ctx.run_id, &role.instance),
        image: ctx.image.clone(),
        cmd: vec![WORKLOAD_PATH.into(), "serve".into(), ROLE_PATH.into()],
        hostname: Some(role.instance.clone()),
        network: Some((ctx.network.clone(), aliases)),
        labels: HashMap::from([
            (WORKLOAD_LABEL.to_string(), role.workload.clone()),
            (ROLE_LABEL.to_string(), "app".to_string()),
        ]),
        files: vec![(ROLE_PATH.into(), role_json)],
        ..ContainerSpec::default()
    };
    let app = docker::run_container(docker, &ctx.run_id, spec).await?;
    let ip = docker::container_ip(docker, &app, &ctx.network).await?;
    Ok(RunningPod {
        name: role.instance.clone(),
        workload: role.workload.clone(),
        app,
        sidecar: None,
        ip,
    })
}

/// Starts (or replaces) the pod's Envoy sidecar with this configuration and identity.
pub async fn start_sidecar(
    docker: &Docker,
    ctx: &PodContext,
    pod: &mut RunningPod,
    config: &SidecarConfig,
    cert: &IssuedCert,
    root_pem: &str,
) -> Result<(), LabError> {
    if let Some(old) = pod.sidecar.take() {
        docker::remove_container(docker, &old).await?;
    }
    let bootstrap = serde_json::to_vec_pretty(&envoy::bootstrap(config))
        .map_err(|e| LabError::Setup(format!("Envoy bootstrap JSON: {e}")))?;
    let spec = ContainerSpec {
        name: format!("{}-proxy", app_container_name(&ctx.run_id, &pod.name)),
        image: ctx.image.clone(),
        cmd: [
            ENVOY_PATH,
            "-c",
            ENVOY_CONFIG_PATH,
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ]
        .map(String::from)
        .to_vec(),
        network_mode: Some(format!("container:{}", pod.app)),
        labels: HashMap::from([
            (WORKLOAD_LABEL.to_string(), pod.workload.clone()),
            (ROLE_LABEL.to_string(), "sidecar".to_string()),
        ]),
        files: vec![
            (ENVOY_CONFIG_PATH.into(), bootstrap),
            (envoy::CERT_CHAIN.into(), cert.cert_pem.clone().into_bytes()),
            (envoy::KEY.into(), cert.key_pem.clone().into_bytes()),
            (envoy::ROOT_CERT.into(), root_pem.as_bytes().to_vec()),
        ],
        ..ContainerSpec::default()
    };
    pod.sidecar = Some(docker::run_container(docker, &ctx.run_id, spec).await?);
    Ok(())
}

/// Waits until the app's listeners accept connections and, with a sidecar, Envoy is ready.
pub async fn wait_ready(
    docker: &Docker,
    pod: &RunningPod,
    role: &Role,
    limit: Duration,
) -> Result<(), LabError> {
    let mut cmd = vec![
        WORKLOAD_PATH.to_string(),
        "ready".into(),
        limit.as_millis().to_string(),
    ];
    cmd.extend(
        role.listeners
            .iter()
            .map(|l| format!("127.0.0.1:{}", l.bind.port())),
    );
    if pod.sidecar.is_some() {
        cmd.push(format!("--envoy=127.0.0.1:{}", envoy::ADMIN_PORT));
    }
    let out = docker::exec(docker, &pod.app, cmd, limit + Duration::from_secs(5)).await?;
    if out.code == Some(0) {
        return Ok(());
    }
    let mut detail = out.stderr.trim().to_string();
    if let Some(sidecar) = &pod.sidecar {
        let log = docker::logs(docker, sidecar).await.unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        detail.push_str(&format!(
            "; envoy log tail: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Err(LabError::Timeout {
        what: format!("pod {} ({detail})", pod.name),
        after: limit,
    })
}

/// Runs a probe from inside the pod (through its sidecar, when the request dials it).
pub async fn probe_from(
    docker: &Docker,
    pod: &RunningPod,
    req: &ProbeRequest,
) -> Result<ProbeOutcome, LabError> {
    let json =
        serde_json::to_string(req).map_err(|e| LabError::Setup(format!("probe JSON: {e}")))?;
    let budget = Duration::from_millis(
        req.timeout_ms.saturating_add(400) * u64::from(req.attempts.max(1)) + 5000,
    );
    let out = docker::exec(
        docker,
        &pod.app,
        vec![WORKLOAD_PATH.into(), "probe-json".into(), json],
        budget,
    )
    .await?;
    serde_json::from_str(out.stdout.trim()).map_err(|e| {
        LabError::Setup(format!(
            "probe in {} printed no outcome ({e}); stderr: {}",
            pod.name,
            out.stderr.trim()
        ))
    })
}

/// Removes the pod's containers, sidecar first.
pub async fn remove(docker: &Docker, pod: &RunningPod) -> Result<(), LabError> {
    if let Some(sidecar) = &pod.sidecar {
        docker::remove_container(docker, sidecar).await?;
    }
    docker::remove_container(docker, &pod.app).await
}
