//! A step's wait over its workloads: rollouts or ready pods, under one deadline.
//!
//! Each workload's pods are found through its own selector (read from the Deployment or
//! StatefulSet), so the wait counts exactly the pods the controller owns.

use std::time::Duration;

use ::kube::api::Api;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

use super::deadline::Deadline;
use super::{Kube, KubeError};
use crate::scenario::{WaitFor, Workload, WorkloadKind};

/// The workload a wait is about: where it is and what runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadRef<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name of the Deployment or StatefulSet.
    pub name: &'a str,
    /// Which of the two.
    pub kind: WorkloadKind,
}

impl<'a> From<&'a Workload> for WorkloadRef<'a> {
    fn from(w: &'a Workload) -> Self {
        WorkloadRef {
            namespace: &w.namespace,
            name: &w.name.value,
            kind: w.kind,
        }
    }
}

impl Kube {
    /// Waits until `condition` holds for every workload, all within `limit` from now
    /// (one deadline for the whole step, however many workloads it names).
    ///
    /// `GatewayAddress` names no workload; it is a Service wait ([`Kube::service_ip`]).
    pub async fn wait_workloads(
        &self,
        condition: WaitFor,
        workloads: &[WorkloadRef<'_>],
        limit: Duration,
    ) -> Result<(), KubeError> {
        let deadline = Deadline::after(limit);
        for w in workloads {
            let (ns, name) = (w.namespace, w.name);
            match (condition, w.kind) {
                (WaitFor::GatewayAddress, _) => {}
                (WaitFor::Rollout, WorkloadKind::StatefulSet) => {
                    self.statefulset_rolled_out(ns, name, deadline).await?
                }
                (WaitFor::Rollout, _) => self.deployment_rolled_out(ns, name, deadline).await?,
                (WaitFor::PodsReady | WaitFor::SidecarInjected, _) => {
                    let (selector, want) = self.selector(w).await?;
                    let sidecar = condition == WaitFor::SidecarInjected;
                    self.pods_ready(ns, &selector, want, sidecar, deadline)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A workload's pod selector (`k=v,...`) and its replica count.
    async fn selector(&self, w: &WorkloadRef<'_>) -> Result<(String, usize), KubeError> {
        let (ns, name) = (w.namespace, w.name);
        let (labels, replicas) = match w.kind {
            WorkloadKind::StatefulSet => {
                let api = Api::<StatefulSet>::namespaced(self.client.clone(), ns);
                let found = api
                    .get_opt(name)
                    .await
                    .map_err(self.api_error(format!("get StatefulSet {ns}/{name}")))?;
                let spec = found.and_then(|s| s.spec).ok_or_else(|| no_workload(w))?;
                (spec.selector.match_labels, spec.replicas)
            }
            _ => {
                let api = Api::<Deployment>::namespaced(self.client.clone(), ns);
                let found = api
                    .get_opt(name)
                    .await
                    .map_err(self.api_error(format!("get Deployment {ns}/{name}")))?;
                let spec = found.and_then(|d| d.spec).ok_or_else(|| no_workload(w))?;
                (spec.selector.match_labels, spec.replicas)
            }
        };
        let text = labels
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok((text, replicas.unwrap_or(1).max(0) as usize))
    }
}

fn no_workload(w: &WorkloadRef<'_>) -> KubeError {
    KubeError::NoWorkload {
        namespace: w.namespace.to_string(),
        name: w.name.to_string(),
    }
}
