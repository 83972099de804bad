//! Checks on a parsed scenario: every reference resolves, names are unique, durations
//! parse, manifests exist. Each problem carries the location of the offending value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::Spanned;

use super::model::*;
use super::template::unknown_placeholders;
use super::{Problem, Scenario, parse_duration};
use crate::manifest::{Document, SourceRef};

/// The location of a spanned value in `path`.
pub(super) fn at<T>(path: &Path, spanned: &Spanned<T>) -> SourceRef {
    SourceRef {
        path: path.to_path_buf(),
        line: spanned.referenced.line() as u32,
        column: spanned.referenced.column() as u32,
    }
}

/// Every manifest reference in apply and delete steps, in order.
pub(super) fn manifest_refs(file: &ScenarioFile) -> Vec<&Spanned<String>> {
    file.phases
        .iter()
        .flat_map(|p| &p.steps)
        .flat_map(|s| match s {
            Step::Apply(files) | Step::Delete(files) => files.iter().collect(),
            Step::Hpa(h) => vec![&h.skewed, &h.fixed],
            _ => Vec::new(),
        })
        .collect()
}

/// A hint for serde's own messages (unknown keys, wrong types).
pub(super) fn serde_hint(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the spelling against README.md, section \"Writing a scenario\"".into())
    } else if message.contains("unknown variant") {
        Some("step kinds are apply, delete, label, restart, wait, probe, capture and hpa".into())
    } else if message.contains("missing field") {
        Some("this key is required here".into())
    } else {
        None
    }
}

/// Collects problems while walking the scenario.
struct Checker<'a> {
    path: &'a Path,
    file: &'a ScenarioFile,
    problems: Vec<Problem>,
    workloads: BTreeSet<&'a str>,
    probes: BTreeMap<&'a str, &'a Probe>,
}

impl<'a> Checker<'a> {
    fn report(&mut self, spanned_at: SourceRef, message: String, hint: Option<String>) {
        self.problems.push(Problem {
            at: spanned_at,
            message,
            hint,
        });
    }

    fn problem<T>(&mut self, value: &Spanned<T>, message: String, hint: Option<String>) {
        let at = at(self.path, value);
        self.report(at, message, hint);
    }

    /// Reports `name` unless it is a declared workload or one of `builtins`.
    fn workload_ref(&mut self, name: &Spanned<String>, what: &str, builtins: &[&str]) {
        if self.workloads.contains(name.value.as_str()) || builtins.contains(&name.value.as_str()) {
            return;
        }
        let mut known: Vec<&str> = self.workloads.iter().copied().collect();
        known.extend(builtins);
        let hint = closest(&name.value, &known)
            .map(|c| format!("did you mean `{c}`?"))
            .or_else(|| Some(format!("declared workloads: {}", known.join(", "))));
        self.problem(
            name,
            format!("{what} `{}` is not a declared workload", name.value),
            hint,
        );
    }

    fn duration(&mut self, value: &Spanned<String>) {
        if let Err(message) = parse_duration(&value.value) {
            self.problem(value, message, None);
        }
    }
}

/// Every problem in the scenario, in file order.
pub(super) fn problems(path: &Path, file: &ScenarioFile, fixtures: &Path) -> Vec<Problem> {
    let mut c = Checker {
        path,
        file,
        problems: Vec::new(),
        workloads: file
            .workloads
            .iter()
            .map(|w| w.name.value.as_str())
            .collect(),
        probes: BTreeMap::new(),
    };
    header(&mut c);
    workloads(&mut c);
    let mut phases = BTreeSet::new();
    let mut captures = BTreeSet::new();
    for phase in &file.phases {
        if !phases.insert(phase.name.value.as_str()) {
            c.problem(
                &phase.name,
                format!("phase `{}` is declared twice", phase.name.value),
                None,
            );
        }
        for step in &phase.steps {
            step_problems(&mut c, step, fixtures, &mut captures);
        }
    }
    if file.phases.is_empty() {
        c.problem(
            &file.name,
            "scenario has no phases".into(),
            Some("add at least one phase with steps".into()),
        );
    }
    c.problems.sort_by_key(|p| (p.at.line, p.at.column));
    c.problems
}

fn header(c: &mut Checker) {
    let f = c.file;
    if f.api_version.value != API_VERSION {
        c.problem(
            &f.api_version,
            format!("unsupported apiVersion `{}`", f.api_version.value),
            Some(format!("use `{API_VERSION}`")),
        );
    }
    if f.kind.value != "Scenario" {
        c.problem(
            &f.kind,
            format!("kind must be `Scenario`, not `{}`", f.kind.value),
            None,
        );
    }
    let stem = c
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if f.name.value != stem {
        c.problem(
            &f.name,
            format!(
                "name `{}` differs from the file name `{stem}`",
                f.name.value
            ),
            Some(format!("rename the file or set `name: {stem}`")),
        );
    }
    if f.requires.workers < 1 {
        c.report(
            at(c.path, &f.name),
            "requires.workers must be at least 1".into(),
            None,
        );
    }
}

