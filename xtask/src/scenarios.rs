//! `cargo xtask scenarios list|show`: the scenario catalogue.

use std::fmt::Write;
use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use meshproof::plan::probe_text;
use meshproof::runner::steps_label;
use meshproof::scenario::{self, CanaryRule, Scenario, Step};

use crate::Outcome;

/// Scenario catalogue commands.
#[derive(Debug, Subcommand)]
pub enum ScenariosCmd {
    /// List every scenario with its summary and the seed it comes from.
    List,
    /// Print a scenario's phases, steps and expectations.
    Show {
        /// The scenario name.
        name: String,
    },
}

pub fn run(root: &Path, cmd: ScenariosCmd) -> Result<Outcome> {
    match cmd {
        ScenariosCmd::List => {
            let all = scenario::load_all(root)?;
            let width = all.iter().map(|s| s.name().len()).max().unwrap_or(0);
            let mut out = String::new();
            for s in &all {
                let seed = s.file.seed.as_deref().unwrap_or("-");
                let _ = writeln!(
                    out,
                    "{:width$}  {}\n{:width$}  seed: {seed}",
                    s.name(),
                    s.file.summary,
                    ""
                );
            }
            print!("{out}");
        }
        ScenariosCmd::Show { name } => print!("{}", show(&Scenario::load(root, &name)?)),
    }
    Ok(Outcome::Passed)
}

fn show(s: &Scenario) -> String {
    let mut out = format!("{}: {}\n", s.name(), s.file.summary);
    if let Some(seed) = &s.file.seed {
        let _ = writeln!(out, "seed: {seed}");
    }
    if !s.file.description.is_empty() {
        let _ = writeln!(out, "\n{}", s.file.description.trim_end());
    }
    let _ = writeln!(out, "\nworkloads:");
    for w in &s.file.workloads {
        let ports: Vec<String> = w
            .ports
            .iter()
            .map(|p| format!("{}/{:?}", p.port, p.protocol).to_lowercase())
            .collect();
        let calls: Vec<String> = w
            .calls
            .iter()
            .map(|c| format!("{}:{}", c.to.value, c.port))
            .collect();
        let _ = writeln!(
            out,
            "  {} ({}, x{}) serves [{}] calls [{}]",
            w.name.value,
            w.namespace,
            w.replicas,
            ports.join(", "),
            calls.join(", ")
        );
    }
    for phase in &s.file.phases {
        let _ = writeln!(out, "\nphase {}: {}", phase.name.value, phase.description);
        for step in &phase.steps {
            let _ = writeln!(out, "  - {}", steps_label(step));
            if let Step::Capture(c) = step {
                for p in &c.probes {
                    let _ = writeln!(out, "      {}", probe_text(p));
                }
                for (kind, e) in c
                    .controls
                    .iter()
                    .map(|e| ("control", e))
                    .chain(c.expect.iter().map(|e| ("expect", e)))
                {
                    let class = e.class.map(|c| format!(" {c}")).unwrap_or_default();
                    let canary = match e.canary {
                        Some(CanaryRule::Present) => ", canary present",
                        Some(CanaryRule::Absent) => ", canary absent",
                        None => "",
                    };
                    let _ = writeln!(
                        out,
                        "      {kind} {}: {} → {}:{}{class}{canary}",
                        e.name.value, e.flow.from.value, e.flow.to.value, e.flow.port
                    );
                }
            }
        }
    }
    out
}
