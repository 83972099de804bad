//! Capturing packets while a step runs, and analysing them as they arrive.
//!
//! Two sources feed the same [`crate::wire::Analyzer`] packet by packet, with no second
//! pass over the file:
//! - [`LiveCapture`] opens an interface with libpcap on the host (the kind network's
//!   bridge, the Docker lab's bridge, a veth) on its own thread, in immediate mode, and
//!   writes a pcap file as it goes.
//! - [`StreamCapture`] takes a pcap byte stream in chunks, as `tcpdump -w -` produces it
//!   inside a node container, writes it to a file verbatim and parses it incrementally.
//!
//! [`bridge_interface`] names the host interface behind a Docker bridge network.
//!
//! [`helper::HelperCapture`] runs [`LiveCapture`] inside a container on the host network
//! (`meshproof-workload capture`, from the project's own image) and reads its pcap stream
//! back through Docker's attach stream into a [`StreamCapture`]: the capture needs no root
//! on the host, only access to Docker.

mod bridge;
mod drops;
pub mod helper;
mod live;
mod stream;

use std::path::PathBuf;

pub use bridge::{BRIDGE_NAME_OPTION, bridge_interface, docker_bridge_interface};
pub use drops::DropCounts;
pub use live::{CaptureConfig, CaptureSummary, LiveCapture};
pub use stream::{StreamCapture, StreamConfig};

use crate::wire::WireError;

/// Why a capture could not start, run or finish.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// libpcap could not open the interface (missing, or no CAP_NET_RAW / root).
    #[error("cannot capture on `{interface}` (live capture needs root or CAP_NET_RAW): {source}")]
    Open {
        /// The interface.
        interface: String,
        /// libpcap's reason.
        #[source]
        source: pcap::Error,
    },
    /// The BPF filter did not compile or could not be installed.
    #[error("bad capture filter `{bpf}`: {source}")]
    Filter {
        /// The filter expression.
        bpf: String,
        /// libpcap's reason.
        #[source]
        source: pcap::Error,
    },
    /// The interface's link type is one the analyzer cannot decode.
    #[error("interface `{interface}` has link type {linktype}, which the analyzer does not decode")]
    UnsupportedLinkType {
        /// The interface.
        interface: String,
        /// The `DLT_*` number libpcap reported.
        linktype: i32,
    },
    /// Reading packets failed while the capture ran.
    #[error("capture on `{interface}` failed: {source}")]
    Read {
        /// The interface.
        interface: String,
        /// libpcap's reason.
        #[source]
        source: pcap::Error,
    },
    /// The pcap file could not be created or written.
    #[error("cannot write capture file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The streamed bytes are not a valid pcap/pcapng stream.
    #[error("capture stream is unreadable: {0}")]
    Stream(#[source] WireError),
    /// The stream ended before a capture header arrived (the capturing tool never started).
    #[error("capture stream ended after {0} bytes, before a complete capture header")]
    EmptyStream(u64),
    /// The capture thread ended abnormally.
    #[error("the capture thread for `{0}` stopped unexpectedly")]
    Thread(String),
    /// The capture helper container failed to start, run or stop.
    #[error("capture helper container {container}: {message}")]
    Helper {
        /// The container's name.
        container: String,
        /// What went wrong, with the helper's own last words where it left any.
        message: String,
    },
    /// A Docker network id is too short or not hexadecimal, so no bridge name follows.
    #[error("`{0}` is not a Docker network id (expected at least 12 hex digits)")]
    BadNetworkId(String),
    /// Docker could not be asked about the network.
    #[error("cannot inspect Docker network `{network}`: {source}")]
    Docker {
        /// The network name or id.
        network: String,
        /// bollard's reason.
        #[source]
        source: bollard::errors::Error,
    },
}
