//! What the lab writes after a failure: every container's log, every pod's role and every
//! sidecar's Envoy configuration, so a failed run can be understood without re-running it.

use std::path::Path;

use super::running::DockerLab;
use super::{LabError, docker, envoy};

/// Writes diagnostics for every pod into `dir/lab/`.
pub(super) async fn collect(lab: &DockerLab, dir: &Path) -> Result<(), LabError> {
    let out = dir.join("lab");
    let io = |e: std::io::Error| {
        LabError::Setup(format!("write diagnostics under {}: {e}", out.display()))
    };
    std::fs::create_dir_all(&out).map_err(io)?;
    for (name, state) in &lab.pods {
        let role = serde_json::to_string_pretty(&state.role).unwrap_or_default();
        std::fs::write(out.join(format!("{name}.role.json")), role).map_err(io)?;
        let app_log = docker::logs(&lab.docker, &state.running.app)
            .await
            .unwrap_or_else(|e| e.to_string());
        std::fs::write(out.join(format!("{name}.app.log")), app_log).map_err(io)?;
        if let (Some(cfg), Some(sidecar)) = (&state.sidecar, &state.running.sidecar) {
            let bootstrap =
                serde_json::to_string_pretty(&envoy::bootstrap(cfg)).unwrap_or_default();
            std::fs::write(out.join(format!("{name}.envoy.json")), bootstrap).map_err(io)?;
            let log = docker::logs(&lab.docker, sidecar)
                .await
                .unwrap_or_else(|e| e.to_string());
            std::fs::write(out.join(format!("{name}.envoy.log")), log).map_err(io)?;
        }
    }
    Ok(())
}
