//! Lab tier: real Envoy sidecars doing Istio-style mTLS between two containers on the
//! local Docker engine, and the RBAC filter answering `403 RBAC: access denied`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meshproof::exec::Exec;
use meshproof::image;
use meshproof::provider::lab::config;
use meshproof::provider::lab::docker::{self, SweepGuard};
use meshproof::provider::lab::envoy::{
    ALPN_HTTP11, ALPN_TCP, Authz, AuthzRule, InboundMode, InboundPort, OutboundRoute,
    SidecarConfig, UpstreamCluster, UpstreamTls, istio_sni,
};
use meshproof::provider::lab::pki::{LabCa, SpiffeId};
use meshproof::provider::lab::pod::{self, PodContext};
use meshproof::reporter::NullReporter;
use meshproof::scenario::Protocol;
use meshproof::workload::{Listener, ProbeKind, ProbeRequest, Role, Upstream};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

async fn lab_image() -> String {
    let exec = Exec::new();
    let cache = meshproof::env_vars::cache_dir(root());
    let version = config::envoy_version(root()).unwrap();
    let envoy = image::envoy::envoy_binary(&exec, &cache, &version)
        .await
        .unwrap();
    let docker = docker::connect().await.unwrap();
    let workload = Path::new(env!("CARGO_BIN_EXE_meshproof-workload"));
    let spec = image::lab_image(&exec, workload, &envoy).await.unwrap();
    image::ensure_image(&docker, &spec, &NullReporter)
        .await
        .unwrap()
        .reference
}

fn role(workload: &str, listeners: Vec<(u16, Protocol, bool)>, upstreams: Vec<Upstream>) -> Role {
    Role {
        workload: workload.into(),
        instance: format!("{workload}-0"),
        node: format!("rabbit@{workload}-0"),
        cookie: "test-cookie".into(),
        listeners: listeners
            .into_iter()
            .map(|(port, protocol, sidecar)| Listener {
                bind: if sidecar {
                    ([127, 0, 0, 1], port).into()
                } else {
                    ([0, 0, 0, 0], port).into()
                },
                protocol,
                tls: false,
            })
            .collect(),
        upstreams,
        cluster_interval_ms: 1000,
        data: Default::default(),
    }
}

fn probe(dial: String, kind: ProbeKind) -> ProbeRequest {
    ProbeRequest {
        dial,
        kind,
        timeout_ms: 5000,
        attempts: 2,
    }
}

