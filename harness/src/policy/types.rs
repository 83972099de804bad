//! The policy model's vocabulary: peers and pairs in, rows of a matrix out.
//!
//! These types are the contract with the scenario runner (which turns rows into wire
//! expectations) and with the Docker lab (which programs Envoy from
//! [`super::InboundPolicy`] and [`super::OutboundPolicy`]). Everything serializes to the
//! JSON that `cargo xtask tls-check --json` prints.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::scenario::Protocol;
use crate::wire::FlowClass;

/// One end of a connection: a declared workload or one of the built-in peers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Peer {
    /// A workload from the scenario (its Deployment or StatefulSet).
    Workload {
        /// The workload's name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The machine running meshproof, outside the cluster and the mesh.
    Host,
    /// Istio's ingress gateway: an Envoy in `istio-system` with mesh certificates.
    IngressGateway,
    /// Istio's egress gateway.
    EgressGateway,
}

impl Peer {
    /// A workload peer.
    pub fn workload(name: &str, namespace: &str) -> Peer {
        Peer::Workload {
            name: name.to_string(),
            namespace: namespace.to_string(),
        }
    }

    /// The name scenarios use for this peer (`host`, `ingress-gateway`, or the workload's).
    pub fn name(&self) -> &str {
        match self {
            Peer::Workload { name, .. } => name,
            Peer::Host => crate::scenario::peers::HOST,
            Peer::IngressGateway => crate::scenario::peers::INGRESS_GATEWAY,
            Peer::EgressGateway => crate::scenario::peers::EGRESS_GATEWAY,
        }
    }

    /// The peer's namespace, if it has one.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Peer::Workload { namespace, .. } => Some(namespace),
            Peer::Host => None,
            Peer::IngressGateway | Peer::EgressGateway => Some("istio-system"),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Workload { name, namespace } => write!(f, "{name}.{namespace}"),
            other => f.write_str(other.name()),
        }
    }
}

/// An HTTP request a probe sends, as far as routing and authorization care.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Request {
    /// The method, upper case.
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The `Host` header, if the probe sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// `GET /path`, with `Host: name` when the probe sets one: two requests that differ only
/// in their Host are routed and authorized apart, so they are never one row.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        match &self.host {
            Some(host) => write!(f, " Host: {host}"),
            None => Ok(()),
        }
    }
}

/// A client dialling a service port, as declared by a workload's `calls` or a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// Who connects.
    pub client: Peer,
    /// The workload (or gateway) behind the service.
    pub server: Peer,
    /// The Service dialled (`localhost` for a Consul explicit upstream).
    pub service: String,
    /// The Service's namespace.
    pub namespace: String,
    /// The Service port dialled.
    pub port: u16,
    /// A DestinationRule subset the traffic is routed to (by a VirtualService); empty for none.
    pub subset: String,
    /// The HTTP request, when a probe sends one.
    pub request: Option<Request>,
    /// Where the pair comes from: `call`, `probe <name>` or `via <peer>`.
    pub origin: String,
    /// What the server's application speaks, by container port (from the scenario).
    pub protocols: BTreeMap<u16, Protocol>,
    /// The server's own calls. When the server answers this pair's HTTP request and has
    /// exactly one HTTP upstream among them, it is a reverse proxy and the request
    /// continues there.
    pub onward: Vec<Pair>,
}

/// An effective PeerAuthentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Only Istio mTLS is accepted.
    Strict,
    /// Istio mTLS and plaintext are both accepted.
    Permissive,
    /// The sidecar does not terminate mTLS: bytes pass to the app as they come.
    Disable,
}

impl MtlsMode {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Strict => "STRICT",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Disable => "DISABLE",
        }
    }
}

/// Where a server-side mode came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PeerSource {
    /// A PeerAuthentication.
    PeerAuthentication {
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// `mesh`, `namespace`, `workload` or `port`.
        scope: &'static str,
    },
    /// No policy applies: Istio's default, PERMISSIVE.
    MeshDefault,
    /// An Istio Gateway server terminates the connection.
    Gateway {
        /// The Gateway's name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// Consul Connect, with the reason for the mode.
    Consul {
        /// Such as `transparent proxy on`.
        detail: String,
    },
    /// Nothing in the pod intercepts this port.
    NotIntercepted {
        /// Why: no sidecar, or the port is excluded.
        reason: String,
    },
}

