//! Verdicts: pass, fail, skip or error, always with the evidence behind them.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::capture::DropCounts;
use crate::provider::Observation;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The check held, and the evidence shows it.
    Pass,
    /// It was not run, for the reason given (never counted as a pass).
    Skip,
    /// The check did not hold.
    Fail,
    /// The check could not be judged: missing evidence or broken infrastructure.
    Error,
}

impl Verdict {
    /// The worse of two verdicts (error > fail > skip > pass).
    pub fn worst(self, other: Verdict) -> Verdict {
        self.max(other)
    }

    /// Lower-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Skip => "skip",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of thing was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// A step ran (apply, wait, restart...).
    Step,
    /// A probe's answer against its `expect`.
    Probe,
    /// A wire expectation.
    Wire,
    /// A negative control of a capture.
    Control,
    /// The policy model's expected class against the scenario's own.
    Model,
    /// A live HPA check (`hpa:` step).
    Autoscale,
}

/// One judged check with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// The check's name (probe, expectation or step label).
    pub name: String,
    /// What was judged.
    pub kind: CheckKind,
    /// The outcome.
    pub verdict: Verdict,
    /// One or more sentences saying why, for people.
    pub reason: String,
    /// What was seen.
    pub evidence: Evidence,
}

/// What a verdict rests on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// The flows the check looked at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<FlowEvidence>,
    /// The capture file they came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<PathBuf>,
    /// The packets that capture lost (absent when the capturing tool could not say, or
    /// for evidence that is not a capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drops: Option<DropCounts>,
    /// A probe's observation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
}

/// One flow as evidence, with names instead of bare addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowEvidence {
    /// `httpd-server (worker) 10.244.1.5:51234`.
    pub client: String,
    /// `mysql-server (worker2) 10.244.2.7:3306`.
    pub server: String,
    /// The class seen.
    pub class: String,
    /// The plaintext protocol recognised.
    pub protocol: Option<String>,
    /// The ClientHello's SNI.
    pub sni: Option<String>,
    /// ALPN offered.
    pub alpn: Vec<String>,
    /// Canary sightings in clear.
    pub canary_hits: u64,
    /// Payload bytes client to server.
    pub client_bytes: u64,
    /// Payload bytes server to client.
    pub server_bytes: u64,
    /// The flow's first frame in the pcap (1-based, as tshark numbers them).
    pub first_frame: u64,
    /// Its last frame.
    pub last_frame: u64,
    /// A tshark/Wireshark display filter that shows exactly this flow's frames.
    pub tshark_filter: String,
}

impl Judgement {
    /// A judgement without evidence (steps, skips).
    pub fn bare(name: &str, kind: CheckKind, verdict: Verdict, reason: impl Into<String>) -> Self {
        Judgement {
            name: name.to_string(),
            kind,
            verdict,
            reason: reason.into(),
            evidence: Evidence::default(),
        }
    }
}

/// The worst verdict of a set, or `Pass` for none. A set with only skips is `Skip`.
pub fn overall<'a>(judgements: impl IntoIterator<Item = &'a Judgement>) -> Verdict {
    judgements
        .into_iter()
        .map(|j| j.verdict)
        .fold(Verdict::Pass, Verdict::worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_beats_fail_beats_skip_beats_pass() {
        assert_eq!(Verdict::Pass.worst(Verdict::Skip), Verdict::Skip);
        assert_eq!(Verdict::Fail.worst(Verdict::Skip), Verdict::Fail);
        assert_eq!(Verdict::Fail.worst(Verdict::Error), Verdict::Error);
        let js = [
            Judgement::bare("a", CheckKind::Probe, Verdict::Pass, ""),
            Judgement::bare("b", CheckKind::Wire, Verdict::Fail, ""),
        ];
        assert_eq!(overall(&js), Verdict::Fail);
        assert_eq!(overall(&[]), Verdict::Pass);
    }
}
