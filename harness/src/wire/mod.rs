//! The wire analyzer: from packets to classified flows.
//!
//! This module owns the vocabulary for what a TCP connection looked like on the wire:
//! [`FlowClass`], [`Flow`] and [`Analysis`].

mod class;
mod flow;
pub mod link;
pub mod tls;

pub use class::{FlowClass, UnknownClass};
pub use flow::{Analysis, Flow};
pub use link::LinkType;
mod engine;
mod file;
pub mod sniff;
pub mod stream;

pub use engine::{Analyzer, AnalyzerConfig, classify_tls};
pub use file::{PcapStream, WireError, analyze_file, analyze_reader};