fn workloads(c: &mut Checker) {
    let mut seen = BTreeSet::new();
    for w in &c.file.workloads {
        if !seen.insert(w.name.value.as_str()) {
            c.problem(
                &w.name,
                format!("workload `{}` is declared twice", w.name.value),
                None,
            );
        }
        if !is_kebab(&w.name.value) {
            c.problem(
                &w.name,
                format!("workload name `{}` is not a Kubernetes name", w.name.value),
                Some("use lower-case letters, digits and '-'".into()),
            );
        }
        for call in &w.calls {
            c.workload_ref(&call.to, "call target", &[peers::EGRESS_GATEWAY]);
        }
    }
}

fn step_problems<'a>(
    c: &mut Checker<'a>,
    step: &'a Step,
    fixtures: &Path,
    captures: &mut BTreeSet<&'a str>,
) {
    match step {
        Step::Apply(files) | Step::Delete(files) => manifests_exist(c, files.iter(), fixtures),
        Step::Hpa(h) => hpa_step(c, h, fixtures, captures),
        Step::Label(_) => {}
        Step::Restart(names) => names
            .iter()
            .for_each(|n| c.workload_ref(n, "restart of", &[])),
        Step::Wait(wait) => {
            wait.workloads
                .iter()
                .for_each(|n| c.workload_ref(n, "wait on", &[]));
            c.duration(&wait.timeout);
            if wait.condition == WaitFor::SidecarInjected && c.file.requires.mesh.is_none() {
                c.problem(
                    &wait.timeout,
                    "waiting for sidecars, but the scenario requires no mesh".into(),
                    Some("add requires.mesh".into()),
                );
            }
        }
        Step::Probe(probes) => probes.iter().for_each(|p| probe(c, p)),
        Step::Capture(capture) => {
            if !captures.insert(capture.name.value.as_str()) {
                c.problem(
                    &capture.name,
                    format!("capture `{}` is declared twice", capture.name.value),
                    None,
                );
            }
            capture
                .restart
                .iter()
                .for_each(|n| c.workload_ref(n, "restart of", &[]));
            capture.probes.iter().for_each(|p| probe(c, p));
            let local: BTreeSet<&str> = capture
                .probes
                .iter()
                .map(|p| p.name.value.as_str())
                .collect();
            let mut names = BTreeSet::new();
            for e in capture.expect.iter().chain(&capture.controls) {
                expectation(c, e, &local, &mut names);
            }
            if capture.expect.is_empty() {
                c.problem(
                    &capture.name,
                    "capture has no expectations".into(),
                    Some("a capture without `expect` proves nothing".into()),
                );
            }
            let unreached = capture.expect.iter().find(|e| e.reached == Some(false));
            if let Some(e) = unreached
                && !capture.controls.iter().any(|k| k.reached != Some(false))
            {
                c.problem(
                    &e.name,
                    format!(
                        "expectation `{}` says no connection is seen, but the capture has no control showing it can see one",
                        e.name.value
                    ),
                    Some("add a control whose flow this capture must see (`controls:`)".into()),
                );
            }
        }
    }
}

fn manifests_exist<'a>(
    c: &mut Checker,
    files: impl Iterator<Item = &'a Spanned<String>>,
    fixtures: &Path,
) {
    for file in files {
        if !fixtures.join(&file.value).is_file() {
            let hint = Some(format!("manifests are read from {}", fixtures.display()));
            c.problem(
                file,
                format!("manifest `{}` does not exist", file.value),
                hint,
            );
        }
    }
}

fn hpa_step<'a>(
    c: &mut Checker<'a>,
    h: &'a HpaStep,
    fixtures: &Path,
    names: &mut BTreeSet<&'a str>,
) {
    if !names.insert(h.name.value.as_str()) {
        c.problem(
            &h.name,
            format!("`{}` already names a capture or hpa step", h.name.value),
            Some("artifacts are named after it, so it must be unique".into()),
        );
    }
    c.workload_ref(&h.workload, "hpa workload", &[]);
    manifests_exist(c, [&h.skewed, &h.fixed].into_iter(), fixtures);
    c.duration(&h.hold);
    c.duration(&h.timeout);
    if let (Ok(hold), Ok(timeout)) = (
        parse_duration(&h.hold.value),
        parse_duration(&h.timeout.value),
    ) && hold >= timeout
    {
        c.problem(
            &h.hold,
            format!(
                "hold {} is not shorter than timeout {}",
                h.hold.value, h.timeout.value
            ),
            Some("the skewed HPA must hold still for `hold` within `timeout`".into()),
        );
    }
    if !c.file.requires.metrics_server {
        c.problem(
            &h.name,
            "an hpa step needs metrics-server, but the scenario does not require it".into(),
            Some("set requires.metricsServer: true".into()),
        );
    }
}

