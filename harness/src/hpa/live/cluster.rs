//! The kube-driving half of the live check: apply HPAs, load the app container, sample
//! the HPA status and metrics-server, stop the load. Everything is judged elsewhere.
//!
//! The load is `timeout -s KILL <bound> sh -c 'while :; do :; done'`, started in the
//! background of an exec in the app container. Its CPU is capped by the container's
//! limit, which makes it deterministic, and the `timeout` bounds it even if meshproof
//! dies. It needs `sh` and `timeout` (busybox or coreutils) in the app image.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, AttachParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use tokio::io::AsyncReadExt;

use super::judge::{ArmSpec, Decision, Judge, Sample};
use super::series::{ArmMark, Point, Series};
use super::{LiveCheck, LiveError, LiveOutcome};
use crate::hpa::pod::PROXY_CONTAINER;
use crate::hpa::quantity::Cpu;
use crate::reporter::Reporter;
use crate::scenario::WorkloadKind;

/// The field manager meshproof applies with.
const MANAGER: &str = "meshproof";

/// A bound on one HPA read, so a hung API server cannot stall an arm past its timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the live check on a cluster. The busy loops are stopped whatever happens.
pub async fn run(
    client: Client,
    check: &LiveCheck,
    reporter: &dyn Reporter,
) -> Result<LiveOutcome, LiveError> {
    client
        .list_api_group_resources("metrics.k8s.io/v1beta1")
        .await
        .map_err(|e| LiveError::NoMetricsApi(e.to_string()))?;
    let pods = ready_pods(&client, check).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &check.namespace);
    apply(&hpas, &check.skewed).await?;
    reporter.info(&format!(
        "hpa {}: skewed HPA applied; loading {} in {} pod(s)",
        check.name,
        check.container,
        pods.len()
    ));
    let load = start_load(&client, check, &pods).await;
    let outcome = match &load {
        Ok(_) => arms(&client, &hpas, check, &pods, reporter).await,
        Err(_) => Err(LiveError::Config("no load was started".into())),
    };
    if let Ok(pids) = &load {
        stop_load(&client, check, pids, reporter).await;
    }
    load?;
    let series = outcome?;
    let artifacts = series.write(&check.artifacts)?;
    Ok(LiveOutcome { series, artifacts })
}

async fn arms(
    client: &Client,
    hpas: &Api<HorizontalPodAutoscaler>,
    check: &LiveCheck,
    pods: &[String],
    reporter: &dyn Reporter,
) -> Result<Series, LiveError> {
    let started = Instant::now();
    let mut series = Series {
        name: check.name.clone(),
        provenance: format!(
            "recorded from the cluster, namespace {}, {}",
            check.namespace, check.workload
        ),
        app_request: check.skewed_arm.app_request,
        app_trigger: check.skewed_arm.app_trigger_utilization(),
        arms: Vec::new(),
        points: Vec::new(),
    };
    let mut skewed = check.skewed_arm.clone();
    skewed.start_replicas = replicas(client, check).await?;
    arm(
        client,
        hpas,
        check,
        pods,
        skewed,
        started,
        &mut series,
        reporter,
    )
    .await?;
    apply(hpas, &check.fixed).await?;
    reporter.info(&format!(
        "hpa {}: fixed HPA applied under the same load",
        check.name
    ));
    let mut fixed = check.fixed_arm.clone();
    fixed.start_replicas = replicas(client, check).await?;
    arm(
        client,
        hpas,
        check,
        pods,
        fixed,
        started,
        &mut series,
        reporter,
    )
    .await?;
    Ok(series)
}

/// Samples one arm until its judge decides or its time is up.
#[allow(clippy::too_many_arguments)]
async fn arm(
    client: &Client,
    hpas: &Api<HorizontalPodAutoscaler>,
    check: &LiveCheck,
    pods: &[String],
    spec: ArmSpec,
    started: Instant,
    series: &mut Series,
    reporter: &dyn Reporter,
) -> Result<(), LiveError> {
    let offset = started.elapsed().as_secs_f64();
    let arm_start = Instant::now();
    let name = check.skewed.metadata.name.clone().unwrap_or_default();
    let mut judge = Judge::new(spec.clone());
    let decision = loop {
        let hpa = tokio::time::timeout(READ_TIMEOUT, hpas.get(&name))
            .await
            .map_err(|_| {
                LiveError::Timeout(format!(
                    "reading HPA {name} took longer than {READ_TIMEOUT:?}"
                ))
            })?
            .map_err(|source| kube_error(format!("read HPA {name}"), source))?;
        let (app_usage, proxy_usage) = usage(client, check, pods).await;
        let sample = Sample {
            t: arm_start.elapsed().as_secs_f64(),
            status: hpa.status,
            app_usage,
            proxy_usage,
        };
        series
            .points
            .push(Point::from_sample(&sample, &spec, offset));
        if let Some(decision) = judge.observe(&sample) {
            break decision;
        }
        if arm_start.elapsed() >= check.timeout {
            break judge.finish();
        }
        tokio::time::sleep(check.poll).await;
    };
    let word = match &decision {
        Decision::Pass(_) => "pass",
        Decision::Fail(_) => "fail",
        Decision::Inconclusive(_) => "inconclusive",
    };
    reporter.info(&format!("hpa {}: {} arm {word}", check.name, spec.name));
    series.arms.push(ArmMark {
        name: spec.name,
        start: offset,
        decision,
        target: spec.target,
    });
    Ok(())
}

fn kube_error(operation: String, source: kube::Error) -> LiveError {
    LiveError::Kube { operation, source }
}

