//! Install and resolve against a loopback HTTP server that plays the release server.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::reporter::NullReporter;

const FAKE_KIND: &[u8] = b"#!/bin/sh\necho 'kind v0.33.0 go1.26.7 linux/amd64'\n";

/// Serves fixed bodies by path on loopback until the test ends.
async fn serve(routes: BTreeMap<String, Vec<u8>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match routes.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let header = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(header.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    port
}

fn versions(port: u16) -> Versions {
    let text = format!(
        r#"
[kind]
node-image = "kindest/node:v1.36.4@sha256:{h}"
kubernetes = "v1.36.4"
[tools.kind]
version = "v0.33.0"
url = "http://127.0.0.1:{port}/{{version}}/kind-{{platform}}"
checksum-url = "{{url}}.sha256sum"
version-command = ["version"]
platforms = {{ linux-amd64 = "linux-amd64" }}
[tools.kubectl]
version = "v1.36.4"
url = "http://127.0.0.1:{port}/missing/kubectl"
checksum-url = "{{url}}.sha256"
version-command = ["version", "--client", "-o", "json"]
platforms = {{ linux-amd64 = "linux/amd64" }}
[tools.istioctl]
version = "1.30.5"
url = "http://127.0.0.1:{port}/missing/istioctl"
checksum-url = "{{url}}.sha256"
version-command = ["version"]
platforms = {{ linux-amd64 = "linux-amd64" }}
[tools.helm]
version = "v4.3.0"
url = "http://127.0.0.1:{port}/missing/helm"
checksum-url = "{{url}}.sha256sum"
version-command = ["version"]
platforms = {{ linux-amd64 = "linux-amd64" }}
[manifests.metallb]
version = "v0.16.1"
url = "http://127.0.0.1:{port}/metallb-{{version}}.yaml"
[manifests.metrics-server]
version = "v0.9.0"
url = "http://127.0.0.1:{port}/components.yaml"
[existing]
tcpdump-image = "nicolaka/netshoot:v0.15"
[lab]
"#,
        h = "0".repeat(64)
    );
    Versions::parse(Path::new("versions.toml"), &text).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn options(cache: &Path) -> ToolOptions {
    ToolOptions {
        cache: cache.to_path_buf(),
        use_path_tools: false,
        platform: Platform {
            os: "linux",
            arch: "amd64",
        },
        path_dirs: vec![],
    }
}

fn empty_lock(dir: &Path) -> ToolsLock {
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    ToolsLock::load(dir).unwrap()
}

fn kind_routes(checksum_body: String) -> BTreeMap<String, Vec<u8>> {
    let mut routes = BTreeMap::new();
    routes.insert("/v0.33.0/kind-linux-amd64".to_string(), FAKE_KIND.to_vec());
    routes.insert(
        "/v0.33.0/kind-linux-amd64.sha256sum".to_string(),
        checksum_body.into_bytes(),
    );
    routes
}

#[tokio::test]
async fn a_verified_download_is_installed_and_recorded() {
    let port = serve(kind_routes(format!(
        "{}  kind-linux-amd64\n",
        sha(FAKE_KIND)
    )))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut lock = empty_lock(dir.path());
    let v = versions(port);
    let opts = options(&dir.path().join("cache"));
    // kind installs; kubectl's URL 404s, so install stops there with the URL in the error.
    let err = install(&v, &mut lock, &opts, &Exec::new(), &NullReporter)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/missing/kubectl"), "{err}");
    let kind = tool_dir(&opts.cache, "kind", "v0.33.0").join("kind");
    assert_eq!(std::fs::read(&kind).unwrap(), FAKE_KIND);
    let out = Exec::new()
        .run(&Cmd::new(kind.display().to_string()).arg("version"))
        .await
        .unwrap();
    assert_eq!(
        parse_version("kind", &out.stdout_text()).as_deref(),
        Some("v0.33.0")
    );
    let saved = ToolsLock::load(dir.path()).unwrap();
    assert_eq!(
        saved.recorded("kind@v0.33.0/linux-amd64"),
        Some(sha(FAKE_KIND).as_str())
    );
    // Resolution now finds kind in the cache and names the others as missing.
    let missing = resolve(&v, &opts, &Exec::new()).await.unwrap_err();
    let names: Vec<&str> = missing.iter().map(|m| m.tool.as_str()).collect();
    assert_eq!(
        names,
        ["kubectl", "istioctl"],
        "helm is run by no step, so never required"
    );
}

#[tokio::test]
async fn a_download_that_disagrees_with_upstream_is_refused() {
    let port = serve(kind_routes(format!("{}  kind\n", "ab".repeat(32)))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut lock = empty_lock(dir.path());
    let opts = options(&dir.path().join("cache"));
    let err = install(
        &versions(port),
        &mut lock,
        &opts,
        &Exec::new(),
        &NullReporter,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ToolsError::Checksum { .. }), "{err}");
    assert!(
        !tool_dir(&opts.cache, "kind", "v0.33.0")
            .join("kind")
            .exists()
    );
    assert_eq!(lock.recorded("kind@v0.33.0/linux-amd64"), None);
}

#[tokio::test]
async fn a_download_that_disagrees_with_the_lock_is_refused() {
    let port = serve(kind_routes(sha(FAKE_KIND))).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("fixtures")).unwrap();
    let locked = format!(
        "[\"kind@v0.33.0/linux-amd64\"]\nsha256 = \"{}\"\nsource = \"observed\"\n",
        "cd".repeat(32)
    );
    std::fs::write(dir.path().join("fixtures/tools.lock"), locked).unwrap();
    let mut lock = ToolsLock::load(dir.path()).unwrap();
    let opts = options(&dir.path().join("cache"));
    let err = install(
        &versions(port),
        &mut lock,
        &opts,
        &Exec::new(),
        &NullReporter,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ToolsError::LockMismatch { .. }), "{err}");
    assert!(
        !tool_dir(&opts.cache, "kind", "v0.33.0")
            .join("kind")
            .exists()
    );
}

