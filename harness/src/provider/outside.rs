//! Workloads outside the cluster (`kind: external`) as the cluster providers run them: a
//! container from the real database image on the cluster's Docker network, under the host
//! names the scenario dials, labelled with the run so teardown and `cargo xtask gc` find
//! it, and seeded with the scenario's data on first start. Pure: the container is
//! described here and started by the provider.

use std::collections::BTreeMap;

use crate::scenario::{Protocol, Scenario, Step, Workload, WorkloadKind};

/// The MongoDB image for external databases: the `mongo` base image of Bookinfo's own
/// MongoDB sample at Istio 1.30 (`samples/bookinfo/src/mongodb/Dockerfile`, as recorded in
/// `shared/notes/scenario-facts.md` E; not re-checked against Docker Hub from here). Its
/// entrypoint runs `/docker-entrypoint-initdb.d/*.js` with `mongosh` on first start.
pub const MONGO_IMAGE: &str = "mongo:8.0.8";
/// Where the seed script goes.
pub const SEED_PATH: &str = "/docker-entrypoint-initdb.d/meshproof-seed.js";
/// Where the server's certificate and key go, for ports that require TLS.
pub const TLS_PEM_PATH: &str = "/etc/meshproof/mongodb.pem";

/// One external workload's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideContainer {
    /// The container name.
    pub name: String,
    /// The image.
    pub image: String,
    /// The Docker network (the cluster's).
    pub network: String,
    /// DNS names on that network.
    pub aliases: Vec<String>,
    /// Labels (the run's).
    pub labels: BTreeMap<String, String>,
    /// Arguments after the image's entrypoint.
    pub args: Vec<String>,
    /// Files copied in before start: path and contents (certificates are made at start).
    pub files: Vec<(String, String)>,
}

/// The host names an external workload answers to: its name, and every `service` the
/// scenario's calls and probes dial it by.
pub fn hosts(s: &Scenario, w: &Workload) -> Vec<String> {
    let name = &w.name.value;
    let mut out = vec![name.clone()];
    for c in s.file.workloads.iter().flat_map(|x| &x.calls) {
        if &c.to.value == name {
            out.extend(c.service.clone());
        }
    }
    for step in s.file.phases.iter().flat_map(|p| &p.steps) {
        let probes = match step {
            Step::Probe(p) => p.as_slice(),
            Step::Capture(c) => c.probes.as_slice(),
            _ => &[],
        };
        for p in probes.iter().filter(|p| &p.to.workload.value == name) {
            out.extend(p.to.service.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The containers for a scenario's external workloads on `network`.
pub fn containers(
    s: &Scenario,
    run_id: &str,
    network: &str,
) -> Result<Vec<OutsideContainer>, String> {
    s.file
        .workloads
        .iter()
        .filter(|w| w.kind == WorkloadKind::External)
        .map(|w| container(s, w, run_id, network))
        .collect()
}

fn container(
    s: &Scenario,
    w: &Workload,
    run_id: &str,
    network: &str,
) -> Result<OutsideContainer, String> {
    let name = &w.name.value;
    let [port] = w.ports.as_slice() else {
        return Err(format!(
            "external workload {name}: exactly one port is supported, found {}",
            w.ports.len()
        ));
    };
    if port.protocol != Protocol::Mongodb {
        return Err(format!(
            "external workload {name}: only MongoDB runs outside the cluster, not {:?}",
            port.protocol
        ));
    }
    let mut args = vec![
        "--bind_ip_all".to_string(),
        "--port".into(),
        port.port.to_string(),
    ];
    if port.tls {
        args.extend(
            [
                "--tlsMode",
                "requireTLS",
                "--tlsCertificateKeyFile",
                TLS_PEM_PATH,
            ]
            .map(String::from),
        );
    }
    Ok(OutsideContainer {
        name: format!("meshproof-{run_id}-{name}"),
        image: MONGO_IMAGE.into(),
        network: network.into(),
        aliases: hosts(s, w),
        labels: BTreeMap::from([
            ("meshproof.dev/run".to_string(), run_id.to_string()),
            ("meshproof.dev/workload".to_string(), name.clone()),
        ]),
        args,
        files: vec![(SEED_PATH.into(), seed_script(&w.data)?)],
    })
}

/// A `mongosh` script inserting the seed documents, as JSON literals (valid JavaScript).
pub fn seed_script(data: &BTreeMap<String, Vec<serde_json::Value>>) -> Result<String, String> {
    let mut out = String::from("// Seeded by meshproof: the documents the scenario reads back.\n");
    for (ns, docs) in data {
        let (db, coll) = ns
            .split_once('.')
            .ok_or_else(|| format!("seed data key `{ns}` is not `database.collection`"))?;
        let docs = serde_json::to_string(docs).map_err(|e| e.to_string())?;
        out.push_str(&format!(
            "db.getSiblingDB({}).getCollection({}).insertMany({docs});\n",
            serde_json::Value::from(db),
            serde_json::Value::from(coll)
        ));
    }
    Ok(out)
}

/// One line per container for a dry-run plan, with the seed script as detail.
pub fn describe(c: &OutsideContainer) -> (String, String) {
    let aliases: Vec<String> = c
        .aliases
        .iter()
        .map(|a| format!("--network-alias {a}"))
        .collect();
    let labels: Vec<String> = c
        .labels
        .iter()
        .map(|(k, v)| format!("--label {k}={v}"))
        .collect();
    let text = format!(
        "docker run -d --name {} --network {} {} {} {} {} (outside the cluster and the mesh registry; labelled with the run, so `cargo xtask gc` removes it)",
        c.name,
        c.network,
        aliases.join(" "),
        labels.join(" "),
        c.image,
        c.args.join(" ")
    );
    let detail = c
        .files
        .iter()
        .map(|(path, text)| format!("{path}:\n{text}"))
        .collect::<Vec<_>>()
        .join("\n");
    (text, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Scenario::load(&root, "mongodb-egress").expect("shipped scenario loads")
    }

    #[test]
    fn mongodb_egress_runs_two_seeded_mongo_containers_on_the_kind_network() {
        let c = containers(&scenario(), "r1", "kind").unwrap();
        assert_eq!(c.len(), 2);
        let plain = &c[0];
        assert_eq!(plain.name, "meshproof-r1-ratings-db");
        assert_eq!(plain.image, "mongo:8.0.8");
        assert_eq!(plain.network, "kind");
        assert!(
            plain
                .aliases
                .contains(&"ratings-db.meshproof.test".to_string())
        );
        assert_eq!(plain.labels["meshproof.dev/run"], "r1");
        assert!(!plain.args.iter().any(|a| a == "requireTLS"));
        let (path, seed) = &plain.files[0];
        assert_eq!(path, SEED_PATH);
        assert!(
            seed.contains(r#"db.getSiblingDB("test").getCollection("ratings").insertMany([{"rating":1},{"rating":1}]);"#),
            "{seed}"
        );
        let tls = &c[1];
        assert!(
            tls.args
                .windows(2)
                .any(|w| w == ["--tlsMode", "requireTLS"])
        );
        assert!(
            tls.aliases
                .contains(&"ratings-db-tls.meshproof.test".to_string())
        );
    }

    #[test]
    fn seed_keys_must_name_a_database_and_a_collection() {
        let data = BTreeMap::from([("ratings".to_string(), vec![serde_json::json!({})])]);
        assert!(seed_script(&data).unwrap_err().contains("`ratings`"));
    }
}
