//! Progress reporting: how the library tells the outside world what it is doing.
//!
//! The library never prints. Long-running operations take a `&dyn Reporter` and send it
//! [`Event`]s; the command line renders them (with indicatif on a terminal), and tests
//! record them with [`RecordingReporter`].

use std::sync::Mutex;

/// How important a [`Event::Note`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Detail for `-v` only.
    Debug,
    /// Something a user wants to see.
    Info,
    /// Something is off but the run goes on.
    Warn,
}

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A unit of work started; `id` pairs it with its [`Event::Finished`].
    Started {
        /// A key unique within the run, such as `pii-demo/baseline/3`.
        id: String,
        /// What a person reads, such as `Applying mysql.yaml`.
        label: String,
    },
    /// A unit of work ended.
    Finished {
        /// The key given in [`Event::Started`].
        id: String,
        /// Whether it succeeded.
        ok: bool,
        /// A short outcome, such as `pass` or `skip: no HPA in the lab`.
        summary: String,
    },
    /// A free-form message.
    Note {
        /// Importance.
        level: Level,
        /// The message, one sentence.
        message: String,
    },
}

/// Receives progress events. Implementations must be cheap and must not block.
pub trait Reporter: Send + Sync {
    /// Handles one event.
    fn report(&self, event: Event);

    /// Convenience for [`Event::Started`].
    fn started(&self, id: &str, label: &str) {
        self.report(Event::Started {
            id: id.to_string(),
            label: label.to_string(),
        });
    }

    /// Convenience for [`Event::Finished`].
    fn finished(&self, id: &str, ok: bool, summary: &str) {
        self.report(Event::Finished {
            id: id.to_string(),
            ok,
            summary: summary.to_string(),
        });
    }

    /// Convenience for an informational [`Event::Note`].
    fn info(&self, message: &str) {
        self.report(Event::Note {
            level: Level::Info,
            message: message.to_string(),
        });
    }

    /// Convenience for a warning [`Event::Note`].
    fn warn(&self, message: &str) {
        self.report(Event::Note {
            level: Level::Warn,
            message: message.to_string(),
        });
    }

    /// Convenience for a debug [`Event::Note`].
    fn debug(&self, message: &str) {
        self.report(Event::Note {
            level: Level::Debug,
            message: message.to_string(),
        });
    }
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn report(&self, _event: Event) {}
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct RecordingReporter {
    events: Mutex<Vec<Event>>,
}

impl RecordingReporter {
    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The messages of all notes so far.
    pub fn notes(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Note { message, .. } => Some(message),
                _ => None,
            })
            .collect()
    }
}

impl Reporter for RecordingReporter {
    fn report(&self, event: Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_keeps_order() {
        let r = RecordingReporter::default();
        r.started("a", "Doing A");
        r.warn("careful");
        r.finished("a", true, "pass");
        assert_eq!(r.events().len(), 3);
        assert_eq!(r.notes(), vec!["careful".to_string()]);
    }
}
