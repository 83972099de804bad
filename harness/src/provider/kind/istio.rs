//! The IstioOperator `istioctl install -f` reads, generated from `requires.mesh`.
//!
//! Only what the scenario asks for is set: the profile, the outbound traffic policy,
//! which gateways exist, and the sidecar resources. Everything else keeps the profile's
//! defaults, so a run shows Istio as users install it.

use serde::Serialize;

use super::KindError;
use crate::scenario::{Mesh, MeshName, OutboundPolicy};

pub use crate::provider::cluster::{EGRESS_GATEWAY, INGRESS_GATEWAY, ISTIO_NAMESPACE as NAMESPACE};

/// `install.istio.io/v1alpha1` `IstioOperator`, limited to the fields meshproof sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioOperator {
    /// Always `install.istio.io/v1alpha1`.
    pub api_version: &'static str,
    /// Always `IstioOperator`.
    pub kind: &'static str,
    /// Name and namespace.
    pub metadata: Metadata,
    /// The install options.
    pub spec: Spec,
}

/// Object metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// `spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// Install profile.
    pub profile: String,
    /// Mesh-wide settings.
    pub mesh_config: MeshConfig,
    /// Gateways on or off.
    pub components: Components,
    /// Helm-style values.
    pub values: Values,
}

/// `spec.meshConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    /// `outboundTrafficPolicy.mode`.
    pub outbound_traffic_policy: Mode,
}

/// `{mode: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mode {
    /// `ALLOW_ANY` or `REGISTRY_ONLY`.
    pub mode: &'static str,
}

/// `spec.components`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    /// Ingress gateways.
    pub ingress_gateways: Vec<Gateway>,
    /// Egress gateways.
    pub egress_gateways: Vec<Gateway>,
}

/// One gateway component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gateway {
    /// Its name (also its Deployment's and Service's).
    pub name: &'static str,
    /// Installed or not.
    pub enabled: bool,
    /// Its Deployment's Kubernetes settings: the node it is pinned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<GatewayK8s>,
}

/// `components.*Gateways[].k8s`, limited to `nodeSelector` (KubernetesResourcesSpec in
/// the IstioOperator reference, istio.io/latest/docs/reference/config/istio.operator.v1alpha1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayK8s {
    /// Pins the gateway's pods to a slot, so its flows cross the capture point.
    pub node_selector: std::collections::BTreeMap<String, String>,
}

/// `spec.values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Values {
    /// `global`.
    pub global: Global,
}

/// `values.global`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Global {
    /// `proxy`.
    pub proxy: Proxy,
}

/// `values.global.proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proxy {
    /// Sidecar resources.
    pub resources: Resources,
}

/// Requests and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Requests.
    pub requests: Quantities,
    /// Limits.
    pub limits: Quantities,
}

/// CPU and memory quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quantities {
    /// CPU.
    pub cpu: String,
    /// Memory.
    pub memory: String,
}

/// The operator for a scenario's mesh requirements (Istio only), with the ingress
/// gateway pinned to `gateway_slot` when given.
pub fn operator(mesh: &Mesh, gateway_slot: Option<&str>) -> Result<IstioOperator, KindError> {
    if mesh.name != MeshName::Istio {
        return Err(KindError::Generate(format!(
            "the kind provider installs Istio; {:?} is not supported yet",
            mesh.name
        )));
    }
    let mode = match mesh.outbound_traffic_policy {
        OutboundPolicy::AllowAny => "ALLOW_ANY",
        OutboundPolicy::RegistryOnly => "REGISTRY_ONLY",
    };
    let p = &mesh.proxy;
    Ok(IstioOperator {
        api_version: "install.istio.io/v1alpha1",
        kind: "IstioOperator",
        metadata: Metadata {
            name: "meshproof".into(),
            namespace: NAMESPACE.into(),
        },
        spec: Spec {
            profile: mesh.profile.clone(),
            mesh_config: MeshConfig {
                outbound_traffic_policy: Mode { mode },
            },
            components: Components {
                ingress_gateways: vec![Gateway {
                    name: INGRESS_GATEWAY,
                    enabled: mesh.ingress_gateway,
                    k8s: gateway_slot.map(|slot| GatewayK8s {
                        node_selector: [(
                            crate::provider::cluster::SLOT_LABEL.to_string(),
                            slot.to_string(),
                        )]
                        .into(),
                    }),
                }],
                egress_gateways: vec![Gateway {
                    name: EGRESS_GATEWAY,
                    enabled: mesh.egress_gateway,
                    k8s: None,
                }],
            },
            values: Values {
                global: Global {
                    proxy: Proxy {
                        resources: Resources {
                            requests: Quantities {
                                cpu: p.cpu_request.clone(),
                                memory: p.memory_request.clone(),
                            },
                            limits: Quantities {
                                cpu: p.cpu_limit.clone(),
                                memory: p.memory_limit.clone(),
                            },
                        },
                    },
                },
            },
        },
    })
}

impl IstioOperator {
    /// The operator as YAML.
    pub fn to_yaml(&self) -> Result<String, KindError> {
        serde_saphyr::to_string(self).map_err(|e| KindError::Generate(e.to_string()))
    }

    /// The Deployments `istioctl install` must have made ready: istiod and each gateway.
    pub fn deployments(&self) -> Vec<&'static str> {
        let c = &self.spec.components;
        std::iter::once("istiod")
            .chain(
                c.ingress_gateways
                    .iter()
                    .chain(&c.egress_gateways)
                    .filter(|g| g.enabled)
                    .map(|g| g.name),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    #[test]
    fn pii_demo_operator_snapshot() {
        let s = scenario("pii-demo");
        let op = operator(
            s.file.requires.mesh.as_ref().unwrap(),
            super::super::placement::gateway_slot(&s).as_deref(),
        )
        .unwrap();
        insta::assert_snapshot!(op.to_yaml().unwrap());
        assert_eq!(op.deployments(), ["istiod", INGRESS_GATEWAY]);
    }

    #[test]
    fn registry_only_egress_and_resources_come_from_the_scenario() {
        let s = scenario("pii-demo");
        let mut mesh = s.file.requires.mesh.clone().unwrap();
        mesh.outbound_traffic_policy = OutboundPolicy::RegistryOnly;
        mesh.egress_gateway = true;
        mesh.profile = "demo".into();
        mesh.proxy.cpu_request = "10m".into();
        mesh.proxy.memory_request = "40Mi".into();
        let op = operator(&mesh, None).unwrap();
        insta::assert_snapshot!(op.to_yaml().unwrap());
        assert_eq!(
            op.deployments(),
            ["istiod", INGRESS_GATEWAY, EGRESS_GATEWAY]
        );
        mesh.name = MeshName::Consul;
        assert!(operator(&mesh, None).is_err());
    }
}