fn http(method: &str, path: &str, body: &str) -> ProbeKind {
    let mut headers = BTreeMap::from([("host".to_string(), "db".to_string())]);
    if !body.is_empty() {
        headers.insert(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        );
    }
    ProbeKind::Http {
        method: method.into(),
        path: path.into(),
        headers,
        body: body.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mtls_between_sidecars_and_rbac_on_http() {
    let image = lab_image().await;
    let run_id = format!("t{:08x}", rand::random::<u32>());
    let _guard = SweepGuard::new(&run_id);
    let docker = docker::connect().await.unwrap();
    let net_name = format!("meshproof-{run_id}");
    let net = docker::create_network(&docker, &net_name, &run_id)
        .await
        .unwrap();
    let ctx = PodContext {
        run_id: run_id.clone(),
        image,
        network: net.name.clone(),
    };
    let ca = LabCa::generate(&run_id).unwrap();
    let db_fqdn = "db.lab.svc.cluster.local";
    let db_id = SpiffeId {
        namespace: "lab".into(),
        service_account: "db".into(),
    };
    let web_id = SpiffeId {
        namespace: "lab".into(),
        service_account: "web".into(),
    };

    // The server: MySQL under STRICT, and HTTP under STRICT with an ALLOW policy for GET.
    let db_role = role(
        "db",
        vec![(3306, Protocol::Mysql, true), (8080, Protocol::Http, true)],
        vec![],
    );
    let mut db = pod::start_app(&docker, &ctx, &db_role, vec![db_fqdn.into()])
        .await
        .unwrap();
    let allow_get = Authz {
        deny: vec![],
        allow: Some(vec![AuthzRule {
            methods: vec!["GET".into()],
            ..AuthzRule::default()
        }]),
        sources: vec!["allow-get/lab".into()],
    };
    let db_sidecar = SidecarConfig {
        pod: db.name.clone(),
        namespace: "lab".into(),
        workload: "db".into(),
        pod_ip: db.ip,
        inbound: vec![
            InboundPort {
                port: 3306,
                http: false,
                mode: InboundMode::Strict,
                authz: None,
            },
            InboundPort {
                port: 8080,
                http: true,
                mode: InboundMode::Strict,
                authz: Some(allow_get),
            },
        ],
        outbound: vec![],
        ingress: vec![],
        egress: Vec::new(),
    };
    pod::start_sidecar(
        &docker,
        &ctx,
        &mut db,
        &db_sidecar,
        &ca.issue(&db_id).unwrap(),
        &ca.root_pem(),
    )
    .await
    .unwrap();
    pod::wait_ready(&docker, &db, &db_role, Duration::from_secs(30))
        .await
        .unwrap();

    // The client: a pod whose sidecar originates Istio mTLS to both ports.
    let route = |listen: &str, port: u16, http: bool| OutboundRoute {
        listen: listen.parse().unwrap(),
        cluster: UpstreamCluster {
            http,
            host: db_fqdn.into(),
            service_port: port,
            target_port: port,
            service_fqdn: db_fqdn.into(),
            tls: Some(UpstreamTls {
                sni: istio_sni(port, db_fqdn),
                alpn: if http {
                    ALPN_HTTP11.map(String::from).to_vec()
                } else {
                    ALPN_TCP.map(String::from).to_vec()
                },
                peer_identities: vec![db_id.to_string()],
            }),
        },
        blackhole: false,
    };
    let web_role = role("web", vec![], vec![]);
    let mut web = pod::start_app(&docker, &ctx, &web_role, vec![])
        .await
        .unwrap();
    let web_sidecar = SidecarConfig {
        pod: web.name.clone(),
        namespace: "lab".into(),
        workload: "web".into(),
        pod_ip: web.ip,
        inbound: vec![],
        outbound: vec![
            route("127.1.0.1:3306", 3306, false),
            route("127.1.0.2:8080", 8080, true),
        ],
        ingress: vec![],
        egress: Vec::new(),
    };
    pod::start_sidecar(
        &docker,
        &ctx,
        &mut web,
        &web_sidecar,
        &ca.issue(&web_id).unwrap(),
        &ca.root_pem(),
    )
    .await
    .unwrap();
    pod::wait_ready(&docker, &web, &web_role, Duration::from_secs(30))
        .await
        .unwrap();

    // Through the sidecars: the MySQL exchange completes over mTLS.
    let insert = ProbeKind::Mysql {
        query: "INSERT INTO users (email) VALUES ('MESHPROOF-CANARY-test')".into(),
    };
    let out = pod::probe_from(&docker, &web, &probe("127.1.0.1:3306".into(), insert))
        .await
        .unwrap();
    assert!(out.answered, "{out:?}");
    assert_eq!(out.body, "OK affected=1 last_insert_id=1");

    // RBAC: GET allowed (and the app sees the client's SPIFFE identity), POST denied by Envoy.
    let get = pod::probe_from(
        &docker,
        &web,
        &probe("127.1.0.2:8080".into(), http("GET", "/", "")),
    )
    .await
    .unwrap();
    assert_eq!(get.status, Some(200), "{get:?}");
    let post = pod::probe_from(
        &docker,
        &web,
        &probe("127.1.0.2:8080".into(), http("POST", "/", "a=b")),
    )
    .await
    .unwrap();
    assert_eq!(post.status, Some(403), "{post:?}");
    assert_eq!(post.body, "RBAC: access denied");

    // From the host, without a certificate, STRICT resets a client that speaks first.
    let host =
        meshproof::workload::probe::run(&probe(format!("{}:8080", db.ip), http("GET", "/", "")))
            .await;
    assert!(host.reset && !host.answered, "{host:?}");
    // A server-first protocol (MySQL) just gets no greeting: Envoy waits for a ClientHello,
    // which is why Istio documents server-first protocols as a STRICT-only affair.
    let mut silent = probe(
        format!("{}:3306", db.ip),
        ProbeKind::Mysql {
            query: "SELECT 1".into(),
        },
    );
    (silent.timeout_ms, silent.attempts) = (1500, 1);
    let host = meshproof::workload::probe::run(&silent).await;
    assert!(!host.answered && !host.reset, "{host:?}");

    assert!(docker::sweep(&docker, &run_id).await.unwrap() >= 5);
    assert_eq!(docker::leftovers(&docker, &run_id).await.unwrap(), 0);
}
