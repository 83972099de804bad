//! Which CNI a cluster runs, and so what a capture on its nodes will see.
//!
//! Pure but for [`list_objects`] (in `objects.rs`, with the reading of recorded objects),
//! which reads them from a cluster: recorded cluster objects in (DaemonSets, ConfigMaps, Nodes, as `kubectl get
//! -o json` lists them), a [`Cni`] out: its kind, how it encapsulates pod traffic between
//! nodes, whether it encrypts it, the capture filter that keeps the tunnels, and where a
//! capture must be taken to judge the mesh. The existing provider lists the objects and
//! calls [`detect`] and [`plan_entries`]; everything here is tested offline with recorded
//! objects in `fixtures/cni/`.
//!
//! Facts, with where they were confirmed:
//! - kindnet (DaemonSet `kindnet`): plain routes between nodes, no encapsulation
//!   (kind's `images/kindnetd/cmd/kindnetd/routes.go`).
//! - Flannel (DaemonSet `kube-flannel-ds`, ConfigMap `kube-flannel-cfg`, key
//!   `net-conf.json`, `Backend.Type`): `vxlan` (VNI 1 and the kernel's port 8472 unless
//!   `VNI`/`Port` say otherwise), `host-gw` (routes), `wireguard` (`ListenPort`, 51820),
//!   `ipsec`, `ipip` (flannel `Documentation/backends.md`).
//! - k3s runs Flannel inside its own agent (no DaemonSet): its nodes carry the
//!   `flannel.alpha.coreos.com/backend-type` annotation, and `k3s.io/node-args` holds
//!   `--flannel-backend` (`vxlan` by default, `host-gw`, `wireguard-native`, `none`).
//! - Calico (DaemonSet `calico-node`): the default pool's `CALICO_IPV4POOL_IPIP` /
//!   `CALICO_IPV4POOL_VXLAN` (`Always`, `CrossSubnet`, `Never`), VXLAN on 4789 unless
//!   `FELIX_VXLANPORT`, WireGuard when `FELIX_WIREGUARDENABLED` (port 51820); an
//!   operator install keeps the pool in its Installation resource instead, so both
//!   tunnels stay possible (docs.tigera.io, "Configuring calico/node", "IP pool").
//! - Cilium (DaemonSet `cilium`, ConfigMap `cilium-config`): `routing-mode: native` or
//!   `tunnel` with `tunnel-protocol` `vxlan` (8472) or `geneve` (6081), older releases'
//!   `tunnel: vxlan|geneve|disabled`, `tunnel-port`; `enable-wireguard` (UDP 51871),
//!   `enable-ipsec` (ESP) (Cilium docs, "WireGuard Transparent Encryption", and
//!   `install/kubernetes/cilium/values.yaml`).

mod objects;

use serde::Serialize;

pub use objects::{ClusterObjects, list_objects};

use crate::provider::PlanEntry;
use crate::wire::{EncryptionKind, TunnelConfig, TunnelKind};

/// Why recorded cluster objects could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The text is not a JSON object list.
    #[error("cluster objects are not a kubectl JSON list: {0}")]
    NotAList(#[source] serde_json::Error),
    /// The cluster's API refused a list or get.
    #[error("cannot read {what} from the cluster: {source}")]
    Api {
        /// What was asked for (`daemonsets`, `kube-system/cilium-config`).
        what: String,
        /// The API's answer.
        #[source]
        source: ::kube::Error,
    },
    /// One item is not a valid object of its kind.
    #[error("item {index} ({kind}) is not a valid {kind}: {source}")]
    BadItem {
        /// Its position in the list.
        index: usize,
        /// Its `kind`.
        kind: String,
        /// The decoder's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// The CNI plugins told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CniKind {
    /// kind's own CNI.
    Kindnet,
    /// Flannel as a DaemonSet.
    Flannel,
    /// Flannel inside k3s's agent.
    K3sFlannel,
    /// Calico.
    Calico,
    /// Cilium.
    Cilium,
    /// None of the above was found.
    Unknown,
}

/// One way pod traffic may be wrapped between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    /// The encapsulation.
    pub kind: TunnelKind,
    /// Its UDP port (VXLAN, Geneve); `None` for IP protocols.
    pub port: Option<u16>,
    /// Only between nodes on different subnets (Calico's `CrossSubnet`).
    pub cross_subnet_only: bool,
}

