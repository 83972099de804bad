//! Probes on a cluster: the workload binary's `probe` command, run in a client pod by exec or
//! on the host against a NodePort or the gateway's MetalLB address.
//!
//! One probe client everywhere (the same one the Docker lab uses) means the bytes on the
//! wire do not depend on the provider. The probe reports what it saw; the runner judges.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{Api, ListParams};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use serde_json::{Value, json};

use super::{ClusterLab, INGRESS_GATEWAY, ISTIO_NAMESPACE, SLOT_LABEL};
use crate::exec::Cmd;
use crate::provider::{Observation, ProviderError};
use crate::scenario::{Probe, parse_duration, peers};

/// The command that runs a probe inside a pod: the workload binary at the absolute path
/// the image puts it ([`crate::image::WORKLOAD_PATH`]; the image has no `PATH` to search),
/// with the request as a JSON argument. Not on stdin: stdin written at once races an exec
/// the API server fails early (kubelet unreachable), and kube 5 then never sees the failure
/// status (seen against kube-apiserver 1.36; see tests/kube_apiserver.rs).
pub fn pod_command(request: &str) -> [String; 3] {
    [crate::image::WORKLOAD_PATH, "probe-json", request].map(str::to_string)
}

fn failed(message: String) -> ProviderError {
    ProviderError::Failed {
        operation: "probe".into(),
        message,
    }
}

/// The probe request in the workload binary's JSON contract.
pub fn request(probe: &Probe, dial: &str) -> Result<Value, ProviderError> {
    let timeout = parse_duration(&probe.timeout.value).map_err(failed)?;
    let kind = if let Some(h) = &probe.http {
        let mut headers = h.headers.clone();
        if let Some(host) = &h.host {
            headers.insert("host".into(), host.clone());
        }
        let body = if h.form.is_empty() {
            h.body.clone().unwrap_or_default()
        } else {
            headers.insert(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            );
            form_encode(&h.form)
        };
        json!({"http": {"method": h.method, "path": h.path, "headers": headers, "body": body}})
    } else if let Some(t) = &probe.tcp {
        json!({"tcp": {"send": t.send}})
    } else if let Some(m) = &probe.mysql {
        json!({"mysql": {"query": m.query}})
    } else if let Some(a) = &probe.amqp {
        json!({"amqp": {"queue": a.queue, "publish": a.publish, "consume": a.consume}})
    } else if let Some(m) = &probe.mongodb {
        let sni = m.tls.then(|| {
            probe
                .to
                .service
                .clone()
                .unwrap_or_else(|| probe.to.workload.value.clone())
        });
        json!({"mongodb": {"database": m.database, "collection": m.collection, "insert": m.insert, "find": m.find, "tls": sni}})
    } else {
        return Err(failed(format!("probe {} has no traffic", probe.name.value)));
    };
    Ok(
        json!({"dial": dial, "kind": kind, "timeout_ms": timeout.as_millis() as u64, "attempts": probe.attempts}),
    )
}

/// `application/x-www-form-urlencoded` encoding of form fields.
pub fn form_encode(form: &std::collections::BTreeMap<String, String>) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The probe outcome JSON as an [`Observation`].
pub fn observation(text: &str) -> Result<Observation, ProviderError> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
        failed(format!(
            "probe printed no outcome JSON ({e}): {}",
            text.trim()
        ))
    })?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Observation {
        answered: v.get("answered").and_then(Value::as_bool).unwrap_or(false),
        status: v.get("status").and_then(Value::as_u64).map(|n| n as u16),
        body: s("body").unwrap_or_default(),
        reset: v.get("reset").and_then(Value::as_bool).unwrap_or(false),
        attempts: v.get("attempts").and_then(Value::as_u64).unwrap_or(0) as u32,
        error: s("error"),
        client_addr: s("client_addr"),
    })
}

