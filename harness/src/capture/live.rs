//! Live capture with libpcap on a host interface, on its own thread.
//!
//! The capture opens in immediate mode, so every packet is handed over as soon as the
//! kernel has it, written to the pcap file and pushed into the analyzer right away.
//! [`LiveCapture::start`] returns only once the filter is installed, so traffic sent
//! after it returns is captured. [`LiveCapture::stop`] drains what the kernel still holds
//! (bounded in time, so a busy interface cannot keep it running) before it finishes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pcap::{Active, Capture, Savefile};

use super::{CaptureError, DropCounts};
use crate::wire::{Analysis, Analyzer, AnalyzerConfig, AnalyzerStats, LinkType};

/// What to capture and where to write it.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// The host interface (`br-0123456789ab`, `eth0`, `any`).
    pub interface: String,
    /// A BPF filter expression; empty captures everything.
    pub bpf: String,
    /// The pcap file to write; `-` writes the pcap stream to standard output (libpcap's
    /// convention), which is how the capture helper container streams it.
    pub pcap_path: PathBuf,
    /// What the analyzer searches for.
    pub analyzer: AnalyzerConfig,
    /// Bytes kept per packet.
    pub snaplen: i32,
    /// The kernel buffer, in bytes; large enough that bursts are not dropped.
    pub buffer_size: i32,
    /// How long the capture thread sleeps when the kernel has no packet for it (the
    /// kernel buffers packets meanwhile, so this adds latency, not loss).
    pub poll_interval: Duration,
    /// How long [`LiveCapture::stop`] keeps draining packets the kernel already holds.
    pub drain_limit: Duration,
    /// Whether to put the interface into promiscuous mode. On a Linux bridge this is
    /// what makes frames forwarded between two ports (node to node, container to
    /// container) visible to the capture, so it is on by default.
    pub promiscuous: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: String::new(),
            bpf: String::new(),
            pcap_path: PathBuf::new(),
            analyzer: AnalyzerConfig::default(),
            snaplen: 262_144,
            buffer_size: 16 << 20,
            poll_interval: Duration::from_millis(5),
            drain_limit: Duration::from_secs(2),
            promiscuous: true,
        }
    }
}

/// Everything a finished capture produced.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    /// The classified flows.
    pub analysis: Analysis,
    /// The analyzer's counters.
    pub stats: AnalyzerStats,
    /// The pcap file written.
    pub pcap_path: PathBuf,
    /// Packets the kernel and the interface dropped while the capture ran (libpcap's
    /// `pcap_stats`): evidence is incomplete when they are not zero.
    pub drops: DropCounts,
    /// Packets captured (and written to the file).
    pub packets: u64,
}

/// A capture running on its own thread.
#[derive(Debug)]
pub struct LiveCapture {
    interface: String,
    stop: Arc<AtomicBool>,
    packets: Arc<AtomicU64>,
    handle: JoinHandle<Result<CaptureSummary, CaptureError>>,
}

struct Opened {
    cap: Capture<Active>,
    save: Savefile,
    link: LinkType,
}

