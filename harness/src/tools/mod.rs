//! The external tools and artifacts meshproof pins: versions, installation, verification.
//!
//! [`Versions`] reads `fixtures/versions.toml`; [`install()`] downloads what is missing
//! and verifies it against the upstream checksum file and `fixtures/tools.lock`;
//! [`resolve`] finds installed tools without touching the network, which is what the
//! preflight uses; [`host`] checks the machine itself (Docker, inotify, capture rights).

mod download;
pub mod host;
mod install;
mod lock;
mod versions;

use std::path::PathBuf;

pub use download::{Downloader, parse_checksum, sha256_file};
pub use install::{
    Missing, Origin, ResolvedTool, TOOLS, ToolOptions, Toolset, fetch_manifest, install,
    parse_version, resolve, tool_dir,
};
pub use lock::{LockCheck, LockEntry, ToolsLock, key as lock_key};
pub use versions::{ExistingPins, KindPins, ManifestPin, Platform, ToolPin, Versions};

/// Errors from reading pins, downloading and verifying tools.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// `versions.toml` or `tools.lock` is malformed or inconsistent.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A name that `versions.toml` does not pin.
    #[error("`{0}` is not pinned in fixtures/versions.toml")]
    UnknownTool(String),
    /// The tool has no download for this machine.
    #[error("{tool} has no pinned download for {platform}")]
    NoPlatform {
        /// The tool.
        tool: String,
        /// meshproof's platform name.
        platform: String,
    },
    /// A download failed (offline, HTTP error, cut short).
    #[error(
        "cannot download {url}: {message}\nhint: this needs internet access; offline, run `cargo xtask e2e NAME --provider lab`"
    )]
    Download {
        /// What was fetched.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// The download does not match the upstream checksum file.
    #[error("{url}: checksum mismatch: {message}")]
    Checksum {
        /// The artifact.
        url: String,
        /// The hashes compared.
        message: String,
    },
    /// The download does not match `fixtures/tools.lock`.
    #[error(
        "{artifact}: sha256 {observed} differs from {locked} recorded in fixtures/tools.lock; the upstream artifact changed since it was verified: investigate before updating the lock"
    )]
    LockMismatch {
        /// The lock key.
        artifact: String,
        /// The recorded hash.
        locked: String,
        /// The hash of this download.
        observed: String,
    },
    /// Tools are still missing after an install.
    #[error("tools still missing: {}", .missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Missing {
        /// What is missing.
        missing: Vec<Missing>,
    },
    /// A process (tar, a version command) failed.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
}