fn probe<'a>(c: &mut Checker<'a>, p: &'a Probe) {
    if c.probes.insert(p.name.value.as_str(), p).is_some() {
        c.problem(
            &p.name,
            format!("probe `{}` is declared twice", p.name.value),
            Some("probe names are unique in a scenario".into()),
        );
    }
    c.workload_ref(&p.from, "probe source", &[peers::HOST]);
    c.workload_ref(&p.to.workload, "probe target", &[peers::INGRESS_GATEWAY]);
    let kinds = [
        p.http.is_some(),
        p.tcp.is_some(),
        p.mysql.is_some(),
        p.amqp.is_some(),
        p.mongodb.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        c.problem(
            &p.name,
            format!(
                "probe `{}` must have exactly one of http, tcp, mysql, amqp, mongodb",
                p.name.value
            ),
            None,
        );
    }
    if let Some(http) = &p.http
        && http.body.is_some()
        && !http.form.is_empty()
    {
        c.problem(
            &p.name,
            "an http probe has either `form` or `body`, not both".into(),
            None,
        );
    }
    if p.to.workload.value == peers::INGRESS_GATEWAY {
        let has_gateway = c
            .file
            .requires
            .mesh
            .as_ref()
            .is_some_and(|m| m.ingress_gateway);
        if !has_gateway {
            c.problem(
                &p.to.workload,
                "probe goes through the ingress gateway, but the mesh has none".into(),
                Some("set requires.mesh.ingressGateway: true".into()),
            );
        }
    }
    for text in payload_texts(p) {
        for unknown in unknown_placeholders(text) {
            c.problem(
                &p.name,
                format!("unknown placeholder `{unknown}`"),
                Some("the only placeholder is `{{canary}}`".into()),
            );
        }
    }
    c.duration(&p.timeout);
}

fn payload_texts(p: &Probe) -> Vec<&str> {
    let mut texts = Vec::new();
    if let Some(h) = &p.http {
        texts.push(h.path.as_str());
        texts.extend(h.form.values().map(String::as_str));
        texts.extend(h.headers.values().map(String::as_str));
        texts.extend(h.body.as_deref());
    }
    texts.extend(p.tcp.as_ref().map(|t| t.send.as_str()));
    texts.extend(p.mysql.as_ref().map(|m| m.query.as_str()));
    texts.extend(p.amqp.as_ref().map(|a| a.publish.as_str()));
    if let Some(m) = &p.mongodb {
        for v in m.insert.iter().chain(m.find.as_ref()) {
            super::template::json_strings(v, &mut texts);
        }
    }
    texts.extend(p.expect.body_contains.as_deref());
    texts
}

fn expectation<'a>(
    c: &mut Checker<'a>,
    e: &'a WireExpectation,
    local: &BTreeSet<&str>,
    names: &mut BTreeSet<&'a str>,
) {
    if !names.insert(e.name.value.as_str()) {
        c.problem(
            &e.name,
            format!(
                "expectation `{}` is declared twice in this capture",
                e.name.value
            ),
            None,
        );
    }
    let builtins = [
        peers::ANY,
        peers::HOST,
        peers::INGRESS_GATEWAY,
        peers::EGRESS_GATEWAY,
    ];
    c.workload_ref(&e.flow.from, "flow source", &builtins);
    c.workload_ref(&e.flow.to, "flow destination", &builtins[1..]);
    if e.class.is_none() && e.canary.is_none() && e.reached.is_none() {
        c.problem(
            &e.name,
            format!("expectation `{}` checks nothing", e.name.value),
            Some("set `class`, `canary`, or both".into()),
        );
    }
    if e.reached == Some(false) && (e.class.is_some() || e.canary.is_some()) {
        c.problem(
            &e.name,
            format!(
                "expectation `{}` says no connection is seen, so it has no class or canary to check",
                e.name.value
            ),
            Some("drop `class` and `canary`, or `reached: false`".into()),
        );
    }
    if e.probes.is_empty() {
        c.problem(
            &e.name,
            format!("expectation `{}` names no probe", e.name.value),
            Some("list the probes whose traffic it judges under `probes`".into()),
        );
    }
    for name in &e.probes {
        if !local.contains(name.value.as_str()) {
            let known: Vec<&str> = local.iter().copied().collect();
            let hint = closest(&name.value, &known)
                .map(|k| format!("did you mean `{k}`?"))
                .unwrap_or_else(|| format!("probes in this capture: {}", known.join(", ")));
            c.problem(
                name,
                format!(
                    "expectation names probe `{}`, which this capture does not run",
                    name.value
                ),
                Some(hint),
            );
        }
    }
}

