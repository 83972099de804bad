//! What a scenario declares: the pairs (workload calls and probes) and the documents in
//! the order they were created.

use std::collections::{BTreeMap, HashMap};

use super::MeshOptions;
use super::types::{Pair, Peer, Request};
use crate::manifest::Document;
use crate::scenario::{Probe, Protocol, Scenario, Step, peers};

/// The documents that exist after `phase`, oldest first. Istio breaks ties between
/// policies by creation time, then name, then namespace; objects applied in the same step
/// share a creation second, so within a step the order is by name and namespace.
pub fn creation_order(s: &Scenario, phase: Option<&str>) -> Vec<Document> {
    let mut created: HashMap<String, usize> = HashMap::new();
    let mut step_index = 0;
    for p in &s.file.phases {
        for step in &p.steps {
            step_index += 1;
            match step {
                Step::Apply(files) => {
                    for d in files.iter().flat_map(|f| s.documents(&f.value)) {
                        created.entry(d.key()).or_insert(step_index);
                    }
                }
                Step::Delete(files) => {
                    for d in files.iter().flat_map(|f| s.documents(&f.value)) {
                        created.remove(&d.key());
                    }
                }
                _ => {}
            }
        }
        if phase == Some(p.name.value.as_str()) {
            break;
        }
    }
    let mut docs = s.state_after(phase);
    docs.sort_by(|a, b| {
        let rank = |d: &Document| created.get(&d.key()).copied().unwrap_or(usize::MAX);
        (rank(a), &a.name, &a.namespace).cmp(&(rank(b), &b.name, &b.namespace))
    });
    docs
}

/// The container ports a workload serves, with their protocols.
fn served(s: &Scenario, name: &str) -> BTreeMap<u16, Protocol> {
    s.workload(name)
        .map(|w| {
            w.ports
                .iter()
                .map(|p| (p.port, if p.tls { Protocol::Tls } else { p.protocol }))
                .collect()
        })
        .unwrap_or_default()
}

/// A server by scenario name: the peer, its default Service and the Service's namespace.
fn server(s: &Scenario, name: &str, mesh: &MeshOptions) -> Option<(Peer, String, String)> {
    match name {
        peers::INGRESS_GATEWAY => Some((
            Peer::IngressGateway,
            "istio-ingressgateway".into(),
            mesh.root_namespace.clone(),
        )),
        peers::EGRESS_GATEWAY => Some((
            Peer::EgressGateway,
            "istio-egressgateway".into(),
            mesh.root_namespace.clone(),
        )),
        _ => s.workload(name).map(|w| {
            (
                Peer::workload(&w.name.value, &w.namespace),
                w.name.value.clone(),
                w.namespace.clone(),
            )
        }),
    }
}

fn client(s: &Scenario, name: &str) -> Option<Peer> {
    match name {
        peers::HOST => Some(Peer::Host),
        peers::INGRESS_GATEWAY => Some(Peer::IngressGateway),
        peers::EGRESS_GATEWAY => Some(Peer::EgressGateway),
        _ => s
            .workload(name)
            .map(|w| Peer::workload(&w.name.value, &w.namespace)),
    }
}

/// The pairs for a workload's calls, each knowing its server's own calls (for requests
/// a reverse proxy forwards), `depth` levels deep.
fn calls_of(s: &Scenario, name: &str, mesh: &MeshOptions, depth: usize) -> Vec<Pair> {
    let Some(w) = s.workload(name) else {
        return Vec::new();
    };
    w.calls
        .iter()
        .filter_map(|call| {
            let (server_peer, default_service, namespace) = server(s, &call.to.value, mesh)?;
            Some(Pair {
                client: Peer::workload(&w.name.value, &w.namespace),
                server: server_peer,
                service: call.service.clone().unwrap_or(default_service),
                namespace,
                port: call.port,
                subset: String::new(),
                request: None,
                origin: "call".into(),
                protocols: served(s, &call.to.value),
                onward: if depth == 0 {
                    Vec::new()
                } else {
                    calls_of(s, &call.to.value, mesh, depth - 1)
                },
            })
        })
        .collect()
}

/// How many reverse proxies in a row a request is followed through.
const PROXY_DEPTH: usize = 3;

/// Every call, and every probe of `phase` (of the last phase when `None`), as pairs.
pub fn from_scenario(s: &Scenario, phase: Option<&str>, mesh: &MeshOptions) -> Vec<Pair> {
    let mut pairs: Vec<Pair> = s
        .file
        .workloads
        .iter()
        .flat_map(|w| calls_of(s, &w.name.value, mesh, PROXY_DEPTH))
        .collect();
    // Probes are traffic of their own phase: an earlier phase's probes are not repeated.
    let evaluated = match phase {
        Some(name) => s.phase(name),
        None => s.file.phases.last(),
    };
    for step in evaluated.iter().flat_map(|p| &p.steps) {
        let probes: &[Probe] = match step {
            Step::Probe(list) => list,
            Step::Capture(c) => &c.probes,
            _ => &[],
        };
        pairs.extend(probes.iter().filter_map(|probe| probe_pair(s, probe, mesh)));
    }
    pairs
}

fn probe_pair(s: &Scenario, probe: &Probe, mesh: &MeshOptions) -> Option<Pair> {
    let (server_peer, default_service, namespace) = server(s, &probe.to.workload.value, mesh)?;
    let request = probe.http.as_ref().map(|h| Request {
        method: h.method.to_ascii_uppercase(),
        path: h.path.split('?').next().unwrap_or("/").to_string(),
        host: h.host.clone(),
    });
    Some(Pair {
        client: client(s, &probe.from.value)?,
        server: server_peer,
        service: probe.to.service.clone().unwrap_or(default_service),
        namespace,
        port: probe.to.port,
        subset: String::new(),
        request,
        origin: format!("probe {}", probe.name.value),
        protocols: served(s, &probe.to.workload.value),
        onward: calls_of(s, &probe.to.workload.value, mesh, PROXY_DEPTH),
    })
}
