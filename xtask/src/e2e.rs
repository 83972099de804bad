//! `cargo xtask e2e`: run scenarios end to end on a provider, or print the plan.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use meshproof::ledger::{Item, Ledger};
use meshproof::plan;
use meshproof::provider::{self, ProviderKind, RunContext};
use meshproof::report::{self, RunReport};
use meshproof::runner::{self, Cancel, RunOptions};
use meshproof::scenario::{self, Canary, Scenario};
use meshproof::verdict::Verdict;

use crate::Outcome;
use crate::ui::Ui;

/// Where the scenario runs.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    /// Create a kind cluster with MetalLB and the mesh (needs Docker and internet).
    Kind,
    /// Use a cluster you own, picked by `--context`. Never point it at a cluster you do
    /// not own: meshproof labels nodes, installs components and captures traffic.
    Existing,
    /// The offline Docker lab: real Envoy sidecars doing mTLS, no Kubernetes, no Istio
    /// control plane.
    Lab,
}

impl From<ProviderArg> for ProviderKind {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Kind => ProviderKind::Kind,
            ProviderArg::Existing => ProviderKind::Existing,
            ProviderArg::Lab => ProviderKind::Lab,
        }
    }
}

/// Run scenarios end to end and assert what the wire shows.
#[derive(Debug, Args)]
pub struct E2eArgs {
    /// Scenarios to run (see `cargo xtask scenarios list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    names: Vec<String>,
    /// Run every scenario.
    #[arg(long)]
    all: bool,
    /// Where to run.
    #[arg(long, value_enum, default_value = "kind")]
    provider: ProviderArg,
    /// Keep the lab afterwards (remove it later with `cargo xtask gc`).
    #[arg(long)]
    keep: bool,
    /// Reuse an existing kind cluster of this name instead of creating one.
    #[arg(long, value_name = "CLUSTER")]
    reuse: Option<String>,
    /// Kubeconfig context for `--provider existing`.
    #[arg(long, value_name = "CTX")]
    context: Option<String>,
    /// Run phases up to and including this one; judge only this one.
    #[arg(long)]
    phase: Option<String>,
    /// Where captures, flows, logs and reports go.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    artifacts: PathBuf,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print the full ordered plan and touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Use kind/kubectl/istioctl from PATH whatever their version (kind provider).
    #[arg(long)]
    use_path_tools: bool,
    /// Image for the existing provider's capture pods (it needs sh and tcpdump), e.g. a
    /// copy of the pinned one in your own registry.
    #[arg(long, value_name = "IMAGE")]
    capture_image: Option<String>,
}

pub fn run(root: &Path, args: E2eArgs, ui: &Ui) -> Result<Outcome> {
    let scenarios = load(root, &args)?;
    let kind = ProviderKind::from(args.provider);
    let options = provider::ProviderOptions {
        use_path_tools: args.use_path_tools,
        capture_image: args.capture_image.clone(),
    };
    let provider = provider::for_kind(kind, root, options);
    let run_id = run_id();
    let ctx = RunContext {
        run_id: run_id.clone(),
        artifacts: args.artifacts.join(&run_id),
        canary: Canary::generate(),
        keep: args.keep,
        reuse: args.reuse.clone(),
        context: args.context.clone(),
    };
    if let Some(phase) = &args.phase {
        for s in &scenarios {
            if s.phase(phase).is_none() {
                let known: Vec<&str> = s
                    .file
                    .phases
                    .iter()
                    .map(|p| p.name.value.as_str())
                    .collect();
                bail!(
                    "scenario {} has no phase `{phase}`; its phases: {}",
                    s.name(),
                    known.join(", ")
                );
            }
        }
    }
    if args.dry_run {
        for s in &scenarios {
            print!("{}", render_plan(&plan::build(s, provider.as_ref(), &ctx)?));
        }
        return Ok(Outcome::Passed);
    }
    record_owner(&ctx)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = rt.block_on(run_all(&scenarios, provider.as_ref(), &args, ctx, ui));
    let outcome = finish(&report, &args);
    // Interrupted: the partial report is written above; the exit code names the signal.
    match crate::signals::exit_code() {
        Some(code) => {
            if let Err(e) = outcome {
                eprintln!("{e:#}");
            }
            Ok(Outcome::Interrupted(code))
        }
        None => outcome,
    }
}