/// Runs one probe in the lab.
pub async fn run(lab: &ClusterLab, probe: &Probe) -> Result<Observation, ProviderError> {
    let limit = parse_duration(&probe.timeout.value).map_err(failed)? * probe.attempts.max(1)
        + Duration::from_secs(30);
    if probe.from.value == peers::HOST {
        let dial = host_dial(lab, probe).await?;
        let body = request(probe, &dial)?.to_string();
        let cmd = Cmd::new(workload_binary(lab.root())?.display().to_string())
            .args(["probe", "-"])
            .stdin(body)
            .timeout(limit);
        let out = lab.exec().output(&cmd).await?;
        return observation(&out.stdout_text());
    }
    let dial = cluster_dial(lab, probe)?;
    let body = request(probe, &dial)?.to_string();
    let (ns, pod, container) = client_pod(lab, &probe.from.value).await?;
    let command = pod_command(&body);
    let out = lab
        .kube()
        .exec(&ns, &pod, Some(&container), &command, None, limit)
        .await
        .and_then(crate::kube::ExecOutput::succeeded)?;
    observation(&String::from_utf8_lossy(&out.stdout))
}

fn cluster_dial(lab: &ClusterLab, probe: &Probe) -> Result<String, ProviderError> {
    let to = &probe.to;
    if to.workload.value == peers::INGRESS_GATEWAY {
        return Ok(format!(
            "{}.{}.svc.cluster.local:{}",
            INGRESS_GATEWAY, ISTIO_NAMESPACE, to.port
        ));
    }
    let w = lab
        .scenario()
        .workload(&to.workload.value)
        .ok_or_else(|| failed(format!("unknown workload {}", to.workload.value)))?;
    let service = to.service.clone().unwrap_or_else(|| w.name.value.clone());
    Ok(format!(
        "{service}.{}.svc.cluster.local:{}",
        w.namespace, to.port
    ))
}

async fn host_dial(lab: &ClusterLab, probe: &Probe) -> Result<String, ProviderError> {
    let to = &probe.to;
    if to.workload.value == peers::INGRESS_GATEWAY {
        let ip = lab.gateway_ip().ok_or_else(|| failed("the ingress gateway has no LoadBalancer IP yet (add a `wait: {for: gateway-address}` step)".into()))?;
        return Ok(format!("{ip}:{}", to.port));
    }
    let w = lab
        .scenario()
        .workload(&to.workload.value)
        .ok_or_else(|| failed(format!("unknown workload {}", to.workload.value)))?;
    let service = to.service.clone().unwrap_or_else(|| w.name.value.clone());
    let svc = Api::<Service>::namespaced(lab.kube().client().clone(), &w.namespace)
        .get(&service)
        .await
        .map_err(
            lab.kube()
                .api_error(format!("get Service {}/{service}", w.namespace)),
        )?;
    let node_port = svc
        .spec
        .and_then(|s| s.ports)
        .into_iter()
        .flatten()
        .find(|p| p.port == i32::from(to.port))
        .and_then(|p| p.node_port)
        .ok_or_else(|| failed(format!("Service {}/{service} has no NodePort for port {}: the host reaches it only through a NodePort or the gateway", w.namespace, to.port)))?;
    let nodes = Api::<Node>::all(lab.kube().client().clone())
        .list(&ListParams::default())
        .await
        .map_err(lab.kube().api_error("list nodes"))?;
    let ip = nodes
        .items
        .iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(SLOT_LABEL))
        })
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .ok_or_else(|| failed("no worker node has an InternalIP".into()))?;
    Ok(format!("{ip}:{node_port}"))
}

