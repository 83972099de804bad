//! Live kind tests: they need Docker, internet and `cargo xtask tools install`, so they
//! are ignored by default and run by the nightly workflow (`-- --ignored`).

use std::net::IpAddr;

use ::kube::api::{Api, ListParams};
use k8s_openapi::api::core::v1::Node;

use super::provision::provision;
use super::{KindProvider, SLOT_LABEL, tests::scenario};
use crate::provider::{Lab, Provider, RunContext};
use crate::reporter::NullReporter;
use crate::scenario::Canary;

fn context(tag: &str) -> (tempfile::TempDir, RunContext) {
    let dir = tempfile::tempdir().unwrap();
    let run_id = format!("mp-{tag}-{}", crate::testsupport::suffix());
    let ctx = RunContext {
        artifacts: dir.path().join(&run_id),
        run_id,
        canary: Canary::generate(),
        keep: false,
        reuse: None,
        context: None,
    };
    (dir, ctx)
}

#[tokio::test]
#[ignore = "needs kind"]
async fn pii_demo_lab_has_slotted_workers_metallb_and_a_gateway_ip() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let s = scenario("pii-demo");
    let (_dir, ctx) = context("live");
    let p = KindProvider::new(root);
    // A refusal is the finding, with its problem and hint: say it rather than unwrap it.
    if let Err(refused) = p.preflight(&s, &ctx).await {
        panic!(
            "kind preflight refused this machine; the nightly runs it as a user would:\n{refused}"
        );
    }
    let lab = provision(&p, &s, &ctx, &NullReporter).await.unwrap();
    let nodes = Api::<Node>::all(lab.kube().client().clone())
        .list(&ListParams::default())
        .await;
    let gateway = lab.gateway_ip();
    let docker = crate::testsupport::docker().await.unwrap();
    let subnet = docker
        .inspect_network(&crate::env_vars::kind_network(), None)
        .await
        .ok()
        .and_then(|n| super::KindNetwork::from_inspect(&n).ok())
        .map(|n| n.ipv4);
    Box::new(lab).teardown(&NullReporter).await.unwrap();

    let mut slots: Vec<String> = nodes
        .unwrap()
        .items
        .iter()
        .filter_map(|n| n.metadata.labels.as_ref()?.get(SLOT_LABEL).cloned())
        .collect();
    slots.sort();
    assert_eq!(slots, ["a", "b"]);
    let pool = super::pool_for(subnet.unwrap()).unwrap();
    match gateway {
        Some(IpAddr::V4(ip)) => assert!(pool.contains(ip), "{ip} not in {}", pool.range()),
        other => panic!("no IPv4 gateway address: {other:?}"),
    }
    let left = crate::gc::sweep(
        &docker,
        &crate::exec::Exec::new(),
        &crate::gc::GcFilter {
            run: Some(ctx.run_id.clone()),
            kind: None,
            liveness: crate::gc::Liveness {
                named: true,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(left.is_empty(), "teardown left {left:?}");
}
