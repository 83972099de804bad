//! The cluster objects CNI detection reads: parsed from a recorded `kubectl -o json` list,
//! or listed read-only from a cluster.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node};

use super::CniError;

/// The cluster objects detection reads.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    /// DaemonSets in every namespace.
    pub daemonsets: Vec<DaemonSet>,
    /// ConfigMaps of the CNIs' namespaces (`kube-system`, `kube-flannel`).
    pub configmaps: Vec<ConfigMap>,
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl ClusterObjects {
    /// Reads a `kubectl get daemonsets,configmaps,nodes -A -o json` list; items of
    /// other kinds are ignored.
    pub fn from_list_json(text: &str) -> Result<ClusterObjects, CniError> {
        #[derive(serde::Deserialize)]
        struct List {
            items: Vec<serde_json::Value>,
        }
        let list: List = serde_json::from_str(text).map_err(CniError::NotAList)?;
        let mut out = ClusterObjects::default();
        for (index, item) in list.items.into_iter().enumerate() {
            let kind = item["kind"].as_str().unwrap_or_default().to_string();
            let bad = |source| CniError::BadItem {
                index,
                kind: kind.clone(),
                source,
            };
            match kind.as_str() {
                "DaemonSet" => out
                    .daemonsets
                    .push(serde_json::from_value(item).map_err(bad)?),
                "ConfigMap" => out
                    .configmaps
                    .push(serde_json::from_value(item).map_err(bad)?),
                "Node" => out.nodes.push(serde_json::from_value(item).map_err(bad)?),
                _ => {}
            }
        }
        Ok(out)
    }

    pub(super) fn daemonset(&self, name: &str) -> Option<&DaemonSet> {
        self.daemonsets
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
    }

    pub(super) fn config(&self, name: &str, key: &str) -> Option<&str> {
        self.configmaps
            .iter()
            .filter(|c| c.metadata.name.as_deref() == Some(name))
            .find_map(|c| c.data.as_ref()?.get(key).map(String::as_str))
    }

    /// An environment variable of a DaemonSet's containers, by literal value.
    pub(super) fn env(&self, ds: &str, var: &str) -> Option<&str> {
        let spec = self.daemonset(ds)?.spec.as_ref()?.template.spec.as_ref()?;
        spec.containers
            .iter()
            .flat_map(|c| c.env.iter().flatten())
            .find(|e| e.name == var)
            .and_then(|e| e.value.as_deref())
    }

    pub(super) fn node_annotation(&self, key: &str) -> Option<&str> {
        self.nodes.iter().find_map(|n| {
            n.metadata
                .annotations
                .as_ref()?
                .get(key)
                .map(String::as_str)
        })
    }
}

/// Where the CNIs keep the ConfigMaps detection reads.
const CONFIGMAPS: [(&str, &str); 3] = [
    ("kube-system", "cilium-config"),
    ("kube-system", "kube-flannel-cfg"),
    ("kube-flannel", "kube-flannel-cfg"),
];

/// Lists, read-only, the objects [`detect`] needs: every DaemonSet and Node, and the
/// CNIs' ConfigMaps where they exist. The existing provider's dry run calls this, then
/// [`detect`] and [`plan_entries`].
pub async fn list_objects(client: &::kube::Client) -> Result<ClusterObjects, CniError> {
    use ::kube::Api;
    let api_err = |what: &str| {
        let what = what.to_string();
        move |source| CniError::Api { what, source }
    };
    let params = ::kube::api::ListParams::default();
    let daemonsets = Api::<DaemonSet>::all(client.clone())
        .list(&params)
        .await
        .map_err(api_err("daemonsets"))?
        .items;
    let nodes = Api::<Node>::all(client.clone())
        .list(&params)
        .await
        .map_err(api_err("nodes"))?
        .items;
    let mut configmaps = Vec::new();
    for (ns, name) in CONFIGMAPS {
        let api = Api::<ConfigMap>::namespaced(client.clone(), ns);
        if let Some(cm) = api
            .get_opt(name)
            .await
            .map_err(api_err(&format!("{ns}/{name}")))?
        {
            configmaps.push(cm);
        }
    }
    Ok(ClusterObjects {
        daemonsets,
        configmaps,
        nodes,
    })
}
