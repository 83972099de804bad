//! The lab's layout, decided from the scenario and the applied manifests without touching
//! Docker: pod names and DNS aliases, each pod's role (what it serves and dials), and each
//! sidecar's Envoy configuration given which pods currently have sidecars.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::envoy::{
    ALPN_HTTP11, ALPN_TCP, IngressRoute, OutboundRoute, SidecarConfig, UpstreamCluster,
    UpstreamTls, istio_sni,
};
use super::mesh::{Mesh, Service, ServicePort, Target};
use super::pki::SpiffeId;
use crate::policy::Peer;
use crate::scenario::{Protocol, Scenario, Workload, WorkloadKind};
use crate::workload::{Listener, Role, Upstream};

/// The ingress gateway's pod name.
pub const GATEWAY_POD: &str = "istio-ingressgateway-0";
/// The gateway's namespace.
pub const GATEWAY_NAMESPACE: &str = "istio-system";
/// The gateway's service account (its SPIFFE identity), as Istio installs it.
pub const GATEWAY_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";
/// How often cluster peers contact each other, in milliseconds.
pub const CLUSTER_INTERVAL_MS: u64 = 1000;

/// A destination a pod dials: a service port, reached at one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The workload called.
    pub callee: String,
    /// What it speaks there.
    pub protocol: Protocol,
    /// The Service dialled.
    pub service: Service,
    /// The Service port.
    pub service_port: u16,
    /// The container port on the callee.
    pub target_port: u16,
    /// The DNS name dialled: the service, or one pod of a headless service.
    pub host: String,
    /// The sidecar's outbound listener for it, when the caller's sidecar intercepts it.
    pub via_sidecar: Option<SocketAddr>,
    /// For peer calls, the peer's Erlang node name.
    pub peer_node: Option<String>,
    /// A declared call (as opposed to a probe target only).
    pub call: bool,
}

impl Destination {
    /// `host:port` the app dials.
    pub fn dial(&self) -> String {
        match self.via_sidecar {
            Some(addr) => addr.to_string(),
            None => format!("{}:{}", self.host, self.target_port),
        }
    }
}

/// Decides the lab's layout for one scenario state.
#[derive(Debug)]
pub struct Topology<'a> {
    scenario: &'a Scenario,
    mesh: Mesh<'a>,
}

/// The instance (pod) names of a workload.
pub fn instances(w: &Workload) -> Vec<String> {
    (0..w.replicas.max(1))
        .map(|i| format!("{}-{i}", w.name.value))
        .collect()
}

/// The SPIFFE identity of a workload.
pub fn identity(w: &Workload) -> SpiffeId {
    SpiffeId {
        namespace: w.namespace.clone(),
        service_account: w
            .service_account
            .clone()
            .unwrap_or_else(|| "default".into()),
    }
}

fn loopback(k: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 1, (k / 250) as u8, (k % 250) as u8 + 1], port))
}

fn servable(p: Protocol) -> bool {
    matches!(
        p,
        Protocol::Http
            | Protocol::Tcp
            | Protocol::Mysql
            | Protocol::Amqp
            | Protocol::Mongodb
            | Protocol::Epmd
            | Protocol::ErlangDist
    )
}

