//! Strict waits: each condition says exactly what "done" means, and a time-out reports
//! the last state seen so a failed run explains itself.
//!
//! The predicates are pure functions over API objects, unit-tested on documented shapes;
//! the loops poll every two seconds, which is plenty for rollouts that take tens of them.
//! A wait has one [`Deadline`] however many objects it covers: a step's `timeout: 5m`
//! over two workloads ends five minutes after the step began, not ten.

use std::time::Duration;

use ::kube::api::{Api, ListParams};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};

use super::deadline::{Deadline, poll};
use super::{Kube, KubeError};

const POLL: Duration = Duration::from_secs(2);

/// A Deployment whose rollout finished: the controller saw the latest spec, and every
/// replica is updated, ready and available, with no old replica left.
pub fn deployment_complete(d: &Deployment) -> Result<(), String> {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let checks = [
        (
            st.observed_generation.unwrap_or(0) >= generation,
            "controller has not observed the latest spec",
        ),
        (
            st.updated_replicas.unwrap_or(0) == want,
            "not every replica is updated",
        ),
        (
            st.ready_replicas.unwrap_or(0) == want,
            "not every replica is ready",
        ),
        (
            st.available_replicas.unwrap_or(0) == want,
            "not every replica is available",
        ),
        (
            st.replicas.unwrap_or(0) == want,
            "old replicas are still running",
        ),
    ];
    first_failure(&checks, || {
        format!(
            "{}/{want} updated, {}/{want} ready",
            st.updated_replicas.unwrap_or(0),
            st.ready_replicas.unwrap_or(0)
        )
    })
}

/// A StatefulSet whose rollout finished: current revision is the update revision and
/// every replica is updated and ready.
pub fn statefulset_complete(s: &StatefulSet) -> Result<(), String> {
    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    let generation = s.metadata.generation.unwrap_or(0);
    let same_revision = st.update_revision.is_some() && st.current_revision == st.update_revision;
    let checks = [
        (
            st.observed_generation.unwrap_or(0) >= generation,
            "controller has not observed the latest spec",
        ),
        (same_revision, "pods of the previous revision remain"),
        (
            st.updated_replicas.unwrap_or(0) == want,
            "not every replica is updated",
        ),
        (
            st.ready_replicas.unwrap_or(0) == want,
            "not every replica is ready",
        ),
    ];
    first_failure(&checks, || {
        format!(
            "{}/{want} updated, {}/{want} ready",
            st.updated_replicas.unwrap_or(0),
            st.ready_replicas.unwrap_or(0)
        )
    })
}

fn first_failure(checks: &[(bool, &str)], counts: impl Fn() -> String) -> Result<(), String> {
    match checks.iter().find(|(ok, _)| !ok) {
        None => Ok(()),
        Some((_, why)) => Err(format!("{why} ({})", counts())),
    }
}

/// A pod that is Ready and not being deleted.
pub fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod with Istio's sidecar: a container `istio-proxy`, or (Kubernetes >= 1.33 native
/// sidecars) an init container `istio-proxy` with `restartPolicy: Always`.
pub fn has_sidecar(p: &Pod) -> bool {
    let Some(spec) = &p.spec else { return false };
    let classic = spec.containers.iter().any(|c| c.name == "istio-proxy");
    let native = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == "istio-proxy" && c.restart_policy.as_deref() == Some("Always"));
    classic || native
}

