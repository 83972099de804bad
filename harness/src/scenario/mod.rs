//! Scenarios: declarative files of phases and steps, loaded with located errors.
//!
//! [`Scenario::load`] reads `scenarios/<name>.yaml`, checks every reference in it, and
//! reads the manifests it names from `fixtures/<name>/`. Any mistake is reported with
//! `file:line:column` and a hint, all at once, so a scenario author fixes them in one go.

mod check;
mod duration;
pub mod limits;
pub mod model;
mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use duration::parse_duration;
pub use model::*;
pub use template::{Canary, render};

use crate::manifest::{self, Document, SourceRef};

/// One problem in a scenario, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub at: SourceRef,
    /// What is wrong, one sentence without a trailing period.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Errors from loading scenarios.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// No scenario of that name exists.
    #[error("no scenario named `{name}` in {dir}{}", suggestion(.known))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The scenarios directory.
        dir: PathBuf,
        /// The names that do exist.
        known: Vec<String>,
    },
    /// The file has one or more mistakes.
    #[error("{} problem{} in {}:\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .path.display(), list(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// serde-saphyr prefixes its messages with `error: line N column M:`; the location is
/// already in the `file:line:column` prefix, so say it once.
fn clean_serde_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => {
            rest.to_string()
        }
        _ => first.to_string(),
    }
}

fn suggestion(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!("; known: {}", known.join(", "))
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A loaded, checked scenario with its manifests.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The parsed file.
    pub file: ScenarioFile,
    /// Where it was read from.
    pub path: PathBuf,
    /// `fixtures/<name>/`, where its manifests live.
    pub fixtures: PathBuf,
    /// Every manifest file named by a step, parsed, keyed by its name in the scenario.
    pub manifests: BTreeMap<String, Vec<Document>>,
}

impl Scenario {
    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.file.name.value
    }

    /// Loads `<root>/scenarios/<name>.yaml` with its manifests from `<root>/fixtures/<name>/`.
    pub fn load(root: &Path, name: &str) -> Result<Scenario, ScenarioError> {
        let dir = root.join("scenarios");
        let path = dir.join(format!("{name}.yaml"));
        if !path.is_file() {
            let known = list_names(&dir);
            return Err(ScenarioError::Unknown {
                name: name.to_string(),
                dir,
                known,
            });
        }
        Scenario::load_path(&path, &root.join("fixtures").join(name))
    }

    /// Loads a scenario file, reading manifests from `fixtures`.
    pub fn load_path(path: &Path, fixtures: &Path) -> Result<Scenario, ScenarioError> {
        let read_error = |source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        };
        limits::check_size(path, std::fs::metadata(path).map_err(read_error)?.len())?;
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(path, &text, fixtures)
    }

    /// Parses scenario text; `path` is used for locations and the name check.
    pub fn parse(path: &Path, text: &str, fixtures: &Path) -> Result<Scenario, ScenarioError> {
        let invalid = |problems| ScenarioError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        limits::check_size(path, text.len() as u64)?;
        let file: ScenarioFile = serde_saphyr::from_str_with_options(text, limits::options())
            .map_err(|e| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line() as u32, l.column() as u32))
                    .unwrap_or((0, 0));
                let message = clean_serde_message(&e.to_string());
                let hint = check::serde_hint(&message);
                invalid(vec![Problem {
                    at: SourceRef {
                        path: path.to_path_buf(),
                        line,
                        column,
                    },
                    message,
                    hint,
                }])
            })?;
        let mut manifests = BTreeMap::new();
        let mut problems = Vec::new();
        for reference in check::manifest_refs(&file) {
            let file_path = fixtures.join(&reference.value);
            if !file_path.is_file() {
                continue; // check::problems reports missing manifests with their location.
            }
            match manifest::load_file(&file_path) {
                Ok(docs) => {
                    manifests.insert(reference.value.clone(), docs);
                }
                Err(err) => problems.push(Problem {
                    at: check::at(path, reference),
                    message: format!("manifest does not load: {err}"),
                    hint: None,
                }),
            }
        }
        problems.extend(check::problems(path, &file, fixtures));
        problems.extend(check::hpa_manifest_problems(path, &file, &manifests));
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        Ok(Scenario {
            file,
            path: path.to_path_buf(),
            fixtures: fixtures.to_path_buf(),
            manifests,
        })
    }

    /// Looks up a declared workload by name.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.file.workloads.iter().find(|w| w.name.value == name)
    }

    /// Looks up a phase by name.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.file.phases.iter().find(|p| p.name.value == name)
    }

    /// The documents a manifest reference names (empty if unknown).
    pub fn documents(&self, reference: &str) -> &[Document] {
        self.manifests
            .get(reference)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The objects that exist after every step of `phase` (or of all phases when `None`)
    /// has run: applies add or replace, deletes remove, and namespace labels are folded
    /// into the Namespace objects. The policy model reads its input from this.
    pub fn state_after(&self, phase: Option<&str>) -> Vec<Document> {
        check::state_after(self, phase)
    }
}

/// The names of all scenarios in a directory, sorted.
pub fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "yaml").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names
}

/// Loads every scenario in `<root>/scenarios`, in name order.
pub fn load_all(root: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    list_names(&root.join("scenarios"))
        .iter()
        .map(|n| Scenario::load(root, n))
        .collect()
}

#[cfg(test)]
mod tests;