impl LiveCapture {
    /// Opens the interface, installs the filter, creates the file and starts capturing.
    pub fn start(config: CaptureConfig) -> Result<LiveCapture, CaptureError> {
        if config.pcap_path.to_str().is_none() {
            // libpcap takes a C string; refuse rather than let the binding panic.
            return Err(CaptureError::File {
                path: config.pcap_path,
                reason: "path is not valid UTF-8".into(),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let packets = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let interface = config.interface.clone();
        let (thread_stop, thread_packets) = (stop.clone(), packets.clone());
        let handle = std::thread::Builder::new()
            .name(format!("meshproof-capture-{interface}"))
            .spawn(move || run(config, &thread_stop, &thread_packets, ready_tx))
            .map_err(|_| CaptureError::Thread(interface.clone()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(LiveCapture {
                interface,
                stop,
                packets,
                handle,
            }),
            Ok(Err(err)) => {
                let _ = handle.join();
                Err(err)
            }
            Err(_) => Err(CaptureError::Thread(interface)),
        }
    }

    /// Packets captured so far (for liveness checks: a capture that sees nothing while
    /// traffic flows is capturing in the wrong place).
    pub fn packets_seen(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Stops capturing and returns the analysis and the pcap file's path. Callers that
    /// judge absence use [`LiveCapture::stop_with_summary`], which also gives the drops.
    pub fn stop(self) -> Result<(Analysis, PathBuf), CaptureError> {
        self.stop_with_summary().map(|s| (s.analysis, s.pcap_path))
    }

    /// Stops capturing and returns everything the capture produced, drop counts included.
    pub fn stop_with_summary(self) -> Result<CaptureSummary, CaptureError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| CaptureError::Thread(self.interface))?
    }
}

fn open(config: &CaptureConfig) -> Result<Opened, CaptureError> {
    let interface = config.interface.clone();
    let open_err = |source| CaptureError::Open {
        interface: interface.clone(),
        source,
    };
    let timeout_ms = i32::try_from(config.poll_interval.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    let mut cap = Capture::from_device(config.interface.as_str())
        .map_err(open_err)?
        .immediate_mode(true)
        .snaplen(config.snaplen)
        .buffer_size(config.buffer_size)
        .promisc(config.promiscuous)
        .timeout(timeout_ms)
        .open()
        .and_then(|c| c.setnonblock())
        .map_err(open_err)?;
    if !config.bpf.is_empty() {
        cap.filter(&config.bpf, true)
            .map_err(|source| CaptureError::Filter {
                bpf: config.bpf.clone(),
                source,
            })?;
    }
    let dlt = cap.get_datalink().0;
    let link = u32::try_from(dlt)
        .ok()
        .and_then(LinkType::from_linktype)
        .ok_or(CaptureError::UnsupportedLinkType {
            interface: interface.clone(),
            linktype: dlt,
        })?;
    let save = cap
        .savefile(&config.pcap_path)
        .map_err(|e| CaptureError::File {
            path: config.pcap_path.clone(),
            reason: e.to_string(),
        })?;
    // libpcap creates the file with the umask's mode; it may hold real traffic. `-` is
    // standard output (the capture helper's stream), which has no file mode to restrict.
    if config.pcap_path != std::path::Path::new("-") {
        crate::private_fs::restrict(&config.pcap_path).map_err(|e| CaptureError::File {
            path: config.pcap_path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(Opened { cap, save, link })
}

fn run(
    config: CaptureConfig,
    stop: &AtomicBool,
    packets: &AtomicU64,
    ready: mpsc::SyncSender<Result<(), CaptureError>>,
) -> Result<CaptureSummary, CaptureError> {
    let Opened {
        mut cap,
        mut save,
        link,
    } = match open(&config) {
        Ok(opened) => opened,
        Err(err) => {
            let _ = ready.send(Err(err));
            return Err(CaptureError::Thread(config.interface));
        }
    };
    let _ = ready.send(Ok(()));
    let mut analyzer = Analyzer::new(config.analyzer.clone());
    let mut drain_until: Option<Instant> = None;
    let mut unflushed = false;
    loop {
        match cap.next_packet() {
            Ok(packet) => {
                save.write(&packet);
                unflushed = true;
                let secs = u64::try_from(packet.header.ts.tv_sec).unwrap_or(0);
                let micros = u64::try_from(packet.header.ts.tv_usec).unwrap_or(0);
                analyzer.push(
                    link,
                    Duration::from_secs(secs) + Duration::from_micros(micros),
                    packet.data,
                );
                packets.fetch_add(1, Ordering::Relaxed);
            }
            // The kernel's buffer is empty. The handle is non-blocking because a blocking
            // read in immediate mode may wait for the next packet indefinitely, and a
            // quiet interface would then never notice the request to stop.
            Err(pcap::Error::TimeoutExpired) if drain_until.is_some() => break,
            Err(pcap::Error::TimeoutExpired) => {
                // Idle: hand what was written to the file (or the pipe, when the file is
                // `-`, standard output) now, so a reader sees packets while the capture
                // runs, at the cost of one write per burst rather than per packet.
                if unflushed {
                    save.flush().map_err(|e| CaptureError::File {
                        path: config.pcap_path.clone(),
                        reason: e.to_string(),
                    })?;
                    unflushed = false;
                }
                std::thread::sleep(config.poll_interval);
            }
            Err(source) => {
                return Err(CaptureError::Read {
                    interface: config.interface,
                    source,
                });
            }
        }
        if drain_until.is_none() && stop.load(Ordering::Relaxed) {
            drain_until = Some(Instant::now() + config.drain_limit);
        }
        if drain_until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
    }
    let file_err = |e: pcap::Error| CaptureError::File {
        path: config.pcap_path.clone(),
        reason: e.to_string(),
    };
    save.flush().map_err(file_err)?;
    let kernel = cap.stats().map_err(|source| CaptureError::Read {
        interface: config.interface.clone(),
        source,
    })?;
    let packets = analyzer.packets();
    let (analysis, stats) = analyzer.finish_with_stats();
    Ok(CaptureSummary {
        packets,
        analysis,
        stats,
        pcap_path: config.pcap_path,
        drops: DropCounts::new(
            u64::from(kernel.dropped),
            u64::from(kernel.if_dropped),
            format!("libpcap on {}", config.interface),
        ),
    })
}