impl fmt::Display for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSource::PeerAuthentication {
                name, namespace, ..
            } => write!(f, "{name}/{namespace}"),
            PeerSource::Gateway { name, namespace } => write!(f, "gateway {name}/{namespace}"),
            PeerSource::MeshDefault => f.write_str("mesh default"),
            PeerSource::Consul { detail } => write!(f, "consul: {detail}"),
            PeerSource::NotIntercepted { reason } => f.write_str(reason),
        }
    }
}

/// The TLS a client side originates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTls {
    /// Istio mTLS with the mesh certificate.
    IstioMutual,
    /// No TLS from the proxy (the app may still speak its own TLS).
    Disable,
    /// TLS without a client certificate (DestinationRule `SIMPLE`).
    Simple,
    /// TLS with a user-supplied client certificate (DestinationRule `MUTUAL`).
    Mutual,
    /// Consul Connect mTLS to the destination's public listener.
    ConsulMutual,
}

impl ClientTls {
    /// The spelling in tables and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientTls::IstioMutual => "ISTIO_MUTUAL",
            ClientTls::Disable => "DISABLE",
            ClientTls::Simple => "SIMPLE",
            ClientTls::Mutual => "MUTUAL",
            ClientTls::ConsulMutual => "CONSUL_MTLS",
        }
    }
}

/// Where the client TLS setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TlsSource {
    /// A DestinationRule (several merged ones are named by the first).
    DestinationRule {
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// Istio auto mTLS: no DestinationRule sets TLS for this port.
    Auto,
    /// The client's traffic to this port is not intercepted.
    NotIntercepted {
        /// Why: no sidecar, or the port is excluded.
        reason: String,
    },
    /// The destination is not in the client's registry (its Sidecar's egress hosts leave
    /// it out): the PassthroughCluster forwards it without TLS.
    Passthrough {
        /// Which Sidecar leaves it out.
        reason: String,
    },
    /// Consul decides, with the reason.
    Consul {
        /// Such as `transparent proxy` or `upstream counting:9001`.
        detail: String,
    },
}

impl fmt::Display for TlsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSource::DestinationRule { name, namespace } => write!(f, "{name}/{namespace}"),
            TlsSource::Auto => f.write_str("auto"),
            TlsSource::NotIntercepted { reason } => f.write_str(reason),
            TlsSource::Passthrough { .. } => f.write_str("passthrough"),
            TlsSource::Consul { detail } => write!(f, "consul: {detail}"),
        }
    }
}

/// What a conflict does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consequence {
    /// The connection is reset or closed without an answer.
    Reset,
    /// The client's sidecar (or a gateway) answers 503.
    Unavailable503,
    /// A non-mesh reverse proxy in front answers 502.
    BadGateway502,
    /// Envoy's RBAC filter answers `403 RBAC: access denied`.
    Forbidden403,
    /// Envoy's network RBAC filter closes the TCP connection.
    RbacClosed,
    /// The gateway has a listener but no route: 404.
    NotFound404,
    /// Nothing listens: the connection is refused.
    Refused,
    /// A server-first protocol under PERMISSIVE with a plaintext client: the sidecar waits
    /// for bytes the client never sends first, and the connection stalls.
    Stall,
    /// `REGISTRY_ONLY` and the destination is not in the registry: 502 for HTTP, reset for TCP.
    Blocked,
}

impl fmt::Display for Consequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consequence::Reset => "connection reset (502 through a non-mesh proxy)",
            Consequence::Unavailable503 => "503 from the proxy",
            Consequence::BadGateway502 => "502 from the proxy in front",
            Consequence::Forbidden403 => "403 RBAC: access denied",
            Consequence::RbacClosed => "connection closed by RBAC",
            Consequence::NotFound404 => "404 from the gateway",
            Consequence::Refused => "connection refused",
            Consequence::Stall => "connection stalls",
            Consequence::Blocked => "blocked by REGISTRY_ONLY",
        })
    }
}

/// Whether the connection works, and if not, what happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// Client and server agree.
    Ok,
    /// They do not.
    Conflict {
        /// What disagrees, one sentence.
        problem: String,
        /// What the traffic sees.
        consequence: Consequence,
    },
    /// The model cannot decide, and says so rather than guess.
    CannotPredict {
        /// Why, one sentence naming what the model does not know.
        why: String,
        /// What is undecided: only the outcome, or also the class on the wire.
        undecided: Undecided,
    },
}

