//! The MongoDB wire protocol, as far as a traffic generator needs it.
//!
//! The framing is the real one: a 16-byte standard message header (length, request id,
//! response-to, opcode) and OP_MSG (opcode 2013) with flag bits and one body section
//! (kind 0) holding a BSON command, encoded with the `bson` crate. The client sends
//! `hello`, then `insert` and `find` as drivers do (`$db` in the body); the server keeps
//! documents in memory per `database.collection`, starting from the data the scenario
//! seeds it with, and answers with `ok: 1` documents and cursors like `mongod`. No
//! authentication and no compression: the protocol stays readable unless something
//! (a mesh, or the app's own TLS) encrypts it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bson::{Bson, Document, doc, oid::ObjectId};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::WorkloadError;

/// OP_MSG, the only opcode of current drivers.
pub const OP_MSG: i32 = 2013;
const HEADER: usize = 16;
/// `maxMessageSizeBytes` that `hello` announces, and the largest message accepted.
const MAX_MESSAGE: usize = 48 << 20;
/// `maxWireVersion` 25 is MongoDB 8.0.
const MAX_WIRE_VERSION: i32 = 25;

/// One OP_MSG: its header ids and its body document.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The sender's id for this message.
    pub request_id: i32,
    /// The request this answers (0 for a request).
    pub response_to: i32,
    /// The body section (kind 0).
    pub body: Document,
}

/// Frames a message: header, flag bits 0, one kind-0 section.
pub fn encode(m: &Message) -> Result<Vec<u8>, WorkloadError> {
    let mut body = Vec::new();
    m.body
        .to_writer(&mut body)
        .map_err(|e| WorkloadError::Protocol(format!("bson: {e}")))?;
    let len = HEADER + 4 + 1 + body.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&m.request_id.to_le_bytes());
    out.extend_from_slice(&m.response_to.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads one OP_MSG. Other opcodes, section kinds other than 0, and checksums are
/// protocol errors: the workload's own peers never send them.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Message, WorkloadError> {
    let mut head = [0u8; HEADER];
    r.read_exact(&mut head).await?;
    let field = |i: usize| i32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let len = field(0);
    let opcode = field(12);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (HEADER + 5..=MAX_MESSAGE).contains(l))
        .ok_or_else(|| WorkloadError::Protocol(format!("mongodb message length {len}")))?;
    if opcode != OP_MSG {
        return Err(WorkloadError::Protocol(format!(
            "mongodb opcode {opcode}; only OP_MSG (2013) is spoken"
        )));
    }
    let mut rest = vec![0u8; len - HEADER];
    r.read_exact(&mut rest).await?;
    let flags = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if flags & 1 != 0 || rest[4] != 0 {
        return Err(WorkloadError::Protocol(format!(
            "OP_MSG flags {flags:#x}, section kind {}: only one kind-0 section without checksum is spoken",
            rest[4]
        )));
    }
    let body = Document::from_reader(&rest[5..])
        .map_err(|e| WorkloadError::Protocol(format!("OP_MSG body: {e}")))?;
    Ok(Message {
        request_id: field(4),
        response_to: field(8),
        body,
    })
}

/// Documents as a JSON value turns into them (plain JSON, or extended JSON).
pub fn document(v: &Value) -> Result<Document, WorkloadError> {
    match Bson::try_from(v.clone()) {
        Ok(Bson::Document(d)) => Ok(d),
        Ok(other) => Err(WorkloadError::Protocol(format!(
            "expected a document, got {other}"
        ))),
        Err(e) => Err(WorkloadError::Protocol(format!("document {v}: {e}"))),
    }
}

/// What a client asks of the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Operations {
    /// The database (`$db`).
    pub database: String,
    /// The collection.
    pub collection: String,
    /// Documents to insert first.
    pub insert: Vec<Document>,
    /// A filter to find with afterwards.
    pub find: Option<Document>,
}

/// The client: `hello`, then the insert and the find. Returns a one-line account of the
/// answers, with found documents in relaxed extended JSON (`_id` left out, so the text is
/// the data the scenario seeded or inserted).
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ops: &Operations,
) -> Result<String, WorkloadError> {
    let mut next_id = 0;
    let hello = call(s, &mut next_id, doc! {"hello": 1, "$db": "admin"}).await?;
    let mut text = format!(
        "hello: maxWireVersion {}",
        hello.get("maxWireVersion").unwrap_or(&Bson::Null)
    );
    if !ops.insert.is_empty() {
        let docs: Vec<Bson> = ops.insert.iter().cloned().map(Bson::Document).collect();
        let reply = call(
            s,
            &mut next_id,
            doc! {
                "insert": &ops.collection, "documents": docs, "ordered": true, "$db": &ops.database,
            },
        )
        .await?;
        text.push_str(&format!(
            "; inserted {}",
            reply.get("n").unwrap_or(&Bson::Null)
        ));
    }
    if let Some(filter) = &ops.find {
        let reply = call(
            s,
            &mut next_id,
            doc! {
                "find": &ops.collection, "filter": filter.clone(), "$db": &ops.database,
            },
        )
        .await?;
        let batch = reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map_err(|e| WorkloadError::Protocol(format!("find reply without a cursor: {e}")))?;
        let found: Vec<String> = batch
            .iter()
            .map(|d| {
                let mut d = d.clone();
                if let Bson::Document(doc) = &mut d {
                    doc.remove("_id");
                }
                d.into_relaxed_extjson().to_string()
            })
            .collect();
        text.push_str(&format!(
            "; found {} in {}.{}: [{}]",
            found.len(),
            ops.database,
            ops.collection,
            found.join(",")
        ));
    }
    Ok(text)
}