async fn apply(
    hpas: &Api<HorizontalPodAutoscaler>,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(), LiveError> {
    let name = hpa.metadata.name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    hpas.patch(&name, &params, &Patch::Apply(hpa))
        .await
        .map_err(|source| kube_error(format!("apply HPA {name}"), source))?;
    Ok(())
}

/// The workload's label selector as `k=v,k=v`.
async fn selector(client: &Client, check: &LiveCheck) -> Result<String, LiveError> {
    let ns = &check.namespace;
    let labels: Option<BTreeMap<String, String>> = match check.workload_kind {
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            let s = api
                .get(&check.workload)
                .await
                .map_err(|e| kube_error(format!("read StatefulSet {}", check.workload), e))?;
            s.spec.and_then(|s| s.selector.match_labels)
        }
        _ => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let d = api
                .get(&check.workload)
                .await
                .map_err(|e| kube_error(format!("read Deployment {}", check.workload), e))?;
            d.spec.and_then(|s| s.selector.match_labels)
        }
    };
    let labels = labels.filter(|l| !l.is_empty()).ok_or_else(|| {
        LiveError::Config(format!("{} has no matchLabels selector", check.workload))
    })?;
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

async fn replicas(client: &Client, check: &LiveCheck) -> Result<i32, LiveError> {
    Ok(ready_pods(client, check).await?.len() as i32)
}

/// The names of the workload's running, ready, not terminating pods.
async fn ready_pods(client: &Client, check: &LiveCheck) -> Result<Vec<String>, LiveError> {
    let selector = selector(client, check).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &check.namespace);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| kube_error(format!("list pods {selector}"), e))?;
    let ready = |p: &Pod| {
        let status = p.status.as_ref();
        p.metadata.deletion_timestamp.is_none()
            && status.and_then(|s| s.phase.as_deref()) == Some("Running")
            && status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let names: Vec<String> = list
        .items
        .iter()
        .filter(|p| ready(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    if names.is_empty() {
        return Err(LiveError::NoPods(format!(
            "{} in {} has no ready pod to load",
            check.workload, check.namespace
        )));
    }
    Ok(names)
}

/// Starts the busy loop in every pod; returns (pod, pid) pairs.
async fn start_load(
    client: &Client,
    check: &LiveCheck,
    pods: &[String],
) -> Result<Vec<(String, String)>, LiveError> {
    let bound = check.load_bound.as_secs();
    let script =
        format!("timeout -s KILL {bound} sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!");
    let mut pids = Vec::new();
    for pod in pods {
        let out = exec(client, check, pod, &script).await?;
        let pid = out.trim().to_string();
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LiveError::Exec {
                pod: pod.clone(),
                container: check.container.clone(),
                message: format!("the busy loop did not start (output {out:?})"),
            });
        }
        pids.push((pod.clone(), pid));
    }
    Ok(pids)
}

async fn stop_load(
    client: &Client,
    check: &LiveCheck,
    pids: &[(String, String)],
    reporter: &dyn Reporter,
) {
    for (pod, pid) in pids {
        if let Err(err) = exec(client, check, pod, &format!("kill {pid}")).await {
            reporter.warn(&format!(
                "could not stop the busy loop in {pod} (it ends by itself within {:?}): {err}",
                check.load_bound
            ));
        }
    }
}

/// Runs `sh -c script` in the app container and returns its standard output.
async fn exec(
    client: &Client,
    check: &LiveCheck,
    pod: &str,
    script: &str,
) -> Result<String, LiveError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &check.namespace);
    let params = AttachParams::default()
        .container(check.container.clone())
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let failed = |message: String| LiveError::Exec {
        pod: pod.into(),
        container: check.container.clone(),
        message,
    };
    let mut process = api
        .exec(pod, ["sh", "-c", script], &params)
        .await
        .map_err(|e| failed(e.to_string()))?;
    // kube's pipes hold 1 KiB: read both streams together so neither blocks the other.
    let mut stdout = process.stdout().ok_or_else(|| failed("no stdout".into()))?;
    let mut stderr = process.stderr().ok_or_else(|| failed("no stderr".into()))?;
    let (mut out, mut err) = (String::new(), String::new());
    let (a, b) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    a.and(b).map_err(|e| failed(e.to_string()))?;
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    process.join().await.map_err(|e| failed(e.to_string()))?;
    if status.as_ref().and_then(|s| s.status.as_deref()) == Some("Failure") {
        let message = status.and_then(|s| s.message).unwrap_or_default();
        return Err(failed(format!("{message} {}", err.trim())));
    }
    Ok(out)
}

/// The app container's and the proxy's usage, averaged over the loaded pods.
async fn usage(client: &Client, check: &LiveCheck, pods: &[String]) -> (Option<Cpu>, Option<Cpu>) {
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "pods");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &check.namespace, &resource);
    let (mut app, mut proxy) = (Vec::new(), Vec::new());
    for pod in pods {
        // A pod without metrics yet (or one that went away) simply contributes nothing.
        let Ok(metrics) = api.get(pod).await else {
            continue;
        };
        let containers = metrics
            .data
            .get("containers")
            .and_then(|c| c.as_array())
            .cloned()
            .unwrap_or_default();
        for c in containers {
            let name = c.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            let cpu = c
                .pointer("/usage/cpu")
                .and_then(|q| q.as_str())
                .and_then(|q| Cpu::parse(q).ok());
            match (name, cpu) {
                (n, Some(cpu)) if n == check.container => app.push(cpu),
                (PROXY_CONTAINER, Some(cpu)) => proxy.push(cpu),
                _ => {}
            }
        }
    }
    (average(&app), average(&proxy))
}

fn average(values: &[Cpu]) -> Option<Cpu> {
    (!values.is_empty()).then(|| {
        Cpu::millis(values.iter().map(|v| v.as_millis()).sum::<u64>() / values.len() as u64)
    })
}
