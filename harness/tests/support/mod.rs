//! Shared helpers for the capture integration tests: a network-namespace lab joined by a
//! bridge, certificates, and a MySQL-protocol client and server.

#![allow(dead_code)]

pub mod certs;
pub mod mysql;
pub mod netlab;

/// Prints why a test is skipped. Tests that need root, namespaces or Docker call this
/// and return when the machine cannot provide them.
#[allow(clippy::print_stderr)] // A skipped test must say why, and tests have no reporter.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
}
