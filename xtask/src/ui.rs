//! Terminal rendering: progress from library events, errors with their causes and hints.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use meshproof::env_vars;
use meshproof::reporter::{Event, Level, Reporter};

/// Renders library progress on stderr: a spinner per running step on a terminal, plain
/// lines otherwise (CI logs, pipes, `NO_COLOR`).
pub struct Ui {
    verbose: bool,
    fancy: bool,
    bars: Mutex<HashMap<String, (ProgressBar, String)>>,
}

impl Ui {
    /// A renderer; `no_progress` forces plain lines.
    pub fn new(verbose: bool, no_progress: bool) -> Self {
        let quiet_env = env_vars::NO_COLOR.is_set() || env_vars::CI.is_set();
        let fancy = !no_progress && !verbose && !quiet_env && std::io::stderr().is_terminal();
        Ui {
            verbose,
            fancy,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Prints an error and its chain of causes, then any hint the error carries.
    pub fn error(&self, err: &anyhow::Error) {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(out, "error: {err}");
        for cause in err.chain().skip(1) {
            let _ = writeln!(out, "  caused by: {cause}");
        }
    }

    fn line(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

impl Reporter for Ui {
    fn report(&self, event: Event) {
        match event {
            Event::Started { id, label } => {
                if self.fancy {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(label.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    if let Ok(mut bars) = self.bars.lock() {
                        bars.insert(id, (bar, label));
                    }
                } else {
                    self.line(&format!(" • {label} ..."));
                    if let Ok(mut bars) = self.bars.lock() {
                        bars.insert(id, (ProgressBar::hidden(), label));
                    }
                }
            }
            Event::Finished { id, ok, summary } => {
                let entry = self.bars.lock().ok().and_then(|mut b| b.remove(&id));
                let label = entry.as_ref().map(|(_, l)| l.clone()).unwrap_or(id);
                if let Some((bar, _)) = entry {
                    bar.finish_and_clear();
                }
                let mark = if ok { "✓" } else { "✗" };
                self.line(&format!(" {mark} {label}: {summary}"));
            }
            Event::Note { level, message } => match level {
                Level::Debug if !self.verbose => {}
                Level::Debug => self.line(&format!("   debug: {message}")),
                Level::Info => self.line(&format!("   {message}")),
                Level::Warn => self.line(&format!("   warning: {message}")),
            },
        }
    }
}
