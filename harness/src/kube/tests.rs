//! The glue's behaviour against a stand-in API: teardown order and completeness, one
//! deadline per wait step, and errors that keep their cause.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::fake::{self, discovery, is_discovery, status};
use super::{ExecOutput, Kube, KubeError, WorkloadRef};
use crate::manifest::{self, Document};
use crate::scenario::{WaitFor, WorkloadKind};

const CORE: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Namespace", "namespaces", false),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

fn docs(text: &str) -> Vec<Document> {
    manifest::parse_str(Path::new("fixture.yaml"), text).expect("valid manifests")
}

fn config_maps(names: &[&str]) -> Vec<Document> {
    let text: Vec<String> = names
        .iter()
        .map(|n| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}, namespace: demo}}\n")
        })
        .collect();
    docs(&text.join("---\n"))
}

fn deletes(log: &fake::RequestLog) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("DELETE"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn delete_goes_newest_first_past_failures_and_404s() {
    let (kube, log) =
        fake::kube(
            |method, path| match (method, path.split('?').next().unwrap_or_default()) {
                (_, p) if is_discovery(p) => discovery(p, CORE),
                ("DELETE", p) if p.ends_with("/c") => {
                    status(403, "Forbidden", "configmaps \"c\" is forbidden: no")
                }
                ("DELETE", p) if p.ends_with("/b") => {
                    status(404, "NotFound", "configmaps \"b\" not found")
                }
                ("DELETE", _) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
                _ => status(500, "InternalError", "unexpected"),
            },
        );
    let err = kube
        .delete(&config_maps(&["a", "b", "c"]))
        .await
        .unwrap_err();
    assert_eq!(
        deletes(&log),
        [
            "DELETE /api/v1/namespaces/demo/configmaps/c?",
            "DELETE /api/v1/namespaces/demo/configmaps/b?",
            "DELETE /api/v1/namespaces/demo/configmaps/a?",
        ]
    );
    let KubeError::DeleteIncomplete { deleted, failures } = &err else {
        panic!("{err}");
    };
    assert_eq!(deleted, &["ConfigMap/demo/a"]);
    assert_eq!(failures.len(), 1, "a 404 is not a failure: {err}");
    let text = err.to_string();
    assert!(
        text.contains("delete ConfigMap/demo/c (fixture.yaml:")
            && text.contains("403 Forbidden: configmaps \"c\" is forbidden: no"),
        "{text}"
    );
}

#[tokio::test]
async fn teardown_order_is_apply_order_with_unapplied_first() {
    let (kube, _log) = fake::kube(|method, path| match (method, path) {
        (_, p) if is_discovery(p) => discovery(p, CORE),
        ("PATCH", _) => (
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        ),
        _ => status(500, "InternalError", "unexpected"),
    });
    let all = config_maps(&["first", "second", "never"]);
    kube.apply(&all[1..2]).await.unwrap();
    kube.apply(&all[0..1]).await.unwrap();
    let order: Vec<String> = kube
        .in_apply_order(&all)
        .iter()
        .map(|d| d.name.clone())
        .collect();
    // delete() walks this list backwards: "first" (applied last) goes first.
    assert_eq!(order, ["never", "second", "first"]);
}

fn deployment(name: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "demo", "generation": 1},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {}},
           "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}})
}

#[tokio::test]
async fn one_deadline_covers_every_workload_of_a_step() {
    let (kube, log) = fake::kube(|_, path| {
        let name = path
            .split('?')
            .next()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        (200, deployment(name))
    });
    let targets = [
        WorkloadRef {
            namespace: "demo",
            name: "web",
            kind: WorkloadKind::Deployment,
        },
        WorkloadRef {
            namespace: "demo",
            name: "db",
            kind: WorkloadKind::Deployment,
        },
    ];
    let limit = Duration::from_millis(1500);
    let started = Instant::now();
    let err = kube
        .wait_workloads(WaitFor::Rollout, &targets, limit)
        .await
        .unwrap_err();
    let took = started.elapsed();
    // Per-workload timeouts would take twice the step's limit.
    assert!(took < limit + Duration::from_millis(700), "took {took:?}");
    assert!(
        matches!(&err, KubeError::Timeout { what, .. } if what.contains("demo/web")),
        "{err}"
    );
    assert!(err.to_string().contains("0/1 ready"), "{err}");
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .all(|r| r.contains("/deployments/web")),
        "db was never waited for"
    );
}

