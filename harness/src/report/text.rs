//! The human summary printed at the end of a run.

use std::fmt::Write;

use super::RunReport;
use crate::verdict::{CheckKind, Judgement, Verdict};

/// A plain-text summary: one line per check, evidence for anything that did not pass.
pub fn to_text(run: &RunReport) -> String {
    let mut out = String::new();
    for s in &run.scenarios {
        let _ = writeln!(
            out,
            "\n{} on {}: {} ({})",
            s.name,
            run.provider,
            s.verdict().as_str().to_uppercase(),
            tally(s.checks())
        );
        for note in &s.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        let setup = s.setup.iter().map(|j| ("setup", j));
        let phases = s
            .phases
            .iter()
            .flat_map(|p| p.checks.iter().map(move |j| (p.name.as_str(), j)));
        for (phase, j) in setup
            .chain(phases)
            .filter(|(_, j)| j.kind != CheckKind::Step || j.verdict != Verdict::Pass)
        {
            line(&mut out, phase, j);
        }
    }
    let count = |v| run.scenarios.iter().filter(|s| s.verdict() == v).count();
    let _ = writeln!(
        out,
        "\n{} scenario(s): {} passed, {} failed, {} errored, {} skipped; canary {}; artifacts in {}",
        run.scenarios.len(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error),
        count(Verdict::Skip),
        run.canary,
        run.artifacts.display()
    );
    out
}

/// How many checks ended each way, so that a scenario whose verdict is SKIP shows at a
/// glance whether everything else passed.
fn tally<'a>(checks: impl Iterator<Item = &'a Judgement>) -> String {
    let mut counts = [0usize; 4];
    for j in checks {
        counts[match j.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
            Verdict::Skip => 3,
        }] += 1;
    }
    let names = ["passed", "failed", "errored", "skipped"];
    let parts: Vec<String> = counts
        .iter()
        .zip(names)
        .filter(|(n, _)| **n > 0)
        .map(|(n, name)| format!("{n} {name}"))
        .collect();
    format!(
        "{} checks: {}",
        counts.iter().sum::<usize>(),
        parts.join(", ")
    )
}

fn line(out: &mut String, phase: &str, j: &Judgement) {
    let mark = match j.verdict {
        Verdict::Pass => "✓",
        Verdict::Skip => "-",
        Verdict::Fail => "✗",
        Verdict::Error => "!",
    };
    let kind = match j.kind {
        CheckKind::Step => "step",
        CheckKind::Probe => "probe",
        CheckKind::Wire => "wire",
        CheckKind::Control => "control",
        CheckKind::Model => "model",
        CheckKind::Autoscale => "autoscale",
    };
    let _ = writeln!(
        out,
        "  {mark} {phase}/{} [{kind}] {}: {}",
        j.name, j.verdict, j.reason
    );
    if j.verdict == Verdict::Pass {
        return;
    }
    for f in &j.evidence.flows {
        let proto = f
            .protocol
            .as_deref()
            .map(|p| format!(" {p}"))
            .unwrap_or_default();
        let sni = f
            .sni
            .as_deref()
            .map(|s| format!(" sni={s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "      {} → {}: {}{proto}{sni} canary={} bytes={}/{}",
            f.client, f.server, f.class, f.canary_hits, f.client_bytes, f.server_bytes
        );
    }
    if let Some(pcap) = &j.evidence.pcap {
        let _ = writeln!(out, "      pcap: {}", pcap.display());
    }
}
