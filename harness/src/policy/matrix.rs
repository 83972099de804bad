//! From pairs to the matrix: dispatch per mesh and server, follow requests through
//! gateways and reverse proxies, and merge duplicate rows.

use serde::Serialize;

use super::context::{Ctx, Endpoint};
use super::inject_webhook::PodAdmission;
use super::types::{Consequence, ExpectedFlow, Pair, Peer, PeerSource, Row, Status, TlsSource};
use super::{MeshKind, MeshOptions, connect, consul, egress, external, gateway};
use crate::manifest::Document;

/// The expected behaviour of every declared pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    /// The mesh options the rows were computed with.
    pub mesh: MeshOptions,
    /// One row per client, service port and (for HTTP probes) request.
    pub rows: Vec<Row>,
    /// Pairs or documents the model could not evaluate, one sentence each.
    pub problems: Vec<String>,
}

/// How many forwarding hops (gateway, reverse proxy) a request is followed through.
const MAX_HOPS: usize = 4;

/// Evaluates pairs against documents given in creation order (oldest first).
pub fn evaluate(docs: &[Document], pairs: &[Pair], mesh: &MeshOptions) -> Matrix {
    let ctx = Ctx::new(docs, mesh);
    let mut m = Matrix {
        mesh: mesh.clone(),
        rows: Vec::new(),
        problems: ctx
            .cluster
            .problems
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    for pair in pairs {
        evaluate_pair(&ctx, pair, 0, &mut m);
    }
    m.rows = merge(std::mem::take(&mut m.rows));
    m.problems.sort();
    m.problems.dedup();
    m
}

fn evaluate_pair(ctx: &Ctx, pair: &Pair, depth: usize, m: &mut Matrix) -> Option<Row> {
    let evaluated = one(ctx, pair);
    let (mut row, next) = match evaluated {
        Ok(pair_row) => pair_row,
        Err(problem) => {
            m.problems.push(format!(
                "{} -> {}:{}: {problem}",
                pair.client, pair.service, pair.port
            ));
            return None;
        }
    };
    // A hop is followed when the front row lets the request through, or may: its own
    // wire is worth predicting even when the front row's outcome is undecided.
    let passes = matches!(row.status, Status::Ok | Status::CannotPredict { .. });
    if let Some(next) = next
        && depth < MAX_HOPS
        && passes
        && let Some(upstream) = evaluate_pair(ctx, &next, depth + 1, m)
        && row.status.is_ok()
    {
        row.status = propagate(&upstream);
    }
    m.rows.push(row.clone());
    Some(row)
}

/// One pair's row and the hop its request is forwarded to, if any, with what the
/// injection webhook does to the pods of either end.
fn one(ctx: &Ctx, pair: &Pair) -> Result<(Row, Option<Pair>), String> {
    let client = ctx
        .endpoint(&pair.client)
        .ok_or_else(|| format!("client {} has no Deployment or StatefulSet", pair.client))?;
    let admitted = |e: &Endpoint| e.pod.as_ref().map(|p| ctx.admission(p));
    let client_admission = admitted(&client);
    if let Some(PodAdmission::Rejected(why)) = &client_admission {
        return Err(format!("the client's pods are never created: {why}"));
    }
    let server_admission = ctx.endpoint(&pair.server).as_ref().and_then(admitted);
    let (mut row, next) = one_admitted(ctx, pair, &client)?;
    match (client_admission, server_admission) {
        (_, Some(PodAdmission::Rejected(why))) => {
            let consequence = if row.client_sidecar
                || matches!(pair.client, Peer::IngressGateway | Peer::EgressGateway)
            {
                if row.protocol.is_http() {
                    Consequence::Unavailable503
                } else {
                    Consequence::Reset
                }
            } else {
                Consequence::Refused
            };
            row.status = Status::conflict(
                format!(
                    "{} has no endpoints: its pods are never created: {why}",
                    pair.service
                ),
                consequence,
            );
            Ok((row, None))
        }
        (Some(PodAdmission::Unknown(why)), _) | (_, Some(PodAdmission::Unknown(why))) => {
            row.status = Status::cannot_predict_wire(why);
            Ok((row, None))
        }
        _ => Ok((row, next)),
    }
}

fn one_admitted(ctx: &Ctx, pair: &Pair, client: &Endpoint) -> Result<(Row, Option<Pair>), String> {
    let client = client.clone();
    // An external host that a `mesh` VirtualService sends to the egress gateway.
    let external =
        matches!(pair.server, Peer::Workload { .. }) && ctx.endpoint(&pair.server).is_none();
    if external
        && ctx.mesh.kind == MeshKind::Istio
        && let Some(via) = egress::to_gateway(ctx, pair)
    {
        return gateway::row(ctx, &via, &client).map(|e| (e.row, e.next));
    }
    match &pair.server {
        Peer::Host => Err("the host is not a server".into()),
        Peer::IngressGateway | Peer::EgressGateway if ctx.mesh.kind != MeshKind::Istio => {
            Err("gateways exist only with Istio".into())
        }
        Peer::IngressGateway | Peer::EgressGateway => {
            gateway::row(ctx, pair, &client).map(|e| (e.row, e.next))
        }
        Peer::Workload { .. } => {
            let row = match ctx.endpoint(&pair.server) {
                None => external::row(ctx, pair, &client)?,
                Some(server) => workload(ctx, pair, &client, &server)?,
            };
            let next = forwarded(ctx, pair, &row);
            Ok((row, next))
        }
    }
}

/// The hop a reverse proxy forwards an HTTP request to: its only HTTP upstream.
fn forwarded(ctx: &Ctx, pair: &Pair, row: &Row) -> Option<Pair> {
    let request = pair.request.as_ref()?;
    if !row.protocol.is_http() {
        return None;
    }
    let http: Vec<&Pair> = pair
        .onward
        .iter()
        .filter(|o| one(ctx, o).is_ok_and(|(r, _)| r.protocol.is_http()))
        .collect();
    let [upstream] = http.as_slice() else {
        return None;
    };
    let mut next = (*upstream).clone();
    next.request = Some(request.clone());
    next.origin = format!("via {}", pair.server.name());
    Some(next)
}

fn workload(ctx: &Ctx, pair: &Pair, client: &Endpoint, server: &Endpoint) -> Result<Row, String> {
    let pod = server.pod.as_ref().ok_or("server pod")?;
    match ctx.mesh.kind {
        MeshKind::Consul => consul::row(ctx, pair, client, server, pod),
        MeshKind::Istio | MeshKind::None => connect::workload_row(ctx, pair, client, server, pod),
    }
}

/// The front row's status when the hop behind it fails: HTTP answers pass through a
/// proxy; a failed connection becomes 503 from an Envoy (a gateway, or the proxy's own
/// sidecar) or 502 from a proxy without one. A hop the model cannot predict leaves the
/// front row's outcome undecided too (its own wire class stays predicted).
fn propagate(upstream: &Row) -> Status {
    let via = upstream.client.name();
    let (problem, consequence) = match &upstream.status {
        Status::Ok => return Status::Ok,
        Status::CannotPredict { why, .. } => {
            return Status::cannot_predict(format!(
                "{via} -> {}:{}: {why}",
                upstream.service, upstream.port
            ));
        }
        Status::Conflict {
            problem,
            consequence,
        } => (problem, consequence),
    };
    let envoy_in_front = matches!(upstream.client, Peer::IngressGateway | Peer::EgressGateway)
        || (upstream.client_sidecar
            && !matches!(upstream.client_tls_source, TlsSource::NotIntercepted { .. }));
    let consequence = match consequence {
        Consequence::Forbidden403
        | Consequence::NotFound404
        | Consequence::Unavailable503
        | Consequence::BadGateway502 => *consequence,
        _ if envoy_in_front => Consequence::Unavailable503,
        _ => Consequence::BadGateway502,
    };
    Status::conflict(
        format!("{via} -> {}:{}: {problem}", upstream.service, upstream.port),
        consequence,
    )
}

/// Rows are one per client, server, Service port and request; the request includes its
/// Host header, since routing and authorization tell Hosts apart.
fn key(r: &Row) -> (String, String, String, String, u16, String) {
    (
        r.client.to_string(),
        r.server.to_string(),
        r.service.clone(),
        r.namespace.clone(),
        r.port,
        r.request
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    )
}

/// Merges rows for the same pair (a call and a probe), keeping every origin.
fn merge(rows: Vec<Row>) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for row in rows {
        match out.iter_mut().find(|r| key(r) == key(&row)) {
            Some(existing) => {
                for o in row.origins {
                    if !existing.origins.contains(&o) {
                        existing.origins.push(o);
                    }
                }
                for n in row.notes {
                    if !existing.notes.contains(&n) {
                        existing.notes.push(n);
                    }
                }
            }
            None => out.push(row),
        }
    }
    out.sort_by_key(key);
    out
}

