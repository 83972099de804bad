//! Bounds on scenario input, so a hostile or broken file (an alias bomb, absurd nesting, a
//! huge file) gets a located error instead of exhausting memory, stack or time.
//!
//! Real scenarios are a few kilobytes, nest under ten levels and use no aliases; the bounds
//! leave wide margins above that.

use std::path::Path;

use serde_saphyr::{Budget, Options};

use super::{Problem, ScenarioError};
use crate::manifest::SourceRef;

/// The largest scenario file accepted.
pub const MAX_BYTES: u64 = 1024 * 1024;
/// The deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 32;
/// The most alias uses accepted in one file.
pub const MAX_ALIASES: usize = 256;

/// Parser options with the scenario budget.
pub fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_reader_input_bytes = Some(MAX_BYTES as usize);
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
    budget.max_events = 200_000;
    budget.max_nodes = 100_000;
    budget.max_recorded_anchor_events = 20_000;
    budget.max_total_scalar_bytes = MAX_BYTES as usize;
    let mut options = Options::default();
    options.budget = Some(budget);
    options
}

/// Refuses a file of `len` bytes before it is read whole.
pub fn check_size(path: &Path, len: u64) -> Result<(), ScenarioError> {
    if len <= MAX_BYTES {
        return Ok(());
    }
    Err(ScenarioError::Invalid {
        path: path.to_path_buf(),
        problems: vec![Problem {
            at: SourceRef {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
            },
            message: format!(
                "the file is {len} bytes; a scenario may be at most {MAX_BYTES} bytes"
            ),
            hint: Some("split it, or move large data into fixture files".to_string()),
        }],
    })
}
