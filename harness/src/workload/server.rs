//! The serving side of the workload: listeners, per-protocol handlers, the calls a request
//! triggers upstream (a form POST becomes a MySQL INSERT), and the periodic traffic
//! between cluster peers (epmd lookups and distribution handshakes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Listener, Role, Upstream, WorkloadError, amqp, erlang, http, mongodb, mysql};
use crate::reporter::Reporter;
use crate::scenario::Protocol;

const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the workload can serve this protocol.
pub(super) fn can_serve(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::Http
            | Protocol::Tcp
            | Protocol::Mysql
            | Protocol::Amqp
            | Protocol::Mongodb
            | Protocol::Epmd
            | Protocol::ErlangDist
    )
}

/// State shared by every connection of one instance.
struct Shared {
    role: Role,
    table: mysql::Table,
    queues: amqp::Queues,
    documents: mongodb::Store,
    message_ids: std::sync::atomic::AtomicI32,
    connections: AtomicU32,
    reporter: Arc<dyn Reporter>,
}

/// Binds every listener, then serves until the process is stopped. Binding errors are
/// returned at once, so a misconfigured pod fails visibly instead of half-working.
pub async fn serve(role: Role, reporter: Arc<dyn Reporter>) -> Result<(), WorkloadError> {
    let mut bound = Vec::new();
    for l in &role.listeners {
        let socket = TcpListener::bind(l.bind)
            .await
            .map_err(|source| WorkloadError::Bind {
                addr: l.bind,
                protocol: l.protocol,
                source,
            })?;
        bound.push((socket, l.clone()));
    }
    let (replicate, replicas) = tokio::sync::mpsc::unbounded_channel();
    let documents = mongodb::Store::seeded(&role.data)?;
    let shared = Arc::new(Shared {
        documents,
        message_ids: std::sync::atomic::AtomicI32::new(1),
        role,
        table: mysql::Table::default(),
        queues: amqp::Queues::replicated(replicate),
        connections: AtomicU32::new(0),
        reporter,
    });
    shared.reporter.info(&format!(
        "{} serving {}",
        shared.role.instance,
        shared
            .role
            .listeners
            .iter()
            .map(|l| format!("{}/{:?}", l.bind, l.protocol))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, listener) in bound {
        tasks.spawn(accept_loop(socket, listener, shared.clone()));
    }
    if shared
        .role
        .upstreams
        .iter()
        .any(|u| matches!(u.protocol, Protocol::Epmd | Protocol::ErlangDist))
    {
        tasks.spawn(cluster_loop(shared.clone()));
        tasks.spawn(replicate_loop(shared.clone(), replicas));
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            return Err(e);
        }
    }
    // A pod that only calls out (a client) still lives until it is stopped, like a pod.
    std::future::pending::<()>().await;
    Ok(())
}

async fn accept_loop(
    socket: TcpListener,
    listener: Listener,
    shared: Arc<Shared>,
) -> Result<(), WorkloadError> {
    loop {
        let (stream, peer) = socket.accept().await?;
        let shared = shared.clone();
        let protocol = listener.protocol;
        let tls = listener.tls;
        tokio::spawn(async move {
            let served = if tls {
                serve_tls(stream, &shared).await
            } else {
                handle(stream, protocol, &shared).await
            };
            if let Err(e) = served {
                shared
                    .reporter
                    .debug(&format!("{protocol:?} connection from {peer}: {e}"));
            }
        });
    }
}

/// A TLS listener: the handshake, then MongoDB inside (the one protocol the lab serves
/// behind its own TLS).
async fn serve_tls(stream: TcpStream, shared: &Shared) -> Result<(), WorkloadError> {
    let acceptor = super::tls::acceptor(&shared.role.instance)?;
    let mut tls = acceptor.accept(stream).await?;
    mongodb::serve(&mut tls, &shared.documents, &shared.message_ids).await
}

async fn handle(
    mut stream: TcpStream,
    protocol: Protocol,
    shared: &Shared,
) -> Result<(), WorkloadError> {
    let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
    match protocol {
        Protocol::Http => serve_http(&mut stream, shared).await,
        Protocol::Mysql => mysql::serve(&mut stream, id, &shared.table).await,
        Protocol::Amqp => amqp::serve(&mut stream, &shared.queues).await,
        Protocol::Mongodb => {
            mongodb::serve(&mut stream, &shared.documents, &shared.message_ids).await
        }
        Protocol::Epmd => {
            let name = short_name(&shared.role.node).to_string();
            let me = erlang::Registration {
                name,
                port: shared.role.dist_port(),
            };
            erlang::serve_epmd(&mut stream, &me).await
        }
        Protocol::ErlangDist => erlang::accept(&mut stream, &shared.role.node, &shared.role.cookie)
            .await
            .map(|_| ()),
        Protocol::Tcp => serve_tcp(&mut stream, &shared.role.instance).await,
        other => Err(WorkloadError::Unsupported(other)),
    }
}

