//! `cargo xtask gc`: remove leftovers of meshproof runs (containers, networks, volumes,
//! kind clusters named `meshproof-*`), by label, idempotently. Runs whose ledger names a
//! live owner process are spared; `--check` only lists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use meshproof::env_vars;
use meshproof::exec::Exec;
use meshproof::gc::{self, GcFilter, Liveness};
use meshproof::tools::{self, Platform, ToolOptions, Versions};

use crate::Outcome;

/// Remove what meshproof runs left behind (also kept labs).
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only this run's objects (the run id printed by `e2e`); all runs otherwise.
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Only list what would be removed, remove nothing; fail (exit 1) if there is
    /// anything: CI's proof that runs left nothing.
    #[arg(long)]
    check: bool,
    /// Where runs keep their ledgers (`<DIR>/<run>/ledger.jsonl`), as `e2e --artifacts`.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    artifacts: PathBuf,
    /// Also remove runs older than this (`30m`, `2h`), even alive or of unknown owner.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<Duration>,
}

fn parse_age(text: &str) -> std::result::Result<Duration, String> {
    meshproof::scenario::parse_duration(text)
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
                list_only: args.check,
                liveness: Liveness {
                    ledgers: Some(args.artifacts.clone()),
                    older_than: args.older_than,
                    named: args.run.is_some(),
                },
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
                if args.check {
                    println!("would remove {what} {name}");
                } else {
                    println!("removed {what} {name}");
                }
            }
        }
        for run in &report.spared {
            println!("spared run {run}");
        }
        if report.is_empty() {
            println!("nothing to remove");
        }
        for failure in &report.failures {
            eprintln!("could not remove {failure}");
        }
        if args.check && !report.is_empty() {
            eprintln!(
                "leftovers found: a run did not clean up after itself (nothing removed; run `cargo xtask gc`)"
            );
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