impl<'a> Topology<'a> {
    /// The layout for `scenario` with these applied documents.
    pub fn new(scenario: &'a Scenario, mesh: Mesh<'a>) -> Topology<'a> {
        Topology { scenario, mesh }
    }

    /// The workloads whose manifests are applied, in scenario order.
    pub fn present(&self) -> Vec<&'a Workload> {
        let mesh = &self.mesh;
        self.scenario
            .file
            .workloads
            .iter()
            .filter(|w| {
                w.kind != WorkloadKind::External && mesh.has_workload(&w.namespace, &w.name.value)
            })
            .collect()
    }

    fn headless_fqdn(&self, w: &Workload) -> Option<String> {
        self.mesh
            .services_for(&w.namespace, &w.name.value)
            .into_iter()
            .find(|s| s.headless)
            .map(|s| s.fqdn())
    }

    /// DNS names a pod answers to on the lab network, as cluster DNS would give them.
    pub fn aliases(&self, w: &Workload, instance: &str) -> Vec<String> {
        let mut out = vec![instance.to_string()];
        for s in self.mesh.services_for(&w.namespace, &w.name.value) {
            out.extend([
                s.name.clone(),
                format!("{}.{}", s.name, s.namespace),
                s.fqdn(),
            ]);
            if s.headless {
                out.push(format!("{instance}.{}", s.fqdn()));
            }
        }
        out.dedup();
        out
    }

    fn node_name(&self, w: &Workload, instance: &str) -> String {
        match self.headless_fqdn(w) {
            Some(fqdn) => format!("rabbit@{instance}.{fqdn}"),
            None => format!("rabbit@{instance}"),
        }
    }

    fn service(&self, callee: &Workload, name: &str, port: u16) -> Service {
        self.mesh
            .service(&callee.namespace, name)
            .unwrap_or_else(|| Service {
                name: name.to_string(),
                namespace: callee.namespace.clone(),
                headless: false,
                ports: vec![ServicePort {
                    port,
                    target: Target::Number(port),
                }],
            })
    }

    /// Everything `w`'s pod `instance` dials: its calls, then probe targets from it.
    pub fn destinations(&self, w: &Workload, instance: &str, sidecar: bool) -> Vec<Destination> {
        let mut wanted: Vec<(String, String, u16, bool)> = w
            .calls
            .iter()
            .map(|c| {
                (
                    c.to.value.clone(),
                    c.service.clone().unwrap_or_else(|| c.to.value.clone()),
                    c.port,
                    true,
                )
            })
            .collect();
        for probe in self.probes_from(&w.name.value) {
            let to = probe.to.workload.value.clone();
            let service = probe.to.service.clone().unwrap_or_else(|| to.clone());
            if !wanted
                .iter()
                .any(|(_, s, p, _)| *s == service && *p == probe.to.port)
            {
                wanted.push((to, service, probe.to.port, false));
            }
        }
        let mut out = Vec::new();
        for (to, service_name, port, call) in wanted {
            let Some(callee) = self.scenario.workload(&to) else {
                continue;
            };
            if callee.kind == WorkloadKind::External {
                let via_sidecar = (sidecar
                    && self
                        .mesh
                        .intercepts_outbound(&w.namespace, &w.name.value, port))
                .then(|| loopback(out.len(), port));
                out.push(Self::external_destination(
                    callee,
                    &service_name,
                    port,
                    call,
                    via_sidecar,
                ));
                continue;
            }
            let service = self.service(callee, &service_name, port);
            let target = service
                .ports
                .iter()
                .find(|p| p.port == port)
                .map(|p| p.target.clone())
                .unwrap_or(Target::Number(port));
            let target_port = self
                .mesh
                .container_port(&callee.namespace, &callee.name.value, &target)
                .unwrap_or(port);
            let protocol = callee
                .ports
                .iter()
                .find(|p| p.port == target_port)
                .map_or(Protocol::Tcp, |p| p.protocol);
            let hosts: Vec<(String, Option<String>)> = if callee.name.value == w.name.value {
                // A peer call: every other replica, by its pod DNS name.
                instances(callee)
                    .into_iter()
                    .filter(|i| i != instance)
                    .map(|i| {
                        let host = if service.headless {
                            format!("{i}.{}", service.fqdn())
                        } else {
                            service.fqdn()
                        };
                        (host, Some(self.node_name(callee, &i)))
                    })
                    .collect()
            } else {
                vec![(service.fqdn(), None)]
            };
            for (host, peer_node) in hosts {
                let via_sidecar = (sidecar
                    && self
                        .mesh
                        .intercepts_outbound(&w.namespace, &w.name.value, port))
                .then(|| loopback(out.len(), port));
                out.push(Destination {
                    callee: to.clone(),
                    protocol,
                    service: service.clone(),
                    service_port: port,
                    target_port,
                    host,
                    via_sidecar,
                    peer_node,
                    call,
                });
            }
        }
        out
    }

    fn probes_from(&self, workload: &str) -> Vec<&'a crate::scenario::Probe> {
        use crate::scenario::Step;
        let mut out = Vec::new();
        for phase in &self.scenario.file.phases {
            for step in &phase.steps {
                let probes = match step {
                    Step::Probe(p) => p.as_slice(),
                    Step::Capture(c) => c.probes.as_slice(),
                    _ => &[],
                };
                out.extend(probes.iter().filter(|p| p.from.value == workload));
            }
        }
        out
    }

    /// The role of pod `instance`: listeners behind the sidecar bind to loopback (the
    /// sidecar owns the pod IP), others to every address.
    pub fn role(&self, w: &Workload, instance: &str, sidecar: bool, cookie: &str) -> Role {
        let listeners = w
            .ports
            .iter()
            .filter(|p| servable(p.protocol))
            .map(|p| {
                let intercepted = self
                    .mesh
                    .intercepts_inbound(&w.namespace, &w.name.value, p.port);
                let ip: IpAddr = if sidecar && intercepted {
                    [127, 0, 0, 1].into()
                } else {
                    [0, 0, 0, 0].into()
                };
                Listener {
                    bind: SocketAddr::new(ip, p.port),
                    protocol: p.protocol,
                    tls: p.tls,
                }
            })
            .collect();
        let upstreams = self
            .destinations(w, instance, sidecar)
            .into_iter()
            .filter(|d| d.call && servable(d.protocol))
            .map(|d| Upstream {
                workload: d.callee.clone(),
                protocol: d.protocol,
                dial: d.dial(),
                peer_node: d.peer_node.clone(),
            })
            .collect();
        Role {
            workload: w.name.value.clone(),
            instance: instance.to_string(),
            node: self.node_name(w, instance),
            cookie: cookie.to_string(),
            listeners,
            upstreams,
            cluster_interval_ms: CLUSTER_INTERVAL_MS,
            data: w.data.clone(),
        }
    }

    /// The cluster a sidecar (or the gateway) of `client` uses for a destination, with the
    /// model's client TLS decision given which workloads' pods run sidecars (`observed`).
    fn cluster(&self, observed: &Mesh, client: &Peer, d: &Destination) -> UpstreamCluster {
        let callee = self.scenario.workload(&d.callee);
        let mtls = observed.client_mtls(client, &d.service, d.service_port, d.protocol, &d.callee);
        let http = d.protocol == Protocol::Http;
        UpstreamCluster {
            http,
            host: d.host.clone(),
            service_port: d.service_port,
            target_port: d.target_port,
            service_fqdn: d.service.fqdn(),
            tls: mtls.then(|| UpstreamTls {
                sni: istio_sni(d.service_port, &d.service.fqdn()),
                alpn: if http {
                    ALPN_HTTP11.map(String::from).to_vec()
                } else {
                    ALPN_TCP.map(String::from).to_vec()
                },
                peer_identities: callee
                    .map(|c| identity(c).to_string())
                    .into_iter()
                    .collect(),
            }),
        }
    }

    /// The model's view with the scenario's workloads running as `has_sidecar` says.
    fn observed(&self, has_sidecar: &dyn Fn(&str) -> bool) -> Mesh<'a> {
        let running = self
            .scenario
            .file
            .workloads
            .iter()
            .map(|w| {
                let key = format!("{}/{}", w.namespace, w.name.value);
                (key, has_sidecar(&w.name.value))
            })
            .collect();
        self.mesh.observing(running)
    }

    /// The Envoy configuration of `instance`'s sidecar.
    pub fn sidecar(
        &self,
        w: &Workload,
        instance: &str,
        pod_ip: IpAddr,
        has_sidecar: &dyn Fn(&str) -> bool,
    ) -> SidecarConfig {
        let name = &w.name.value;
        let served: Vec<(u16, Protocol)> = w
            .ports
            .iter()
            .filter(|p| servable(p.protocol))
            .map(|p| (p.port, p.protocol))
            .collect();
        let inbound = self.mesh.inbound_ports(&w.namespace, name, &served);
        let observed = self.observed(has_sidecar);
        let client = Peer::workload(name, &w.namespace);
        let outbound = self
            .destinations(w, instance, true)
            .iter()
            .filter_map(|d| {
                let external = self
                    .scenario
                    .workload(&d.callee)
                    .is_some_and(|c| c.kind == WorkloadKind::External);
                let (cluster, blackhole) = if external {
                    self.external_route(&client, d)
                } else {
                    (self.cluster(&observed, &client, d), false)
                };
                Some(OutboundRoute {
                    listen: d.via_sidecar?,
                    cluster,
                    blackhole,
                })
            })
            .collect();
        SidecarConfig {
            pod: instance.to_string(),
            namespace: w.namespace.clone(),
            workload: name.clone(),
            pod_ip,
            inbound,
            outbound,
            ingress: Vec::new(),
            egress: Vec::new(),
        }
    }

    /// The ingress gateway's Envoy configuration: the Gateways' routes to mesh services.
    pub fn gateway(&self, pod_ip: IpAddr, has_sidecar: &dyn Fn(&str) -> bool) -> SidecarConfig {
        let mut ingress = Vec::new();
        let observed = self.observed(has_sidecar);
        for route in self.mesh.gateway_routes() {
            let Some((callee, service)) = self.service_by_fqdn(&route.destination) else {
                continue;
            };
            let target = service
                .ports
                .iter()
                .find(|p| p.port == route.destination_port)
                .map(|p| p.target.clone());
            let target = target.unwrap_or(Target::Number(route.destination_port));
            let target_port = self
                .mesh
                .container_port(&callee.namespace, &callee.name.value, &target)
                .unwrap_or(route.destination_port);
            let d = Destination {
                callee: callee.name.value.clone(),
                protocol: Protocol::Http,
                host: service.fqdn(),
                service,
                service_port: route.destination_port,
                target_port,
                via_sidecar: None,
                peer_node: None,
                call: true,
            };
            ingress.push(IngressRoute {
                port: route.port,
                hosts: route.hosts.clone(),
                cluster: self.cluster(&observed, &Peer::IngressGateway, &d),
            });
        }
        SidecarConfig {
            pod: GATEWAY_POD.into(),
            namespace: GATEWAY_NAMESPACE.into(),
            workload: crate::scenario::peers::INGRESS_GATEWAY.into(),
            pod_ip,
            inbound: Vec::new(),
            outbound: Vec::new(),
            ingress,
            egress: Vec::new(),
        }
    }

    fn service_by_fqdn(&self, fqdn: &str) -> Option<(&'a Workload, Service)> {
        let mut parts = fqdn.split('.');
        let (name, namespace) = (parts.next()?, parts.next()?);
        let service = self.mesh.service(namespace, name)?;
        let workload = self.present().into_iter().find(|w| {
            w.namespace == namespace
                && self
                    .mesh
                    .services_for(namespace, &w.name.value)
                    .iter()
                    .any(|s| s.name == name)
        })?;
        Some((workload, service))
    }

    /// Ports each workload serves, by name, for reports.
    pub fn served(&self) -> BTreeMap<String, Vec<u16>> {
        self.present()
            .iter()
            .map(|w| {
                (
                    w.name.value.clone(),
                    w.ports.iter().map(|p| p.port).collect(),
                )
            })
            .collect()
    }
}

#[path = "topology_external.rs"]
mod external;
pub use external::{EGRESS_FQDN, EGRESS_POD, egress_identity};

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
