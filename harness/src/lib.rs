//! meshproof: prove, from packets on the wire, that a service mesh does what its policy says.
//!
//! The crate is the whole harness; the `xtask` binary is a thin command line over it.
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view and the invariants.

pub mod env_vars;
pub mod exec;
pub mod manifest;
pub mod provider;
pub mod reporter;
pub mod scenario;
pub mod wire;
pub mod workload;
