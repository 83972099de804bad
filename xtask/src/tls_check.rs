//! `cargo xtask tls-check SCENARIO [--phase PHASE] [--json]`: which ports are really mTLS,
//! predicted from the scenario's own manifests (the check `istioctl authn tls-check` did
//! until Istio 1.6).

use std::path::Path;

use anyhow::Result;
use clap::Args;
use meshproof::policy::{self, Matrix};
use meshproof::scenario::Scenario;

use crate::Outcome;

/// Arguments of `tls-check`.
#[derive(Debug, Args)]
pub struct TlsCheckArgs {
    /// The scenario.
    pub scenario: String,
    /// Evaluate the objects that exist after this phase (default: after the last).
    #[arg(long)]
    pub phase: Option<String>,
    /// Print the matrix and the expected flows as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Prints the table (or JSON). Conflicts are predictions, not failures: exit 0.
pub fn run(root: &Path, args: TlsCheckArgs) -> Result<Outcome> {
    let scenario = Scenario::load(root, &args.scenario)?;
    let matrix = Matrix::for_scenario(&scenario, args.phase.as_deref())?;
    if args.json {
        let flows = policy::expected_flows(&matrix);
        let doc = serde_json::json!({ "matrix": matrix, "expected_flows": flows });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let phase = args.phase.as_deref().unwrap_or("the last phase");
        println!("{}: after {phase}\n", scenario.name());
        print!("{}", policy::render_table(&matrix));
    }
    Ok(Outcome::Passed)
}
