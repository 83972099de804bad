//! The client side of a probe: connect, speak the protocol, report what came back.
//!
//! A probe observes and never judges. Connection failures (refused, reset, closed before
//! an answer, time-outs) are retried up to `attempts`; a complete answer, whatever it
//! says, ends the probe.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{WorkloadError, amqp, http, mongodb, mysql};

/// One probe to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// `host:port` to dial.
    pub dial: String,
    /// What to say.
    pub kind: ProbeKind,
    /// Per-attempt time limit in milliseconds.
    pub timeout_ms: u64,
    /// Attempts before giving up on a connection failure.
    pub attempts: u32,
}

/// The protocol exchange of a probe; strings already carry the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// An HTTP/1.1 request.
    Http {
        /// Method.
        method: String,
        /// Path and query.
        path: String,
        /// Headers, including `host`.
        headers: BTreeMap<String, String>,
        /// Body (a form already encoded).
        body: String,
    },
    /// Bytes over raw TCP; the reply is read until the server closes.
    Tcp {
        /// What to send.
        send: String,
    },
    /// One MySQL query.
    Mysql {
        /// SQL text.
        query: String,
    },
    /// An AMQP publish, and optionally a get.
    Amqp {
        /// Queue.
        queue: String,
        /// Body.
        publish: String,
        /// Read it back.
        consume: bool,
        /// Declare a quorum queue (replicated to the broker's cluster peers).
        #[serde(default)]
        quorum: bool,
    },
    /// MongoDB commands over OP_MSG: `hello`, then an insert and a find.
    Mongodb {
        /// The database (`$db`).
        database: String,
        /// The collection.
        collection: String,
        /// Documents to insert (JSON objects).
        #[serde(default)]
        insert: Vec<serde_json::Value>,
        /// The filter to find with afterwards (a JSON object), if any.
        #[serde(default)]
        find: Option<serde_json::Value>,
        /// Open the application's own TLS first, with this SNI.
        #[serde(default)]
        tls: Option<String>,
    },
}

/// What the probe saw; the lab turns it into a [`crate::provider::Observation`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// A complete answer was read.
    pub answered: bool,
    /// The HTTP status.
    pub status: Option<u16>,
    /// The answer in text (first 4 KiB).
    pub body: String,
    /// The connection was reset or closed before an answer.
    pub reset: bool,
    /// Attempts made.
    pub attempts: u32,
    /// The last transport error when nothing was answered.
    pub error: Option<String>,
    /// The local address the connection came from.
    pub client_addr: Option<String>,
}

