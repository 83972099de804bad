//! Checks of the machine itself: Docker, inotify limits, capture rights, free ports.
//!
//! Each check reads `/proc` or asks the Docker daemon with a short time limit, so the
//! whole preflight finishes in seconds even when something is missing. Parsing is split
//! from reading so the rules are unit-tested on recorded `/proc` text.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

/// One problem the preflight found, with how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub hint: String,
}

/// kind's documented minimums for multi-node clusters ("too many open files" otherwise).
pub const MIN_INOTIFY_WATCHES: u64 = 524_288;
/// See [`MIN_INOTIFY_WATCHES`].
pub const MIN_INOTIFY_INSTANCES: u64 = 512;

/// Asks the Docker daemon for a ping within two seconds.
pub async fn docker(docker: &bollard::Docker) -> Option<Finding> {
    match tokio::time::timeout(Duration::from_secs(2), docker.ping()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(Finding {
            problem: format!("the Docker daemon is not reachable: {e}"),
            hint: "start Docker (or set DOCKER_HOST) and make sure this user may use it".into(),
        }),
        Err(_) => Some(Finding {
            problem: "the Docker daemon did not answer a ping within 2 s".into(),
            hint: "check that Docker is running and not overloaded".into(),
        }),
    }
}

/// Reads the inotify limits from `/proc/sys/fs/inotify`.
pub fn inotify() -> Vec<Finding> {
    let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}")).ok();
    inotify_from(
        read("max_user_watches").as_deref(),
        read("max_user_instances").as_deref(),
    )
}

/// The inotify rule on the two files' text (`None` when unreadable, as on macOS).
pub fn inotify_from(watches: Option<&str>, instances: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, text, min) in [
        ("fs.inotify.max_user_watches", watches, MIN_INOTIFY_WATCHES),
        (
            "fs.inotify.max_user_instances",
            instances,
            MIN_INOTIFY_INSTANCES,
        ),
    ] {
        let Some(value) = text.and_then(|t| t.trim().parse::<u64>().ok()) else {
            continue;
        };
        if value < min {
            out.push(Finding {
                problem: format!(
                    "{name} is {value}, below the {min} a multi-node kind cluster needs"
                ),
                hint: format!(
                    "run `sudo sysctl {name}={min}` (kind's known issue: too many open files)"
                ),
            });
        }
    }
    out
}

/// Raises each inotify limit below kind's minimum by writing `dir/<file>` (normally
/// `/proc/sys/fs/inotify`, which only root may write). Returns one line per low limit:
/// what was raised, or the exact command to run when it could not be. Never fatal: a
/// three-node cluster often works with the defaults, and kind says "too many open files"
/// when it does not.
pub fn raise_inotify_in(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for (file, min) in [
        ("max_user_watches", MIN_INOTIFY_WATCHES),
        ("max_user_instances", MIN_INOTIFY_INSTANCES),
    ] {
        let path = dir.join(file);
        let Some(value) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        else {
            continue;
        };
        if value >= min {
            continue;
        }
        let name = format!("fs.inotify.{file}");
        out.push(match std::fs::write(&path, format!("{min}\n")) {
            Ok(()) => format!("raised {name} from {value} to {min} (kind's known issue: too many open files)"),
            Err(e) => format!(
                "{name} is {value}, below the {min} a multi-node kind cluster may need, and could not be raised ({e}): run `sudo sysctl {name}={min}` if kind reports too many open files"
            ),
        });
    }
    out
}

/// [`raise_inotify_in`] on this machine's `/proc/sys/fs/inotify`.
pub fn raise_inotify() -> Vec<String> {
    raise_inotify_in(std::path::Path::new("/proc/sys/fs/inotify"))
}

/// Whether an executable named `name` is in one of `dirs` (the `PATH`).
pub fn on_path(name: &str, dirs: &[std::path::PathBuf]) -> bool {
    dirs.iter().any(|d| d.join(name).is_file())
}

/// Whether this process may capture packets: root, or `CAP_NET_RAW` in its effective set.
pub fn capture_rights() -> Option<Finding> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    capture_rights_from(&status)
}

