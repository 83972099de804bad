//! Kubernetes client glue on kube 5: apply, delete, labels, restarts, strict waits, exec
//! and the IP-to-name map of a cluster.
//!
//! Everything talks to the API server directly (no `kubectl` process), so errors carry
//! the API's own reasons and waits check exactly the conditions they name.

mod apply;
mod exec;
mod peers;
mod wait;

use std::path::Path;

pub use apply::FIELD_MANAGER;
pub use exec::ExecOutput;
pub use peers::{PeerInputs, peer_map, pod_workload};
pub use wait::{deployment_complete, has_sidecar, pod_ready, statefulset_complete};

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
    /// The API server refused or failed a request.
    #[error("{operation}: {source}")]
    Api {
        /// What was being done (`apply Deployment/pii-demo/mysql-server`).
        operation: String,
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
    /// Exec into a pod failed before the command ran.
    #[error("exec in pod {pod}: {message}")]
    Exec {
        /// `namespace/pod`.
        pod: String,
        /// What failed.
        message: String,
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

/// A connected client plus API discovery.
#[derive(Clone)]
pub struct Kube {
    client: ::kube::Client,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kube")
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
        let client = ::kube::Client::try_from(config).map_err(|e| err(e.to_string()))?;
        Ok(Kube { client })
    }

    /// The underlying client.
    pub fn client(&self) -> &::kube::Client {
        &self.client
    }
}

fn api_error(operation: impl Into<String>) -> impl FnOnce(::kube::Error) -> KubeError {
    let operation = operation.into();
    move |source| KubeError::Api { operation, source }
}

/// True for the API's 404.
fn is_not_found(err: &::kube::Error) -> bool {
    matches!(err, ::kube::Error::Api(status) if status.code == 404)
}
