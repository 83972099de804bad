//! `fixtures/tools.lock`: the sha256 every pinned artifact had when first verified.
//!
//! Upstream checksum files prove a download matches what the release server holds today;
//! the lock proves it matches what this project verified before, so a re-published
//! artifact is caught even when its new checksum file agrees with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ToolsError;

/// What the lock says about one artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// Lower-case hex sha256, or empty until the first verified download.
    #[serde(default)]
    pub sha256: String,
    /// `observed` or `release-notes`, empty while unfilled.
    #[serde(default)]
    pub source: String,
}

/// The whole lock file.
#[derive(Debug, Clone, Default)]
pub struct ToolsLock {
    /// Artifact key (`kind@v0.32.0/linux-amd64`) to entry.
    pub entries: BTreeMap<String, LockEntry>,
    path: PathBuf,
}

/// What the lock says about a freshly downloaded artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockCheck {
    /// The lock had this hash already.
    Matches,
    /// The lock had no hash; it has now been recorded.
    Recorded,
}

const HEADER: &str = "\
# sha256 of every pinned artifact, per platform. Written by `cargo xtask tools install`:
# an empty entry is filled after the first download that matched the upstream checksum
# file; afterwards every download must match the recorded value. Commit this file.
# `source` says where a value came from: `observed` (downloaded and hashed by meshproof)
# or `release-notes` (published next to the release; still checked on every download).
";

/// The lock key of an artifact: `name@version/platform`.
pub fn key(name: &str, version: &str, platform: &str) -> String {
    format!("{name}@{version}/{platform}")
}

impl ToolsLock {
    /// Reads `<root>/fixtures/tools.lock` (an absent file is an empty lock).
    pub fn load(root: &Path) -> Result<ToolsLock, ToolsError> {
        let path = root.join("fixtures").join("tools.lock");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ToolsError::Read { path, source }),
        };
        let entries = toml::from_str(&text).map_err(|e| ToolsError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(ToolsLock { entries, path })
    }

    /// The recorded hash, if any.
    pub fn recorded(&self, key: &str) -> Option<&str> {
        self.entries
            .get(key)
            .map(|e| e.sha256.as_str())
            .filter(|s| !s.is_empty())
    }

    /// Compares an observed hash with the lock, recording it when the entry is empty.
    pub fn check_or_record(&mut self, key: &str, observed: &str) -> Result<LockCheck, ToolsError> {
        match self.recorded(key) {
            Some(locked) if locked.eq_ignore_ascii_case(observed) => Ok(LockCheck::Matches),
            Some(locked) => Err(ToolsError::LockMismatch {
                artifact: key.to_string(),
                locked: locked.to_string(),
                observed: observed.to_string(),
            }),
            None => {
                self.entries.insert(
                    key.to_string(),
                    LockEntry {
                        sha256: observed.to_ascii_lowercase(),
                        source: "observed".into(),
                    },
                );
                Ok(LockCheck::Recorded)
            }
        }
    }

    /// Writes the lock back, atomically.
    pub fn save(&self) -> Result<(), ToolsError> {
        let body = toml::to_string(&self.entries).map_err(|e| ToolsError::Parse {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.path.with_extension("lock.tmp");
        let write = |p: &Path, t: &str| std::fs::write(p, t);
        write(&tmp, &format!("{HEADER}\n{body}"))
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|source| ToolsError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_lock(text: &str) -> (tempfile::TempDir, ToolsLock) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fixtures")).unwrap();
        std::fs::write(dir.path().join("fixtures/tools.lock"), text).unwrap();
        let lock = ToolsLock::load(dir.path()).unwrap();
        (dir, lock)
    }

    /// Every entry of the committed lock names a pinned version: an entry left behind by an
    /// old pin (or written for a version nobody pinned) is refused, and every recorded hash
    /// is 64 hex digits.
    #[test]
    fn committed_lock_matches_the_pins() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let lock = ToolsLock::load(root).unwrap();
        let versions = crate::tools::Versions::load(root).unwrap();
        assert!(!lock.entries.is_empty());
        for (k, entry) in &lock.entries {
            let (artifact, _platform) = k.split_once('/').unwrap();
            let (name, version) = artifact.split_once('@').unwrap();
            let pinned = versions
                .tools
                .get(name)
                .map(|t| t.version.as_str())
                .or_else(|| versions.manifests.get(name).map(|m| m.version.as_str()));
            assert_eq!(pinned, Some(version), "{k} is not a pinned version");
            assert!(
                entry.sha256.is_empty()
                    || (entry.sha256.len() == 64
                        && entry.sha256.bytes().all(|b| b.is_ascii_hexdigit())),
                "{k}: {entry:?}"
            );
        }
    }

    #[test]
    fn empty_entries_are_recorded_then_enforced() {
        let (dir, mut lock) =
            temp_lock("[\"kind@v1/linux-amd64\"]\nsha256 = \"\"\nsource = \"\"\n");
        let k = "kind@v1/linux-amd64";
        assert_eq!(
            lock.check_or_record(k, &"AB".repeat(32)).unwrap(),
            LockCheck::Recorded
        );
        lock.save().unwrap();
        let mut again = ToolsLock::load(dir.path()).unwrap();
        assert_eq!(again.recorded(k), Some("ab".repeat(32).as_str()));
        assert_eq!(
            again.check_or_record(k, &"ab".repeat(32)).unwrap(),
            LockCheck::Matches
        );
        let err = again.check_or_record(k, &"cd".repeat(32)).unwrap_err();
        assert!(matches!(err, ToolsError::LockMismatch { .. }), "{err}");
        let text = std::fs::read_to_string(dir.path().join("fixtures/tools.lock")).unwrap();
        assert!(
            text.starts_with("# sha256 of every pinned artifact"),
            "{text}"
        );
    }
}