/// Runs a probe with retries.
pub async fn run(req: &ProbeRequest) -> ProbeOutcome {
    let mut outcome = ProbeOutcome::default();
    let limit = Duration::from_millis(req.timeout_ms.max(1));
    for attempt in 1..=req.attempts.max(1) {
        outcome.attempts = attempt;
        let result = tokio::time::timeout(limit, once(req, &mut outcome)).await;
        match result {
            Ok(Ok((status, body))) => {
                outcome.answered = true;
                outcome.reset = false;
                outcome.error = None;
                outcome.status = status;
                outcome.body = truncate(body);
                return outcome;
            }
            Ok(Err(e)) => {
                outcome.reset = is_reset(&e);
                outcome.error = Some(e.to_string());
            }
            Err(_) => {
                outcome.reset = false;
                outcome.error = Some(format!("no answer within {limit:?}"));
            }
        }
        if attempt < req.attempts {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    outcome
}

fn truncate(mut body: String) -> String {
    if body.len() > 4096 {
        let mut cut = 4096;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    body
}

/// A reset, or a close before a complete answer, as a mesh does to a plaintext client
/// under STRICT. A refused connection is not a reset: nothing listened.
fn is_reset(e: &WorkloadError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        WorkloadError::Closed { .. } => true,
        WorkloadError::Io(io) => matches!(
            io.kind(),
            ConnectionReset | UnexpectedEof | BrokenPipe | ConnectionAborted
        ),
        _ => false,
    }
}

async fn once(
    req: &ProbeRequest,
    outcome: &mut ProbeOutcome,
) -> Result<(Option<u16>, String), WorkloadError> {
    let mut stream = TcpStream::connect(&req.dial).await?;
    outcome.client_addr = stream.local_addr().ok().map(|a| a.to_string());
    match &req.kind {
        ProbeKind::Http {
            method,
            path,
            headers,
            body,
        } => {
            let request = http::Request {
                method: method.clone(),
                path: path.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
                body: body.clone().into_bytes(),
            };
            let resp = http::exchange(&mut stream, &request).await?;
            Ok((
                Some(resp.status),
                String::from_utf8_lossy(&resp.body).into_owned(),
            ))
        }
        ProbeKind::Tcp { send } => {
            stream.write_all(send.as_bytes()).await?;
            stream.shutdown().await?;
            let mut back = Vec::new();
            stream.take(64 * 1024).read_to_end(&mut back).await?;
            if back.is_empty() {
                return Err(WorkloadError::Closed { after: 0 });
            }
            Ok((None, String::from_utf8_lossy(&back).into_owned()))
        }
        ProbeKind::Mysql { query } => Ok((None, mysql::query(&mut stream, query).await?)),
        ProbeKind::Amqp {
            queue,
            publish,
            consume,
            quorum,
        } => {
            let opts = amqp::PublishOptions {
                queue,
                quorum: *quorum,
                consume: *consume,
            };
            let got = amqp::publish(&mut stream, &opts, publish.as_bytes()).await?;
            let mut text = format!(
                "published {} bytes to {queue} on {}",
                publish.len(),
                got.product
            );
            if let Some(body) = got.consumed {
                text.push_str(&format!("; consumed: {}", String::from_utf8_lossy(&body)));
            }
            Ok((None, text))
        }
        ProbeKind::Mongodb {
            database,
            collection,
            insert,
            find,
            tls,
        } => {
            let ops = mongodb::Operations {
                database: database.clone(),
                collection: collection.clone(),
                insert: insert
                    .iter()
                    .map(mongodb::document)
                    .collect::<Result<_, _>>()?,
                find: find.as_ref().map(mongodb::document).transpose()?,
            };
            let text = match tls {
                Some(sni) => {
                    let mut secured = super::tls::connect(stream, sni).await?;
                    mongodb::client(&mut secured, &ops).await?
                }
                None => mongodb::client(&mut stream, &ops).await?,
            };
            Ok((None, text))
        }
    }
}

/// Waits until every address accepts a TCP connection and, when given, Envoy's admin
/// `/ready` answers 200. Used inside a pod to tell the lab the pod is ready.
pub async fn wait_ready(
    addrs: &[String],
    envoy_admin: Option<&str>,
    limit: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pending: Vec<String> = addrs.to_vec();
    let mut envoy = envoy_admin.map(str::to_string);
    loop {
        let mut still = Vec::new();
        for addr in pending {
            if TcpStream::connect(&addr).await.is_err() {
                still.push(addr);
            }
        }
        pending = still;
        if let Some(admin) = envoy.clone()
            && envoy_ready(&admin).await
        {
            envoy = None;
        }
        if pending.is_empty() && envoy.is_none() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let mut waiting = pending;
            waiting.extend(envoy.map(|a| format!("envoy admin {a}/ready")));
            return Err(format!(
                "not ready within {limit:?}: {}",
                waiting.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn envoy_ready(admin: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(admin).await else {
        return false;
    };
    let mut req = http::Request {
        method: "GET".into(),
        path: "/ready".into(),
        ..http::Request::default()
    };
    req.headers.insert("host".into(), admin.to_string());
    matches!(http::exchange(&mut stream, &req).await, Ok(resp) if resp.status == 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_is_not_a_reset_and_is_retried() {
        // Bind and drop to get a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let req = ProbeRequest {
            dial: format!("127.0.0.1:{port}"),
            kind: ProbeKind::Tcp { send: "x".into() },
            timeout_ms: 1000,
            attempts: 2,
        };
        let out = run(&req).await;
        assert!(!out.answered && !out.reset, "{out:?}");
        assert_eq!(out.attempts, 2);
        assert!(out.error.is_some());
    }

    #[tokio::test]
    async fn a_close_without_answer_is_a_reset() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                drop(s);
            }
        });
        let req = ProbeRequest {
            dial: addr.to_string(),
            kind: ProbeKind::Mysql {
                query: "SELECT 1".into(),
            },
            timeout_ms: 1000,
            attempts: 1,
        };
        let out = run(&req).await;
        assert!(out.reset && !out.answered, "{out:?}");
    }
}
