//! Probes in the lab: from a pod (through its sidecar, by exec) or from the host (the
//! harness itself, outside the mesh, straight to a pod or the gateway).

use std::collections::BTreeMap;

use super::LabError;
use super::mesh::{Mesh, Target};
use super::pod;
use super::running::DockerLab;
use super::topology::{GATEWAY_POD, Topology};
use crate::provider::Observation;
use crate::scenario::{Probe, parse_duration, peers};
use crate::workload::http::url_encode;
use crate::workload::{ProbeKind, ProbeOutcome, ProbeRequest};

/// Runs one probe; the canary is already in its payload.
pub(super) async fn run(lab: &DockerLab, probe: &Probe) -> Result<Observation, LabError> {
    let from = probe.from.value.as_str();
    let dial = dial(lab, probe)?;
    let timeout = parse_duration(&probe.timeout.value).map_err(LabError::Setup)?;
    let req = ProbeRequest {
        dial,
        kind: kind(lab, probe)?,
        timeout_ms: timeout.as_millis() as u64,
        attempts: probe.attempts.max(1),
    };
    let outcome = if from == peers::HOST {
        crate::workload::probe::run(&req).await
    } else {
        let pod = lab
            .pods
            .values()
            .find(|p| p.running.workload == from)
            .ok_or_else(|| {
                LabError::Setup(format!(
                    "probe {}: workload {from} has no pods",
                    probe.name.value
                ))
            })?;
        pod::probe_from(&lab.docker, &pod.running, &req).await?
    };
    Ok(observation(outcome))
}

fn observation(o: ProbeOutcome) -> Observation {
    Observation {
        answered: o.answered,
        status: o.status,
        body: o.body,
        reset: o.reset,
        attempts: o.attempts,
        error: o.error,
        client_addr: o.client_addr,
    }
}

/// Where the probe connects. From the host: the target pod's IP and container port (as a
/// NodePort would deliver it), or the gateway. From a pod: what its app would dial, which
/// is its sidecar's outbound listener when the sidecar intercepts that port.
fn dial(lab: &DockerLab, probe: &Probe) -> Result<String, LabError> {
    let to = probe.to.workload.value.as_str();
    let port = probe.to.port;
    if to == peers::INGRESS_GATEWAY {
        let gw = lab
            .pods
            .get(GATEWAY_POD)
            .ok_or_else(|| LabError::Setup("the scenario has no ingress gateway".into()))?;
        return Ok(format!("{}:{port}", gw.running.ip));
    }
    let docs = lab.docs();
    let mesh = Mesh::for_scenario(&lab.scenario, &docs);
    let callee = lab
        .scenario
        .workload(to)
        .ok_or_else(|| LabError::Setup(format!("probe target {to} is not a workload")))?;
    if probe.from.value == peers::HOST {
        let service = probe.to.service.clone().unwrap_or_else(|| to.to_string());
        let target = mesh
            .service(&callee.namespace, &service)
            .and_then(|s| {
                s.ports
                    .into_iter()
                    .find(|p| p.port == port)
                    .map(|p| p.target)
            })
            .unwrap_or(Target::Number(port));
        let target_port = mesh
            .container_port(&callee.namespace, to, &target)
            .unwrap_or(port);
        let pod = lab
            .pods
            .values()
            .find(|p| p.running.workload == to)
            .ok_or_else(|| {
                LabError::Setup(format!(
                    "probe {}: workload {to} has no pods",
                    probe.name.value
                ))
            })?;
        return Ok(format!("{}:{target_port}", pod.running.ip));
    }
    let from = lab
        .pods
        .values()
        .find(|p| p.running.workload == probe.from.value)
        .ok_or_else(|| {
            LabError::Setup(format!(
                "probe {}: workload {} has no pods",
                probe.name.value, probe.from.value
            ))
        })?;
    let w = lab
        .scenario
        .workload(&probe.from.value)
        .ok_or_else(|| LabError::Setup("unknown probe source".into()))?;
    let service = probe.to.service.clone().unwrap_or_else(|| to.to_string());
    let dests = Topology::new(&lab.scenario, mesh).destinations(
        w,
        &from.running.name,
        from.sidecar.is_some(),
    );
    dests
        .iter()
        .find(|d| d.callee == to && d.service.name == service && d.service_port == port)
        .map(|d| d.dial())
        .ok_or_else(|| {
            LabError::Setup(format!(
                "probe {}: {} does not reach {service}:{port}",
                probe.name.value, w.name.value
            ))
        })
}

fn kind(lab: &DockerLab, probe: &Probe) -> Result<ProbeKind, LabError> {
    if let Some(h) = &probe.http {
        let mut headers: BTreeMap<String, String> = h
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let host = h.host.clone().unwrap_or_else(|| default_host(lab, probe));
        headers.insert("host".into(), host);
        let body = if !h.form.is_empty() {
            headers.insert(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            );
            h.form
                .iter()
                .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        } else {
            h.body.clone().unwrap_or_default()
        };
        return Ok(ProbeKind::Http {
            method: h.method.clone(),
            path: h.path.clone(),
            headers,
            body,
        });
    }
    if let Some(t) = &probe.tcp {
        return Ok(ProbeKind::Tcp {
            send: t.send.clone(),
        });
    }
    if let Some(m) = &probe.mysql {
        return Ok(ProbeKind::Mysql {
            query: m.query.clone(),
        });
    }
    if let Some(a) = &probe.amqp {
        return Ok(ProbeKind::Amqp {
            queue: a.queue.clone(),
            publish: a.publish.clone(),
            consume: a.consume,
            quorum: a.quorum,
        });
    }
    if let Some(m) = &probe.mongodb {
        return Ok(ProbeKind::Mongodb {
            database: m.database.clone(),
            collection: m.collection.clone(),
            insert: m.insert.clone(),
            find: m.find.clone(),
            tls: m.tls.then(|| {
                probe
                    .to
                    .service
                    .clone()
                    .unwrap_or_else(|| probe.to.workload.value.clone())
            }),
        });
    }
    Err(LabError::Setup(format!(
        "probe {} says nothing to send",
        probe.name.value
    )))
}

/// The `Host` header a Kubernetes client would send: the service name and port.
fn default_host(lab: &DockerLab, probe: &Probe) -> String {
    let to = &probe.to.workload.value;
    let service = probe.to.service.clone().unwrap_or_else(|| to.clone());
    match lab.scenario.workload(to) {
        Some(w) => format!("{service}.{}:{}", w.namespace, probe.to.port),
        None => format!("{service}:{}", probe.to.port),
    }
}
