//! Finding and installing the pinned CLI tools and manifests.
//!
//! Resolution never touches the network: a tool comes from the cache (installed and
//! verified earlier) or from `PATH` when its version matches the pin (any version with
//! `--use-path-tools`). Installation downloads, checks the upstream checksum file and
//! `fixtures/tools.lock`, unpacks archives with `tar`, and only then moves the binary
//! into the cache, so a half-finished download is never mistaken for a tool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ToolsError;
use super::download::{Downloader, parse_checksum, sha256_file};
use super::lock::{self, LockCheck, ToolsLock};
use super::versions::{Platform, ToolPin, Versions};
use crate::exec::{Cmd, Exec};
use crate::reporter::Reporter;

/// The tools a step runs, in install order: kind creates the cluster and loads images,
/// istioctl installs Istio, kubectl collects diagnostics. Nothing runs helm, so helm is
/// neither required nor verified.
pub const TOOLS: [&str; 3] = ["kind", "kubectl", "istioctl"];

/// How tools are found and installed.
#[derive(Debug, Clone)]
pub struct ToolOptions {
    /// Where installed tools and manifests live.
    pub cache: PathBuf,
    /// Use whatever version `PATH` has instead of requiring the pin.
    pub use_path_tools: bool,
    /// The machine tools must run on.
    pub platform: Platform,
    /// The directories of `PATH`, searched in order.
    pub path_dirs: Vec<PathBuf>,
}

/// Where a resolved tool came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The meshproof cache.
    Cache,
    /// `PATH`, at the pinned version.
    Path,
    /// `PATH` at another version, allowed by `--use-path-tools`.
    PathUnpinned(String),
}

/// A tool ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTool {
    /// Its file.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
}

/// Every tool the kind path runs, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolset {
    /// Tool name to its resolution.
    pub tools: BTreeMap<String, ResolvedTool>,
}

impl Toolset {
    /// A command running the named tool (its bare name when unresolved, so the error
    /// names the tool).
    pub fn cmd(&self, name: &str) -> Cmd {
        match self.tools.get(name) {
            Some(t) => Cmd::new(t.path.display().to_string()),
            None => Cmd::new(name),
        }
    }
}

/// Why a tool could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The tool.
    pub tool: String,
    /// The pinned version.
    pub wanted: String,
    /// What was found instead, if anything (`kubectl v1.31.0 at /usr/bin/kubectl`).
    pub found: Option<String>,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.found {
            Some(found) => write!(f, "{} {} (found {found})", self.tool, self.wanted),
            None => write!(f, "{} {} (not installed)", self.tool, self.wanted),
        }
    }
}

/// The cache directory of one pinned tool.
pub fn tool_dir(cache: &Path, name: &str, version: &str) -> PathBuf {
    cache.join("tools").join(name).join(version)
}

/// Finds every tool without downloading anything; lists what is missing.
pub async fn resolve(
    versions: &Versions,
    opts: &ToolOptions,
    exec: &Exec,
) -> Result<Toolset, Vec<Missing>> {
    let mut set = Toolset::default();
    let mut missing = Vec::new();
    for name in TOOLS {
        let Ok(pin) = versions.tool(name) else {
            continue;
        };
        match resolve_one(name, pin, opts, exec).await {
            Ok(tool) => {
                set.tools.insert(name.to_string(), tool);
            }
            Err(m) => missing.push(m),
        }
    }
    if missing.is_empty() {
        Ok(set)
    } else {
        Err(missing)
    }
}

async fn resolve_one(
    name: &str,
    pin: &ToolPin,
    opts: &ToolOptions,
    exec: &Exec,
) -> Result<ResolvedTool, Missing> {
    let cached = tool_dir(&opts.cache, name, &pin.version).join(name);
    if !opts.use_path_tools && cached.is_file() {
        return Ok(ResolvedTool {
            path: cached,
            origin: Origin::Cache,
        });
    }
    let missing = |found| Missing {
        tool: name.to_string(),
        wanted: pin.version.clone(),
        found,
    };
    let Some(on_path) = find_on_path(name, &opts.path_dirs) else {
        return if cached.is_file() {
            Ok(ResolvedTool {
                path: cached,
                origin: Origin::Cache,
            })
        } else {
            Err(missing(None))
        };
    };
    let cmd = Cmd::new(on_path.display().to_string())
        .args(pin.version_command.clone())
        .timeout(Duration::from_secs(5));
    let version = match exec.run(&cmd).await {
        Ok(out) => parse_version(name, &out.stdout_text()),
        Err(_) => None,
    };
    let found = format!(
        "{} at {}",
        version.as_deref().unwrap_or("an unknown version"),
        on_path.display()
    );
    match version {
        Some(v) if same_version(&v, &pin.version) => Ok(ResolvedTool {
            path: on_path,
            origin: Origin::Path,
        }),
        Some(v) if opts.use_path_tools => Ok(ResolvedTool {
            path: on_path,
            origin: Origin::PathUnpinned(v),
        }),
        _ if cached.is_file() => Ok(ResolvedTool {
            path: cached,
            origin: Origin::Cache,
        }),
        _ => Err(missing(Some(found))),
    }
}

fn find_on_path(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

/// The version a tool printed for its `version-command`, in the tool's own spelling.
///
/// Formats: kind prints `kind v0.33.0 go1.26.7 linux/amd64`; kubectl `-o json` has
/// `clientVersion.gitVersion`; istioctl `-o json` has `clientVersion.version`; helm's
/// `--template {{.Version}}` prints the bare tag.
pub fn parse_version(tool: &str, stdout: &str) -> Option<String> {
    let text = stdout.trim();
    match tool {
        "kind" => text
            .split_whitespace()
            .skip_while(|w| *w != "kind")
            .nth(1)
            .map(str::to_string),
        "kubectl" | "istioctl" => {
            let json: serde_json::Value = serde_json::from_str(text).ok()?;
            let client = json.get("clientVersion")?;
            client
                .get("gitVersion")
                .or_else(|| client.get("version"))?
                .as_str()
                .map(str::to_string)
        }
        _ => text
            .lines()
            .next()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty()),
    }
}