#[tokio::test]
async fn a_failed_crd_wait_names_the_crd_and_the_answer() {
    let (kube, _log) = fake::kube(|method, path| match (method, path) {
        (_, p) if is_discovery(p) => discovery(p, CORE),
        ("PATCH", _) => (
            200,
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"}}),
        ),
        ("GET", _) => status(
            403,
            "Forbidden",
            "customresourcedefinitions is forbidden: User \"u\" cannot get",
        ),
        _ => status(500, "InternalError", "unexpected"),
    });
    let crd = docs(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n",
    );
    let text = kube.apply(&crd).await.unwrap_err().to_string();
    assert!(!text.contains("exec in pod"), "{text}");
    assert!(
        text.starts_with("get CustomResourceDefinition widgets.example.com: the API server answered 403 Forbidden: customresourcedefinitions is forbidden"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_named_by_url() {
    // What hyper reports when the TCP connect is refused, without touching the network
    // (tests/kube_apiserver.rs does it for real).
    let service = tower::service_fn(|_req: http::Request<::kube::client::Body>| async {
        Err::<http::Response<::kube::client::Body>, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error: Connection refused (os error 111)",
        ))
    });
    let kube = Kube::from_client(::kube::Client::new(service, "default"), fake::URL);
    let text = kube.server_version().await.unwrap_err().to_string();
    assert_eq!(
        text,
        "GET /version: cannot reach the API server at https://fake-apiserver.test:6443: \
         ServiceError: tcp connect error: Connection refused (os error 111)"
    );
}

#[tokio::test]
async fn exec_refused_by_the_api_carries_its_message() {
    let (kube, _log) = fake::kube(|_, _| {
        status(
            500,
            "InternalError",
            "error dialing backend: dial tcp 10.0.0.7:10250: connect: connection refused",
        )
    });
    let command = ["tcpdump".to_string()];
    let text = match kube
        .exec_stream("capture", "cap-0", "tcpdump", &command)
        .await
    {
        Ok(_) => panic!("the exec was refused"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        text,
        "exec in pod capture/cap-0: the API server answered 500 InternalError: error dialing backend: dial tcp 10.0.0.7:10250: connect: connection refused"
    );
}

#[test]
fn a_failed_command_says_why_with_status_and_stderr() {
    let out = ExecOutput {
        stdout: Vec::new(),
        stderr: b"sh: /meshproof-workload: not found\n".to_vec(),
        success: false,
        message: Some("command terminated with non-zero exit code: exit status 127".into()),
        pod: "demo/client-0".into(),
    };
    assert_eq!(
        out.succeeded().unwrap_err().to_string(),
        "exec in pod demo/client-0: command terminated with non-zero exit code: exit status 127; stderr: sh: /meshproof-workload: not found"
    );
    let closed = ExecOutput {
        pod: "demo/p".into(),
        ..ExecOutput::default()
    };
    assert!(
        closed
            .succeeded()
            .unwrap_err()
            .to_string()
            .contains("without an exit status")
    );
    let fine = ExecOutput {
        success: true,
        ..ExecOutput::default()
    };
    assert!(fine.succeeded().is_ok());
}

#[test]
fn exec_status_success_is_the_only_success() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
    let ok = Status {
        status: Some("Success".into()),
        ..Status::default()
    };
    let dial = Status {
        status: Some("Failure".into()),
        message: Some("error dialing backend: EOF".into()),
        ..Status::default()
    };
    assert_eq!(super::status_failure(Some(&ok)), None);
    assert_eq!(
        super::status_failure(Some(&dial)).as_deref(),
        Some("error dialing backend: EOF")
    );
    assert!(super::status_failure(None).is_some());
}