/// How node-to-node traffic is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Encryption {
    /// The encryption.
    pub kind: EncryptionKind,
    /// Its UDP port (WireGuard); `None` for ESP.
    pub port: Option<u16>,
}

/// What detection concluded, and from which objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cni {
    /// The plugin.
    pub kind: CniKind,
    /// Every encapsulation the configuration allows; empty when pods are routed plainly.
    pub tunnels: Vec<Tunnel>,
    /// Node-to-node encryption, if enabled.
    pub encryption: Option<Encryption>,
    /// The objects and fields each conclusion came from.
    pub evidence: Vec<String>,
}

/// Where a capture is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapturePoint {
    /// On the node's interfaces: sees tunnels (decapsulated by the analyzer).
    Node,
    /// On the host side of each pod's veth: sees the pod's own packets, before the CNI
    /// encapsulates or encrypts them.
    PodInterface,
}

/// Detects the CNI from cluster objects.
pub fn detect(objects: &ClusterObjects) -> Cni {
    let mut cni = Cni {
        kind: CniKind::Unknown,
        tunnels: Vec::new(),
        encryption: None,
        evidence: Vec::new(),
    };
    if objects.daemonset("cilium").is_some() {
        cilium(objects, &mut cni);
    } else if objects.daemonset("calico-node").is_some() {
        calico(objects, &mut cni);
    } else if objects.daemonset("kube-flannel-ds").is_some() {
        cni.kind = CniKind::Flannel;
        cni.evidence.push("DaemonSet kube-flannel-ds".into());
        flannel_conf(objects, &mut cni);
    } else if let Some(backend) = k3s_backend(objects) {
        cni.kind = CniKind::K3sFlannel;
        k3s(backend, &mut cni);
    } else if objects.daemonset("kindnet").is_some() {
        cni.kind = CniKind::Kindnet;
        cni.evidence
            .push("DaemonSet kindnet: plain routes between nodes".into());
    }
    cni
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn cilium(o: &ClusterObjects, cni: &mut Cni) {
    cni.kind = CniKind::Cilium;
    cni.evidence.push("DaemonSet cilium".into());
    let cfg = |k| o.config("cilium-config", k);
    let native = cfg("routing-mode") == Some("native") || cfg("tunnel") == Some("disabled");
    if native {
        cni.evidence
            .push("cilium-config: native routing, no encapsulation".into());
    } else {
        let proto = cfg("tunnel-protocol").or(cfg("tunnel")).unwrap_or("vxlan");
        let (kind, default_port) = if proto == "geneve" {
            (TunnelKind::Geneve, crate::wire::GENEVE_PORT)
        } else {
            (TunnelKind::Vxlan, crate::wire::VXLAN_LINUX_PORT)
        };
        let port = cfg("tunnel-port")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p != 0)
            .unwrap_or(default_port);
        cni.evidence
            .push(format!("cilium-config: tunnel {proto} on UDP {port}"));
        cni.tunnels.push(Tunnel {
            kind,
            port: Some(port),
            cross_subnet_only: false,
        });
    }
    if is_true(cfg("enable-wireguard")) {
        cni.evidence
            .push("cilium-config: enable-wireguard (UDP 51871)".into());
        cni.encryption = Some(Encryption {
            kind: EncryptionKind::Wireguard,
            port: Some(crate::wire::WIREGUARD_CILIUM_PORT),
        });
    } else if is_true(cfg("enable-ipsec")) {
        cni.evidence
            .push("cilium-config: enable-ipsec (ESP)".into());
        cni.encryption = Some(Encryption {
            kind: EncryptionKind::IpsecEsp,
            port: None,
        });
    }
}

