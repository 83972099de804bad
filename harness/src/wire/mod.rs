//! The wire analyzer: from packets to classified flows.
//!
//! This module owns the vocabulary for what a TCP connection looked like on the wire:
//! [`FlowClass`], [`Flow`] and [`Analysis`].

mod class;
mod flow;

pub use class::{FlowClass, UnknownClass};
pub use flow::{Analysis, Flow};
