//! Server-side apply and delete of located manifest documents, resolved by discovery.
//!
//! CRDs and Namespaces go first; once the CRDs are `Established`, discovery runs again so
//! custom resources in the same batch (an `IPAddressPool` next to MetalLB's CRDs) resolve.
//! Deletion goes newest first and never stops at a failure: a half-done teardown that
//! names one error would leave the rest of a user's objects behind silently.

use std::time::Duration;

use ::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{ApiResource, Discovery, Scope};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::deadline::{Deadline, poll};
use super::{Kube, KubeError, is_not_found};
use crate::manifest::Document;

/// The field manager of every server-side apply meshproof makes.
pub const FIELD_MANAGER: &str = "meshproof";

/// How long one batch's CRDs may take to become `Established` (usually under a second).
const CRD_LIMIT: Duration = Duration::from_secs(60);
/// CRDs settle fast; a two-second poll would slow every apply that carries one.
const CRD_POLL: Duration = Duration::from_millis(250);

impl Kube {
    /// Server-side applies every document (forcing ownership of conflicting fields, as
    /// the harness owns the objects it applies); returns their keys.
    pub async fn apply(&self, docs: &[Document]) -> Result<Vec<String>, KubeError> {
        let (first, rest): (Vec<&Document>, Vec<&Document>) = docs
            .iter()
            .partition(|d| d.kind == "CustomResourceDefinition" || d.kind == "Namespace");
        let mut discovery = self.discover().await?;
        let mut applied = Vec::new();
        for doc in &first {
            applied.push(self.apply_one(&discovery, doc).await?);
        }
        let crds: Vec<&&Document> = first
            .iter()
            .filter(|d| d.kind == "CustomResourceDefinition")
            .collect();
        if !crds.is_empty() {
            let deadline = Deadline::after(CRD_LIMIT);
            for crd in crds {
                self.crd_established(&crd.name, deadline).await?;
            }
            discovery = self.discover().await?;
        }
        for doc in rest {
            applied.push(self.apply_one(&discovery, doc).await?);
        }
        Ok(applied)
    }

    /// Deletes every document's object, last document first. Every object is tried even
    /// when some fail; objects already gone (404, or a kind no longer served) count as
    /// deleted by someone else. Returns the keys this call deleted.
    pub async fn delete(&self, docs: &[Document]) -> Result<Vec<String>, KubeError> {
        let discovery = self.discover().await?;
        let mut deleted = Vec::new();
        let mut failures = Vec::new();
        for doc in docs.iter().rev() {
            let api = match self.dynamic_api(&discovery, doc) {
                Ok(api) => api,
                // Nothing of a kind the server does not serve can exist.
                Err(KubeError::UnknownKind { .. }) => continue,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            match api.delete(&doc.name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(doc.key()),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    failures.push(self.api_error(format!("delete {} ({})", doc.key(), doc.at))(e))
                }
            }
        }
        if failures.is_empty() {
            Ok(deleted)
        } else {
            Err(KubeError::DeleteIncomplete { deleted, failures })
        }
    }

    /// `docs` in the order this client applied them (first application counts), those
    /// never applied first: passed to [`Kube::delete`], which goes last to first, the
    /// newest objects go first and the namespaces they live in last.
    pub fn in_apply_order(&self, docs: &[Document]) -> Vec<Document> {
        let log = self.applied.lock().map(|l| l.clone()).unwrap_or_default();
        let position = |d: &Document| log.iter().position(|a| a.key() == d.key());
        let mut ordered: Vec<(Option<usize>, usize, Document)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (position(d), i, d.clone()))
            .collect();
        ordered.sort_by_key(|(pos, i, _)| (*pos, *i));
        ordered.into_iter().map(|(_, _, d)| d).collect()
    }

    async fn discover(&self) -> Result<Discovery, KubeError> {
        Discovery::new(self.client.clone())
            .run_aggregated()
            .await
            .map_err(self.api_error("API discovery"))
    }

    async fn apply_one(&self, discovery: &Discovery, doc: &Document) -> Result<String, KubeError> {
        let api = self.dynamic_api(discovery, doc)?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&doc.name, &params, &Patch::Apply(&doc.value))
            .await
            .map_err(self.api_error(format!("apply {} ({})", doc.key(), doc.at)))?;
        if let Ok(mut log) = self.applied.lock()
            && !log.iter().any(|a| a.key() == doc.key())
        {
            log.push(doc.clone());
        }
        Ok(doc.key())
    }

    fn dynamic_api(
        &self,
        discovery: &Discovery,
        doc: &Document,
    ) -> Result<Api<DynamicObject>, KubeError> {
        let (group, version) = match doc.api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), doc.api_version.clone()),
        };
        let gvk = GroupVersionKind {
            group,
            version,
            kind: doc.kind.clone(),
        };
        let (resource, caps): (ApiResource, _) =
            discovery
                .resolve_gvk(&gvk)
                .ok_or_else(|| KubeError::UnknownKind {
                    at: doc.at.clone(),
                    api_version: doc.api_version.clone(),
                    kind: doc.kind.clone(),
                })?;
        Ok(match caps.scope {
            Scope::Namespaced => {
                Api::namespaced_with(self.client.clone(), doc.namespace_or_default(), &resource)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// Polls the CRD (a watch error would say nothing of its conditions) until the
    /// API server reports it `Established`.
    async fn crd_established(&self, name: &str, deadline: Deadline) -> Result<(), KubeError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let what = format!("CustomResourceDefinition {name} to be Established");
        poll(&what, deadline, CRD_POLL, || async {
            let crd = api
                .get_opt(name)
                .await
                .map_err(self.api_error(format!("get CustomResourceDefinition {name}")))?;
            Ok(match crd {
                None => Err("not found".to_string()),
                Some(crd) => crd_state(&crd),
            })
        })
        .await
    }
}

/// `Ok` once a CRD is `Established`, else its conditions as last seen.
fn crd_state(crd: &CustomResourceDefinition) -> Result<(), String> {
    let conditions = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .cloned()
        .unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True")
    {
        return Ok(());
    }
    if conditions.is_empty() {
        return Err("no conditions yet".into());
    }
    Err(conditions
        .iter()
        .map(|c| match c.message.as_deref() {
            Some(m) if !m.is_empty() => format!("{}={} ({m})", c.type_, c.status),
            _ => format!("{}={}", c.type_, c.status),
        })
        .collect::<Vec<_>>()
        .join(", "))
}
