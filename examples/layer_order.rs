//! The layer order of an HTTP connector, run against a small API on loopback that is
//! overloaded at first: the retry layer waits out its `Retry-After`, the rate limit spaces
//! the attempts, the token goes with each attempt, and the breaker counts the call once.
//!
//! ```sh
//! cargo run -p kernelize-examples --example layer_order
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use kernelize::connectors::http::{
    BearerAuth, BreakerSettings, BreakerState, CircuitBreaker, ConcurrencyLimit, HttpClient,
    RateLimit, RetryLayer, RetryPolicy, TimeoutLayer,
};
use kernelize::{Error, ErrorKind, Result};
use secrecy::SecretString;
use serde_json::Value;

/// Starts an API whose first two answers are 503 with `Retry-After: 1`; it wants the
/// bearer token on every request.
async fn start_api() -> Result<(String, Arc<AtomicUsize>)> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/v1/orders/{id}",
        get(move |headers: HeaderMap| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    != Some("Bearer example-token")
                {
                    return (StatusCode::UNAUTHORIZED, [("retry-after", "0")], "{}");
                }
                if n < 2 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "1")],
                        "busy",
                    )
                } else {
                    (
                        StatusCode::OK,
                        [("content-type", "application/json")],
                        r#"{"id":7,"state":"shipped"}"#,
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/v1"), hits))
}

/// Builds the client in the documented order and makes one call; returns the answer, how
/// many requests reached the API, and how long the call took.
pub(crate) async fn run() -> Result<(Value, usize, Duration)> {
    let (base, hits) = start_api().await?;
    let breaker = Arc::new(CircuitBreaker::new(BreakerSettings::default()));
    let client = HttpClient::builder(&base)?
        // 1. At most 8 calls in flight, retries included.
        .layer(ConcurrencyLimit::new(8))
        // 2. The whole call, retries and their waits included.
        .layer(TimeoutLayer::per_call(Duration::from_secs(10)))
        // 3. The breaker sees the call once, whatever the retries did.
        .shared_layer(breaker.clone())
        // 4. Retry: backoff with full jitter, `Retry-After` honoured.
        .layer(RetryLayer::new(RetryPolicy::default()))
        // 5. Every attempt spends from the rate budget.
        .layer(RateLimit::new(10, 1)?)
        // 6. The credential goes with every attempt.
        .layer(BearerAuth::new(SecretString::from(
            "example-token".to_string(),
        )))
        // 7. One hung attempt is cut and retried.
        .layer(TimeoutLayer::per_attempt(Duration::from_secs(2)))
        .build()?;
    let started = Instant::now();
    let order: Value = client.get("orders/7", &()).await?;
    let took = started.elapsed();
    if breaker.state() != (BreakerState::Closed { failures: 0 }) {
        return Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "the breaker should be closed after a success: {:?}",
                breaker.state()
            ),
        ));
    }
    Ok((order, hits.load(Ordering::SeqCst), took))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<()> {
    let (order, requests, took) = run().await?;
    println!("answer: {order}");
    println!("{requests} requests reached the API in {took:.1?} (two 503s waited out)");
    Ok(())
}
