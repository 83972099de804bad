//! `cargo xtask images build|list|pull`: the images meshproof builds itself (offline, from
//! local files, with no base image), and the upstream images scenarios run, for air-gapped
//! homelabs that mirror them.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use meshproof::exec::{Cmd, Exec};
use meshproof::image::{self, BuildRequest, ProjectImage, is_project_image};
use meshproof::provider::kind::images::scenario_images;
use meshproof::scenario::{self, Scenario};
use meshproof::tools::Versions;

use crate::Outcome;
use crate::ui::Ui;

/// The container images of meshproof and of its scenarios.
#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// Build every image meshproof supplies, locally and offline (no base image, no pull).
    Build {
        /// Only this image (all by default).
        #[arg(long, value_enum)]
        only: Option<Which>,
    },
    /// Print the images meshproof builds, then every upstream image the scenarios need.
    List {
        /// Only these scenarios (all by default).
        names: Vec<String>,
    },
    /// `docker pull` every upstream image (needs a registry); meshproof's own are built.
    Pull {
        /// Only these scenarios (all by default).
        names: Vec<String>,
    },
}

/// One project image, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Which {
    /// `meshproof-lab:<input hash>`, the Docker lab's image.
    Lab,
    /// `meshproof-workload:<version>`, for kind pods and the capture helper.
    Workload,
}

/// Upstream images with the reason each is needed: the node image, then the scenarios'.
fn upstream(root: &Path, names: &[String]) -> Result<Vec<(String, String)>> {
    let names = if names.is_empty() {
        scenario::list_names(&root.join("scenarios"))
    } else {
        names.to_vec()
    };
    let versions = Versions::load(root)?;
    let mut out = vec![(
        versions.kind.node_image.clone(),
        "kind node image (pulled by `kind create cluster`)".to_string(),
    )];
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    for name in names {
        for image in scenario_images(&Scenario::load(root, &name)?) {
            seen.entry(image).or_default().push(name.clone());
        }
    }
    for (image, users) in seen.into_iter().filter(|(i, _)| !is_project_image(i)) {
        out.push((
            image,
            format!("pulled by the nodes for {}", users.join(", ")),
        ));
    }
    out.push((
        versions.existing.tcpdump_image.clone(),
        "--provider existing only: the capture pods' tcpdump".to_string(),
    ));
    Ok(out)
}

pub fn run(root: &Path, cmd: ImagesCmd, ui: &Ui) -> Result<Outcome> {
    match cmd {
        ImagesCmd::Build { only } => build(root, only, ui),
        ImagesCmd::List { names } => {
            println!(
                "# built by meshproof from local files (never pulled): cargo xtask images build"
            );
            for image in ProjectImage::ALL {
                println!("{}\t{}", image.reference_pattern(), image.purpose());
            }
            println!("# upstream");
            for (image, why) in upstream(root, &names)? {
                println!("{image}\t{why}");
            }
            Ok(Outcome::Passed)
        }
        ImagesCmd::Pull { names } => {
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let exec = Exec::new();
            let mut failed = false;
            for (image, _) in upstream(root, &names)? {
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

fn build(root: &Path, only: Option<Which>, ui: &Ui) -> Result<Outcome> {
    let images = match only {
        None => ProjectImage::ALL.to_vec(),
        Some(Which::Lab) => vec![ProjectImage::Lab],
        Some(Which::Workload) => vec![ProjectImage::Workload],
    };
    let request = BuildRequest {
        root: root.to_path_buf(),
        images,
        envoy_version: meshproof::provider::lab::config::envoy_version(root)?,
        cache_dir: meshproof::env_vars::cache_dir(root),
    };
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let started = Instant::now();
    let built = rt.block_on(async {
        let docker = image::connect().await?;
        image::build_project_images(&docker, &Exec::new(), &request, ui).await
    })?;
    for (_, image) in &built {
        println!(
            "{}\t{} ({} files, inputs {})",
            image.reference,
            if image.built { "built" } else { "up to date" },
            image.files.len(),
            image.content
        );
    }
    println!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(Outcome::Passed)
}
