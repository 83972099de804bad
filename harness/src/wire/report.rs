//! A human-readable table of an [`Analysis`], for `cargo xtask capture analyze`.

use std::fmt::Write;

use super::{Analysis, Overlay};

const HEADERS: [&str; 11] = [
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
    "OVERLAY",
];

/// Renders the flows as an aligned text table followed by a one-line summary.
pub fn render_table(analysis: &Analysis) -> String {
    let dash = || "-".to_string();
    let rows: Vec<[String; 11]> = analysis
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
                f.overlay.as_ref().map_or_else(dash, overlay),
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
    for l in &analysis.links {
        let _ = writeln!(
            out,
            "cni-encrypted {} link {} <-> {}: {} packets, {} bytes (flows inside cannot be seen)",
            l.kind, l.endpoints[0], l.endpoints[1], l.packets, l.bytes
        );
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

/// `vxlan:42 10.0.0.1>10.0.0.2`, with `x2` when tunnels were nested.
fn overlay(o: &Overlay) -> String {
    let vni = o.vni.map(|v| format!(":{v}")).unwrap_or_default();
    let depth = if o.depth > 1 {
        format!(" x{}", o.depth)
    } else {
        String::new()
    };
    format!("{}{vni} {}>{}{depth}", o.kind, o.outer[0], o.outer[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EncryptedLink, EncryptionKind, Flow, FlowClass, TunnelKind};

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
            overlay: None,
        };
        let a = Analysis {
            packets: 12,
            bytes: 1400,
            flows: vec![flow],
            links: vec![],
        };
        let text = render_table(&a);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].find("SERVER"), lines[1].find("10.244.2.7"));
        assert!(lines[1].contains("plaintext  mysql"));
        assert_eq!(lines[2], "1 flows, 12 packets, 1400 bytes, 1 canary hits");
    }

    #[test]
    fn overlays_and_encrypted_links_are_shown() {
        let mut a = Analysis::default();
        a.flows.push(Flow {
            client: "10.244.1.5:51234".parse().unwrap(),
            server: "10.244.2.7:80".parse().unwrap(),
            class: FlowClass::Plaintext,
            protocol: None,
            sni: None,
            alpn: vec![],
            tls_version: None,
            canary_hits: 0,
            canary_scan: Default::default(),
            canary_encodings: Vec::new(),
            frames: Default::default(),
            client_bytes: 1,
            server_bytes: 1,
            overlay: Some(Overlay {
                kind: TunnelKind::Vxlan,
                vni: Some(1),
                outer: ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
                depth: 1,
            }),
        });
        a.links.push(EncryptedLink {
            kind: EncryptionKind::Wireguard,
            endpoints: ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
            packets: 4,
            bytes: 500,
        });
        let text = render_table(&a);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with("vxlan:1 10.0.0.1>10.0.0.2"),
            "{text}"
        );
        assert!(text.contains("cni-encrypted wireguard link 10.0.0.1 <-> 10.0.0.2: 4 packets"));
    }
}
