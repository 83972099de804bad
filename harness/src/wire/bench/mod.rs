//! The analyzer benchmark behind `cargo xtask bench analyzer`: generate a large capture,
//! time the analysis on one core, read the peak memory, and time tshark on the same file.
//!
//! The analysis is meant to run in a process of its own (the command line re-runs itself
//! with `--analyze-only`), so the peak resident set it reports belongs to the analysis
//! alone and not to the generator.

mod synth;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use synth::{SynthConfig, SynthSummary, write_synthetic_capture};

use super::{AnalyzerConfig, FlowClass, WireError, analyze_file_with_stats};
use crate::exec::{Cmd, Exec, ExecError};
use crate::reporter::Reporter;

/// Why the benchmark could not produce its figures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The synthetic capture could not be written.
    #[error("cannot generate the benchmark capture in {}: {source}", dir.display())]
    Generate {
        /// The directory it was written to.
        dir: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The analysing process or tshark failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The analysing process printed something that is not a measurement.
    #[error("the analysis process printed no measurement: {0}")]
    ChildOutput(String),
}

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Size of the generated capture.
    pub size_bytes: u64,
    /// Connections interleaved at once.
    pub concurrent: usize,
    /// Response bytes per connection (sets how many connections the file holds).
    pub response_bytes: usize,
    /// Where to put the capture; a temporary directory (removed afterwards) when `None`.
    pub work_dir: Option<PathBuf>,
    /// A command that analyses the file given as its last argument and prints a
    /// [`Measurement`] as JSON: the command line re-running itself, so that the
    /// analysis has a process (and a peak resident set) of its own.
    pub analyze_cmd: Cmd,
    /// Whether to time tshark too (when installed).
    pub tshark: bool,
}

/// Everything the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was generated.
    pub generated: SynthSummary,
    /// Seconds spent generating.
    pub generate_seconds: f64,
    /// The analyzer's figures.
    pub analysis: Measurement,
    /// tshark's run, if it was installed and asked for.
    pub tshark: Option<TsharkRun>,
}

/// The canary planted in the benchmark's plaintext connections.
pub const BENCH_CANARY: &[u8] = b"meshproof-bench-canary-4111111111111111";

/// Generates the capture, has it analysed in a separate process, and times tshark.
pub async fn run_bench(
    config: &BenchConfig,
    exec: &Exec,
    reporter: &dyn Reporter,
) -> Result<BenchReport, BenchError> {
    let temp = match &config.work_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("meshproof-bench-")
                .tempdir()
                .map_err(|source| BenchError::Generate {
                    dir: std::env::temp_dir(),
                    source,
                })?,
        ),
    };
    let dir = config
        .work_dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_path_buf()))
        .unwrap_or_default();
    let path = dir.join("meshproof-bench.pcap");
    reporter.started(
        "bench/generate",
        &format!("Generating a {} MiB capture", config.size_bytes >> 20),
    );
    let synth = SynthConfig {
        target_bytes: config.size_bytes,
        concurrent: config.concurrent,
        response_bytes: config.response_bytes,
        canary: BENCH_CANARY.to_vec(),
    };
    let start = Instant::now();
    let generated =
        write_synthetic_capture(&path, &synth).map_err(|source| BenchError::Generate {
            dir: dir.clone(),
            source,
        })?;
    let generate_seconds = start.elapsed().as_secs_f64();
    reporter.finished(
        "bench/generate",
        true,
        &format!("{} packets in {generate_seconds:.1} s", generated.packets),
    );
    reporter.started("bench/analyze", "Analysing with meshproof");
    let out = exec
        .run(&config.analyze_cmd.clone().arg(path.display().to_string()))
        .await?;
    let analysis: Measurement = serde_json::from_slice(&out.stdout)
        .map_err(|_| BenchError::ChildOutput(out.stdout_text()))?;
    reporter.finished("bench/analyze", true, &format!("{:.2} s", analysis.seconds));
    let tshark = if config.tshark {
        reporter.started("bench/tshark", "Timing tshark on the same file");
        let run = run_tshark(exec, &path).await?;
        let summary = run.as_ref().map_or("not installed".to_string(), |r| {
            format!("{:.1} s", r.elapsed.as_secs_f64())
        });
        reporter.finished("bench/tshark", true, &summary);
        run
    } else {
        None
    };
    if temp.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    Ok(BenchReport {
        generated,
        generate_seconds,
        analysis,
        tshark,
    })
}

