//! `cargo xtask images list|pull`: the images scenarios run, for air-gapped homelabs that
//! mirror them, and `kind load` of what is present locally.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;
use meshproof::exec::{Cmd, Exec};
use meshproof::provider::kind::images::{is_local, scenario_images};
use meshproof::scenario::{self, Scenario};
use meshproof::tools::Versions;

use crate::Outcome;

/// The container images of the scenarios and of the kind path.
#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// Print every image, one per line (the kind node image first).
    List {
        /// Only these scenarios (all by default).
        names: Vec<String>,
    },
    /// `docker pull` every image that is not built locally (needs a registry).
    Pull {
        /// Only these scenarios (all by default).
        names: Vec<String>,
    },
}

fn images(root: &Path, names: &[String]) -> Result<Vec<String>> {
    let names = if names.is_empty() {
        scenario::list_names(&root.join("scenarios"))
    } else {
        names.to_vec()
    };
    let mut all = std::collections::BTreeSet::new();
    for name in names {
        all.extend(scenario_images(&Scenario::load(root, &name)?));
    }
    let versions = Versions::load(root)?;
    let mut out = vec![
        versions.kind.node_image.clone(),
        versions.existing.tcpdump_image.clone(),
    ];
    out.extend(all);
    Ok(out)
}

pub fn run(root: &Path, cmd: ImagesCmd) -> Result<Outcome> {
    match cmd {
        ImagesCmd::List { names } => {
            for image in images(root, &names)? {
                let note = if is_local(&image) {
                    "  (built by meshproof, never pulled)"
                } else {
                    ""
                };
                println!("{image}{note}");
            }
            Ok(Outcome::Passed)
        }
        ImagesCmd::Pull { names } => {
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let exec = Exec::new();
            let mut failed = false;
            for image in images(root, &names)?.into_iter().filter(|i| !is_local(i)) {
                match rt.block_on(exec.run(&Cmd::new("docker").args(["pull", &image]))) {
                    Ok(_) => println!("pulled {image}"),
                    Err(e) => {
                        eprintln!("could not pull {image}: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                Outcome::Failed
            } else {
                Outcome::Passed
            })
        }
    }
}
