//! `cargo xtask tools`: install and show the pinned kind, kubectl and istioctl.

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use meshproof::env_vars;
use meshproof::exec::Exec;
use meshproof::tools::{self, Platform, ToolOptions, ToolsLock, Versions};

use crate::Outcome;
use crate::ui::Ui;

/// The pinned CLI tools of the kind path.
#[derive(Debug, Subcommand)]
pub enum ToolsCmd {
    /// Download what is missing into the cache, verify it against the upstream checksum
    /// file and fixtures/tools.lock (recording first-seen hashes there). Needs internet.
    Install(ToolArgs),
    /// Show each pin and which file would run, without downloading anything.
    List(ToolArgs),
}

/// Flags shared by the tools subcommands.
#[derive(Debug, Args)]
pub struct ToolArgs {
    /// Use kind/kubectl/istioctl from PATH whatever their version.
    #[arg(long)]
    use_path_tools: bool,
}

pub fn run(root: &Path, cmd: ToolsCmd, ui: &Ui) -> Result<Outcome> {
    let versions = Versions::load(root)?;
    let args = match &cmd {
        ToolsCmd::Install(a) | ToolsCmd::List(a) => a,
    };
    let platform = Platform::current()
        .context("meshproof installs tools for linux and macOS on amd64/arm64 only")?;
    let opts = ToolOptions {
        cache: env_vars::cache_dir(root),
        use_path_tools: args.use_path_tools,
        platform,
        path_dirs: env_vars::path_dirs(),
    };
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let exec = Exec::new();
    match cmd {
        ToolsCmd::Install(_) => {
            let mut lock = ToolsLock::load(root)?;
            let set = rt.block_on(tools::install(&versions, &mut lock, &opts, &exec, ui))?;
            for (name, tool) in &set.tools {
                println!("{name:<9} {}", tool.path.display());
            }
            Ok(Outcome::Passed)
        }
        ToolsCmd::List(_) => {
            let found = rt.block_on(tools::resolve(&versions, &opts, &exec));
            let (set, missing) = match found {
                Ok(set) => (set, vec![]),
                Err(missing) => (Default::default(), missing),
            };
            for name in tools::TOOLS {
                let pin = versions.tool(name)?;
                let state = match set.tools.get(name) {
                    Some(t) => t.path.display().to_string(),
                    None => missing
                        .iter()
                        .find(|m| m.tool == name)
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                };
                println!("{name:<9} {:<9} {state}", pin.version);
            }
            println!("cache     {}", opts.cache.display());
            Ok(if missing.is_empty() {
                Outcome::Passed
            } else {
                Outcome::Failed
            })
        }
    }
}