/// The figures from analysing one file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Bytes of packet data analysed.
    pub bytes: u64,
    /// Packets analysed.
    pub packets: u64,
    /// Flows found.
    pub flows: u64,
    /// Flows classified as TLS of any kind (including mesh mTLS).
    pub tls_flows: u64,
    /// Flows classified as plaintext.
    pub plain_flows: u64,
    /// Canary hits over all flows.
    pub canary_hits: u64,
    /// Wall-clock seconds spent reading and analysing.
    pub seconds: f64,
    /// The process's peak resident set (`VmHWM`), in bytes, when the kernel reports it.
    pub peak_rss: Option<u64>,
}

impl Measurement {
    /// Throughput in megabytes (10^6 bytes) per second.
    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    /// Throughput in packets per second.
    pub fn packets_per_second(&self) -> f64 {
        self.packets as f64 / self.seconds.max(1e-9)
    }
}

/// Analyses `path` and measures time and peak memory.
pub fn measure_file(path: &Path, config: &AnalyzerConfig) -> Result<Measurement, WireError> {
    let start = Instant::now();
    let (analysis, _) = analyze_file_with_stats(path, config)?;
    let seconds = start.elapsed().as_secs_f64();
    let count =
        |f: fn(FlowClass) -> bool| analysis.flows.iter().filter(|x| f(x.class)).count() as u64;
    Ok(Measurement {
        bytes: analysis.bytes,
        packets: analysis.packets,
        flows: analysis.flows.len() as u64,
        tls_flows: count(|c| c == FlowClass::Tls || c.is_mesh_mtls()),
        plain_flows: count(|c| c == FlowClass::Plaintext),
        canary_hits: analysis.flows.iter().map(|f| f.canary_hits).sum(),
        seconds,
        peak_rss: peak_rss(),
    })
}

/// This process's peak resident set size in bytes, from `/proc/self/status` (`VmHWM`).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What tshark did with the same file.
#[derive(Debug, Clone, PartialEq)]
pub struct TsharkRun {
    /// Wall-clock time of the whole tshark run.
    pub elapsed: Duration,
    /// ClientHello server names it printed.
    pub server_names: u64,
    /// The command line, for the report.
    pub command: String,
}

/// Runs tshark over the file doing comparable work: TCP conversation statistics plus
/// the SNI of every ClientHello. Returns `None` when tshark is not installed.
pub async fn run_tshark(exec: &Exec, path: &Path) -> Result<Option<TsharkRun>, ExecError> {
    let cmd = Cmd::new("tshark").args([
        "-n".to_string(),
        "-r".to_string(),
        path.display().to_string(),
        "-z".to_string(),
        "conv,tcp".to_string(),
        "-Y".to_string(),
        "tls.handshake.type == 1".to_string(),
        "-T".to_string(),
        "fields".to_string(),
        "-e".to_string(),
        "tls.handshake.extensions_server_name".to_string(),
    ]);
    let start = Instant::now();
    let out = match exec.run(&cmd).await {
        Ok(out) => out,
        Err(ExecError::Spawn { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let elapsed = start.elapsed();
    let text = out.stdout_text();
    let server_names = text
        .lines()
        .filter(|l| l.contains('.') && !l.contains('<') && !l.contains('|'))
        .count() as u64;
    Ok(Some(TsharkRun {
        elapsed,
        server_names,
        command: cmd.display(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_capture_is_classified_as_generated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.pcap");
        let config = SynthConfig {
            target_bytes: 3 << 20,
            concurrent: 5,
            response_bytes: 200_000,
            canary: b"bench-canary-0001".to_vec(),
        };
        let made = write_synthetic_capture(&path, &config).unwrap();
        assert!(made.bytes >= 3 << 20);
        let analyzer = AnalyzerConfig {
            canaries: vec![config.canary.clone()],
            ..AnalyzerConfig::default()
        };
        let m = measure_file(&path, &analyzer).unwrap();
        assert_eq!(m.packets, made.packets);
        assert_eq!(m.bytes + 24 + 16 * made.packets, made.bytes);
        assert_eq!(
            (m.tls_flows, m.plain_flows),
            (made.tls_flows, made.plain_flows)
        );
        assert_eq!(m.canary_hits, made.canary_hits);
        assert!(m.peak_rss.unwrap_or(1) > 0);
    }
}
