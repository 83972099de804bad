//! The container images a scenario runs, for `cargo xtask images` and `kind load`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::scenario::Scenario;

/// Every image named in the scenario's manifests (pod templates, pods, init containers).
pub fn scenario_images(scenario: &Scenario) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for docs in scenario.manifests.values() {
        for doc in docs {
            for spec in [
                doc.value.pointer("/spec/template/spec"),
                doc.value.pointer("/spec"),
            ]
            .into_iter()
            .flatten()
            {
                collect(spec, &mut out);
            }
        }
    }
    out
}

fn collect(pod_spec: &Value, out: &mut BTreeSet<String>) {
    for key in ["containers", "initContainers"] {
        for c in pod_spec
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(image) = c.get("image").and_then(Value::as_str) {
                out.insert(image.to_string());
            }
        }
    }
}

/// Images meshproof builds itself (`crate::image`) and loads into kind rather than pull.
pub fn is_local(image: &str) -> bool {
    crate::image::is_project_image(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::scenario;

    #[test]
    fn pii_demo_images_are_found() {
        let images = scenario_images(&scenario("pii-demo"));
        assert!(images.contains("mysql:8.4.6"), "{images:?}");
        assert!(images.contains("meshproof-workload:0.1.0"), "{images:?}");
        assert!(images.iter().filter(|i| is_local(i)).count() == 1);
    }
}
