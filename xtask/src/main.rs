//! `cargo xtask`: the meshproof command line.
//!
//! This crate only parses flags, renders progress and maps outcomes to exit codes. Every
//! subcommand lives in its own file and calls into the `meshproof` library.
//!
//! Exit codes: 0 all passed, 1 a scenario failed, 2 harness, infrastructure or input error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod capture;
mod e2e;
mod gc;
mod hpa;
mod images;
mod scenarios;
mod signals;
mod tidy;
mod tls_check;
mod tools;
mod ui;

use std::path::{Path, PathBuf};

/// Prove, from packets on the wire, that a service mesh does what its policy says.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    /// Show debug detail and the commands that run.
    #[arg(short, long, global = true)]
    verbose: bool,

    /// Never draw progress bars (also when NO_COLOR or CI is set).
    #[arg(long, global = true)]
    no_progress: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The scenario catalogue.
    #[command(subcommand)]
    Scenarios(scenarios::ScenariosCmd),
    /// Run scenarios end to end (or print their plan with --dry-run).
    E2e(e2e::E2eArgs),
    /// HPA with sidecars: predict the skew from manifests and print the fixes.
    #[command(subcommand)]
    Hpa(hpa::HpaCmd),
    /// Remove leftovers of meshproof runs by label (containers, networks, kind clusters).
    Gc(gc::GcArgs),
    /// Container images: build meshproof's own (offline), list them with the upstream ones
    /// scenarios run, or pull the upstream ones for a mirror.
    #[command(subcommand)]
    Images(images::ImagesCmd),
    /// Install and show the pinned kind, kubectl and istioctl.
    #[command(subcommand)]
    Tools(tools::ToolsCmd),
    /// Predict, from the scenario's manifests, which ports are mTLS and which conflict.
    TlsCheck(tls_check::TlsCheckArgs),
    /// Work with packet captures (`capture analyze FILE`).
    Capture(capture::CaptureArgs),
    /// Measure speed and memory (`bench analyzer`).
    Bench(bench::BenchArgs),
}

/// How a subcommand ended, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything passed (exit 0).
    Passed,
    /// A scenario or check failed (exit 1).
    Failed,
    /// A signal stopped the run after teardown (exit 128 + signal: 130, 143).
    Interrupted(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = ui::Ui::new(cli.verbose, cli.no_progress);
    let root = project_root();
    let result = match cli.command {
        Command::Scenarios(cmd) => scenarios::run(&root, cmd),
        Command::E2e(args) => e2e::run(&root, args, &ui),
        Command::Hpa(cmd) => hpa::run(&root, cmd),
        Command::Tools(cmd) => tools::run(&root, cmd, &ui),
        Command::Gc(args) => gc::run(&root, args),
        Command::Images(cmd) => images::run(&root, cmd, &ui),
        Command::TlsCheck(args) => tls_check::run(&root, args),
        Command::Capture(args) => capture::run(args),
        Command::Bench(args) => bench::run(args, &ui),
    };
    match result {
        Ok(Outcome::Passed) => ExitCode::from(0),
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Interrupted(code)) => ExitCode::from(code),
        Err(err) => {
            ui.error(&err);
            ExitCode::from(2)
        }
    }
}

/// The repository root: xtask always lives one level below it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
