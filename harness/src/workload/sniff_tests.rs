//! The workload's bytes, recorded from both directions of real exchanges over in-memory
//! pipes, are recognised by the analyzer's protocol sniffers: the framing is the real one.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::{amqp, erlang, http, mongodb, mysql};
use crate::wire::sniff::{Sniff, sniff};

/// A stream that records everything written through it.
struct Tee {
    inner: DuplexStream,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Tee {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tee {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, data))?;
        self.sent.lock().unwrap().extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What one side sent.
type Sent = Arc<Mutex<Vec<u8>>>;

/// Two connected recording ends: (client, server, client's bytes, server's bytes).
fn pipe() -> (Tee, Tee, Sent, Sent) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (ca, cb) = (Arc::default(), Arc::default());
    (
        Tee {
            inner: a,
            sent: Arc::clone(&ca),
        },
        Tee {
            inner: b,
            sent: Arc::clone(&cb),
        },
        ca,
        cb,
    )
}

/// The protocol the analyzer's sniffer recognises in the client's bytes, else the server's.
fn sniffed(client: &Mutex<Vec<u8>>, server: &Mutex<Vec<u8>>) -> Option<&'static str> {
    [client, server]
        .into_iter()
        .find_map(|side| match sniff(&side.lock().unwrap()) {
            Sniff::Found(protocol, _) => Some(protocol.as_str()),
            _ => None,
        })
}

#[tokio::test]
async fn mysql_is_recognised() {
    let (mut c, mut s, cb, sb) = pipe();
    tokio::spawn(async move { mysql::serve(&mut s, 1, &mysql::Table::default()).await });
    mysql::query(&mut c, "INSERT INTO users (email) VALUES ('x')")
        .await
        .unwrap();
    assert_eq!(sniffed(&cb, &sb), Some("mysql"));
}

#[tokio::test]
async fn amqp_is_recognised() {
    let (mut c, mut s, cb, sb) = pipe();
    tokio::spawn(async move { amqp::serve(&mut s, &amqp::Queues::default()).await });
    let opts = amqp::PublishOptions {
        queue: "q",
        quorum: true,
        consume: true,
    };
    amqp::publish(&mut c, &opts, b"body").await.unwrap();
    assert_eq!(sniffed(&cb, &sb), Some("amqp"));
}

#[tokio::test]
async fn http_is_recognised() {
    let (mut c, mut s, cb, sb) = pipe();
    tokio::spawn(async move {
        let _ = http::read_request(&mut s).await;
        http::write_response(&mut s, 200, b"ok").await
    });
    let req = http::Request {
        method: "GET".into(),
        path: "/".into(),
        ..Default::default()
    };
    http::exchange(&mut c, &req).await.unwrap();
    assert_eq!(sniffed(&cb, &sb), Some("http"));
}

#[tokio::test]
async fn epmd_and_distribution_are_recognised() {
    let (mut c, mut s, cb, sb) = pipe();
    let me = erlang::Registration {
        name: "rabbit".into(),
        port: 25672,
    };
    tokio::spawn(async move { erlang::serve_epmd(&mut s, &me).await });
    erlang::port_please(&mut c, "rabbit").await.unwrap();
    assert_eq!(sniffed(&cb, &sb), Some("epmd"));

    let (mut c, mut s, cb, sb) = pipe();
    tokio::spawn(async move { erlang::accept(&mut s, "rabbit@b", "cookie").await });
    erlang::connect(&mut c, "rabbit@a", "cookie", 1)
        .await
        .unwrap();
    assert_eq!(sniffed(&cb, &sb), Some("erlang-dist"));
}

#[tokio::test]
async fn mongodb_is_recognised() {
    let (mut c, mut s, cb, sb) = pipe();
    tokio::spawn(async move {
        let id = std::sync::atomic::AtomicI32::new(1);
        mongodb::serve(&mut s, &mongodb::Store::default(), &id).await
    });
    let ops = mongodb::Operations {
        database: "test".into(),
        collection: "ratings".into(),
        find: Some(bson::doc! {}),
        ..Default::default()
    };
    mongodb::client(&mut c, &ops).await.unwrap();
    assert_eq!(sniffed(&cb, &sb), Some("mongodb"));
    assert_eq!(
        sniffed(&sb, &sb),
        Some("mongodb"),
        "the server's replies alone"
    );
}