fn is_kebab(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The known name nearest to `name`, if it is close enough to be a typo.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Problems with the HPAs an `hpa:` step names: each manifest holds exactly one
/// HorizontalPodAutoscaler that scales the step's workload, and both have the same name
/// and namespace, so the fixed one replaces the skewed one.
pub(super) fn hpa_manifest_problems(
    path: &Path,
    file: &ScenarioFile,
    manifests: &BTreeMap<String, Vec<Document>>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let steps = file.phases.iter().flat_map(|p| &p.steps);
    for h in steps.filter_map(|s| if let Step::Hpa(h) = s { Some(h) } else { None }) {
        let mut found = Vec::new();
        for reference in [&h.skewed, &h.fixed] {
            let Some(docs) = manifests.get(&reference.value) else {
                continue;
            };
            let hpas: Vec<&Document> = docs
                .iter()
                .filter(|d| d.kind == "HorizontalPodAutoscaler")
                .collect();
            let mut problem = |message: String| {
                problems.push(Problem {
                    at: at(path, reference),
                    message,
                    hint: None,
                })
            };
            match hpas.as_slice() {
                [one] => {
                    let target = one
                        .value
                        .pointer("/spec/scaleTargetRef/name")
                        .and_then(|v| v.as_str());
                    if target != Some(h.workload.value.as_str()) {
                        problem(format!(
                            "HPA {} in `{}` scales {}, not workload `{}`",
                            one.name,
                            reference.value,
                            target.unwrap_or("nothing"),
                            h.workload.value
                        ));
                    }
                    found.push((one.name.clone(), one.namespace.clone()));
                }
                other => problem(format!(
                    "`{}` must hold exactly one HorizontalPodAutoscaler, not {}",
                    reference.value,
                    other.len()
                )),
            }
        }
        if let [skewed, fixed] = found.as_slice()
            && skewed != fixed
        {
            problems.push(Problem {
                at: at(path, &h.fixed),
                message: format!(
                    "the fixed HPA {} must have the skewed HPA's name and namespace ({})",
                    fixed.0, skewed.0
                ),
                hint: Some("the fixed HPA replaces the skewed one in place".into()),
            });
        }
    }
    problems
}

/// See [`Scenario::state_after`].
pub(super) fn state_after(s: &Scenario, phase: Option<&str>) -> Vec<Document> {
    let mut objects: BTreeMap<String, Document> = BTreeMap::new();
    for p in &s.file.phases {
        for step in &p.steps {
            match step {
                Step::Apply(files) => {
                    for d in files.iter().flat_map(|f| s.documents(&f.value)) {
                        objects.insert(d.key(), d.clone());
                    }
                }
                Step::Delete(files) => {
                    for d in files.iter().flat_map(|f| s.documents(&f.value)) {
                        objects.remove(&d.key());
                    }
                }
                Step::Label(label) => apply_labels(&mut objects, label),
                _ => {}
            }
        }
        if phase == Some(p.name.value.as_str()) {
            break;
        }
    }
    objects.into_values().collect()
}

fn apply_labels(objects: &mut BTreeMap<String, Document>, step: &LabelStep) {
    let key = format!("Namespace/-/{}", step.namespace);
    let Some(ns) = objects.get_mut(&key) else {
        return;
    };
    let labels = ns
        .value
        .as_object_mut()
        .and_then(|o| o.get_mut("metadata"))
        .and_then(|m| m.as_object_mut())
        .map(|m| m.entry("labels").or_insert_with(|| serde_json::json!({})));
    if let Some(serde_json::Value::Object(map)) = labels {
        for (k, v) in &step.labels {
            match v {
                Some(v) => map.insert(k.clone(), serde_json::Value::String(v.clone())),
                None => map.remove(k),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let known = ["httpd-server", "mysql-server"];
        assert_eq!(closest("mysql-srever", &known), Some("mysql-server"));
        assert_eq!(closest("redis", &known), None);
    }

    #[test]
    fn kebab_names() {
        assert!(is_kebab("rabbitmq-0"));
        assert!(!is_kebab("Rabbit"));
        assert!(!is_kebab("-a"));
    }
}
