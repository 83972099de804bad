//! JUnit XML: a test suite per scenario, a test case per check, evidence in system-out.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{ReportError, RunReport};
use crate::verdict::{Judgement, Verdict};

/// The run as JUnit XML. Errors are `<error>`, failures `<failure>`, skips `<skipped>`.
pub fn to_junit(run: &RunReport) -> Result<String, ReportError> {
    let mut report = Report::new(format!("meshproof {}", run.provider));
    for scenario in &run.scenarios {
        let mut suite = TestSuite::new(scenario.name.clone());
        suite.add_property(("provider", run.provider.as_str()));
        suite.add_property(("run-id", run.run_id.as_str()));
        suite.set_time(std::time::Duration::from_secs_f64(scenario.seconds));
        let setup = scenario.setup.iter().map(|j| ("setup", j));
        let phases = scenario
            .phases
            .iter()
            .flat_map(|p| p.checks.iter().map(move |j| (p.name.as_str(), j)));
        for (phase, judgement) in setup.chain(phases) {
            suite.add_test_case(case(&scenario.name, phase, judgement));
        }
        if !scenario.notes.is_empty() {
            suite.set_system_out(scenario.notes.join("\n"));
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .map_err(|e| ReportError::Serialize(e.to_string()))
}

fn case(scenario: &str, phase: &str, j: &Judgement) -> TestCase {
    let status = match j.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Skip => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(j.reason.clone());
            s
        }
        Verdict::Fail | Verdict::Error => {
            let kind = if j.verdict == Verdict::Fail {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(j.reason.clone());
            s
        }
    };
    let mut case = TestCase::new(format!("{phase}/{}", j.name), status);
    case.set_classname(format!("{scenario}.{phase}"));
    let evidence = serde_json::to_string_pretty(&j.evidence).unwrap_or_default();
    if evidence != "{}" {
        case.set_system_out(format!("{}\nevidence: {evidence}", j.reason));
    }
    case
}
