//! Kubernetes manifests: multi-document YAML files read into located documents.
//!
//! A [`Document`] keeps its source file and line, so every later error (a policy that
//! names an unknown port, an image without a tag) can point at the place to fix. Typed
//! views come from [`Document::typed`]: standard kinds parse into `k8s-openapi` types and
//! mesh resources into this crate's own CRD types.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Errors from reading manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{at}: invalid YAML: {message}")]
    Yaml {
        /// Where.
        at: SourceRef,
        /// The parser's message.
        message: String,
    },
    /// A document lacks `apiVersion`, `kind` or `metadata.name`.
    #[error("{at}: document has no {field}")]
    MissingField {
        /// Where the document starts.
        at: SourceRef,
        /// The missing field.
        field: &'static str,
    },
    /// A document does not match the type its kind promises.
    #[error("{at}: {kind} {name} does not parse as {kind}: {message}")]
    Shape {
        /// Where the document starts.
        at: SourceRef,
        /// The document's kind.
        kind: String,
        /// The document's name.
        name: String,
        /// What serde said.
        message: String,
    },
}

/// A place in a source file: `path:line:column`, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceRef {
    /// The file.
    pub path: PathBuf,
    /// The line, starting at 1 (0 when unknown).
    pub line: u32,
    /// The column, starting at 1 (0 when unknown).
    pub column: u32,
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// One YAML document from a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where the document starts.
    pub at: SourceRef,
    /// `apiVersion`, such as `security.istio.io/v1`.
    pub api_version: String,
    /// `kind`, such as `PeerAuthentication`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, if set.
    pub namespace: Option<String>,
    /// The whole document.
    pub value: Value,
}

impl Document {
    /// The API group: `security.istio.io` for `security.istio.io/v1`, empty for core.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// `kind/namespace/name`, the key reports and ledgers use.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind,
            self.namespace.as_deref().unwrap_or("-"),
            self.name
        )
    }

    /// The document parsed into `T`, with a located error when it does not fit.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, ManifestError> {
        serde_json::from_value(self.value.clone()).map_err(|e| ManifestError::Shape {
            at: self.at.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            message: e.to_string(),
        })
    }

    /// The namespace, or `default` when the document does not say.
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// Reads every document of a multi-document YAML file. Empty documents are skipped.
pub fn load_file(path: &Path) -> Result<Vec<Document>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(path, &text)
}

/// Parses multi-document YAML text; `path` is only used for locations.
pub fn parse_str(path: &Path, text: &str) -> Result<Vec<Document>, ManifestError> {
    let docs: Vec<serde_saphyr::Spanned<Value>> =
        serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml {
            at: locate(path, e.location()),
            message: first_line(&e.to_string()),
        })?;
    docs.into_iter()
        .filter(|d| !d.value.is_null())
        .map(|d| {
            let at = SourceRef {
                path: path.to_path_buf(),
                line: d.referenced.line() as u32,
                column: d.referenced.column() as u32,
            };
            document(at, d.value)
        })
        .collect()
}

fn document(at: SourceRef, value: Value) -> Result<Document, ManifestError> {
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let missing = |field| ManifestError::MissingField {
        at: at.clone(),
        field,
    };
    Ok(Document {
        api_version: text("/apiVersion").ok_or_else(|| missing("apiVersion"))?,
        kind: text("/kind").ok_or_else(|| missing("kind"))?,
        name: text("/metadata/name").ok_or_else(|| missing("metadata.name"))?,
        namespace: text("/metadata/namespace"),
        at,
        value,
    })
}

fn locate(path: &Path, loc: Option<serde_saphyr::Location>) -> SourceRef {
    let (line, column) = loc
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    SourceRef {
        path: path.to_path_buf(),
        line,
        column,
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: pii-demo
---
# a comment
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: pii-demo
spec:
  mtls:
    mode: STRICT
---
";

    #[test]
    fn documents_keep_their_start_line() {
        let docs = parse_str(Path::new("x.yaml"), TWO).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].key(), "Namespace/-/pii-demo");
        assert_eq!(docs[1].group(), "security.istio.io");
        assert_eq!(docs[1].namespace.as_deref(), Some("pii-demo"));
        assert!(docs[1].at.line >= 6, "{}", docs[1].at);
    }

    #[test]
    fn missing_kind_is_located() {
        let err =
            parse_str(Path::new("m.yaml"), "apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert!(err.to_string().starts_with("m.yaml:1:"), "{err}");
        assert!(err.to_string().contains("no kind"), "{err}");
    }

    #[test]
    fn bad_yaml_is_located() {
        let err = parse_str(Path::new("b.yaml"), "a: [1, 2\nb: c\n").unwrap_err();
        assert!(matches!(err, ManifestError::Yaml { .. }), "{err}");
        assert!(err.to_string().starts_with("b.yaml:"), "{err}");
    }

    #[test]
    fn typed_view_reports_shape_errors() {
        use k8s_openapi::api::core::v1::Namespace;
        let docs = parse_str(Path::new("x.yaml"), TWO).unwrap();
        let ns: Namespace = docs[0].typed().unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("pii-demo"));
        let bad = parse_str(
            Path::new("x.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: 3}\n",
        )
        .unwrap();
        assert!(bad[0].typed::<Namespace>().is_err());
    }
}