fn load(root: &Path, args: &E2eArgs) -> Result<Vec<Scenario>> {
    let names = if args.all {
        scenario::list_names(&root.join("scenarios"))
    } else {
        args.names.clone()
    };
    names
        .iter()
        .map(|n| Scenario::load(root, n).map_err(Into::into))
        .collect()
}

/// Writes this process as the run's owner, before anything is created, so `cargo xtask gc`
/// running meanwhile spares the run (see `meshproof::gc::liveness`).
fn record_owner(ctx: &RunContext) -> Result<()> {
    if let Some(owner) = Item::owner_of_this_process() {
        Ledger::open(&ctx.artifacts.join("ledger.jsonl"), &ctx.run_id)?.record(owner)?;
    }
    Ok(())
}

/// A run id that sorts by time and is unique enough for labels and names.
fn run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let tail = Canary::generate().as_str()[17..23].to_string();
    format!("mp-{secs:x}-{tail}")
}

async fn run_all(
    scenarios: &[Scenario],
    provider: &dyn provider::Provider,
    args: &E2eArgs,
    ctx: RunContext,
    ui: &Ui,
) -> RunReport {
    let (handle, cancel) = Cancel::new();
    tokio::spawn(async move {
        crate::signals::interrupted().await;
        handle.cancel();
        let code = crate::signals::interrupted().await;
        eprintln!("interrupted twice: stopping now; remove leftovers with `cargo xtask gc`");
        std::process::exit(i32::from(code));
    });
    let opts = RunOptions {
        phase: args.phase.clone(),
        context: ctx.clone(),
    };
    let mut report = RunReport {
        run_id: ctx.run_id.clone(),
        provider: provider.name().to_string(),
        canary: ctx.canary.to_string(),
        artifacts: ctx.artifacts.clone(),
        analyzer_version: meshproof::report::ANALYZER_VERSION.to_string(),
        scenarios: Vec::new(),
    };
    for s in scenarios {
        if cancel.is_cancelled() {
            break;
        }
        report
            .scenarios
            .push(runner::run(s, provider, &opts, ui, cancel.clone()).await);
    }
    report
}

fn finish(run: &RunReport, args: &E2eArgs) -> Result<Outcome> {
    report::write(&run.artifacts.join("report.json"), &run.to_json()?)?;
    report::write(&run.artifacts.join("junit.xml"), &report::to_junit(run)?)?;
    if let Some(path) = &args.json {
        report::write(path, &run.to_json()?)?;
    }
    if let Some(path) = &args.junit {
        report::write(path, &report::to_junit(run)?)?;
    }
    print!("{}", report::to_text(run));
    match run.verdict() {
        Verdict::Pass | Verdict::Skip => Ok(Outcome::Passed),
        Verdict::Fail => Ok(Outcome::Failed),
        Verdict::Error => bail!(
            "the run could not be judged; see the errors above and {}",
            run.artifacts.display()
        ),
    }
}

fn render_plan(plan: &plan::Plan) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "plan for {} on {} (dry run: nothing is touched)\n",
        plan.scenario, plan.provider
    );
    let mut section = "";
    let mut n = 0;
    for e in &plan.entries {
        if e.section != section {
            section = &e.section;
            let _ = writeln!(out, "\n{section}:");
        }
        n += 1;
        let _ = writeln!(out, "  {n:>3}. {}", e.text);
        if let Some(detail) = &e.detail {
            for line in detail.lines() {
                let _ = writeln!(out, "         {line}");
            }
        }
    }
    out
}
