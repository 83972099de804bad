//! Capturing from a helper container on the host network: no root on the host, only
//! access to Docker.
//!
//! The helper runs `meshproof-workload capture` from the project's own image (built
//! locally, never pulled; see `crate::image`), with the host's network namespace and
//! `CAP_NET_RAW`/`CAP_NET_ADMIN`, so it sees every host interface, the kind network's
//! bridge among them (every node's traffic, not one node's). It captures with the same
//! libpcap engine as a host capture ([`super::LiveCapture`]) and writes the pcap stream to
//! its standard output, which is read here through Docker's attach stream, attached before
//! the container starts: a multiplexed byte stream that carries binary data unchanged
//! (unlike `docker logs` with the json-file driver, which replaces invalid UTF-8).
//!
//! The helper says on standard error when its filter is installed ([`READY_MARK`]), and,
//! when stopped with SIGTERM, drains, flushes and reports its packet and drop counts
//! ([`HelperReport`]). Every Docker call is bounded in time, and the container is removed
//! whatever happened, within [`REMOVE_LIMIT`]: a teardown never hangs on it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{CaptureError, CaptureSummary, DropCounts, StreamCapture, StreamConfig};
use crate::wire::{Analysis, AnalyzerConfig, AnalyzerStats};

/// The helper writes this, then the interface, once its filter is installed.
pub const READY_MARK: &str = "meshproof-workload capture: ready on ";
/// The helper's last line on standard error: this, then a [`HelperReport`] as JSON.
pub const REPORT_MARK: &str = "meshproof-workload capture: report ";
/// How long the helper may take to install its filter.
pub const READY_LIMIT: Duration = Duration::from_secs(20);
/// How long the helper may take to drain and end its stream once asked to stop.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);
/// How long removing the container may take before teardown moves on.
pub const REMOVE_LIMIT: Duration = Duration::from_secs(15);
/// Any other Docker call.
const API_LIMIT: Duration = Duration::from_secs(10);
/// Standard error kept for error messages.
const STDERR_KEEP: usize = 16 * 1024;

/// What the helper counted, written as its last words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperReport {
    /// Packets captured and written to the stream.
    pub packets: u64,
    /// Packets the kernel dropped for lack of buffer space.
    pub dropped: u64,
    /// Packets the interface dropped, where the driver reports it.
    pub if_dropped: u64,
}

impl HelperReport {
    /// The report line the helper prints.
    pub fn line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{REPORT_MARK}{json}")
    }

    /// The last report line in the helper's standard error.
    pub fn find(stderr: &str) -> Option<HelperReport> {
        stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(REPORT_MARK))
            .and_then(|json| serde_json::from_str(json).ok())
    }
}

/// The helper's command line.
pub fn helper_command(program: &str, interface: &str, bpf: &str) -> Vec<String> {
    [
        program,
        "capture",
        "--interface",
        interface,
        "--filter",
        bpf,
    ]
    .map(str::to_string)
    .to_vec()
}

/// One helper capture.
#[derive(Debug, Clone)]
pub struct HelperConfig {
    /// The image holding `meshproof-workload` (the project's workload image).
    pub image: String,
    /// The path of the binary in the image.
    pub program: String,
    /// The container's name (unique per run and capture).
    pub name: String,
    /// Labels (the run label, so `gc` finds a helper a crash left behind).
    pub labels: HashMap<String, String>,
    /// The host interface (the kind network's bridge).
    pub interface: String,
    /// The BPF filter.
    pub bpf: String,
    /// Where the pcap stream is written on the host.
    pub pcap_path: PathBuf,
    /// What the analyzer searches for.
    pub analyzer: AnalyzerConfig,
}

/// What the reading task ends with.
struct Pumped {
    result: Result<(Analysis, AnalyzerStats, PathBuf), CaptureError>,
    packets: u64,
    stderr: String,
}

/// A capture running in a helper container.
#[derive(Debug)]
pub struct HelperCapture {
    docker: Docker,
    id: String,
    name: String,
    seen: Arc<AtomicU64>,
    task: JoinHandle<Pumped>,
}

impl std::fmt::Debug for Pumped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pumped")
    }
}

fn keep_tail(buf: &mut String, more: &str) {
    buf.push_str(more);
    if buf.len() > STDERR_KEEP {
        let mut cut = buf.len() - STDERR_KEEP;
        while !buf.is_char_boundary(cut) {
            cut += 1;
        }
        buf.drain(..cut);
    }
}