async fn client_pod(
    lab: &ClusterLab,
    workload: &str,
) -> Result<(String, String, String), ProviderError> {
    let w = lab
        .scenario()
        .workload(workload)
        .ok_or_else(|| failed(format!("unknown workload {workload}")))?;
    let pods = Api::<Pod>::namespaced(lab.kube().client().clone(), &w.namespace)
        .list(&ListParams::default())
        .await
        .map_err(
            lab.kube()
                .api_error(format!("list pods in {}", w.namespace)),
        )?;
    let pod = pods
        .items
        .into_iter()
        .filter(crate::kube::pod_ready)
        .find(|p| {
            crate::kube::pod_workload(p, &lab.scenario().file.workloads).as_deref()
                == Some(workload)
        })
        .ok_or_else(|| failed(format!("no Ready pod of {workload} to probe from")))?;
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    Ok((
        w.namespace.clone(),
        pod.metadata.name.unwrap_or_default(),
        container,
    ))
}

/// The host's workload binary: where provisioning built it (the same build plan), or
/// `$MESHPROOF_WORKLOAD_BIN`, or beside the running program.
fn workload_binary(root: &Path) -> Result<PathBuf, ProviderError> {
    use crate::image::workload_bin::{BinaryInputs, plan_workload_binary};
    plan_workload_binary(&BinaryInputs::current())
        .existing(root)
        .map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    fn probe_named(s: &crate::scenario::Scenario, name: &str) -> Probe {
        s.file
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .flat_map(|st| match st {
                crate::scenario::Step::Capture(c) => c.probes.clone(),
                crate::scenario::Step::Probe(p) => p.clone(),
                _ => vec![],
            })
            .find(|p| p.name.value == name)
            .unwrap()
    }

    #[test]
    fn in_pod_probes_run_the_binary_where_the_image_puts_it() {
        let cmd = pod_command("{}");
        assert_eq!(cmd[0], crate::image::WORKLOAD_PATH);
        assert!(
            cmd[0].starts_with('/'),
            "exec does no PATH lookup in the image"
        );
        assert_eq!(cmd[1..], ["probe-json", "{}"]);
    }

    #[test]
    fn form_probe_becomes_an_encoded_http_request() {
        let s = scenario("pii-demo");
        let p = crate::runner::render_probe(
            &probe_named(&s, "submit-pii-gateway"),
            &crate::scenario::Canary::fixed("MESHPROOF-CANARY-abc"),
        );
        let req = request(&p, "172.18.255.200:80").unwrap();
        assert_eq!(req["dial"], "172.18.255.200:80");
        assert_eq!(req["kind"]["http"]["method"], "POST");
        assert_eq!(
            req["kind"]["http"]["headers"]["host"],
            "pii-demo.apps.hl.test"
        );
        let body = req["kind"]["http"]["body"].as_str().unwrap();
        assert!(body.contains("firstname=MESHPROOF-CANARY-abc"), "{body}");
        assert!(
            body.contains("email=MESHPROOF-CANARY-abc%40example.invalid"),
            "{body}"
        );
    }

    #[test]
    fn outcome_json_maps_to_an_observation() {
        let obs = observation(r#"{"answered":true,"status":200,"body":"ok","reset":false,"attempts":1,"error":null,"client_addr":"10.244.1.5:40000"}"#).unwrap();
        assert_eq!(obs.status, Some(200));
        assert_eq!(obs.client_addr.as_deref(), Some("10.244.1.5:40000"));
        assert!(observation("Error: no such file").is_err());
    }

    #[test]
    fn in_cluster_targets_use_service_dns() {
        let s = scenario("rabbitmq");
        let p = s
            .file
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .find_map(|st| match st {
                crate::scenario::Step::Capture(c) => {
                    c.probes.iter().find(|p| p.from.value != "host").cloned()
                }
                _ => None,
            });
        let p = p.unwrap();
        let w = s.workload(&p.to.workload.value).unwrap();
        let want = format!(".{}.svc.cluster.local:{}", w.namespace, p.to.port);
        let req = request(
            &p,
            &format!(
                "{}{want}",
                p.to.service.clone().unwrap_or(w.name.value.clone())
            ),
        )
        .unwrap();
        assert!(req["dial"].as_str().unwrap().ends_with(&want));
    }
}
