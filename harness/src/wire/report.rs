//! A human-readable table of an [`Analysis`], for `cargo xtask capture analyze`.

use std::fmt::Write;

use super::Analysis;

const HEADERS: [&str; 10] = [
    "CLIENT",
    "SERVER",
    "CLASS",
    "PROTOCOL",
    "SNI",
    "ALPN",
    "TLS",
    "CANARY",
    "CLIENT-BYTES",
    "SERVER-BYTES",
];

/// Renders the flows as an aligned text table followed by a one-line summary.
pub fn render_table(analysis: &Analysis) -> String {
    let dash = || "-".to_string();
    let rows: Vec<[String; 10]> = analysis
        .flows
        .iter()
        .map(|f| {
            [
                f.client.to_string(),
                f.server.to_string(),
                f.class.to_string(),
                f.protocol.clone().unwrap_or_else(dash),
                f.sni.clone().unwrap_or_else(dash),
                if f.alpn.is_empty() {
                    dash()
                } else {
                    f.alpn.join(",")
                },
                f.tls_version.clone().unwrap_or_else(dash),
                f.canary_hits.to_string(),
                f.client_bytes.to_string(),
                f.server_bytes.to_string(),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&HEADERS);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    let hits: u64 = analysis.flows.iter().map(|f| f.canary_hits).sum();
    let _ = writeln!(
        out,
        "{} flows, {} packets, {} bytes, {} canary hits",
        analysis.flows.len(),
        analysis.packets,
        analysis.bytes,
        hits
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flow, FlowClass};

    #[test]
    fn columns_align_and_missing_values_are_dashes() {
        let flow = Flow {
            client: "10.244.1.5:51234".parse().unwrap(),
            server: "10.244.2.7:3306".parse().unwrap(),
            class: FlowClass::Plaintext,
            protocol: Some("mysql".into()),
            sni: None,
            alpn: vec![],
            tls_version: None,
            canary_hits: 1,
            canary_scan: Default::default(),
            canary_encodings: Vec::new(),
            frames: Default::default(),
            client_bytes: 120,
            server_bytes: 95,
        };
        let a = Analysis {
            packets: 12,
            bytes: 1400,
            flows: vec![flow],
        };
        let text = render_table(&a);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].find("SERVER"), lines[1].find("10.244.2.7"));
        assert!(lines[1].contains("plaintext  mysql"));
        assert_eq!(lines[2], "1 flows, 12 packets, 1400 bytes, 1 canary hits");
    }
}