/// Reads the attach stream: standard output into the pcap sink, standard error kept.
async fn pump(
    mut output: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    mut sink: StreamCapture,
    seen: Arc<AtomicU64>,
    ready: watch::Sender<bool>,
    name: String,
) -> Pumped {
    let mut stderr = String::new();
    let mut failed = None;
    while let Some(item) = output.next().await {
        match item {
            Ok(LogOutput::StdOut { message }) => {
                if let Err(e) = sink.push(&message) {
                    failed = Some(e);
                    break;
                }
                seen.store(sink.packets_seen(), Ordering::Relaxed);
            }
            Ok(LogOutput::StdErr { message }) => {
                keep_tail(&mut stderr, &String::from_utf8_lossy(&message));
                if stderr.contains(READY_MARK) {
                    ready.send_replace(true);
                }
            }
            Ok(_) => {}
            Err(e) => {
                failed = Some(CaptureError::Helper {
                    container: name,
                    message: format!("its attach stream broke: {e}"),
                });
                break;
            }
        }
    }
    let packets = sink.packets_seen();
    let result = match failed {
        Some(e) => Err(e),
        None => sink.finish_with_stats(),
    };
    Pumped {
        result,
        packets,
        stderr,
    }
}

impl HelperCapture {
    /// Creates the helper, attaches to its output, starts it and returns once its filter
    /// is installed (traffic sent afterwards is captured).
    pub async fn start(
        docker: &Docker,
        config: HelperConfig,
    ) -> Result<HelperCapture, CaptureError> {
        let name = config.name.clone();
        let fail = |message: String| CaptureError::Helper {
            container: name.clone(),
            message,
        };
        let body = ContainerCreateBody {
            image: Some(config.image.clone()),
            cmd: Some(helper_command(
                &config.program,
                &config.interface,
                &config.bpf,
            )),
            labels: Some(config.labels.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                cap_add: Some(vec!["NET_RAW".into(), "NET_ADMIN".into()]),
                // The pcap travels over the attach stream; a log driver would store a
                // second (and, for json-file, mangled) copy of every captured byte.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = match tokio::time::timeout(API_LIMIT, docker.create_container(Some(opts), body))
            .await
        {
            Ok(Ok(created)) => created.id,
            Ok(Err(e)) => return Err(fail(format!("create from image {}: {e}", config.image))),
            Err(_) => return Err(fail(format!("create did not answer within {API_LIMIT:?}"))),
        };
        let started = Self::attach_and_start(docker, &id, &name, config).await;
        match started {
            Ok(helper) => Ok(helper),
            Err(e) => {
                let _ = remove(docker, &id).await;
                Err(e)
            }
        }
    }

    async fn attach_and_start(
        docker: &Docker,
        id: &str,
        name: &str,
        config: HelperConfig,
    ) -> Result<HelperCapture, CaptureError> {
        let fail = |message: String| CaptureError::Helper {
            container: name.to_string(),
            message,
        };
        // Attached before start, with no log replay: every byte comes from the live
        // stream, none from the log driver.
        let attach = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .logs(false)
            .build();
        let attached = tokio::time::timeout(API_LIMIT, docker.attach_container(id, Some(attach)))
            .await
            .map_err(|_| fail(format!("attach did not answer within {API_LIMIT:?}")))?
            .map_err(|e| fail(format!("attach: {e}")))?;
        let sink = StreamCapture::create(StreamConfig {
            pcap_path: config.pcap_path.clone(),
            analyzer: config.analyzer.clone(),
        })?;
        let seen = Arc::new(AtomicU64::new(0));
        let (ready_tx, mut ready) = watch::channel(false);
        let task = tokio::spawn(pump(
            attached.output,
            sink,
            seen.clone(),
            ready_tx,
            name.to_string(),
        ));
        let helper = HelperCapture {
            docker: docker.clone(),
            id: id.to_string(),
            name: name.to_string(),
            seen,
            task,
        };
        let start =
            docker.start_container(id, None::<bollard::query_parameters::StartContainerOptions>);
        match tokio::time::timeout(API_LIMIT, start).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(helper.abandon(format!("start: {e}")).await),
            Err(_) => {
                return Err(helper
                    .abandon(format!("start did not answer within {API_LIMIT:?}"))
                    .await);
            }
        }
        // The watch guard is dropped here, before any await below.
        let waited = tokio::time::timeout(READY_LIMIT, ready.wait_for(|r| *r))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => Ok(helper),
            Ok(false) => Err(helper
                .abandon("it ended before its capture started".into())
                .await),
            Err(_) => Err(helper
                .abandon(format!("its capture did not start within {READY_LIMIT:?}"))
                .await),
        }
    }

    /// Ends the reading task and builds an error carrying the helper's last words.
    async fn abandon(self, what: String) -> CaptureError {
        let stderr = match tokio::time::timeout(Duration::from_secs(2), self.task).await {
            Ok(Ok(p)) => p.stderr,
            _ => String::new(),
        };
        CaptureError::Helper {
            container: self.name,
            message: with_stderr(what, &stderr),
        }
    }

