//! meshproof: prove, from packets on the wire, that a service mesh does what its policy says.
//!
//! The crate is the whole harness; the `xtask` binary is a thin command line over it.
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view and the invariants.

// The library reports through `reporter::Reporter`; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod capture;
pub mod crd;
pub mod env_vars;
pub mod exec;
pub mod expect;
pub mod gc;
pub mod hpa;
pub mod image;
pub mod kube;
pub mod ledger;
pub mod manifest;
pub mod plan;
pub mod policy;
pub mod private_fs;
pub mod provider;
pub mod report;
pub mod reporter;
pub mod runner;
pub mod scenario;
pub mod tools;
pub mod verdict;
pub mod wire;
pub mod workload;

/// Helpers shared by tests that use the local Docker engine.
#[cfg(test)]
mod testsupport;
