//! Importing a [`Rootfs`] into the local Docker engine as an image: no registry, no base
//! image, no pull, and no rebuild when nothing changed.
//!
//! An image is tagged either by the hash of its inputs (the lab image: a change of inputs
//! is a new tag) or with a fixed tag that manifests name (the kind workload image,
//! `meshproof-workload:0.1.0`, referenced by the fixtures); a fixed-tag image carries the
//! hash of its inputs in a label, so an unchanged image is reused and a changed one is
//! rebuilt under the same tag.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures::StreamExt;

use super::{CONTENT_LABEL, IMAGE_LABEL, ImageError, Rootfs};
use crate::reporter::Reporter;

/// How an image is tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPolicy {
    /// The tag is the hash of the inputs; images of older inputs are removed.
    ContentHash,
    /// A fixed tag (manifests name it); the hash of the inputs goes into a label.
    Fixed(String),
}

/// Everything needed to build one image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The repository (`meshproof-lab`, `meshproof-workload`).
    pub repository: String,
    /// How it is tagged.
    pub tag: TagPolicy,
    /// Bumped when the layout changes, so old images are not reused.
    pub layout: String,
    /// The files.
    pub rootfs: Rootfs,
    /// The default command.
    pub cmd: Vec<String>,
}

/// A built (or reused) image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `repository:tag`.
    pub reference: String,
    /// False when an image with the same inputs already existed.
    pub built: bool,
    /// The hash of the inputs.
    pub content: String,
    /// Files in the image, for the plan and the report.
    pub files: Vec<String>,
}

impl ImageSpec {
    /// The content hash and the full reference this spec builds.
    pub fn reference(&self) -> (String, String) {
        let content = self.rootfs.content_hash(&self.layout);
        let tag = match &self.tag {
            TagPolicy::ContentHash => content.clone(),
            TagPolicy::Fixed(tag) => tag.clone(),
        };
        (content, format!("{}:{tag}", self.repository))
    }
}

fn docker_error(operation: String) -> impl Fn(bollard::errors::Error) -> ImageError {
    move |e| ImageError::Docker {
        operation: operation.clone(),
        message: e.to_string(),
    }
}

/// The content label of an existing image, if the image exists.
async fn existing_content(docker: &Docker, reference: &str) -> Option<(String, String)> {
    let inspect = docker.inspect_image(reference).await.ok()?;
    let label = inspect
        .config
        .and_then(|c| c.labels)
        .and_then(|l| l.get(CONTENT_LABEL).cloned())
        .unwrap_or_default();
    Some((inspect.id.unwrap_or_default(), label))
}

/// Builds the image unless one with the same inputs exists.
pub async fn ensure_image(
    docker: &Docker,
    spec: &ImageSpec,
    reporter: &dyn Reporter,
) -> Result<BuiltImage, ImageError> {
    let (content, reference) = spec.reference();
    let files = spec.rootfs.paths();
    let previous = existing_content(docker, &reference).await;
    if let Some((_, label)) = &previous
        && *label == content
    {
        reporter.debug(&format!("reusing image {reference} (inputs {content})"));
        return Ok(BuiltImage {
            reference,
            built: false,
            content,
            files,
        });
    }
    reporter.info(&format!(
        "building image {reference} from {} local files (no base image, no pull)",
        files.len()
    ));
    import(docker, spec, &reference, &content).await?;
    match &spec.tag {
        TagPolicy::ContentHash => {
            remove_stale(docker, &spec.repository, &reference, reporter).await
        }
        // The image the fixed tag pointed at before is untagged now: remove it unless a
        // container still uses it.
        TagPolicy::Fixed(_) => {
            if let Some((id, _)) = previous {
                remove_quietly(docker, &id, reporter).await;
            }
        }
    }
    Ok(BuiltImage {
        reference,
        built: true,
        content,
        files,
    })
}

async fn import(
    docker: &Docker,
    spec: &ImageSpec,
    reference: &str,
    content: &str,
) -> Result<(), ImageError> {
    let archive = spec.rootfs.tar()?;
    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let cmd = serde_json::to_string(&spec.cmd).map_err(|e| ImageError::File {
        path: "<image command>".into(),
        reason: e.to_string(),
    })?;
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(&spec.repository)
        .tag(tag)
        .changes(vec![
            format!("LABEL {IMAGE_LABEL}={}", spec.repository),
            format!("LABEL {CONTENT_LABEL}={content}"),
            format!("CMD {cmd}"),
        ])
        .build();
    let mut progress = docker.create_image(
        Some(options),
        Some(bollard::body_full(archive.into())),
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(docker_error(format!("import {reference}")))?;
    }
    Ok(())
}

/// Removes images of `repository` other than `keep`, so changed inputs do not pile up
/// 100 MB images.
async fn remove_stale(docker: &Docker, repository: &str, keep: &str, reporter: &dyn Reporter) {
    let filter = HashMap::from([("reference".to_string(), vec![format!("{repository}:*")])]);
    let options = ListImagesOptionsBuilder::default().filters(&filter).build();
    let Ok(images) = docker.list_images(Some(options)).await else {
        return;
    };
    for image in images
        .iter()
        .filter(|i| !i.repo_tags.iter().any(|t| t == keep))
    {
        remove_quietly(docker, &image.id, reporter).await;
    }
}

async fn remove_quietly(docker: &Docker, id: &str, reporter: &dyn Reporter) {
    let options = RemoveImageOptionsBuilder::default().force(false).build();
    if let Err(e) = docker.remove_image(id, Some(options), None).await {
        reporter.debug(&format!("kept the previous image {id}: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_tags_keep_their_name_and_hashed_tags_follow_the_inputs() {
        let mut rootfs = Rootfs::new();
        rootfs.add_file("/meshproof-workload", 0o755, b"elf".to_vec());
        let mut spec = ImageSpec {
            repository: "meshproof-workload".into(),
            tag: TagPolicy::Fixed("0.1.0".into()),
            layout: "test/1".into(),
            rootfs,
            cmd: vec!["/meshproof-workload".into()],
        };
        let (content, reference) = spec.reference();
        assert_eq!(reference, "meshproof-workload:0.1.0");
        spec.tag = TagPolicy::ContentHash;
        assert_eq!(spec.reference().1, format!("meshproof-workload:{content}"));
        spec.rootfs
            .add_file("/meshproof-workload", 0o755, b"elf2".to_vec());
        assert_ne!(spec.reference().0, content);
    }
}
