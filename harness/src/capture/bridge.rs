//! The host interface behind a Docker bridge network: where to capture the traffic that
//! crosses it (kind nodes, Docker lab containers).

use std::collections::HashMap;

use super::CaptureError;

/// The network option that names the bridge explicitly (set for Docker's default
/// `bridge` network, which is `docker0`).
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// The host interface of a bridge network: the explicit name from its options, else
/// Docker's default `br-<first 12 hex digits of the network id>`.
pub fn bridge_interface(network_id: &str, options: &HashMap<String, String>) -> Result<String, CaptureError> {
    if let Some(name) = options.get(BRIDGE_NAME_OPTION).filter(|n| !n.is_empty()) {
        return Ok(name.clone());
    }
    let prefix = network_id.get(..12).filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()));
    match prefix {
        Some(p) => Ok(format!("br-{p}")),
        None => Err(CaptureError::BadNetworkId(network_id.to_string())),
    }
}

/// Asks Docker for a network by name or id and returns its bridge interface.
pub async fn docker_bridge_interface(docker: &bollard::Docker, network: &str) -> Result<String, CaptureError> {
    let inspect = docker
        .inspect_network(network, None)
        .await
        .map_err(|source| CaptureError::Docker { network: network.to_string(), source })?;
    let id = inspect.id.unwrap_or_default();
    bridge_interface(&id, &inspect.options.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_explicit_names() {
        let id = "3f1c2a9be07d55aa0c1e6b2f8d9e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b";
        assert_eq!(bridge_interface(id, &HashMap::new()).unwrap(), "br-3f1c2a9be07d");
        let opts = HashMap::from([(BRIDGE_NAME_OPTION.to_string(), "docker0".to_string())]);
        assert_eq!(bridge_interface(id, &opts).unwrap(), "docker0");
        assert!(matches!(bridge_interface("kind", &HashMap::new()), Err(CaptureError::BadNetworkId(_))));
        assert!(bridge_interface("zzzzzzzzzzzzzzzz", &HashMap::new()).is_err());
    }
}