fn short_name(node: &str) -> &str {
    node.split('@').next().unwrap_or(node)
}

/// Echoes what the client sent, prefixed with the instance name, after the client
/// half-closes (or 64 KiB arrive).
async fn serve_tcp(stream: &mut TcpStream, instance: &str) -> Result<(), WorkloadError> {
    let mut data = Vec::new();
    (&mut *stream)
        .take(64 * 1024)
        .read_to_end(&mut data)
        .await?;
    let mut reply = format!("{instance} echo: ").into_bytes();
    reply.extend_from_slice(&data);
    stream.write_all(&reply).await?;
    stream.shutdown().await?;
    Ok(())
}

/// An HTTP request, answered as the scenario's workload would: a workload that calls an
/// HTTP upstream is a reverse proxy (the ALB in front of XNAT) and relays every request;
/// a write to a workload with other upstreams is stored there (the pii-demo form into
/// MySQL); anything else gets a one-line JSON echo of what arrived.
async fn serve_http(stream: &mut TcpStream, shared: &Shared) -> Result<(), WorkloadError> {
    let req = http::read_request(stream).await?;
    let http_upstream = shared
        .role
        .upstreams
        .iter()
        .find(|u| u.protocol == Protocol::Http);
    let (status, body) = match (http_upstream, req.method.as_str()) {
        (Some(up), _) => relay(up, &req).await,
        (None, "POST" | "PUT") if !shared.role.upstreams.is_empty() => store(&req, shared).await,
        _ => (200, echo(&shared.role, &req)),
    };
    http::write_response(stream, status, body.as_bytes()).await
}

/// `{"app":…,"instance":…,"method":…,"uri":…}`: which workload answered, and the method
/// and URI it saw, so probes can tell where a request really arrived.
fn echo(role: &Role, req: &http::Request) -> String {
    let line = serde_json::json!({
        "app": role.workload,
        "instance": role.instance,
        "method": req.method,
        "uri": req.path,
    });
    format!("{line}\n")
}

/// Relays a request to the upstream and its answer back. An upstream that cannot be
/// reached, resets or times out is a 502, as from any reverse proxy.
async fn relay(up: &Upstream, req: &http::Request) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(&up.dial).await?;
        let mut fwd = req.clone();
        fwd.headers.retain(|k, _| k == "content-type");
        fwd.headers.insert("host".into(), up.workload.clone());
        http::exchange(&mut stream, &fwd).await
    };
    match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
        Ok(Ok(resp)) => (
            resp.status,
            String::from_utf8_lossy(&resp.body).into_owned(),
        ),
        Ok(Err(e)) => (
            502,
            format!(
                "502 Bad Gateway: upstream {} at {}: {e}\n",
                up.workload, up.dial
            ),
        ),
        Err(_) => (
            502,
            format!(
                "502 Bad Gateway: upstream {} at {} timed out\n",
                up.workload, up.dial
            ),
        ),
    }
}

/// A write: every upstream receives the submitted data in its own protocol, as the
/// pii-demo web app writes a submitted form into MySQL.
async fn store(req: &http::Request, shared: &Shared) -> (u16, String) {
    let mut done = Vec::new();
    for up in &shared.role.upstreams {
        let result = tokio::time::timeout(UPSTREAM_TIMEOUT, forward(up, req)).await;
        match result {
            Ok(Ok(answer)) => done.push(format!("{} ({:?}): {answer}", up.workload, up.protocol)),
            Ok(Err(e)) => {
                return (
                    502,
                    format!("upstream {} at {} failed: {e}\n", up.workload, up.dial),
                );
            }
            Err(_) => {
                return (
                    502,
                    format!("upstream {} at {} timed out\n", up.workload, up.dial),
                );
            }
        }
    }
    (
        200,
        format!("stored by {}\n{}\n", shared.role.instance, done.join("\n")),
    )
}

async fn forward(up: &Upstream, req: &http::Request) -> Result<String, WorkloadError> {
    let mut stream = TcpStream::connect(&up.dial).await?;
    match up.protocol {
        Protocol::Mysql => mysql::query(&mut stream, &insert_statement(req)).await,
        Protocol::Amqp => {
            let opts = amqp::PublishOptions {
                queue: "meshproof",
                quorum: false,
                consume: false,
            };
            let sent = amqp::publish(&mut stream, &opts, &req.body).await?;
            Ok(format!("published to {}", sent.product))
        }
        Protocol::Http => {
            let mut fwd = req.clone();
            fwd.headers.retain(|k, _| k == "content-type");
            fwd.headers.insert("host".into(), up.workload.clone());
            let resp = http::exchange(&mut stream, &fwd).await?;
            Ok(format!("HTTP {}", resp.status))
        }
        Protocol::Tcp => {
            stream.write_all(&req.body).await?;
            stream.shutdown().await?;
            let mut back = Vec::new();
            stream.take(64 * 1024).read_to_end(&mut back).await?;
            Ok(format!("{} bytes back", back.len()))
        }
        other => Err(WorkloadError::Unsupported(other)),
    }
}