/// The first LoadBalancer ingress IP of a Service.
pub fn lb_ip(s: &Service) -> Option<String> {
    s.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.ip.clone())
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Kube {
    /// Waits until every node is Ready and there are `expected` of them (kind's own
    /// `--wait` checks only the control plane).
    pub async fn nodes_ready(
        &self,
        expected: usize,
        limit: impl Into<Deadline>,
    ) -> Result<(), KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        poll(
            &format!("{expected} nodes Ready"),
            limit.into(),
            POLL,
            || async {
                let nodes = api
                    .list(&ListParams::default())
                    .await
                    .map_err(self.api_error("list nodes"))?;
                let ready = nodes.items.iter().filter(|n| node_ready(n)).count();
                Ok(if ready == expected && nodes.items.len() == expected {
                    Ok(())
                } else {
                    Err(format!("{ready} of {} nodes Ready", nodes.items.len()))
                })
            },
        )
        .await
    }

    /// Waits for a Deployment's rollout to complete.
    pub async fn deployment_rolled_out(
        &self,
        ns: &str,
        name: &str,
        limit: impl Into<Deadline>,
    ) -> Result<(), KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        poll(
            &format!("Deployment {ns}/{name} rollout"),
            limit.into(),
            POLL,
            || async {
                match api
                    .get_opt(name)
                    .await
                    .map_err(self.api_error(format!("get Deployment {ns}/{name}")))?
                {
                    Some(d) => Ok(deployment_complete(&d)),
                    None => Ok(Err("not found".into())),
                }
            },
        )
        .await
    }

    /// Waits for a StatefulSet's rollout to complete.
    pub async fn statefulset_rolled_out(
        &self,
        ns: &str,
        name: &str,
        limit: impl Into<Deadline>,
    ) -> Result<(), KubeError> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        poll(
            &format!("StatefulSet {ns}/{name} rollout"),
            limit.into(),
            POLL,
            || async {
                match api
                    .get_opt(name)
                    .await
                    .map_err(self.api_error(format!("get StatefulSet {ns}/{name}")))?
                {
                    Some(s) => Ok(statefulset_complete(&s)),
                    None => Ok(Err("not found".into())),
                }
            },
        )
        .await
    }

    /// Waits for a DaemonSet to have every scheduled pod updated and ready.
    pub async fn daemonset_ready(
        &self,
        ns: &str,
        name: &str,
        limit: impl Into<Deadline>,
    ) -> Result<(), KubeError> {
        use k8s_openapi::api::apps::v1::DaemonSet;
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
        poll(
            &format!("DaemonSet {ns}/{name} ready"),
            limit.into(),
            POLL,
            || async {
                let Some(d) = api
                    .get_opt(name)
                    .await
                    .map_err(self.api_error(format!("get DaemonSet {ns}/{name}")))?
                else {
                    return Ok(Err("not found".into()));
                };
                let st = d.status.unwrap_or_default();
                let done = st.desired_number_scheduled > 0
                    && st.number_ready == st.desired_number_scheduled
                    && st.updated_number_scheduled.unwrap_or(0) == st.desired_number_scheduled;
                Ok(if done {
                    Ok(())
                } else {
                    Err(format!(
                        "{}/{} ready",
                        st.number_ready, st.desired_number_scheduled
                    ))
                })
            },
        )
        .await
    }

    /// Waits until `want` pods match `selector` and all are Ready (and, with `sidecar`,
    /// all run Istio's sidecar).
    pub async fn pods_ready(
        &self,
        ns: &str,
        selector: &str,
        want: usize,
        sidecar: bool,
        limit: impl Into<Deadline>,
    ) -> Result<Vec<Pod>, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let what = format!(
            "{want} pod(s) {selector} in {ns} Ready{}",
            if sidecar { " with istio-proxy" } else { "" }
        );
        poll(&what, limit.into(), POLL, || async {
            let pods = api
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(self.api_error(format!("list pods {selector}")))?;
            let live: Vec<Pod> = pods
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = live.iter().filter(|p| pod_ready(p)).count();
            let injected = live.iter().filter(|p| has_sidecar(p)).count();
            let ok = live.len() == want && ready == want && (!sidecar || injected == want);
            Ok(if ok {
                Ok(live)
            } else {
                Err(format!(
                    "{} pods, {ready} Ready, {injected} with istio-proxy",
                    live.len()
                ))
            })
        })
        .await
    }

    /// Waits for a LoadBalancer Service to get an IP and returns it.
    pub async fn service_ip(
        &self,
        ns: &str,
        name: &str,
        limit: impl Into<Deadline>,
    ) -> Result<String, KubeError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        poll(
            &format!("Service {ns}/{name} LoadBalancer IP"),
            limit.into(),
            POLL,
            || async {
                let svc = api
                    .get_opt(name)
                    .await
                    .map_err(self.api_error(format!("get Service {ns}/{name}")))?;
                Ok(svc
                    .as_ref()
                    .and_then(lb_ip)
                    .ok_or_else(|| "no ingress IP yet".to_string()))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(json: serde_json::Value) -> Deployment {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn rollout_is_complete_only_when_every_count_matches() {
        let done = deployment(serde_json::json!({
            "metadata": {"name": "a", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
        }));
        assert_eq!(deployment_complete(&done), Ok(()));
        let surging = deployment(serde_json::json!({
            "metadata": {"name": "a", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
        }));
        assert!(
            deployment_complete(&surging)
                .unwrap_err()
                .contains("old replicas")
        );
        let stale = deployment(serde_json::json!({
            "metadata": {"name": "a", "generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
        }));
        assert!(
            deployment_complete(&stale)
                .unwrap_err()
                .contains("latest spec")
        );
    }

    #[test]
    fn statefulset_needs_one_revision() {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rabbitmq", "generation": 2},
            "spec": {"replicas": 3, "selector": {}, "serviceName": "rabbitmq-nodes", "template": {}},
            "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                       "currentRevision": "rabbitmq-1", "updateRevision": "rabbitmq-2"}
        }))
        .unwrap();
        assert!(
            statefulset_complete(&sts)
                .unwrap_err()
                .contains("previous revision")
        );
    }

    #[test]
    fn sidecar_is_found_classic_or_native() {
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
                .unwrap()
        };
        let classic =
            pod(serde_json::json!({"containers": [{"name": "app"}, {"name": "istio-proxy"}]}));
        let native = pod(serde_json::json!({
            "initContainers": [{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}]
        }));
        let init_only = pod(
            serde_json::json!({"initContainers": [{"name": "istio-proxy"}], "containers": [{"name": "app"}]}),
        );
        let none = pod(serde_json::json!({"containers": [{"name": "app"}]}));
        assert!(has_sidecar(&classic) && has_sidecar(&native));
        assert!(!has_sidecar(&init_only) && !has_sidecar(&none));
    }

    #[test]
    fn readiness_and_lb_ip_come_from_status() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        assert!(pod_ready(&pod));
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-ingressgateway"},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.200", "ipMode": "VIP"}]}}
        }))
        .unwrap();
        assert_eq!(lb_ip(&svc).as_deref(), Some("172.18.255.200"));
    }

    #[tokio::test]
    async fn poll_times_out_with_the_last_state() {
        let deadline = Deadline::after(Duration::from_millis(50));
        let err = poll::<(), _, _>("thing", deadline, POLL, || async {
            Ok(Err("still 0/1".into()))
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("last seen: still 0/1"), "{err}");
    }

    #[tokio::test]
    async fn a_request_unanswered_at_the_deadline_is_abandoned() {
        let deadline = Deadline::after(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let err = poll::<(), _, _>("hung", deadline, POLL, || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Err("never".into()))
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            err.to_string().contains("no answer from the API server"),
            "{err}"
        );
    }
}