/// Sends one command and reads its answer, which must answer it and say `ok: 1`.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    next_id: &mut i32,
    body: Document,
) -> Result<Document, WorkloadError> {
    *next_id += 1;
    let request_id = *next_id;
    let request = Message {
        request_id,
        response_to: 0,
        body,
    };
    s.write_all(&encode(&request)?).await?;
    let reply = read(s).await?;
    if reply.response_to != request_id {
        return Err(WorkloadError::Protocol(format!(
            "reply to request {} while waiting for {request_id}",
            reply.response_to
        )));
    }
    if !ok(&reply.body) {
        return Err(WorkloadError::Protocol(format!(
            "server error: {}",
            reply.body
        )));
    }
    Ok(reply.body)
}

fn ok(d: &Document) -> bool {
    match d.get("ok") {
        Some(Bson::Double(f)) => *f == 1.0,
        Some(Bson::Int32(1)) | Some(Bson::Int64(1)) => true,
        _ => false,
    }
}

/// The server's documents, by `database.collection`.
#[derive(Debug, Default)]
pub struct Store {
    collections: Mutex<BTreeMap<String, Vec<Document>>>,
}

impl Store {
    /// A store holding `seed` (`database.collection` to documents).
    pub fn seeded(seed: &BTreeMap<String, Vec<Value>>) -> Result<Store, WorkloadError> {
        let mut collections = BTreeMap::new();
        for (ns, docs) in seed {
            let mut out = Vec::new();
            for v in docs {
                let mut d = document(v)?;
                if !d.contains_key("_id") {
                    d.insert("_id", ObjectId::new());
                }
                out.push(d);
            }
            collections.insert(ns.clone(), out);
        }
        Ok(Store {
            collections: Mutex::new(collections),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Document>>> {
        self.collections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Serves one connection until the client closes it.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    store: &Store,
    next_id: &std::sync::atomic::AtomicI32,
) -> Result<(), WorkloadError> {
    loop {
        let request = match read(s).await {
            Ok(m) => m,
            Err(WorkloadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let body = answer(&request.body, store);
        let reply = Message {
            request_id: next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            response_to: request.request_id,
            body,
        };
        s.write_all(&encode(&reply)?).await?;
    }
}

/// The answer to one command, as `mongod` shapes it.
pub fn answer(cmd: &Document, store: &Store) -> Document {
    let db = cmd.get_str("$db").unwrap_or("test").to_string();
    let Some((name, _)) = cmd.iter().next() else {
        return failure(59, "CommandNotFound", "empty command");
    };
    match name.as_str() {
        "hello" | "isMaster" | "ismaster" => doc! {
            "isWritablePrimary": true, "helloOk": true, "maxBsonObjectSize": 16 << 20,
            "maxMessageSizeBytes": MAX_MESSAGE as i32, "maxWriteBatchSize": 100_000,
            "minWireVersion": 0, "maxWireVersion": MAX_WIRE_VERSION, "readOnly": false,
            "ok": 1.0,
        },
        "ping" | "endSessions" => doc! {"ok": 1.0},
        "insert" => {
            let Ok(coll) = cmd.get_str("insert") else {
                return failure(2, "BadValue", "insert needs a collection name");
            };
            let Ok(docs) = cmd.get_array("documents") else {
                return failure(2, "BadValue", "insert needs documents");
            };
            let mut added = Vec::new();
            for d in docs {
                let Bson::Document(d) = d else {
                    return failure(2, "BadValue", "documents must be documents");
                };
                let mut d = d.clone();
                if !d.contains_key("_id") {
                    d.insert("_id", ObjectId::new());
                }
                added.push(d);
            }
            let n = added.len() as i32;
            store
                .lock()
                .entry(format!("{db}.{coll}"))
                .or_default()
                .extend(added);
            doc! {"n": n, "ok": 1.0}
        }
        "find" => {
            let Ok(coll) = cmd.get_str("find") else {
                return failure(2, "BadValue", "find needs a collection name");
            };
            let filter = cmd.get_document("filter").cloned().unwrap_or_default();
            let ns = format!("{db}.{coll}");
            let batch: Vec<Bson> = store
                .lock()
                .get(&ns)
                .map(|docs| {
                    docs.iter()
                        .filter(|d| matches(d, &filter))
                        .cloned()
                        .map(Bson::Document)
                        .collect()
                })
                .unwrap_or_default();
            doc! {"cursor": {"firstBatch": batch, "id": 0_i64, "ns": ns}, "ok": 1.0}
        }
        other => failure(
            59,
            "CommandNotFound",
            &format!("no such command: '{other}'"),
        ),
    }
}

/// Equality on top-level fields, the only filter the scenarios use.
fn matches(d: &Document, filter: &Document) -> bool {
    filter
        .iter()
        .all(|(k, v)| d.get(k) == Some(v) || same_number(d.get(k), v))
}

fn same_number(a: Option<&Bson>, b: &Bson) -> bool {
    let n = |x: &Bson| match x {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(f) => Some(*f),
        _ => None,
    };
    matches!((a.and_then(n), n(b)), (Some(x), Some(y)) if x == y)
}

fn failure(code: i32, name: &str, message: &str) -> Document {
    doc! {"ok": 0.0, "errmsg": message, "code": code, "codeName": name}
}

#[cfg(test)]
#[path = "mongodb_tests.rs"]
mod tests;