/// The flows the matrix expects on the wire, one per client, server, port and class.
/// Connections refused before any byte is sent carry no class and are left out. When the
/// model cannot predict the class of one row, every flow between the same peers and port
/// says so: the runner cannot tell that row's connections from the others'.
pub fn expected_flows(m: &Matrix) -> Vec<ExpectedFlow> {
    let undecided: Vec<(String, String, u16, String)> = m
        .rows
        .iter()
        .filter_map(|r| {
            let why = r.status.wire_undecided()?;
            let label = match &r.request {
                Some(req) => format!("{} -> {}:{} ({req})", r.client, r.service, r.port),
                None => format!("{} -> {}:{}", r.client, r.service, r.port),
            };
            Some((
                r.client.name().to_string(),
                r.server.name().to_string(),
                r.wire_port?,
                format!("{label}: {why}"),
            ))
        })
        .collect();
    let mut flows: Vec<ExpectedFlow> = m
        .rows
        .iter()
        .filter(|r| {
            !matches!(
                r.status,
                Status::Conflict {
                    consequence: Consequence::Refused,
                    ..
                }
            )
        })
        .filter_map(|r| {
            let (from, to, port) = (r.client.name(), r.server.name(), r.wire_port?);
            let cannot_predict = undecided
                .iter()
                .find(|(f, t, p, _)| (f.as_str(), t.as_str(), *p) == (from, to, port))
                .map(|(_, _, _, why)| why.clone());
            Some(ExpectedFlow {
                from: from.to_string(),
                to: to.to_string(),
                port,
                class: r.class,
                because: because(r),
                cannot_predict,
            })
        })
        .collect();
    flows.sort();
    flows.dedup_by(|a, b| (&a.from, &a.to, a.port, a.class) == (&b.from, &b.to, b.port, b.class));
    flows
}

/// One line on why a row has its class: the client's setting and the server's mode.
fn because(r: &Row) -> String {
    let client = match &r.client_tls_source {
        TlsSource::NotIntercepted { reason } => format!("client not intercepted ({reason})"),
        source => format!("client {} ({source})", r.client_tls.as_str()),
    };
    let server = match &r.server_source {
        PeerSource::NotIntercepted { reason } => format!("server not intercepted ({reason})"),
        source => format!("server {} ({source})", r.server_mode.as_str()),
    };
    format!("{client}; {server}")
}