/// What a [`Status::CannotPredict`] row leaves open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Undecided {
    /// Whether the connection (or request) is let through; the class on the wire is
    /// predicted (the handshake happens before authorization).
    Outcome,
    /// The class on the wire too: the row's `class` must not be judged.
    Wire,
}

impl Status {
    /// A conflict.
    pub fn conflict(problem: impl Into<String>, consequence: Consequence) -> Status {
        Status::Conflict {
            problem: problem.into(),
            consequence,
        }
    }

    /// The model cannot decide whether the connection works.
    pub fn cannot_predict(why: impl Into<String>) -> Status {
        Status::CannotPredict {
            why: why.into(),
            undecided: Undecided::Outcome,
        }
    }

    /// The model cannot decide even the class on the wire.
    pub fn cannot_predict_wire(why: impl Into<String>) -> Status {
        Status::CannotPredict {
            why: why.into(),
            undecided: Undecided::Wire,
        }
    }

    /// True for [`Status::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Status::Ok)
    }

    /// Why the class on the wire cannot be predicted, if it cannot.
    pub fn wire_undecided(&self) -> Option<&str> {
        match self {
            Status::CannotPredict {
                why,
                undecided: Undecided::Wire,
            } => Some(why),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Ok => f.write_str("OK"),
            Status::Conflict { consequence, .. } => write!(f, "CONFLICT: {consequence}"),
            Status::CannotPredict { why, .. } => write!(f, "cannot predict: {why}"),
        }
    }
}

/// How a server port's traffic is handled at layer 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppProtocol {
    /// HTTP/1.1 (Envoy's HTTP filters apply: 503/403 answers).
    Http,
    /// HTTP/2 or gRPC.
    Http2,
    /// Opaque TCP, including server-first protocols.
    Tcp,
    /// The application's own TLS.
    Tls,
}

impl AppProtocol {
    /// True when Envoy handles the port with HTTP filters.
    pub fn is_http(self) -> bool {
        matches!(self, AppProtocol::Http | AppProtocol::Http2)
    }
}

/// One row of the matrix: one client dialling one service port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Who connects.
    pub client: Peer,
    /// Who serves.
    pub server: Peer,
    /// The Service dialled.
    pub service: String,
    /// The Service's namespace.
    pub namespace: String,
    /// The Service port.
    pub port: u16,
    /// The container port the Service port maps to, if resolved.
    pub target_port: Option<u16>,
    /// The port the flow has on the wire between nodes.
    pub wire_port: Option<u16>,
    /// How the server side handles the bytes.
    pub protocol: AppProtocol,
    /// The HTTP request, when a probe sends one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// The server's effective mode for this port (meaningful when intercepted).
    pub server_mode: MtlsMode,
    /// Where that mode came from.
    pub server_source: PeerSource,
    /// The TLS the client side originates.
    pub client_tls: ClientTls,
    /// Where that came from.
    pub client_tls_source: TlsSource,
    /// The client runs a mesh proxy that intercepts this traffic.
    pub client_sidecar: bool,
    /// The server runs a mesh proxy that intercepts this port.
    pub server_sidecar: bool,
    /// The expected class of the flow on the wire.
    pub class: FlowClass,
    /// OK, or the conflict and its consequence.
    pub status: Status,
    /// Where the pair came from.
    pub origins: Vec<String>,
    /// Details worth knowing (authorization that depends on the request, ignored settings).
    pub notes: Vec<String>,
}

/// A flow the model expects on the wire, for the runner to compare with a scenario's
/// own wire expectations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ExpectedFlow {
    /// The client peer's name (workload, `host`, `ingress-gateway`).
    pub from: String,
    /// The server peer's name.
    pub to: String,
    /// The server port on the wire (the container port, 20000 for Consul Connect, the
    /// gateway Service port for traffic from outside).
    pub port: u16,
    /// The class.
    pub class: FlowClass,
    /// Why the model expects it, one line (modes and the policies they came from).
    pub because: String,
    /// Set when the model cannot predict the class: `class` is then no prediction, and
    /// the runner must not judge a capture or an expectation against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot_predict: Option<String>,
}
