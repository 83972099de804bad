//! The one place that reads environment variables.
//!
//! Every variable meshproof looks at is listed in [`REGISTRY`] with what it does, so
//! `--help` texts, the README and reviews have a single list to check against. Reading a
//! variable anywhere else in the library is a review error: it hides configuration.

use std::ffi::OsString;
use std::path::PathBuf;

/// One environment variable meshproof reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// What it changes, one sentence.
    pub doc: &'static str,
}

/// Where downloaded tools and manifests are cached.
pub const MESHPROOF_CACHE: EnvVar = EnvVar {
    name: "MESHPROOF_CACHE",
    doc: "Directory for downloaded tools and manifests (default: target/meshproof-cache under the repository).",
};

/// kind's own override of its Docker network name; meshproof must look at the same network.
pub const KIND_EXPERIMENTAL_DOCKER_NETWORK: EnvVar = EnvVar {
    name: "KIND_EXPERIMENTAL_DOCKER_NETWORK",
    doc: "Read by kind to pick its Docker network (default `kind`); meshproof inspects and captures on the same one.",
};

/// The kubeconfig file kubectl, istioctl and the kube client use.
pub const KUBECONFIG: EnvVar = EnvVar {
    name: "KUBECONFIG",
    doc: "Kubeconfig for `--provider existing` (kind runs use a kubeconfig of their own in the artifacts directory).",
};

/// The search path for tools already installed.
pub const PATH: EnvVar = EnvVar {
    name: "PATH",
    doc: "Searched for kind, kubectl and istioctl; a tool found there is used only when its version matches the pin.",
};

/// The user's home, where the default kubeconfig lives.
pub const HOME: EnvVar = EnvVar {
    name: "HOME",
    doc: "Locates the default kubeconfig (`~/.kube/config`) when KUBECONFIG is not set.",
};

/// Plain output for terminals that do not want colour or spinners.
pub const NO_COLOR: EnvVar = EnvVar {
    name: "NO_COLOR",
    doc: "When set, the command line draws no progress spinners.",
};

/// Set by CI systems; progress is rendered as plain lines.
pub const CI: EnvVar = EnvVar {
    name: "CI",
    doc: "When set, the command line draws no progress spinners.",
};

/// The workload binary the Docker lab puts into its image.
pub const MESHPROOF_WORKLOAD_BIN: EnvVar = EnvVar {
    name: "MESHPROOF_WORKLOAD_BIN",
    doc: "The meshproof-workload binary for the Docker lab's image (default: the one cargo builds beside the running program).",
};

/// Set by cargo for the programs it runs.
pub const CARGO: EnvVar = EnvVar {
    name: "CARGO",
    doc: "Set by cargo; the Docker lab uses it to build meshproof-workload before a run, so its image never holds a stale one.",
};

/// Every variable meshproof reads, in the order the README documents them.
pub const REGISTRY: &[EnvVar] = &[
    MESHPROOF_CACHE,
    MESHPROOF_WORKLOAD_BIN,
    CARGO,
    KIND_EXPERIMENTAL_DOCKER_NETWORK,
    KUBECONFIG,
    HOME,
    PATH,
    NO_COLOR,
    CI,
];

impl EnvVar {
    /// The raw value, if set.
    pub fn get_os(self) -> Option<OsString> {
        std::env::var_os(self.name)
    }

    /// The value as text, if set, valid UTF-8 and not empty.
    pub fn get(self) -> Option<String> {
        std::env::var(self.name).ok().filter(|v| !v.is_empty())
    }

    /// True when set to anything (even empty), as `NO_COLOR` and `CI` are meant.
    pub fn is_set(self) -> bool {
        std::env::var_os(self.name).is_some()
    }
}

/// The tool cache: `$MESHPROOF_CACHE`, or `<root>/target/meshproof-cache`.
pub fn cache_dir(root: &std::path::Path) -> PathBuf {
    MESHPROOF_CACHE
        .get()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("meshproof-cache"))
}

/// The workload binary named by `$MESHPROOF_WORKLOAD_BIN`, if set.
pub fn workload_bin() -> Option<PathBuf> {
    MESHPROOF_WORKLOAD_BIN
        .get_os()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The cargo running this program (`$CARGO`), if any.
pub fn cargo() -> Option<PathBuf> {
    CARGO.get_os().filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The Docker network kind puts its nodes on.
pub fn kind_network() -> String {
    KIND_EXPERIMENTAL_DOCKER_NETWORK
        .get()
        .unwrap_or_else(|| "kind".to_string())
}

/// The directories of `$PATH`, in order.
pub fn path_dirs() -> Vec<PathBuf> {
    PATH.get_os()
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// `$KUBECONFIG` as set (a list of paths) and `$HOME`, for kubeconfig lookup.
pub fn kubeconfig_env() -> (Option<OsString>, Option<PathBuf>) {
    (KUBECONFIG.get_os(), HOME.get().map(PathBuf::from))
}

/// The kubeconfig file: `$KUBECONFIG`'s first entry, else `~/.kube/config`.
pub fn kubeconfig() -> Option<PathBuf> {
    KUBECONFIG
        .get_os()
        .and_then(|p| std::env::split_paths(&p).next())
        .or_else(|| {
            HOME.get()
                .map(|h| PathBuf::from(h).join(".kube").join("config"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_documented() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        assert!(
            REGISTRY
                .iter()
                .all(|v| v.doc.ends_with('.') && v.doc.len() > 20)
        );
    }

    #[test]
    fn library_reads_the_environment_only_here() {
        // Walk the library's sources: `std::env::var` may appear in this file only.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("env_vars.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.contains("env::var(") || text.contains("env::var_os(") {
                        offenders.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "environment read outside env_vars.rs: {offenders:?}"
        );
    }
}
