//! Runs the examples that need nothing outside the process, so that they keep working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../layer_order.rs"]
mod layer_order;

#[tokio::test]
async fn layer_order_waits_out_two_503s_and_succeeds() {
    let (order, requests, took) = layer_order::run().await.unwrap();
    assert_eq!(order["state"], "shipped");
    assert_eq!(requests, 3, "two 503s and the success");
    // Loose: two `Retry-After: 1` waits happened.
    assert!(took >= std::time::Duration::from_millis(1900), "{took:?}");
}
