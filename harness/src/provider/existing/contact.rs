//! The existing provider's preflight against the real server: read every kubeconfig,
//! find the context, reach the API server, then judge nodes and API groups with the pure
//! decisions of `preflight.rs`. Every problem is collected so one run names them all.

use std::path::PathBuf;
use std::time::Duration;

use ::kube::api::{Api, ListParams};
use ::kube::config::Kubeconfig;
use k8s_openapi::api::core::v1::Node;

use super::preflight::{
    find_context, kubeconfig_paths, metrics_missing, missing_slots, needed_slots, needs_metrics,
};
use crate::env_vars;
use crate::kube::Kube;
use crate::provider::ProviderError;
use crate::scenario::Scenario;

/// How long the API server may take to answer a preflight request.
const ANSWER: Duration = Duration::from_secs(10);

fn refused(problem: String, hint: &str) -> ProviderError {
    ProviderError::Preflight {
        problem,
        hint: hint.into(),
    }
}

/// Reads every kubeconfig file and finds `context`: the file that defines it and its server.
pub fn locate(context: &str) -> Result<(PathBuf, String), ProviderError> {
    let (var, home) = env_vars::kubeconfig_env();
    let paths = kubeconfig_paths(var.as_deref(), home.as_deref());
    let mut files = Vec::new();
    for path in paths.into_iter().filter(|p| p.exists()) {
        match Kubeconfig::read_from(&path) {
            Ok(kc) => files.push((path, kc)),
            Err(e) => {
                return Err(refused(
                    format!("kubeconfig {}: {e}", path.display()),
                    "fix or remove that file from KUBECONFIG",
                ));
            }
        }
    }
    find_context(&files, context).map_err(|p| {
        refused(
            p,
            "set KUBECONFIG to the file(s) that hold the context (colon-separated)",
        )
    })
}

/// Every check at once against the server of `context`.
pub async fn check(s: &Scenario, context: &str) -> Result<(), ProviderError> {
    let (file, server) = locate(context)?;
    let unreachable = |e: String| {
        refused(
            format!(
                "cannot reach the API server {server} of context {context} (kubeconfig {}): {e}",
                file.display()
            ),
            "check `kubectl --context CTX get nodes`; offline, use `--provider lab`",
        )
    };
    let kube = match tokio::time::timeout(ANSWER, Kube::connect(&file, Some(context))).await {
        Ok(Ok(kube)) => kube,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => {
            return Err(unreachable(
                "the credentials did not load within 10 s".into(),
            ));
        }
    };
    let nodes = Api::<Node>::all(kube.client().clone());
    let nodes = match tokio::time::timeout(ANSWER, nodes.list(&ListParams::default())).await {
        Ok(Ok(list)) => list.items,
        Ok(Err(e)) => return Err(unreachable(format!("listing nodes: {e}"))),
        Err(_) => return Err(unreachable("no answer within 10 s".into())),
    };
    let mut problems = missing_slots(&nodes, &needed_slots(s), context);
    if needs_metrics(s) {
        let groups: Vec<String> =
            match tokio::time::timeout(ANSWER, kube.client().list_api_groups()).await {
                Ok(Ok(list)) => list.groups.into_iter().map(|g| g.name).collect(),
                Ok(Err(e)) => return Err(unreachable(format!("listing API groups: {e}"))),
                Err(_) => return Err(unreachable("no answer within 10 s".into())),
            };
        problems.extend(metrics_missing(true, &groups));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(refused(
        format!(
            "context {context} ({server}) is not ready for {}:\n- {}",
            s.name(),
            problems.join("\n- ")
        ),
        "fix each item above; meshproof never labels nodes or installs into a cluster it did not create",
    ))
}
