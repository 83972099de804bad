//! Kubernetes client glue on kube 5: apply, delete, labels, restarts, strict waits, exec
//! and the IP-to-name map of a cluster.
//!
//! Everything talks to the API server directly (no `kubectl` process), so errors carry
//! the API's own reasons and waits check exactly the conditions they name.

mod apply;
mod deadline;
mod exec;
mod peers;
mod wait;
mod workloads;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use apply::FIELD_MANAGER;
pub use deadline::Deadline;
pub use exec::{ExecOutput, ExecStream, status_failure};
pub use peers::{PeerInputs, peer_map, pod_workload};
pub use wait::{deployment_complete, has_sidecar, pod_ready, statefulset_complete};
pub use workloads::WorkloadRef;

use ::kube::config::{KubeConfigOptions, Kubeconfig};

/// Errors from talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be read or has no such context.
    #[error("kubeconfig {path}: {message}")]
    Config {
        /// The kubeconfig file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The API server refused or failed a request: its status code, reason and message.
    #[error("{operation}: {}", describe(source))]
    Api {
        /// What was being done (`apply Deployment/pii-demo/mysql-server`).
        operation: String,
        /// kube's error.
        #[source]
        source: ::kube::Error,
    },
    /// The request never got an answer from the API server (refused, reset, TLS, DNS).
    #[error(
        "{operation}: cannot reach the API server at {url}: {}",
        describe(source)
    )]
    Unreachable {
        /// What was being done.
        operation: String,
        /// The API server's URL, from the kubeconfig.
        url: String,
        /// kube's error.
        #[source]
        source: ::kube::Error,
    },
    /// A manifest names a kind the API server does not serve.
    #[error("{at}: the cluster serves no {api_version} {kind}; is its CRD installed?")]
    UnknownKind {
        /// Where the document is.
        at: crate::manifest::SourceRef,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// A wait ran out of time; `state` says what was last seen.
    #[error("timed out after {seconds}s waiting for {what}; last seen: {state}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long it waited.
        seconds: u64,
        /// The last observed state.
        state: String,
    },
    /// Exec into a pod failed, or the command did not succeed; `message` carries the
    /// API's status message and the command's standard error.
    #[error("exec in pod {pod}: {message}")]
    Exec {
        /// `namespace/pod`.
        pod: String,
        /// What failed.
        message: String,
    },
    /// Some objects could not be deleted; every other one was still tried.
    #[error("{}", delete_failures(deleted, failures))]
    DeleteIncomplete {
        /// The keys really deleted.
        deleted: Vec<String>,
        /// Each object that could not be deleted, with its reason.
        failures: Vec<KubeError>,
    },
    /// A workload the scenario names is not in the cluster.
    #[error("no Deployment or StatefulSet {namespace}/{name}")]
    NoWorkload {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// kube's error in words: the API's own status for an answer, the whole cause chain
/// (down to `Connection refused`) for anything else.
fn describe(err: &::kube::Error) -> String {
    if let ::kube::Error::Api(status) = err {
        let reason = if status.reason.is_empty() {
            String::new()
        } else {
            format!(" {}", status.reason)
        };
        return format!(
            "the API server answered {}{reason}: {}",
            status.code, status.message
        );
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        let part = c.to_string();
        // hyper repeats its cause inside its own text; say each thing once.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

fn delete_failures(deleted: &[String], failures: &[KubeError]) -> String {
    let mut text = format!(
        "deleted {} object(s); {} could not be deleted:",
        deleted.len(),
        failures.len()
    );
    for f in failures {
        text.push_str("\n  - ");
        text.push_str(&f.to_string());
    }
    text
}

/// A connected client plus API discovery.
#[derive(Clone)]
pub struct Kube {
    client: ::kube::Client,
    /// The API server's URL, named in every error that never reached it.
    url: String,
    /// Every document applied through this client, oldest first, so teardown can
    /// delete newest first.
    applied: std::sync::Arc<std::sync::Mutex<Vec<crate::manifest::Document>>>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kube({})", self.url)
    }
}

impl Kube {
    /// Connects with a kubeconfig file and, optionally, one of its contexts.
    pub async fn connect(kubeconfig: &Path, context: Option<&str>) -> Result<Kube, KubeError> {
        let err = |message: String| KubeError::Config {
            path: kubeconfig.display().to_string(),
            message,
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let file = Kubeconfig::read_from(kubeconfig).map_err(|e| err(e.to_string()))?;
        let opts = KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = ::kube::Config::from_custom_kubeconfig(file, &opts)
            .await
            .map_err(|e| err(e.to_string()))?;
        let url = config.cluster_url.to_string();
        let client = ::kube::Client::try_from(config).map_err(|e| err(e.to_string()))?;
        Ok(Kube::from_client(client, &url))
    }

    /// Wraps a client built elsewhere (tests build one over a fake API); `url` is what
    /// errors name as the API server.
    pub fn from_client(client: ::kube::Client, url: &str) -> Kube {
        Kube {
            client,
            url: url.trim_end_matches('/').to_string(),
            applied: Default::default(),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &::kube::Client {
        &self.client
    }

    /// The API server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks the API server for its version: the cheapest request that proves it answers.
    pub async fn server_version(&self) -> Result<String, KubeError> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(self.api_error("GET /version"))?;
        Ok(info.git_version)
    }

    /// Turns kube's error of `operation` into ours: `Api` when the server answered,
    /// `Unreachable` (naming the server's URL) when it did not.
    pub fn api_error(
        &self,
        operation: impl Into<String>,
    ) -> impl FnOnce(::kube::Error) -> KubeError {
        let operation = operation.into();
        let url = self.url.clone();
        move |source| match source {
            ::kube::Error::Api(_) => KubeError::Api { operation, source },
            _ => KubeError::Unreachable {
                operation,
                url,
                source,
            },
        }
    }
}

/// True for the API's 404.
fn is_not_found(err: &::kube::Error) -> bool {
    matches!(err, ::kube::Error::Api(status) if status.code == 404)
}
