//! HTTPS downloads with a sha256 computed while the bytes arrive.
//!
//! reqwest with rustls on the ring provider (the one crypto provider of the whole build).
//! Connections and reads have time limits, so an offline machine fails in seconds with a
//! clear message instead of hanging.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::ToolsError;

/// How long connecting may take before the download counts as offline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole download may take (istioctl and helm are tens of MB).
const TOTAL_TIMEOUT: Duration = Duration::from_secs(600);

/// A configured HTTPS client.
#[derive(Debug, Clone)]
pub struct Downloader {
    client: reqwest::Client,
}

impl Downloader {
    /// A client using the ring crypto provider and the platform's trust store.
    pub fn new() -> Result<Downloader, ToolsError> {
        // Installing fails harmlessly when another part of the program already chose the
        // (same) ring provider; it must happen before any rustls config is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .user_agent(concat!("meshproof/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ToolsError::Download {
                url: String::new(),
                message: chain(&e),
            })?;
        Ok(Downloader { client })
    }

    /// Fetches a small text resource (a checksum file).
    pub async fn text(&self, url: &str) -> Result<String, ToolsError> {
        let response = self.get(url).await?;
        response.text().await.map_err(|e| download_error(url, &e))
    }

    /// Streams `url` into `dest` and returns the lower-case hex sha256 of its bytes.
    pub async fn to_file(&self, url: &str, dest: &Path) -> Result<String, ToolsError> {
        let response = self.get(url).await?;
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|source| ToolsError::Write {
                path: dest.to_path_buf(),
                source,
            })?;
        let mut hasher = Sha256::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| download_error(url, &e))?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|source| ToolsError::Write {
                    path: dest.to_path_buf(),
                    source,
                })?;
        }
        file.flush().await.map_err(|source| ToolsError::Write {
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(hex::encode(hasher.finalize()))
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, ToolsError> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| download_error(url, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ToolsError::Download {
                url: url.to_string(),
                message: format!("HTTP {status}"),
            });
        }
        Ok(response)
    }
}

fn download_error(url: &str, err: &reqwest::Error) -> ToolsError {
    ToolsError::Download {
        url: url.to_string(),
        message: chain(err),
    }
}

/// The error and its causes on one line: reqwest's top-level text alone says little.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// The expected hash in an upstream checksum file: its first field, whatever follows it
/// (`hex  name`, `hex name`, or the bare hash kubectl publishes).
pub fn parse_checksum(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    let valid = first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| first.to_ascii_lowercase())
}

/// The sha256 of a file on disk, in lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ToolsError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|source| ToolsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|source| ToolsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5";

    #[test]
    fn every_upstream_checksum_format_yields_the_first_field() {
        // kind: `hex  name`; istioctl: `hex name`; kubectl: the bare hash; helm: `hex  name`.
        assert_eq!(
            parse_checksum(&format!("{HASH}  kind-linux-amd64\n")).as_deref(),
            Some(HASH)
        );
        assert_eq!(
            parse_checksum(&format!("{HASH} istioctl-1.30.5-linux-amd64.tar.gz")).as_deref(),
            Some(HASH)
        );
        assert_eq!(parse_checksum(HASH).as_deref(), Some(HASH));
        assert_eq!(parse_checksum(&HASH.to_uppercase()).as_deref(), Some(HASH));
    }

    #[test]
    fn garbage_is_not_a_checksum() {
        assert_eq!(parse_checksum(""), None);
        assert_eq!(parse_checksum("<html>Not Found</html>"), None);
        assert_eq!(parse_checksum(&HASH[..63]), None);
    }

    #[test]
    fn file_hash_matches_a_known_vector() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn unreachable_server_fails_fast_with_the_url() {
        // A port on loopback nobody listens on: refused at once, no internet needed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/kind");
        let started = std::time::Instant::now();
        let err = Downloader::new().unwrap().text(&url).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains(&url), "{err}");
    }
}
