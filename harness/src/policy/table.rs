//! The `tls-check` table, modelled on the `istioctl authn tls-check` output Istio removed
//! in 1.6: one line per client and service port, then the conflicts explained.

use std::fmt::Write;

use super::matrix::Matrix;
use super::types::{PeerSource, Row, Status, TlsSource};

const HEADERS: [&str; 10] = [
    "CLIENT",
    "HOST:PORT",
    "TARGET",
    "STATUS",
    "SERVER",
    "CLIENT",
    "AUTHN POLICY",
    "DESTINATION RULE",
    "SIDECARS",
    "WIRE",
];

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn cells(r: &Row, domain: &str) -> [String; 10] {
    let mut host = if r.service.contains('.') {
        format!("{}:{}", r.service, r.port)
    } else {
        format!("{}.{}.svc.{}:{}", r.service, r.namespace, domain, r.port)
    };
    if let Some(req) = &r.request {
        host.push_str(&format!(" ({req})"));
    }
    let server = match &r.server_source {
        PeerSource::NotIntercepted { .. } => "-".to_string(),
        _ => r.server_mode.as_str().to_string(),
    };
    let client = match &r.client_tls_source {
        TlsSource::NotIntercepted { .. } => "-".to_string(),
        _ => r.client_tls.as_str().to_string(),
    };
    let status = match &r.status {
        Status::Ok => "OK".to_string(),
        Status::Conflict { .. } => "CONFLICT".to_string(),
        Status::CannotPredict { .. } => "CANNOT PREDICT".to_string(),
    };
    let wire = match r.status.wire_undecided() {
        Some(_) => "?".to_string(),
        None => r.class.to_string(),
    };
    [
        r.client.to_string(),
        host,
        r.target_port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "?".into()),
        status,
        server,
        client,
        r.server_source.to_string(),
        r.client_tls_source.to_string(),
        format!("{}/{}", yes(r.client_sidecar), yes(r.server_sidecar)),
        wire,
    ]
}

/// `client -> service:port`, with the request when there is one.
fn label(r: &Row) -> String {
    match &r.request {
        Some(req) => format!("{} -> {}:{} ({req})", r.client, r.service, r.port),
        None => format!("{} -> {}:{}", r.client, r.service, r.port),
    }
}

/// Renders the matrix as the `tls-check` table, followed by conflicts, the rows the model
/// cannot predict (and why), notes and problems.
pub fn render(m: &Matrix) -> String {
    let rows: Vec<[String; 10]> = m.rows.iter().map(|r| cells(r, &m.mesh.domain)).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &HEADERS);
    for row in &rows {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    let conflicts: Vec<&Row> = m
        .rows
        .iter()
        .filter(|r| matches!(r.status, Status::Conflict { .. }))
        .collect();
    if !conflicts.is_empty() {
        let _ = writeln!(out, "\nConflicts:");
        for r in conflicts {
            if let Status::Conflict {
                problem,
                consequence,
            } = &r.status
            {
                let _ = writeln!(out, "  {}: {problem}; {consequence}", label(r));
            }
        }
    }
    let undecided: Vec<String> = m
        .rows
        .iter()
        .filter_map(|r| match &r.status {
            Status::CannotPredict { why, .. } => {
                Some(format!("  {}: cannot predict: {why}", label(r)))
            }
            _ => None,
        })
        .collect();
    if !undecided.is_empty() {
        let _ = writeln!(out, "\nCannot predict:");
        for u in undecided {
            let _ = writeln!(out, "{u}");
        }
    }
    let notes: Vec<String> = m
        .rows
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("  {}: {n}", label(r))))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\nNotes:");
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    if !m.problems.is_empty() {
        let _ = writeln!(out, "\nNot evaluated:");
        for p in &m.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}
