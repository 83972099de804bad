//! `cargo xtask hpa check`: predict how sidecars skew each HPA, and print the fixes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use meshproof::hpa::{self, Assumptions, Cpu, HpaError, InjectionMode, Severity};
use meshproof::scenario::{ProxyResources, Scenario};

use crate::Outcome;

/// HPA commands.
#[derive(Debug, Subcommand)]
pub enum HpaCmd {
    /// Analyse every HPA of a scenario (or of manifest files) against the pods it
    /// scales, including the sidecar injection adds. Exits 1 when an HPA is skewed or
    /// cannot scale.
    Check(CheckArgs),
}

/// How injection is decided.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InjectArg {
    /// From namespace and pod labels, as Istio's webhook does.
    Auto,
    /// Assume every pod gets a sidecar.
    Always,
    /// Assume no pod gets one.
    Never,
}

/// `hpa check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The scenario (see `cargo xtask scenarios list`).
    #[arg(required_unless_present = "manifests", conflicts_with = "manifests")]
    scenario: Option<String>,
    /// Analyse these manifest files instead of a scenario (Istio assumed installed).
    #[arg(long, num_args = 1.., value_name = "FILE")]
    manifests: Vec<PathBuf>,
    /// CPU one proxy uses while the app is loaded: assumed, or measured with
    /// `kubectl top pod --containers`. The seed measured about 10m.
    #[arg(long, value_name = "CPU", default_value = "10m")]
    proxy_usage: String,
    /// The proxy's CPU request from the mesh's install values (`--manifests` only; a
    /// scenario's `requires.mesh.proxy` wins).
    #[arg(long, value_name = "CPU", default_value = "100m")]
    proxy_cpu_request: String,
    /// The proxy's CPU limit from the mesh's install values (`--manifests` only).
    #[arg(long, value_name = "CPU", default_value = "2000m")]
    proxy_cpu_limit: String,
    /// How to decide whether a pod gets a sidecar.
    #[arg(long, value_enum, default_value = "auto")]
    inject: InjectArg,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, cmd: HpaCmd) -> Result<Outcome> {
    match cmd {
        HpaCmd::Check(args) => check(root, args),
    }
}

// Printing the report on stdout is this command's whole output; progress would go to
// the reporter, but there is none here.
#[allow(clippy::print_stdout)]
fn check(root: &Path, args: CheckArgs) -> Result<Outcome> {
    let assumptions = Assumptions {
        proxy_usage: cpu("--proxy-usage", &args.proxy_usage)?,
        inject: match args.inject {
            InjectArg::Auto => InjectionMode::Auto,
            InjectArg::Always => InjectionMode::Always,
            InjectArg::Never => InjectionMode::Never,
        },
    };
    let report = match &args.scenario {
        Some(name) => hpa::check_scenario(&Scenario::load(root, name)?, &assumptions)?,
        None => {
            let proxy = ProxyResources {
                cpu_request: cpu("--proxy-cpu-request", &args.proxy_cpu_request)?.to_string(),
                cpu_limit: cpu("--proxy-cpu-limit", &args.proxy_cpu_limit)?.to_string(),
                ..ProxyResources::default()
            };
            hpa::check_files(&args.manifests, &proxy, &assumptions)?
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serializing the report")?
        );
    } else {
        print!("{}", hpa::render::text(&report));
    }
    Ok(match report.worst() {
        Some(Severity::Warning | Severity::Error) => Outcome::Failed,
        _ => Outcome::Passed,
    })
}

fn cpu(option: &str, text: &str) -> Result<Cpu> {
    Cpu::parse(text).map_err(|source| {
        HpaError::Option {
            what: option.to_string(),
            problem: source,
        }
        .into()
    })
}
