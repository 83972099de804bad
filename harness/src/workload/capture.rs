//! `meshproof-workload capture --interface IF [--filter BPF]`: the capture helper's side.
//!
//! Runs [`LiveCapture`] (the same libpcap engine host captures use) with the pcap stream
//! going to standard output, says on standard error when the filter is installed, and on
//! SIGTERM or SIGINT drains what the kernel holds, flushes and reports its packet and drop
//! counts as its last line ([`crate::capture::helper`] reads all three).

use std::path::PathBuf;

use crate::capture::helper::{HelperReport, READY_MARK};
use crate::capture::{CaptureConfig, LiveCapture};
use crate::reporter::Reporter;

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureArgs {
    /// The interface (on the host network: the kind bridge).
    pub interface: String,
    /// The BPF filter; empty captures everything.
    pub filter: String,
}

/// Parses `--interface IF [--filter BPF]`.
pub fn parse_args(args: &[&str]) -> Result<CaptureArgs, String> {
    let mut interface = None;
    let mut filter = String::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |flag: &str| {
            rest.next()
                .map(|v| v.to_string())
                .ok_or_else(|| format!("capture: {flag} needs a value"))
        };
        match *arg {
            "--interface" => interface = Some(value("--interface")?),
            "--filter" => filter = value("--filter")?,
            other => return Err(format!("capture: unknown argument `{other}`")),
        }
    }
    let interface = interface
        .filter(|i| !i.is_empty())
        .ok_or("capture: --interface is required")?;
    Ok(CaptureArgs { interface, filter })
}

/// Captures until `stop` resolves, streaming pcap to standard output; returns the counts.
pub async fn run(
    args: CaptureArgs,
    stop: impl std::future::Future<Output = ()>,
    reporter: &dyn Reporter,
) -> Result<HelperReport, String> {
    let config = CaptureConfig {
        interface: args.interface.clone(),
        bpf: args.filter.clone(),
        // libpcap writes the savefile to standard output when its name is `-`.
        pcap_path: PathBuf::from("-"),
        ..CaptureConfig::default()
    };
    let capture = tokio::task::spawn_blocking(move || LiveCapture::start(config))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    reporter.info(&format!("{READY_MARK}{}", args.interface));
    stop.await;
    let summary = tokio::task::spawn_blocking(move || capture.stop_with_summary())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(HelperReport {
        packets: summary.packets,
        dropped: summary.drops.kernel,
        if_dropped: summary.drops.interface,
    })
}

/// A future that resolves on SIGTERM (what `docker kill --signal TERM` and `docker stop`
/// send) or SIGINT. The handlers are installed before this returns: the helper is PID 1 in
/// its container, where a signal without a handler is ignored, so they must be in place
/// before the helper says it is ready.
pub fn termination() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            parse_args(&["--interface", "br-1", "--filter", "tcp port 80"]).unwrap(),
            CaptureArgs {
                interface: "br-1".into(),
                filter: "tcp port 80".into()
            }
        );
        assert_eq!(parse_args(&["--interface", "lo"]).unwrap().filter, "");
        assert!(
            parse_args(&[])
                .unwrap_err()
                .contains("--interface is required")
        );
        assert!(
            parse_args(&["--interface"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse_args(&["--iface", "x"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