/// The capture rule on `/proc/self/status` text.
pub fn capture_rights_from(status: &str) -> Option<Finding> {
    const CAP_NET_RAW: u32 = 13;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let euid = field("Uid:")
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u32>().ok());
    let caps = field("CapEff:")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0);
    if euid == Some(0) || caps & (1 << CAP_NET_RAW) != 0 {
        return None;
    }
    Some(Finding {
        problem: "this process may not capture packets (neither root nor CAP_NET_RAW)".into(),
        hint: "run as root, or grant the test binary the capability: `sudo setcap cap_net_raw,cap_net_admin+ep <binary>`".into(),
    })
}

/// Ports on the host that must be free, each checked by binding it on all addresses.
pub fn ports_free(ports: &[u16]) -> Vec<Finding> {
    ports
        .iter()
        .filter(|p| TcpListener::bind((Ipv4Addr::UNSPECIFIED, **p)).is_err())
        .map(|p| Finding {
            problem: format!("host port {p} is already in use"),
            hint: format!(
                "free port {p} (see `ss -ltnp 'sport = :{p}'`) or remove the mapping that needs it"
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_inotify_limits_are_raised_where_writable_and_high_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("max_user_watches"), "8192\n").unwrap();
        std::fs::write(dir.path().join("max_user_instances"), "1024\n").unwrap();
        let notes = raise_inotify_in(dir.path());
        assert_eq!(
            notes,
            [
                "raised fs.inotify.max_user_watches from 8192 to 524288 (kind's known issue: too many open files)"
            ]
        );
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("max_user_watches").trim(), "524288");
        assert_eq!(read("max_user_instances").trim(), "1024");
        assert!(
            raise_inotify_in(dir.path()).is_empty(),
            "raised once, then fine"
        );
    }

    #[test]
    fn an_inotify_limit_that_cannot_be_raised_names_the_command() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: readable as nothing, so skipped; a
        // read-only file: readable but not writable.
        let file = dir.path().join("max_user_instances");
        std::fs::write(&file, "128\n").unwrap();
        let mut perms = std::fs::metadata(&file).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&file, perms).unwrap();
        let notes = raise_inotify_in(dir.path());
        // Root may write a read-only file; then the limit was raised, which is also right.
        let raised = std::fs::read_to_string(&file).unwrap().trim() == "512";
        if raised {
            assert!(
                notes[0].starts_with("raised fs.inotify.max_user_instances"),
                "{notes:?}"
            );
        } else {
            assert!(
                notes[0].contains("run `sudo sysctl fs.inotify.max_user_instances=512`"),
                "{notes:?}"
            );
        }
    }

    #[test]
    fn the_docker_cli_is_looked_up_on_path() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!on_path("docker", &[dir.path().to_path_buf()]));
        std::fs::write(dir.path().join("docker"), "").unwrap();
        assert!(on_path("docker", &[dir.path().to_path_buf()]));
    }

    #[test]
    fn low_inotify_limits_are_named_with_the_fix() {
        let found = inotify_from(Some("8192\n"), Some("128\n"));
        assert_eq!(found.len(), 2);
        assert!(
            found[0]
                .hint
                .contains("sysctl fs.inotify.max_user_watches=524288"),
            "{:?}",
            found[0]
        );
        assert!(inotify_from(Some("1048576"), Some("8192")).is_empty());
        assert!(inotify_from(None, None).is_empty());
    }

    #[test]
    fn capture_rights_come_from_uid_or_cap_net_raw() {
        let root = "Name:\tx\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n";
        assert_eq!(capture_rights_from(root), None);
        let user_with_cap = "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000002000\n";
        assert_eq!(capture_rights_from(user_with_cap), None);
        let plain_user = "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n";
        assert!(
            capture_rights_from(plain_user)
                .unwrap()
                .hint
                .contains("setcap")
        );
    }

    #[test]
    fn a_bound_port_is_reported_busy() {
        let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        assert_eq!(ports_free(&[port]).len(), 1);
        drop(held);
        assert!(ports_free(&[port]).is_empty());
    }
}
