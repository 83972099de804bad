//! `cargo xtask gc`: remove leftovers of meshproof runs (containers, networks, volumes,
//! kind clusters named `meshproof-*`), by label, idempotently.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use meshproof::env_vars;
use meshproof::exec::Exec;
use meshproof::gc::{self, GcFilter};
use meshproof::tools::{self, Platform, ToolOptions, Versions};

use crate::Outcome;

/// Remove what meshproof runs left behind (also kept labs).
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only this run's objects (the run id printed by `e2e`); all runs otherwise.
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Fail (exit 1) if there was anything to remove: CI's proof that runs left nothing.
    #[arg(long)]
    check: bool,
}

pub fn run(root: &Path, args: GcArgs) -> Result<Outcome> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async {
        let docker = bollard_docker()?;
        let exec = Exec::new();
        // kind deletes clusters properly (kubeconfig entries too) when it is installed.
        let kind = match (Versions::load(root), Platform::current()) {
            (Ok(v), Some(platform)) => {
                let opts = ToolOptions {
                    cache: env_vars::cache_dir(root),
                    use_path_tools: true,
                    platform,
                    path_dirs: env_vars::path_dirs(),
                };
                tools::resolve(&v, &opts, &exec)
                    .await
                    .ok()
                    .map(|set| set.cmd("kind"))
            }
            _ => None,
        };
        let report = gc::sweep(
            &docker,
            &exec,
            &GcFilter {
                run: args.run.clone(),
                kind,
            },
        )
        .await?;
        for (what, names) in [
            ("cluster", &report.clusters),
            ("container", &report.containers),
            ("network", &report.networks),
            ("volume", &report.volumes),
        ] {
            for name in names {
                println!("removed {what} {name}");
            }
        }
        if report.is_empty() {
            println!("nothing to remove");
        }
        for failure in &report.failures {
            eprintln!("could not remove {failure}");
        }
        if args.check && !report.is_empty() {
            eprintln!("leftovers found: a run did not clean up after itself (removed now)");
            return Ok(Outcome::Failed);
        }
        Ok(if report.failures.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed
        })
    })
}

fn bollard_docker() -> Result<meshproof::gc::Docker> {
    meshproof::gc::Docker::connect_with_local_defaults().context("cannot reach the Docker daemon")
}