/// Installs every pinned tool that [`resolve`] cannot find, verifying each download.
pub async fn install(
    versions: &Versions,
    lock: &mut ToolsLock,
    opts: &ToolOptions,
    exec: &Exec,
    reporter: &dyn Reporter,
) -> Result<Toolset, ToolsError> {
    let downloader = Downloader::new()?;
    for name in TOOLS {
        let pin = versions.tool(name)?;
        if let Ok(found) = resolve_one(name, pin, opts, exec).await {
            reporter.info(&format!("{name} {}: {}", pin.version, origin_text(&found)));
            continue;
        }
        let id = format!("tools/{name}");
        reporter.started(&id, &format!("Installing {name} {}", pin.version));
        let result = install_one(name, pin, lock, opts, exec, &downloader).await;
        reporter.finished(
            &id,
            result.is_ok(),
            &match &result {
                Ok(check) => format!(
                    "verified ({})",
                    if *check == LockCheck::Recorded {
                        "sha256 recorded in tools.lock"
                    } else {
                        "matches tools.lock"
                    }
                ),
                Err(e) => e.to_string(),
            },
        );
        // The lock is saved after every tool so a later failure keeps what was verified.
        if result.as_ref().is_ok_and(|c| *c == LockCheck::Recorded) {
            lock.save()?;
        }
        result?;
    }
    resolve(versions, opts, exec)
        .await
        .map_err(|missing| ToolsError::Missing { missing })
}

fn origin_text(tool: &ResolvedTool) -> String {
    match &tool.origin {
        Origin::Cache => format!("cached at {}", tool.path.display()),
        Origin::Path => format!("using {} from PATH", tool.path.display()),
        Origin::PathUnpinned(v) => format!(
            "using {} ({v}) from PATH (--use-path-tools)",
            tool.path.display()
        ),
    }
}

async fn install_one(
    name: &str,
    pin: &ToolPin,
    lock: &mut ToolsLock,
    opts: &ToolOptions,
    exec: &Exec,
    downloader: &Downloader,
) -> Result<LockCheck, ToolsError> {
    let url = pin.url(name, opts.platform)?;
    let dir = tool_dir(&opts.cache, name, &pin.version);
    std::fs::create_dir_all(&dir).map_err(|source| ToolsError::Write {
        path: dir.clone(),
        source,
    })?;
    let staging = tempfile::tempdir_in(&dir).map_err(|source| ToolsError::Write {
        path: dir.clone(),
        source,
    })?;
    let artifact = staging.path().join("artifact");
    let observed = downloader.to_file(&url, &artifact).await?;
    verify(
        &url,
        &pin.checksum_url(name, opts.platform)?,
        &observed,
        downloader,
    )
    .await?;
    let key = lock::key(name, &pin.version, &opts.platform.key());
    let checked = lock.check_or_record(&key, &observed)?;
    let binary = match pin.member(opts.platform) {
        Some(member) => {
            let cmd = Cmd::new("tar")
                .args(["-xzf", "artifact", "--no-same-owner", &member])
                .cwd(staging.path())
                .timeout(Duration::from_secs(120));
            exec.run(&cmd).await?;
            staging.path().join(member)
        }
        None => artifact,
    };
    set_executable(&binary)?;
    let dest = dir.join(name);
    std::fs::rename(&binary, &dest).map_err(|source| ToolsError::Write {
        path: dest.clone(),
        source,
    })?;
    Ok(checked)
}

/// Compares a download's hash with the upstream checksum file.
async fn verify(
    url: &str,
    checksum_url: &str,
    observed: &str,
    downloader: &Downloader,
) -> Result<(), ToolsError> {
    let text = downloader.text(checksum_url).await?;
    let expected = parse_checksum(&text).ok_or_else(|| ToolsError::Checksum {
        url: url.to_string(),
        message: format!("{checksum_url} does not start with a sha256"),
    })?;
    if expected != observed {
        return Err(ToolsError::Checksum {
            url: url.to_string(),
            message: format!("sha256 is {observed}, the upstream checksum file says {expected}"),
        });
    }
    Ok(())
}

fn set_executable(path: &Path) -> Result<(), ToolsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| {
        ToolsError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Downloads a pinned manifest into the cache (once), checked against `tools.lock`.
pub async fn fetch_manifest(
    versions: &Versions,
    name: &str,
    lock: &mut ToolsLock,
    cache: &Path,
) -> Result<PathBuf, ToolsError> {
    let pin = versions.manifest(name)?;
    let dir = cache.join("manifests").join(name).join(&pin.version);
    let dest = dir.join(format!("{name}.yaml"));
    let key = lock::key(name, &pin.version, "any");
    if dest.is_file() {
        let observed = sha256_file(&dest)?;
        lock.check_or_record(&key, &observed)?;
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir).map_err(|source| ToolsError::Write {
        path: dir.clone(),
        source,
    })?;
    let staging = dir.join(format!("{name}.yaml.part"));
    let observed = Downloader::new()?.to_file(&pin.url(), &staging).await?;
    if lock.check_or_record(&key, &observed)? == LockCheck::Recorded {
        lock.save()?;
    }
    std::fs::rename(&staging, &dest).map_err(|source| ToolsError::Write {
        path: dest.clone(),
        source,
    })?;
    Ok(dest)
}

#[cfg(test)]
mod tests;
