//! Workloads outside the mesh (`kind: external`) and the egress gateway: the lab's layout
//! for a database that is in no registry, and for the paths the policy model gives mesh
//! clients to it (direct, the BlackHoleCluster, or through the egress gateway).

use std::net::{IpAddr, SocketAddr};

use super::super::egress::EgressRoute;
use super::super::envoy::{ALPN_TCP, SidecarConfig, UpstreamCluster, UpstreamTls, istio_sni};
use super::super::mesh::{Service, ServicePort, Target};
use super::super::pki::SpiffeId;
use super::{CLUSTER_INTERVAL_MS, Destination, Topology};
use crate::policy::Peer;
use crate::policy::egress::ExternalPath;
use crate::scenario::{Protocol, Workload, WorkloadKind, peers};
use crate::workload::{Listener, Role};

/// The egress gateway's pod name.
pub const EGRESS_POD: &str = "istio-egressgateway-0";
/// Its Service, as clients reach it.
pub const EGRESS_FQDN: &str = "istio-egressgateway.istio-system.svc.cluster.local";
/// Its service account (its SPIFFE identity), as Istio installs it.
pub const EGRESS_SERVICE_ACCOUNT: &str = "istio-egressgateway-service-account";

/// The egress gateway's SPIFFE identity.
pub fn egress_identity() -> SpiffeId {
    SpiffeId {
        namespace: "istio-system".into(),
        service_account: EGRESS_SERVICE_ACCOUNT.into(),
    }
}

impl Topology<'_> {
    /// The scenario's workloads outside the mesh.
    pub fn externals(&self) -> Vec<&Workload> {
        self.scenario
            .file
            .workloads
            .iter()
            .filter(|w| w.kind == WorkloadKind::External)
            .collect()
    }

    /// The host names an external workload answers to.
    pub fn external_hosts(&self, w: &Workload) -> Vec<String> {
        crate::provider::outside::hosts(self.scenario, w)
    }

    /// The role of an external workload's container: its ports on every address (no
    /// sidecar), and the data it starts with.
    pub fn external_role(&self, w: &Workload, cookie: &str) -> Role {
        let instance = format!("{}-0", w.name.value);
        Role {
            workload: w.name.value.clone(),
            node: format!("external@{instance}"),
            instance,
            cookie: cookie.to_string(),
            listeners: w
                .ports
                .iter()
                .filter(|p| super::servable(p.protocol))
                .map(|p| Listener {
                    bind: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), p.port),
                    protocol: p.protocol,
                    tls: p.tls,
                })
                .collect(),
            upstreams: Vec::new(),
            cluster_interval_ms: CLUSTER_INTERVAL_MS,
            data: w.data.clone(),
        }
    }

    /// A destination on an external workload: dialled by host name, port as given.
    pub(super) fn external_destination(
        callee: &Workload,
        host: &str,
        port: u16,
        call: bool,
        via_sidecar: Option<SocketAddr>,
    ) -> Destination {
        // A port behind the application's own TLS is TLS to every proxy on the way.
        let protocol = callee
            .ports
            .iter()
            .find(|p| p.port == port)
            .map_or(Protocol::Tcp, |p| {
                if p.tls { Protocol::Tls } else { p.protocol }
            });
        Destination {
            callee: callee.name.value.clone(),
            protocol,
            service: Service {
                name: host.to_string(),
                namespace: callee.namespace.clone(),
                headless: false,
                ports: vec![ServicePort {
                    port,
                    target: Target::Number(port),
                }],
            },
            service_port: port,
            target_port: port,
            host: host.to_string(),
            via_sidecar,
            peer_node: None,
            call,
        }
    }

    /// Where `client`'s sidecar sends traffic for an external destination, and whether
    /// that is the BlackHoleCluster, as the policy model decides.
    pub(super) fn external_route(&self, client: &Peer, d: &Destination) -> (UpstreamCluster, bool) {
        let Some(callee) = self.scenario.workload(&d.callee) else {
            return (direct(d), false);
        };
        let server = Peer::workload(&callee.name.value, &callee.namespace);
        match self
            .mesh
            .external_path(client, &server, &d.host, d.service_port, d.protocol)
        {
            ExternalPath::Direct => (direct(d), false),
            ExternalPath::Blocked => (direct(d), true),
            ExternalPath::ViaGateway { port, istio_mtls } => {
                let tls = istio_mtls.then(|| UpstreamTls {
                    sni: istio_sni(port, EGRESS_FQDN),
                    alpn: ALPN_TCP.map(String::from).to_vec(),
                    peer_identities: vec![egress_identity().to_string()],
                });
                let cluster = UpstreamCluster {
                    http: false,
                    host: EGRESS_FQDN.into(),
                    service_port: port,
                    target_port: port,
                    service_fqdn: EGRESS_FQDN.into(),
                    tls,
                };
                (cluster, false)
            }
        }
    }

    /// The egress gateway's Envoy configuration: the egress Gateways' routes out, for the
    /// external destinations the scenario's workloads dial.
    pub fn egress_gateway(&self, pod_ip: IpAddr) -> SidecarConfig {
        let mut wanted = Vec::new();
        for w in self.present() {
            let client = Peer::workload(&w.name.value, &w.namespace);
            for d in self.destinations(w, &format!("{}-0", w.name.value), false) {
                let Some(callee) = self.scenario.workload(&d.callee) else {
                    continue;
                };
                if callee.kind == WorkloadKind::External {
                    let server = Peer::workload(&callee.name.value, &callee.namespace);
                    wanted.push((
                        client.clone(),
                        server,
                        d.host.clone(),
                        d.service_port,
                        d.protocol,
                    ));
                }
            }
        }
        let egress = self
            .mesh
            .egress_listeners(&wanted)
            .into_iter()
            .map(|l| EgressRoute {
                port: l.port,
                istio_mutual: l.istio_mutual,
                cluster: UpstreamCluster {
                    http: false,
                    host: l.host.clone(),
                    service_port: l.host_port,
                    target_port: l.host_port,
                    service_fqdn: l.host,
                    tls: None,
                },
            })
            .collect();
        SidecarConfig {
            pod: EGRESS_POD.into(),
            namespace: "istio-system".into(),
            workload: peers::EGRESS_GATEWAY.into(),
            pod_ip,
            inbound: Vec::new(),
            outbound: Vec::new(),
            ingress: Vec::new(),
            egress,
        }
    }
}

fn direct(d: &Destination) -> UpstreamCluster {
    UpstreamCluster {
        http: d.protocol == Protocol::Http,
        host: d.host.clone(),
        service_port: d.service_port,
        target_port: d.target_port,
        service_fqdn: d.host.clone(),
        tls: None,
    }
}
