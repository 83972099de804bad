//! The ledger: an append-only record of everything a run created.
//!
//! One JSON object per line, written and flushed as each thing is created, so even a run
//! killed half-way leaves an exact list of what it created. Teardown finds what to
//! remove by the run label; `cargo xtask gc` reads a run's first entry, its owner process
//! (pid and start time), to spare runs that are still alive. The artifacts directory keeps
//! it for the post-mortem.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Errors from reading or writing a ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger file could not be opened, written or read.
    #[error("ledger {path}: {source}")]
    Io {
        /// The ledger file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a ledger entry.
    #[error("ledger {path}:{line}: {message}")]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What serde said.
        message: String,
    },
}

/// One thing a run created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Item {
    /// A kind cluster (its node containers carry kind's own cluster label).
    KindCluster {
        /// The cluster name.
        name: String,
        /// The kubeconfig written for it.
        kubeconfig: PathBuf,
    },
    /// A Docker container.
    Container {
        /// Its id.
        id: String,
        /// Its name.
        name: String,
    },
    /// A Docker network.
    Network {
        /// Its id.
        id: String,
        /// Its name.
        name: String,
    },
    /// A Kubernetes object created in a cluster the run does not own (existing provider).
    KubeObject {
        /// `kind/namespace/name`.
        key: String,
    },
    /// A downloaded manifest.
    Download {
        /// Where it came from.
        url: String,
        /// Where it was stored.
        path: PathBuf,
        /// Its sha256.
        sha256: String,
    },
    /// A capture file.
    Capture {
        /// The pcap.
        path: PathBuf,
    },
    /// The process that runs this run, written first: gc spares a run while this process
    /// is alive, and a pid reused by another process has a different start time.
    Owner {
        /// Its process id.
        pid: u32,
        /// Its start time, in clock ticks since boot (`/proc/<pid>/stat` field 22).
        started: u64,
    },
}

impl Item {
    /// The owner entry for the calling process, or `None` where `/proc` cannot say its
    /// start time (not Linux).
    pub fn owner_of_this_process() -> Option<Item> {
        let pid = std::process::id();
        process_start(pid).map(|started| Item::Owner { pid, started })
    }
}

/// The start time of process `pid` in clock ticks since boot, from `/proc/<pid>/stat`;
/// `None` when no such process exists (or `/proc` is unavailable).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start(&stat)
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses
/// and may itself hold spaces or parentheses, so fields are counted after the last `)`.
fn parse_start(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state), so field 22 is the 20th word.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the owner recorded in a ledger is still running: same pid, same start time.
pub fn owner_alive(pid: u32, started: u64) -> bool {
    process_start(pid) == Some(started)
}

/// The last owner recorded among `entries` (a resumed run records itself again).
pub fn owner(entries: &[Entry]) -> Option<(u32, u64)> {
    entries.iter().rev().find_map(|e| match e.item {
        Item::Owner { pid, started } => Some((pid, started)),
        _ => None,
    })
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The run that created it.
    pub run: String,
    /// What was created.
    #[serde(flatten)]
    pub item: Item,
}

/// An open ledger for one run.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    run: String,
    file: Mutex<std::fs::File>,
}

impl Ledger {
    /// Opens (creating or appending to) the ledger at `path` for `run`.
    pub fn open(path: &Path, run: &str) -> Result<Ledger, LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::private_fs::create_dir(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Ledger {
            path: path.to_path_buf(),
            run: run.to_string(),
            file: Mutex::new(file),
        })
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one item and flushes it to disk before returning.
    pub fn record(&self, item: Item) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let entry = Entry {
            at,
            run: self.run.clone(),
            item,
        };
        let mut line = serde_json::to_string(&entry).map_err(|e| io(std::io::Error::other(e)))?;
        line.push('\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| io(std::io::Error::other("ledger lock poisoned")))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(io)
    }

    /// Every entry in a ledger file, oldest first.
    pub fn read(path: &Path) -> Result<Vec<Entry>, LedgerError> {
        let text = std::fs::read_to_string(path).map_err(|source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| LedgerError::Corrupt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/ledger.jsonl");
        let ledger = Ledger::open(&path, "mp-1").unwrap();
        ledger
            .record(Item::KindCluster {
                name: "meshproof-mp-1".into(),
                kubeconfig: "k".into(),
            })
            .unwrap();
        drop(ledger);
        let again = Ledger::open(&path, "mp-1").unwrap();
        again
            .record(Item::Capture {
                path: "a.pcap".into(),
            })
            .unwrap();
        let entries = Ledger::read(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(entries[0].item, Item::KindCluster { .. }));
        assert_eq!(entries[1].run, "mp-1");
        let line = std::fs::read_to_string(&path).unwrap();
        assert!(line.starts_with("{\"at\":"), "{line}");
        assert!(line.contains("\"type\":\"kind-cluster\""), "{line}");
    }

    #[test]
    fn a_corrupt_line_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        std::fs::write(
            &path,
            "{\"at\":1,\"run\":\"r\",\"type\":\"capture\",\"path\":\"p\"}\nnot json\n",
        )
        .unwrap();
        let err = Ledger::read(&path).unwrap_err();
        assert!(err.to_string().contains("l.jsonl:2:"), "{err}");
    }

    #[test]
    fn the_start_time_is_counted_after_the_command_name() {
        let stat =
            "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start(stat), Some(987_654));
        assert_eq!(parse_start("4242 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let Some(Item::Owner { pid, started }) = Item::owner_of_this_process() else {
            panic!("no /proc start time for this process");
        };
        assert!(owner_alive(pid, started));
        assert!(
            !owner_alive(pid, started + 1),
            "a different start time is another process"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let ledger = Ledger::open(&path, "mp-o").unwrap();
        ledger.record(Item::Owner { pid, started }).unwrap();
        let line = std::fs::read_to_string(&path).unwrap();
        assert!(line.contains("\"type\":\"owner\""), "{line}");
        assert_eq!(owner(&Ledger::read(&path).unwrap()), Some((pid, started)));
    }
}
