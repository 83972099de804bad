//! The lab's workload: one project-owned program that plays every workload's role.
//!
//! A lab "pod" runs `meshproof-workload serve ROLE.json`. The [`Role`] is derived from the
//! scenario's provider-neutral [`Workload`](crate::scenario::Workload): the ports it
//! serves with their protocols and the upstreams it calls. It serves HTTP/1.1, raw TCP, a
//! MySQL-like and an AMQP-0-9-1-like exchange, MongoDB OP_MSG, epmd and the Erlang distribution handshake,
//! always with the protocols' real framing so the analyzer's sniffers see the real thing.
//! It is a traffic generator, not a database: it remembers just enough to answer probes.
//!
//! As a client (`meshproof-workload probe REQUEST.json`, or [`probe::run`] in-process for
//! probes from the host) it carries the run's canary in its payload, like Istio's echo app.
//!
//! As the capture helper (`meshproof-workload capture`, [`capture`]) it streams a libpcap
//! capture as pcap on standard output, for captures that need no root on the host.

pub mod amqp;
pub mod capture;
pub mod erlang;
pub mod http;
pub mod mongodb;
pub mod mysql;
pub mod probe;
mod server;
#[cfg(test)]
mod sniff_tests;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use probe::{ProbeKind, ProbeOutcome, ProbeRequest};
pub use server::serve;

use crate::scenario::Protocol;

/// Errors of the workload program and its protocol code.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that break the protocol's framing.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer closed the connection before a complete answer.
    #[error("connection closed after {after} bytes, before a complete answer")]
    Closed {
        /// Bytes read before the close.
        after: usize,
    },
    /// The role or probe file is not valid.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({protocol:?}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What it was to serve.
        protocol: Protocol,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The role asks for a protocol the workload cannot serve.
    #[error("the lab workload cannot serve {0:?}")]
    Unsupported(Protocol),
}

/// Everything one workload instance does, written by the lab into the pod as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The scenario workload's name.
    pub workload: String,
    /// This instance (pod) name.
    pub instance: String,
    /// The Erlang node name (`rabbit@<pod host>`), for epmd and distribution.
    pub node: String,
    /// The shared Erlang cookie; unique per run.
    pub cookie: String,
    /// The sockets to serve.
    pub listeners: Vec<Listener>,
    /// The upstreams it calls.
    pub upstreams: Vec<Upstream>,
    /// How often, in milliseconds, cluster peers (epmd, distribution) are contacted.
    pub cluster_interval_ms: u64,
    /// Documents a MongoDB listener starts with, by `database.collection`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Vec<serde_json::Value>>,
}

/// One served socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// `127.0.0.1:port` behind a sidecar, `0.0.0.0:port` without one.
    pub bind: SocketAddr,
    /// What it speaks.
    pub protocol: Protocol,
    /// Behind the application's own TLS (a server certificate made at start-up).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
}

/// One upstream call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The workload called.
    pub workload: String,
    /// What it speaks.
    pub protocol: Protocol,
    /// `host:port` to dial: the sidecar's outbound listener, or the service itself.
    pub dial: String,
    /// For epmd and distribution calls: the peer's node name.
    #[serde(default)]
    pub peer_node: Option<String>,
}

impl Role {
    /// Parses a role file's text; `path` names it in errors.
    pub fn from_json(path: &str, text: &str) -> Result<Role, WorkloadError> {
        let role: Role = serde_json::from_str(text).map_err(|e| WorkloadError::Config {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        for l in &role.listeners {
            if !server::can_serve(l.protocol) {
                return Err(WorkloadError::Unsupported(l.protocol));
            }
        }
        Ok(role)
    }

    /// The distribution port this node listens on, for its epmd to announce.
    pub fn dist_port(&self) -> u16 {
        self.listeners
            .iter()
            .find(|l| l.protocol == Protocol::ErlangDist)
            .map_or(25672, |l| l.bind.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_rejects_protocols_it_cannot_serve() {
        let json = r#"{"workload":"m","instance":"m-0","node":"rabbit@m-0","cookie":"c",
            "listeners":[{"bind":"0.0.0.0:5432","protocol":"postgres"}],"upstreams":[],"cluster_interval_ms":1000}"#;
        assert!(matches!(
            Role::from_json("r.json", json),
            Err(WorkloadError::Unsupported(Protocol::Postgres))
        ));
        assert!(matches!(
            Role::from_json("r.json", "{"),
            Err(WorkloadError::Config { .. })
        ));
    }
}
