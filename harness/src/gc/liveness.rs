//! Which runs gc may touch: a run is spared while the process recorded as its owner in its
//! ledger still runs (same pid, same start time), unless it is older than the caller's bound.
//!
//! A run whose ledger cannot be found is spared too (another checkout's artifacts, another
//! user): gc cannot prove it dead. Naming the run (`--run`) or an age bound overrides that.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ledger::{self, Ledger};

/// How gc decides.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    /// The artifacts root holding `<run>/ledger.jsonl`; no ledgers are read when `None`.
    pub ledgers: Option<PathBuf>,
    /// Runs older than this are removed even if alive or of unknown owner.
    pub older_than: Option<Duration>,
    /// The run was named explicitly: an unknown owner does not protect it.
    pub named: bool,
}

/// A decision about one run: `None` removes it, `Some(reason)` spares it.
pub type Spared = Option<String>;

impl Liveness {
    /// Decides for `run`, caching the answer in `seen`.
    pub fn judge(&self, run: &str, seen: &mut HashMap<String, Spared>) -> Spared {
        seen.entry(run.to_string())
            .or_insert_with(|| self.decide(run))
            .clone()
    }

    fn decide(&self, run: &str) -> Spared {
        let entries = self
            .ledgers
            .as_ref()
            .map(|root| root.join(run).join("ledger.jsonl"))
            .filter(|p| p.is_file())
            .and_then(|p| Ledger::read(&p).ok());
        let started = run_started(run).or_else(|| entries.as_ref()?.first().map(|e| e.at));
        if let (Some(bound), Some(at)) = (self.older_than, started)
            && now().saturating_sub(at) > bound.as_secs()
        {
            return None;
        }
        match entries.as_deref().and_then(ledger::owner) {
            Some((pid, since)) if ledger::owner_alive(pid, since) => {
                Some(format!("alive (pid {pid})"))
            }
            Some(_) => None,
            None if self.named => None,
            None => Some("owner unknown (no ledger with an owner)".to_string()),
        }
    }
}

/// The start of a run from its id, `mp-<hex seconds>-<tail>` (see `cargo xtask e2e`).
fn run_started(run: &str) -> Option<u64> {
    let hex = run.strip_prefix("mp-")?.split('-').next()?;
    u64::from_str_radix(hex, 16).ok()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Item;

    fn with_owner(root: &std::path::Path, run: &str, owner: Item) {
        let ledger = Ledger::open(&root.join(run).join("ledger.jsonl"), run).unwrap();
        ledger.record(owner).unwrap();
    }

    #[test]
    fn a_live_owner_spares_a_dead_or_reused_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let me = Item::owner_of_this_process().unwrap();
        let Item::Owner { pid, started } = me.clone() else {
            unreachable!()
        };
        with_owner(dir.path(), "mp-live", me);
        with_owner(
            dir.path(),
            "mp-reused",
            Item::Owner {
                pid,
                started: started + 7,
            },
        );
        with_owner(
            dir.path(),
            "mp-dead",
            Item::Owner {
                pid: u32::MAX - 1,
                started,
            },
        );
        let l = Liveness {
            ledgers: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let mut seen = HashMap::new();
        assert!(l.judge("mp-live", &mut seen).unwrap().contains("alive"));
        assert_eq!(l.judge("mp-reused", &mut seen), None);
        assert_eq!(l.judge("mp-dead", &mut seen), None);
        assert!(
            l.judge("mp-nowhere", &mut seen)
                .unwrap()
                .contains("unknown")
        );
        let named = Liveness {
            named: true,
            ..l.clone()
        };
        assert_eq!(named.judge("mp-nowhere", &mut HashMap::new()), None);
        assert!(named.judge("mp-live", &mut HashMap::new()).is_some());
    }

    #[test]
    fn an_age_bound_removes_old_runs_only() {
        let l = Liveness {
            older_than: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let fresh = format!("mp-{:x}-abc", now());
        assert_eq!(l.judge("mp-1-abc", &mut HashMap::new()), None);
        assert!(l.judge(&fresh, &mut HashMap::new()).is_some());
        assert_eq!(run_started("mp-ff-x"), Some(255));
        assert_eq!(run_started("mp-gctest-x"), None);
    }
}