#[tokio::test]
async fn path_tools_are_used_only_at_the_pinned_version() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("kind"),
        b"#!/bin/sh\necho 'kind v0.20.0 go1.20 linux/amd64'\n",
    )
    .unwrap();
    set_executable(&bin.join("kind")).unwrap();
    let v = versions(1);
    let mut opts = options(&dir.path().join("cache"));
    opts.path_dirs = vec![bin.clone()];
    let missing = resolve(&v, &opts, &Exec::new()).await.unwrap_err();
    let kind = missing.iter().find(|m| m.tool == "kind").unwrap();
    assert!(kind.to_string().contains("found v0.20.0 at"), "{kind}");
    opts.use_path_tools = true;
    let tool = resolve_one("kind", v.tool("kind").unwrap(), &opts, &Exec::new())
        .await
        .unwrap();
    assert_eq!(tool.origin, Origin::PathUnpinned("v0.20.0".into()));
    std::fs::write(bin.join("kind"), FAKE_KIND).unwrap();
    opts.use_path_tools = false;
    let tool = resolve_one("kind", v.tool("kind").unwrap(), &opts, &Exec::new())
        .await
        .unwrap();
    assert_eq!(tool.origin, Origin::Path);
}

#[tokio::test]
async fn manifests_are_cached_and_checked_against_the_lock() {
    let body = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: metallb-system\n".to_vec();
    let mut routes = BTreeMap::new();
    routes.insert("/metallb-v0.16.1.yaml".to_string(), body.clone());
    let port = serve(routes).await;
    let dir = tempfile::tempdir().unwrap();
    let mut lock = empty_lock(dir.path());
    let cache = dir.path().join("cache");
    let path = fetch_manifest(&versions(port), "metallb", &mut lock, &cache)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(
        lock.recorded("metallb@v0.16.1/any"),
        Some(sha(&body).as_str())
    );
    // A cached copy that was tampered with no longer matches the lock.
    std::fs::write(&path, b"kind: Tampered\n").unwrap();
    let err = fetch_manifest(&versions(port), "metallb", &mut lock, &cache)
        .await
        .unwrap_err();
    assert!(matches!(err, ToolsError::LockMismatch { .. }), "{err}");
}

#[test]
fn version_outputs_parse_in_each_tool_format() {
    assert_eq!(
        parse_version("kind", "kind v0.33.0 go1.26.7 linux/amd64\n").as_deref(),
        Some("v0.33.0")
    );
    let kubectl = r#"{"clientVersion":{"major":"1","minor":"36","gitVersion":"v1.36.4","platform":"linux/amd64"},"kustomizeVersion":"v5.7.1"}"#;
    assert_eq!(
        parse_version("kubectl", kubectl).as_deref(),
        Some("v1.36.4")
    );
    let istioctl = r#"{"clientVersion":{"version":"1.30.5","revision":"abc","golang_version":"go1.26","status":"Clean","tag":"1.30.5"}}"#;
    assert_eq!(
        parse_version("istioctl", istioctl).as_deref(),
        Some("1.30.5")
    );
    assert_eq!(parse_version("helm", "v4.3.0\n").as_deref(), Some("v4.3.0"));
    assert_eq!(parse_version("kubectl", "error: unknown flag"), None);
    assert!(same_version("v1.30.5", "1.30.5"));
}
