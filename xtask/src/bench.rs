//! `cargo xtask bench ...`: speed and memory figures that tests must not assert on.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use meshproof::exec::{Cmd, Exec};
use meshproof::wire::AnalyzerConfig;
use meshproof::wire::bench::{self, BENCH_CANARY, BenchConfig, BenchReport};

use crate::Outcome;
use crate::ui::Ui;

/// Run a benchmark.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Generate a large mixed TLS/plaintext capture and time the wire analyzer (and tshark).
    Analyzer(AnalyzerBench),
}

#[derive(Debug, Args)]
struct AnalyzerBench {
    /// Size of the generated capture in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Connections interleaved at once.
    #[arg(long, default_value_t = 64)]
    concurrent: usize,
    /// Response bytes per connection, in KiB (sets how many connections the file holds).
    #[arg(long, default_value_t = 1024)]
    response_kib: usize,
    /// Directory for the capture (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the tshark comparison.
    #[arg(long)]
    no_tshark: bool,
    /// Internal: analyse FILE in this process and print the measurement as JSON.
    #[arg(long, hide = true, value_name = "FILE")]
    analyze_only: Option<PathBuf>,
}

/// Runs `cargo xtask bench ...`.
pub fn run(args: BenchArgs, ui: &Ui) -> anyhow::Result<Outcome> {
    match args.command {
        BenchCommand::Analyzer(a) => analyzer(a, ui),
    }
}

fn analyzer(args: AnalyzerBench, ui: &Ui) -> anyhow::Result<Outcome> {
    if let Some(file) = &args.analyze_only {
        let config = AnalyzerConfig {
            canaries: vec![BENCH_CANARY.to_vec()],
            ..AnalyzerConfig::default()
        };
        let m = bench::measure_file(file, &config)
            .with_context(|| format!("cannot analyse {}", file.display()))?;
        serde_json::to_writer(std::io::stdout().lock(), &m)?;
        return Ok(Outcome::Passed);
    }
    // Figures from an unoptimised build would be off by an order of magnitude and
    // mislead whoever compares them; refuse rather than print them.
    if cfg!(debug_assertions) {
        anyhow::bail!(
            "benchmarks need an optimised build: run `cargo xtask-release bench analyzer` \
             (`cargo run --release -p xtask -- bench analyzer`)"
        );
    }
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let config = BenchConfig {
        size_bytes: args.size_mib << 20,
        concurrent: args.concurrent,
        response_bytes: args.response_kib * 1024,
        work_dir: args.dir.clone(),
        analyze_cmd: Cmd::new(exe.display().to_string()).args([
            "bench",
            "analyzer",
            "--analyze-only",
        ]),
        tshark: !args.no_tshark,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(bench::run_bench(&config, &Exec::new(), ui))?;
    print_report(&report)?;
    // Speed means nothing if the answer is wrong: the analysis must find exactly what
    // the generator wrote.
    let (a, g) = (&report.analysis, &report.generated);
    let found = (a.tls_flows, a.plain_flows, a.canary_hits);
    let written = (g.tls_flows, g.plain_flows, g.canary_hits);
    let mut out = std::io::stdout().lock();
    if found == written {
        writeln!(
            out,
            "accuracy:  flows and canary hits match what was generated"
        )?;
        Ok(Outcome::Passed)
    } else {
        writeln!(
            out,
            "accuracy:  MISMATCH: found (TLS, plaintext, canary hits) {found:?}, generated {written:?}"
        )?;
        Ok(Outcome::Failed)
    }
}

fn print_report(r: &BenchReport) -> anyhow::Result<()> {
    let a = &r.analysis;
    let mut out = std::io::stdout().lock();
    let g = &r.generated;
    writeln!(
        out,
        "capture:   {:.0} MiB, {} packets, {} TLS + {} plaintext connections (generated in {:.1} s)",
        g.bytes as f64 / 1048576.0,
        g.packets,
        g.tls_flows,
        g.plain_flows,
        r.generate_seconds
    )?;
    writeln!(
        out,
        "meshproof: {:.2} s, {:.0} MB/s, {:.0} packets/s, {} flows ({} TLS, {} plaintext), {} canary hits",
        a.seconds,
        a.mb_per_second(),
        a.packets_per_second(),
        a.flows,
        a.tls_flows,
        a.plain_flows,
        a.canary_hits
    )?;
    match a.peak_rss {
        Some(rss) => writeln!(
            out,
            "peak RSS:  {:.1} MiB (VmHWM of the analysing process)",
            rss as f64 / 1048576.0
        )?,
        None => writeln!(out, "peak RSS:  not reported by this kernel")?,
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    writeln!(
        out,
        "target ≥ 1000 MB/s on one core: {}",
        verdict(a.mb_per_second() >= 1000.0)
    )?;
    if let Some(rss) = a.peak_rss {
        writeln!(
            out,
            "target peak RSS ≤ 64 MiB: {}",
            verdict(rss <= 64 << 20)
        )?;
    }
    match &r.tshark {
        Some(t) => {
            let ratio = t.elapsed.as_secs_f64() / a.seconds.max(1e-9);
            writeln!(
                out,
                "tshark:    {:.2} s, {} ClientHello SNIs ({})",
                t.elapsed.as_secs_f64(),
                t.server_names,
                t.command
            )?;
            writeln!(
                out,
                "speed-up over tshark: {ratio:.1}x (target ≥ 20x: {})",
                verdict(ratio >= 20.0)
            )?;
        }
        None => writeln!(out, "tshark:    skipped (not installed or --no-tshark)")?,
    }
    Ok(())
}
