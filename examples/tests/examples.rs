//! Runs the examples that need nothing outside the process, so that they keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../layer_order.rs"]
mod layer_order;

#[path = "../durable_workflow.rs"]
mod durable_workflow;

#[tokio::test]
async fn durable_workflow_sums_the_orders_and_its_store_has_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (totals, report) = durable_workflow::run(dir.path()).await.unwrap();
    assert_eq!(totals.count, 3);
    assert!((totals.sum - 124.75).abs() < 1e-9);
    assert_eq!(report.status, kernelize::workflow::RunStatus::Succeeded);
    let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["fetch", "sum"]);
    assert!(dir.path().join("runs.db").exists());
}

#[tokio::test]
async fn layer_order_waits_out_two_503s_and_succeeds() {
    let (order, requests, took) = layer_order::run().await.unwrap();
    assert_eq!(order["state"], "shipped");
    assert_eq!(requests, 3, "two 503s and the success");
    // Loose: two `Retry-After: 1` waits happened.
    assert!(took >= std::time::Duration::from_millis(1900), "{took:?}");
}