    /// Packets received from the helper so far.
    pub fn packets_seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the helper (SIGTERM: it drains, flushes and reports), reads the rest of its
    /// stream, removes the container and returns the capture. Bounded by [`STOP_LIMIT`]
    /// plus [`REMOVE_LIMIT`] whatever the helper or the engine do.
    pub async fn stop(self) -> Result<CaptureSummary, CaptureError> {
        let HelperCapture {
            docker,
            id,
            name,
            mut task,
            ..
        } = self;
        let fail = |message: String| CaptureError::Helper {
            container: name.clone(),
            message,
        };
        let term = KillContainerOptionsBuilder::default()
            .signal("TERM")
            .build();
        // An error here means the helper already ended; its stream says how.
        let _ = tokio::time::timeout(API_LIMIT, docker.kill_container(&id, Some(term))).await;
        let pumped = tokio::time::timeout(STOP_LIMIT, &mut task).await;
        let exit = tokio::time::timeout(API_LIMIT, docker.inspect_container(&id, None))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|i| i.state)
            .and_then(|s| s.exit_code);
        let removed = remove(&docker, &id).await;
        let pumped = match pumped {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(fail(format!("its reader failed: {e}"))),
            Err(_) => {
                task.abort();
                return Err(fail(format!(
                    "its stream did not end within {STOP_LIMIT:?} of SIGTERM"
                )));
            }
        };
        let (analysis, stats, pcap_path) = pumped
            .result
            .map_err(|e| fail(with_stderr(e.to_string(), &pumped.stderr)))?;
        if exit != Some(0) {
            let code = exit.map_or("an unknown status".to_string(), |c| {
                format!("exit code {c}")
            });
            return Err(fail(with_stderr(
                format!("it ended with {code}"),
                &pumped.stderr,
            )));
        }
        let report = HelperReport::find(&pumped.stderr)
            .ok_or_else(|| fail(with_stderr("it left no report".into(), &pumped.stderr)))?;
        removed.map_err(fail)?;
        let packets = pumped.packets;
        if report.packets != packets {
            return Err(fail(format!(
                "it wrote {} packets but {packets} arrived: the stream lost data",
                report.packets
            )));
        }
        Ok(CaptureSummary {
            analysis,
            stats,
            pcap_path,
            drops: DropCounts::new(
                report.dropped,
                report.if_dropped,
                format!("libpcap in the capture helper {name}"),
            ),
            packets,
        })
    }
}

fn with_stderr(what: String, stderr: &str) -> String {
    let tail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(REPORT_MARK))
        .collect();
    if tail.is_empty() {
        what
    } else {
        format!(
            "{what}; it said: {}",
            tail[tail.len().saturating_sub(5)..].join(" | ")
        )
    }
}

/// Removes the container, bounded by [`REMOVE_LIMIT`]; the error says what is left behind.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), String> {
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    match tokio::time::timeout(REMOVE_LIMIT, docker.remove_container(id, Some(rm))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "could not remove it ({e}); `cargo xtask gc` removes it by its run label"
        )),
        Err(_) => Err(format!(
            "removing it did not finish within {REMOVE_LIMIT:?}; `cargo xtask gc` removes it by its run label"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_the_last_report_line() {
        let first = HelperReport {
            packets: 1,
            dropped: 0,
            if_dropped: 0,
        };
        let last = HelperReport {
            packets: 7,
            dropped: 2,
            if_dropped: 1,
        };
        let stderr = format!(
            "{READY_MARK}br-x\n{}\nnoise\n{}\n",
            first.line(),
            last.line()
        );
        assert_eq!(HelperReport::find(&stderr), Some(last));
        assert_eq!(
            HelperReport::find("meshproof-workload: cannot capture"),
            None
        );
        assert_eq!(
            with_stderr("it ended".into(), &format!("a\nb\n{}\n", last.line())),
            "it ended; it said: a | b"
        );
    }

    #[test]
    fn the_command_names_interface_and_filter() {
        assert_eq!(
            helper_command("/meshproof-workload", "br-0123", "tcp and not port 6443"),
            [
                "/meshproof-workload",
                "capture",
                "--interface",
                "br-0123",
                "--filter",
                "tcp and not port 6443"
            ]
        );
    }

    #[test]
    fn kept_stderr_is_bounded() {
        let mut buf = String::new();
        for _ in 0..1000 {
            keep_tail(&mut buf, "é line of helper output\n");
        }
        assert!(buf.len() <= STDERR_KEEP);
        assert!(buf.ends_with("output\n"));
    }
}