/// `INSERT INTO users (...) VALUES (...)` from a form, or the raw body as one column.
fn insert_statement(req: &http::Request) -> String {
    let form = req.form();
    let fields: Vec<(String, String)> = if form.is_empty() {
        vec![(
            "payload".into(),
            String::from_utf8_lossy(&req.body).into_owned(),
        )]
    } else {
        form
    };
    let columns: Vec<String> = fields
        .iter()
        .map(|(k, _)| {
            k.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let values: Vec<String> = fields.iter().map(|(_, v)| mysql::quote(v)).collect();
    format!(
        "INSERT INTO users ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

/// Contacts every cluster peer on a fixed period with fresh connections, so every
/// capture window sees complete handshakes (a long-lived connection opened before the
/// capture would show no ClientHello).
async fn cluster_loop(shared: Arc<Shared>) -> Result<(), WorkloadError> {
    let period = Duration::from_millis(shared.role.cluster_interval_ms.max(100));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        for up in &shared.role.upstreams {
            let result = tokio::time::timeout(period * 2, contact_peer(up, &shared.role)).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => shared
                    .reporter
                    .debug(&format!("peer {} at {}: {e}", up.workload, up.dial)),
                Err(_) => shared
                    .reporter
                    .debug(&format!("peer {} at {} timed out", up.workload, up.dial)),
            }
        }
    }
}

/// Sends every quorum-queue message to each distribution peer, as a quorum queue's
/// leader replicates to its followers.
async fn replicate_loop(
    shared: Arc<Shared>,
    mut messages: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) -> Result<(), WorkloadError> {
    while let Some(body) = messages.recv().await {
        for up in shared
            .role
            .upstreams
            .iter()
            .filter(|u| u.protocol == Protocol::ErlangDist)
        {
            let send = async {
                let mut stream = TcpStream::connect(&up.dial).await?;
                erlang::send(&mut stream, &shared.role.node, &shared.role.cookie, &body).await
            };
            match tokio::time::timeout(UPSTREAM_TIMEOUT, send).await {
                Ok(Ok(())) => shared.reporter.debug(&format!(
                    "replicated {} bytes to {}",
                    body.len(),
                    up.dial
                )),
                Ok(Err(e)) => shared
                    .reporter
                    .info(&format!("replication to {} failed: {e}", up.dial)),
                Err(_) => shared
                    .reporter
                    .info(&format!("replication to {} timed out", up.dial)),
            }
        }
    }
    Ok(())
}

async fn contact_peer(up: &Upstream, role: &Role) -> Result<(), WorkloadError> {
    let peer = up.peer_node.as_deref().unwrap_or("rabbit");
    match up.protocol {
        Protocol::Epmd => {
            let mut stream = TcpStream::connect(&up.dial).await?;
            erlang::port_please(&mut stream, short_name(peer))
                .await
                .map(|_| ())
        }
        Protocol::ErlangDist => {
            let mut stream = TcpStream::connect(&up.dial).await?;
            erlang::connect(&mut stream, &role.node, &role.cookie, 2)
                .await
                .map(|_| ())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_is_one_json_line_naming_workload_method_and_uri() {
        let role: Role = serde_json::from_value(serde_json::json!({
            "workload": "xnat-web", "instance": "xnat-web-0", "node": "", "cookie": "",
            "listeners": [], "upstreams": [], "cluster_interval_ms": 0
        }))
        .unwrap();
        let req = http::Request {
            method: "GET".into(),
            path: "/data?probe=\"x\"".into(),
            ..Default::default()
        };
        let line = echo(&role, &req);
        assert!(line.contains(r#""method":"GET""#), "{line}");
        assert!(line.contains(r#""app":"xnat-web""#), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["uri"], "/data?probe=\"x\"");
    }

    #[tokio::test]
    async fn a_relay_to_an_unreachable_upstream_is_a_502() {
        // Bind and drop a listener, so the port is known to refuse connections.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let up = Upstream {
            workload: "xnat-web".into(),
            protocol: Protocol::Http,
            dial: format!("127.0.0.1:{port}"),
            peer_node: None,
        };
        let (status, body) = relay(&up, &http::Request::default()).await;
        assert_eq!(status, 502);
        assert!(body.starts_with("502 Bad Gateway"), "{body}");
    }

    #[test]
    fn form_posts_become_inserts() {
        let mut req = http::Request {
            method: "POST".into(),
            ..Default::default()
        };
        req.headers.insert(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        );
        req.body = b"first-name=Ann&email=x%27y".to_vec();
        assert_eq!(
            insert_statement(&req),
            "INSERT INTO users (firstname, email) VALUES ('Ann', 'x\\'y')"
        );
    }
}
