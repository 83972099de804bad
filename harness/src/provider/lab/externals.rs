//! Starting what lives outside the mesh: `kind: external` workloads (a database on the lab
//! network, in no registry, never given a sidecar) and the egress gateway (an Envoy in
//! `istio-system`). Both are containers like every pod: labelled with the run, recorded,
//! and removed by the same teardown and sweep, after Ctrl-C too.
//!
//! The issue asked for the `testcontainers` crate here. It is not used: its containers
//! are removed when their Rust handle drops, while the lab's lifetime is the run's (kept
//! with `--keep`, swept by label after a kill), and it would be a second Docker client
//! beside the lab's bollard one with its own naming; the lab's `run_container` already
//! labels, names, copies files in and waits, so an external database is one more call.

use super::LabError;
use super::mesh::Mesh;
use super::pod;
use super::running::{DockerLab, PodState};
use super::topology::{self, EGRESS_POD, Topology};
use crate::reporter::Reporter;

impl DockerLab {
    /// Starts every `kind: external` workload: the workload binary serving its ports with
    /// its seed data, on the lab network under its host names, with no sidecar.
    pub(super) async fn create_externals(
        &mut self,
        reporter: &dyn Reporter,
    ) -> Result<(), LabError> {
        let docs = self.docs();
        let topo = Topology::new(&self.scenario, Mesh::for_scenario(&self.scenario, &docs));
        let externals: Vec<_> = topo
            .externals()
            .into_iter()
            .map(|w| (topo.external_role(w, &self.cookie), topo.external_hosts(w)))
            .collect();
        for (role, hosts) in externals {
            let running = pod::start_app(&self.docker, &self.ctx, &role, hosts.clone()).await?;
            reporter.debug(&format!(
                "external {} at {} as {}",
                role.instance,
                running.ip,
                hosts.join(", ")
            ));
            self.history.insert(running.ip, running.clone());
            let name = role.instance.clone();
            self.pods.insert(
                name.clone(),
                PodState {
                    running,
                    role,
                    sidecar: None,
                },
            );
            self.wait_external(&name).await?;
        }
        Ok(())
    }

    async fn wait_external(&self, name: &str) -> Result<(), LabError> {
        let state = &self.pods[name];
        pod::wait_ready(
            &self.docker,
            &state.running,
            &state.role,
            std::time::Duration::from_secs(60),
        )
        .await
    }

    /// Starts the egress gateway pod: an Envoy with no app, like Istio's egress gateway;
    /// its listeners follow the egress Gateways as they are applied.
    pub(super) async fn create_egress_gateway(&mut self) -> Result<(), LabError> {
        let role = self.gateway_role(crate::scenario::peers::EGRESS_GATEWAY, EGRESS_POD);
        let running = pod::start_app(
            &self.docker,
            &self.ctx,
            &role,
            vec![topology::EGRESS_FQDN.to_string()],
        )
        .await?;
        self.history.insert(running.ip, running.clone());
        let docs = self.docs();
        let cfg = Topology::new(&self.scenario, Mesh::for_scenario(&self.scenario, &docs))
            .egress_gateway(running.ip);
        self.pods.insert(
            EGRESS_POD.into(),
            PodState {
                running,
                role,
                sidecar: Some(cfg),
            },
        );
        Ok(())
    }

    /// Whether the pod is outside the scenario's manifests (an external workload or a
    /// gateway), so applying and deleting manifests never removes it.
    pub(super) fn outside_manifests(&self, workload: &str) -> bool {
        workload == crate::scenario::peers::INGRESS_GATEWAY
            || workload == crate::scenario::peers::EGRESS_GATEWAY
            || self
                .scenario
                .workload(workload)
                .is_some_and(|w| w.kind == crate::scenario::WorkloadKind::External)
    }
}
