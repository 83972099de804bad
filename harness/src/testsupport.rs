//! Test helpers: repository scenarios, and what needs the local Docker engine (tests only).
//!
//! No image can be pulled here, so [`TinyImage`] imports a rootfs made of the host's own
//! `sleep` binary and the shared libraries `ldd` says it needs.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveImageOptionsBuilder};

use crate::exec::{Cmd, Exec};

/// An imported image that sleeps; remove it with [`TinyImage::remove`].
pub struct TinyImage {
    /// `meshproof-test-<run>:1`.
    pub tag: String,
}

impl TinyImage {
    /// Builds the image for one test run.
    pub async fn build(run: &str) -> TinyImage {
        TinyImage::build_with(run, &["/usr/bin/sleep"]).await
    }

    /// Builds an image holding these host binaries (at their host paths) and their libraries.
    pub async fn build_with(run: &str, binaries: &[&str]) -> TinyImage {
        let exec = Exec::new();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        for binary in binaries {
            let name = std::path::Path::new(binary).file_name().unwrap();
            std::fs::copy(binary, root.join("bin").join(name)).unwrap();
            let ldd = exec
                .run(&Cmd::new("ldd").arg(*binary))
                .await
                .unwrap()
                .stdout_text();
            for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
                let dest = root.join(lib.trim_start_matches('/'));
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::copy(lib, &dest).unwrap();
            }
        }
        let tar = dir.path().join("rootfs.tar");
        exec.run(&Cmd::new("tar").args([
            "-cf",
            &tar.display().to_string(),
            "-C",
            &root.display().to_string(),
            ".",
        ]))
        .await
        .unwrap();
        let tag = format!("meshproof-test-{run}:1");
        let label = format!("LABEL meshproof.dev/run={run}");
        exec.run(&Cmd::new("docker").args([
            "import",
            "--change",
            &label,
            "--change",
            "CMD [\"/bin/sleep\", \"600\"]",
            &tar.display().to_string(),
            &tag,
        ]))
        .await
        .unwrap();
        TinyImage { tag }
    }

    /// Creates and starts a labelled container from the image.
    pub async fn run_container(
        &self,
        docker: &Docker,
        name: &str,
        labels: &[(&str, &str)],
        network: Option<&str>,
    ) -> String {
        self.run_command(docker, name, labels, network, None).await
    }

    /// Like [`TinyImage::run_container`], with a command instead of the image's default.
    pub async fn run_command(
        &self,
        docker: &Docker,
        name: &str,
        labels: &[(&str, &str)],
        network: Option<&str>,
        cmd: Option<Vec<String>>,
    ) -> String {
        let labels: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body = ContainerCreateBody {
            image: Some(self.tag.clone()),
            labels: Some(labels),
            cmd,
            host_config: Some(HostConfig {
                network_mode: network.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let id = docker.create_container(Some(opts), body).await.unwrap().id;
        docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .unwrap();
        id
    }

    /// Removes the image.
    pub async fn remove(self, docker: &Docker) {
        let opts = RemoveImageOptionsBuilder::default().force(true).build();
        let _ = docker.remove_image(&self.tag, Some(opts), None).await;
    }
}

/// True when a Docker daemon answers; tests print why they skip otherwise.
pub async fn docker() -> Option<Docker> {
    let docker = Docker::connect_with_local_defaults().ok()?;
    docker.ping().await.ok()?;
    Some(docker)
}

/// A short random suffix for names.
pub fn suffix() -> String {
    let c = crate::scenario::Canary::generate();
    c.as_str()[17..25].to_string()
}

/// A scenario from the repository, loaded as the runner loads it.
pub fn scenario(name: &str) -> crate::scenario::Scenario {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    crate::scenario::Scenario::load(root, name).unwrap()
}
