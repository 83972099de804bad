//! Server-side apply and delete of located manifest documents, resolved by discovery.
//!
//! CRDs and Namespaces go first; once the CRDs are `Established`, discovery runs again so
//! custom resources in the same batch (an `IPAddressPool` next to MetalLB's CRDs) resolve.

use std::time::Duration;

use ::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{ApiResource, Discovery, Scope};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use super::{Kube, KubeError, api_error, is_not_found};
use crate::manifest::Document;

/// The field manager of every server-side apply meshproof makes.
pub const FIELD_MANAGER: &str = "meshproof";

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
            for crd in crds {
                self.crd_established(&crd.name, Duration::from_secs(60))
                    .await?;
            }
            discovery = self.discover().await?;
        }
        for doc in rest {
            applied.push(self.apply_one(&discovery, doc).await?);
        }
        Ok(applied)
    }

    /// Deletes every document's object, newest first; objects already gone are fine.
    pub async fn delete(&self, docs: &[Document]) -> Result<Vec<String>, KubeError> {
        let discovery = self.discover().await?;
        let mut deleted = Vec::new();
        for doc in docs.iter().rev() {
            let api = self.dynamic_api(&discovery, doc)?;
            match api.delete(&doc.name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(doc.key()),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(api_error(format!("delete {}", doc.key()))(e)),
            }
        }
        Ok(deleted)
    }

    async fn discover(&self) -> Result<Discovery, KubeError> {
        Discovery::new(self.client.clone())
            .run_aggregated()
            .await
            .map_err(api_error("API discovery"))
    }

    async fn apply_one(&self, discovery: &Discovery, doc: &Document) -> Result<String, KubeError> {
        let api = self.dynamic_api(discovery, doc)?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&doc.name, &params, &Patch::Apply(&doc.value))
            .await
            .map_err(api_error(format!("apply {} ({})", doc.key(), doc.at)))?;
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

    async fn crd_established(&self, name: &str, limit: Duration) -> Result<(), KubeError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let cond = ::kube::runtime::wait::conditions::is_crd_established();
        match tokio::time::timeout(
            limit,
            ::kube::runtime::wait::await_condition(api, name, cond),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(KubeError::Exec {
                pod: format!("crd/{name}"),
                message: e.to_string(),
            }),
            Err(_) => Err(KubeError::Timeout {
                what: format!("CRD {name} to be Established"),
                seconds: limit.as_secs(),
                state: "not established".into(),
            }),
        }
    }
}
