//! The images meshproof supplies: what each holds, how it is tagged, what uses it.

use std::path::Path;

use super::build::{ImageSpec, TagPolicy};
use super::{ENVOY_PATH, ImageError, Rootfs, WORKLOAD_PATH};
use crate::exec::Exec;

/// The repository of the kind workload image.
pub const WORKLOAD_REPOSITORY: &str = "meshproof-workload";
/// The repository of the Docker lab image.
pub const LAB_REPOSITORY: &str = "meshproof-lab";

/// One image the project builds itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectImage {
    /// The workload binary and Envoy, for the Docker lab's pods and sidecars.
    Lab,
    /// The workload binary alone: the fixtures' pods on kind, and the capture helper.
    Workload,
}

impl ProjectImage {
    /// Every project image.
    pub const ALL: [ProjectImage; 2] = [ProjectImage::Lab, ProjectImage::Workload];

    /// The reference, as far as it is known before building (`meshproof-lab:<input hash>`).
    pub fn reference_pattern(self) -> String {
        match self {
            ProjectImage::Lab => format!("{LAB_REPOSITORY}:<input hash>"),
            ProjectImage::Workload => workload_reference(),
        }
    }

    /// What uses it.
    pub fn purpose(self) -> &'static str {
        match self {
            ProjectImage::Lab => {
                "the Docker lab (--provider lab): workload pods and their Envoy sidecars"
            }
            ProjectImage::Workload => {
                "kind: the fixtures' pods (loaded with `kind load docker-image`, imagePullPolicy: Never) and the capture helper container on the host network"
            }
        }
    }
}

/// `meshproof-workload:<version of this crate>`, as the fixtures name it.
pub fn workload_reference() -> String {
    format!("{WORKLOAD_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// Whether an image reference names an image meshproof builds (never pulled).
pub fn is_project_image(image: &str) -> bool {
    image
        .split_once(':')
        .map_or(image, |(repo, _)| repo)
        .eq(WORKLOAD_REPOSITORY)
        || image.starts_with(&format!("{LAB_REPOSITORY}:"))
}

/// The kind workload image: the workload binary at [`WORKLOAD_PATH`] and its libraries
/// (libpcap among them, for `meshproof-workload capture`).
pub async fn workload_image(exec: &Exec, workload_bin: &Path) -> Result<ImageSpec, ImageError> {
    let mut rootfs = Rootfs::new();
    rootfs.add_binary(exec, WORKLOAD_PATH, workload_bin).await?;
    rootfs.add_dir("/etc/meshproof");
    Ok(ImageSpec {
        repository: WORKLOAD_REPOSITORY.into(),
        tag: TagPolicy::Fixed(env!("CARGO_PKG_VERSION").into()),
        layout: "meshproof-workload-image/1".into(),
        rootfs,
        cmd: vec![WORKLOAD_PATH.into()],
    })
}

/// The lab image: the workload binary, Envoy and the libraries both need.
pub async fn lab_image(
    exec: &Exec,
    workload_bin: &Path,
    envoy_bin: &Path,
) -> Result<ImageSpec, ImageError> {
    let mut rootfs = Rootfs::new();
    rootfs.add_binary(exec, WORKLOAD_PATH, workload_bin).await?;
    rootfs.add_binary(exec, ENVOY_PATH, envoy_bin).await?;
    rootfs.add_dir("/etc/meshproof");
    rootfs.add_dir("/etc/certs");
    Ok(ImageSpec {
        repository: LAB_REPOSITORY.into(),
        tag: TagPolicy::ContentHash,
        layout: "meshproof-lab-image/2".into(),
        rootfs,
        cmd: vec![WORKLOAD_PATH.into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_images_are_recognised_and_nothing_else() {
        assert!(is_project_image(&workload_reference()));
        assert!(is_project_image("meshproof-workload"));
        assert!(is_project_image("meshproof-lab:0123456789abcdef"));
        assert!(!is_project_image("mysql:8.4.6"));
        assert!(!is_project_image("meshproof-workloads:1"));
        assert!(!is_project_image("docker.io/meshproof-workload:0.1.0"));
    }

    /// Every fixture container that runs the workload image names the reference the build
    /// produces and starts the binary at the path the build puts it.
    #[test]
    fn fixtures_run_the_image_the_build_produces() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut seen = 0;
        for name in crate::scenario::list_names(&root.join("scenarios")) {
            let scenario = crate::scenario::Scenario::load(root, &name).unwrap();
            for doc in scenario.manifests.values().flatten() {
                let spec = doc
                    .value
                    .pointer("/spec/template/spec")
                    .or(doc.value.pointer("/spec"));
                let containers = spec
                    .and_then(|s| s.get("containers"))
                    .and_then(|c| c.as_array())
                    .cloned()
                    .unwrap_or_default();
                for c in containers {
                    let image = c["image"].as_str().unwrap_or_default();
                    if !image.starts_with(WORKLOAD_REPOSITORY) {
                        continue;
                    }
                    seen += 1;
                    assert_eq!(image, workload_reference(), "{name}: {}", doc.name);
                    assert_eq!(c["imagePullPolicy"], "Never", "{name}: {}", doc.name);
                    if let Some(cmd) = c["command"].as_array() {
                        assert_eq!(cmd[0], WORKLOAD_PATH, "{name}: {}", doc.name);
                    }
                }
            }
        }
        assert!(seen >= 2, "no fixture runs the workload image");
    }
}
