//! The generated kind cluster config: one control plane and one worker per slot.
//!
//! Scenario workloads pin themselves to workers with the node label
//! `meshproof.dev/slot=a|b|c...`, so the config labels the n-th worker with the n-th
//! letter. Every node also carries the run label, which `cargo xtask gc` sweeps by.

use std::collections::BTreeMap;

use serde::Serialize;

use super::KindError;
use crate::scenario::Scenario;

pub use crate::provider::cluster::SLOT_LABEL;
/// The label every object meshproof creates carries.
pub const RUN_LABEL: &str = "meshproof.dev/run";
/// kind's default pod subnet, written out so capture filters and config agree.
pub const POD_SUBNET: &str = "10.244.0.0/16";
/// kind's default service subnet.
pub const SERVICE_SUBNET: &str = "10.96.0.0/16";
/// The most workers a scenario may ask for (slots `a` to `z`).
pub const MAX_WORKERS: u32 = 26;

/// `kind.x-k8s.io/v1alpha4` `Cluster`, limited to the fields meshproof sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindConfig {
    /// Always `Cluster`.
    pub kind: &'static str,
    /// Always `kind.x-k8s.io/v1alpha4`.
    pub api_version: &'static str,
    /// The cluster name.
    pub name: String,
    /// Pod and service subnets.
    pub networking: Networking,
    /// Control plane first, then the workers.
    pub nodes: Vec<Node>,
}

/// The `networking` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Networking {
    /// Pod subnet.
    pub pod_subnet: String,
    /// Service subnet.
    pub service_subnet: String,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `control-plane` or `worker`.
    pub role: &'static str,
    /// The pinned node image, with digest.
    pub image: String,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
}

/// The slot letter of the n-th worker (0-based): `a`, `b`, ...
pub fn slot(index: u32) -> String {
    char::from(b'a' + (index % MAX_WORKERS) as u8).to_string()
}

/// A cluster name unique to the run, valid as a DNS label and short enough for kind's
/// node container names (`<name>-control-plane`).
pub fn cluster_name(run_id: &str) -> String {
    let clean: String = run_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = format!("meshproof-{}", clean.trim_matches('-'));
    name.chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// The config for a scenario's requirements.
pub fn for_scenario(
    scenario: &Scenario,
    name: &str,
    node_image: &str,
    run_id: &str,
) -> Result<KindConfig, KindError> {
    let workers = scenario.file.requires.workers;
    if workers == 0 || workers > MAX_WORKERS {
        return Err(KindError::Generate(format!(
            "scenario {} asks for {workers} workers; kind runs 1 to {MAX_WORKERS}",
            scenario.name()
        )));
    }
    let run = |extra: Option<(&str, String)>| {
        let mut labels = BTreeMap::from([(RUN_LABEL.to_string(), run_id.to_string())]);
        if let Some((k, v)) = extra {
            labels.insert(k.to_string(), v);
        }
        labels
    };
    let mut nodes = vec![Node {
        role: "control-plane",
        image: node_image.to_string(),
        labels: run(None),
    }];
    nodes.extend((0..workers).map(|i| Node {
        role: "worker",
        image: node_image.to_string(),
        labels: run(Some((SLOT_LABEL, slot(i)))),
    }));
    Ok(KindConfig {
        kind: "Cluster",
        api_version: "kind.x-k8s.io/v1alpha4",
        name: name.to_string(),
        networking: Networking {
            pod_subnet: POD_SUBNET.into(),
            service_subnet: SERVICE_SUBNET.into(),
        },
        nodes,
    })
}

impl KindConfig {
    /// The config as the YAML file `kind create cluster --config` reads.
    pub fn to_yaml(&self) -> Result<String, KindError> {
        serde_saphyr::to_string(self).map_err(|e| KindError::Generate(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    const IMAGE: &str = "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5";

    #[test]
    fn pii_demo_config_snapshot() {
        let s = scenario("pii-demo");
        let cfg = for_scenario(&s, "meshproof-mp-test", IMAGE, "mp-test").unwrap();
        insta::assert_snapshot!(cfg.to_yaml().unwrap());
    }

    #[test]
    fn workers_follow_the_scenario_and_get_slots() {
        let mut s = scenario("rabbitmq");
        s.file.requires.workers = 3;
        let cfg = for_scenario(&s, "c", IMAGE, "r").unwrap();
        let slots: Vec<&str> = cfg
            .nodes
            .iter()
            .filter_map(|n| n.labels.get(SLOT_LABEL).map(String::as_str))
            .collect();
        assert_eq!(slots, ["a", "b", "c"]);
        assert_eq!(cfg.nodes[0].role, "control-plane");
        assert!(
            cfg.nodes
                .iter()
                .all(|n| n.image == IMAGE && n.labels[RUN_LABEL] == "r")
        );
        s.file.requires.workers = 0;
        assert!(for_scenario(&s, "c", IMAGE, "r").is_err());
    }

    #[test]
    fn cluster_names_are_dns_labels() {
        assert_eq!(
            cluster_name("mp-19aab3c4d5e-k3x9z2"),
            "meshproof-mp-19aab3c4d5e-k3x9z2"
        );
        let long = cluster_name(&"X_".repeat(40));
        assert!(long.len() <= 40 && !long.ends_with('-'), "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
