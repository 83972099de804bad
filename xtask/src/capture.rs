//! `cargo xtask capture ...`: read captures with the wire analyzer.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use meshproof::wire::{self, AnalyzerConfig, TunnelConfig};

use crate::Outcome;

/// Work with packet captures.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(subcommand)]
    command: CaptureCommand,
}

#[derive(Debug, Subcommand)]
enum CaptureCommand {
    /// Classify every TCP flow in a pcap or pcapng file (exit 2 if the file is unreadable).
    Analyze(AnalyzeArgs),
}

#[derive(Debug, Args)]
struct AnalyzeArgs {
    /// The pcap or pcapng file.
    file: PathBuf,
    /// A string to count wherever it appears in clear (repeatable).
    #[arg(long = "canary", value_name = "STR")]
    canaries: Vec<String>,
    /// Print the JSON contract instead of a table.
    #[arg(long)]
    json: bool,
    /// Another UDP port that carries VXLAN (4789 and 8472 always do; repeatable).
    #[arg(long = "vxlan-port", value_name = "PORT")]
    vxlan_ports: Vec<u16>,
    /// Another UDP port that carries Geneve (6081 always does; repeatable).
    #[arg(long = "geneve-port", value_name = "PORT")]
    geneve_ports: Vec<u16>,
}

/// The analyzer's tunnel ports: the defaults and the ones the flags add.
fn tunnels(args: &AnalyzeArgs) -> TunnelConfig {
    let mut t = TunnelConfig::default();
    for (ports, more) in [
        (&mut t.vxlan_ports, &args.vxlan_ports),
        (&mut t.geneve_ports, &args.geneve_ports),
    ] {
        for p in more {
            if !ports.contains(p) {
                ports.push(*p);
            }
        }
    }
    t
}

/// Runs `cargo xtask capture ...`.
pub fn run(args: CaptureArgs) -> anyhow::Result<Outcome> {
    match args.command {
        CaptureCommand::Analyze(a) => analyze(a),
    }
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<Outcome> {
    let config = AnalyzerConfig {
        canaries: args
            .canaries
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect(),
        tunnels: tunnels(&args),
        ..AnalyzerConfig::default()
    };
    let (analysis, stats) = wire::analyze_file_with_stats(&args.file, &config)
        .with_context(|| format!("cannot analyse {}", args.file.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &analysis)?;
        writeln!(out)?;
    } else {
        out.write_all(wire::render_table(&analysis).as_bytes())?;
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "{} TCP segments ({} tunnelled), {} encrypted, {} other packets, {} malformed, {} gaps ({} bytes), {} retransmissions",
            stats.tcp_segments,
            stats.tunnelled_segments,
            stats.encrypted_packets,
            stats.other_packets,
            stats.malformed_packets,
            stats.gaps,
            stats.gap_bytes,
            stats.retransmissions
        )?;
        if stats.fragments > 0 {
            writeln!(
                err,
                "{} IP fragments: {} datagrams reassembled, {} fragments lost (incomplete, timed out or over the memory bound)",
                stats.fragments, stats.reassembled_datagrams, stats.lost_fragments
            )?;
        }
    }
    Ok(Outcome::Passed)
}