fn calico(o: &ClusterObjects, cni: &mut Cni) {
    cni.kind = CniKind::Calico;
    cni.evidence.push("DaemonSet calico-node".into());
    let env = |v| o.env("calico-node", v);
    let mode = |v| match env(v) {
        Some(m) if m.eq_ignore_ascii_case("always") => Some(false),
        Some(m) if m.eq_ignore_ascii_case("crosssubnet") => Some(true),
        _ => None,
    };
    let vxlan_port = env("FELIX_VXLANPORT")
        .and_then(|p| p.parse().ok())
        .unwrap_or(crate::wire::VXLAN_PORT);
    let known = env("CALICO_IPV4POOL_IPIP").is_some() || env("CALICO_IPV4POOL_VXLAN").is_some();
    let ipip = mode("CALICO_IPV4POOL_IPIP");
    let vxlan = mode("CALICO_IPV4POOL_VXLAN");
    for (kind, cross, port) in [
        (TunnelKind::Ipip, ipip, None),
        (TunnelKind::Vxlan, vxlan, Some(vxlan_port)),
    ] {
        // Without the manifest's variables (an operator install) the pool is elsewhere:
        // keep both tunnels possible rather than guess.
        if cross.is_some() || !known {
            cni.tunnels.push(Tunnel {
                kind,
                port,
                cross_subnet_only: cross.unwrap_or(false),
            });
        }
    }
    cni.evidence.push(if known {
        format!(
            "calico-node env: CALICO_IPV4POOL_IPIP={}, CALICO_IPV4POOL_VXLAN={}",
            env("CALICO_IPV4POOL_IPIP").unwrap_or("unset"),
            env("CALICO_IPV4POOL_VXLAN").unwrap_or("unset")
        )
    } else {
        "calico-node env names no pool encapsulation (operator install?): IP-in-IP or VXLAN possible".into()
    });
    if is_true(env("FELIX_WIREGUARDENABLED")) {
        cni.evidence
            .push("calico-node env: FELIX_WIREGUARDENABLED (UDP 51820)".into());
        cni.encryption = Some(Encryption {
            kind: EncryptionKind::Wireguard,
            port: Some(crate::wire::WIREGUARD_PORT),
        });
    }
}

fn flannel_conf(o: &ClusterObjects, cni: &mut Cni) {
    let Some(text) = o.config("kube-flannel-cfg", "net-conf.json") else {
        cni.evidence
            .push("no kube-flannel-cfg net-conf.json: Flannel's default vxlan backend".into());
        flannel_backend("vxlan", None, cni);
        return;
    };
    let conf: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let backend = &conf["Backend"];
    let ty = backend["Type"].as_str().unwrap_or("vxlan");
    let port = backend["Port"]
        .as_u64()
        .or(backend["ListenPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0);
    cni.evidence
        .push(format!("kube-flannel-cfg net-conf.json: Backend.Type {ty}"));
    flannel_backend(ty, port, cni);
}

fn flannel_backend(ty: &str, port: Option<u16>, cni: &mut Cni) {
    match ty {
        "vxlan" => cni.tunnels.push(Tunnel {
            kind: TunnelKind::Vxlan,
            port: Some(port.unwrap_or(crate::wire::VXLAN_LINUX_PORT)),
            cross_subnet_only: false,
        }),
        "ipip" => cni.tunnels.push(Tunnel {
            kind: TunnelKind::Ipip,
            port: None,
            cross_subnet_only: false,
        }),
        "wireguard" | "wireguard-native" => {
            cni.encryption = Some(Encryption {
                kind: EncryptionKind::Wireguard,
                port: Some(port.unwrap_or(crate::wire::WIREGUARD_PORT)),
            })
        }
        "ipsec" => {
            cni.encryption = Some(Encryption {
                kind: EncryptionKind::IpsecEsp,
                port: None,
            })
        }
        _ => {}
    }
}

/// The Flannel backend k3s runs, from its node annotations.
fn k3s_backend(o: &ClusterObjects) -> Option<String> {
    if let Some(args) = o.node_annotation("k3s.io/node-args") {
        let args: Vec<String> = serde_json::from_str(args).unwrap_or_default();
        let named = args
            .iter()
            .position(|a| a == "--flannel-backend")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--flannel-backend=").map(str::to_string))
            });
        return Some(named.unwrap_or_else(|| "vxlan".into()));
    }
    o.node_annotation("flannel.alpha.coreos.com/backend-type")
        .map(str::to_string)
}

fn k3s(backend: String, cni: &mut Cni) {
    cni.evidence
        .push(format!("k3s node annotations: flannel backend {backend}"));
    flannel_backend(&backend, None, cni);
}

impl Cni {
    /// The analyzer's tunnel ports, widened by this CNI's.
    pub fn tunnel_config(&self) -> TunnelConfig {
        let mut cfg = TunnelConfig::default();
        for t in &self.tunnels {
            let ports = match t.kind {
                TunnelKind::Vxlan => &mut cfg.vxlan_ports,
                TunnelKind::Geneve => &mut cfg.geneve_ports,
                _ => continue,
            };
            if let Some(p) = t.port.filter(|p| !ports.contains(p)) {
                ports.push(p);
            }
        }
        if let Some(p) = self.encryption.and_then(|e| e.port)
            && !cfg.wireguard_ports.contains(&p)
        {
            cfg.wireguard_ports.push(p);
        }
        cfg
    }

    /// `base` (a pcap filter such as `tcp`) widened so the tunnels and the encrypted
    /// packets are captured too, or `base` itself when the CNI routes plainly.
    pub fn capture_filter(&self, base: &str) -> String {
        let mut extra: Vec<String> = Vec::new();
        for t in &self.tunnels {
            let clause = match (t.kind, t.port) {
                (_, Some(p)) => format!("udp port {p}"),
                (TunnelKind::Ipip, None) => "ip proto 4 or ip proto 41".into(),
                (_, None) => "ip proto 47".into(),
            };
            if !extra.contains(&clause) {
                extra.push(clause);
            }
        }
        match self.encryption {
            Some(Encryption { port: Some(p), .. }) => extra.push(format!("udp port {p}")),
            Some(Encryption { port: None, .. }) => {
                extra.push("ip proto 50 or udp port 4500".into())
            }
            None => {}
        }
        if extra.is_empty() {
            return base.to_string();
        }
        // Fragments of large tunnel packets carry no UDP header: keep them too.
        extra.push("(ip[6:2] & 0x3fff != 0)".into());
        format!("({base}) or {}", extra.join(" or "))
    }

    /// Where to capture a flow between pods on the same node or on two nodes.
    pub fn capture_point(&self, same_node: bool) -> CapturePoint {
        if self.encryption.is_some() && !same_node {
            CapturePoint::PodInterface
        } else {
            CapturePoint::Node
        }
    }

    /// What a capture on the nodes will see, in one sentence.
    pub fn node_view(&self) -> String {
        let tunnels: Vec<String> = self
            .tunnels
            .iter()
            .map(|t| {
                let port = t.port.map(|p| format!(" (UDP {p})")).unwrap_or_default();
                let when = if t.cross_subnet_only {
                    " between subnets"
                } else {
                    ""
                };
                format!("{}{port}{when}", t.kind)
            })
            .collect();
        let wrapped = if tunnels.is_empty() {
            "pod packets between nodes as they are (no encapsulation)".to_string()
        } else {
            format!(
                "pod packets between nodes inside {}, which the analyzer decapsulates",
                tunnels.join(" or ")
            )
        };
        match self.encryption {
            Some(e) => format!(
                "{wrapped}; but {} encrypts node-to-node traffic, so flows between pods on different nodes are only ciphertext there: they are captured at the pods' interfaces",
                e.kind
            ),
            None => wrapped,
        }
    }
}

/// The dry-run plan's lines about the CNI: what it is, what a node capture sees, the
/// filter and the capture points.
pub fn plan_entries(cni: &Cni, base_filter: &str) -> Vec<PlanEntry> {
    let entry = |text: String, detail: Option<String>| PlanEntry {
        section: "cni".into(),
        text,
        detail,
    };
    let kind = serde_json::to_value(cni.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    vec![
        entry(format!("CNI: {kind}"), Some(cni.evidence.join("\n"))),
        entry(format!("a node capture sees {}", cni.node_view()), None),
        entry(
            format!("capture filter: {}", cni.capture_filter(base_filter)),
            None,
        ),
        entry(
            format!(
                "capture points: same node {}, across nodes {}",
                point_name(cni.capture_point(true)),
                point_name(cni.capture_point(false))
            ),
            None,
        ),
    ]
}

fn point_name(p: CapturePoint) -> &'static str {
    match p {
        CapturePoint::Node => "on the node",
        CapturePoint::PodInterface => "at the pods' interfaces",
    }
}

#[cfg(test)]
mod tests;
