//! Requests per second through `HttpClient` (default layers, and every layer stacked) beside
//! raw `reqwest` on the same loopback server, in the same run.
//!
//! Each iteration sends 256 GETs, 16 at a time, and parses each small JSON answer. The
//! server runs in-process on the same runtime, so every variant pays for it alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use kernelize::connectors::http::{
    BearerAuth, BreakerSettings, CircuitBreaker, ConcurrencyLimit, HttpClient, RateLimit,
    RetryLayer, RetryPolicy, TimeoutLayer,
};
use serde_json::Value;

const REQUESTS: usize = 256;
const IN_FLIGHT: usize = 16;
const BODY: &str = r#"{"id":42,"name":"Ada Lovelace","email":"ada@example.com","roles":["admin","analyst"],"active":true}"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn start_server() -> String {
    let app = Router::new().route(
        "/users/42",
        get(|| async { ([("content-type", "application/json")], BODY) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

fn full_stack(base: &str) -> HttpClient {
    HttpClient::builder(base)
        .unwrap()
        .layer(ConcurrencyLimit::new(64))
        .layer(TimeoutLayer::per_call(Duration::from_secs(60)))
        .layer(CircuitBreaker::new(BreakerSettings::default()))
        .layer(RetryLayer::new(RetryPolicy::default()))
        .layer(RateLimit::new(1_000_000, 1_000_000).unwrap())
        .layer(BearerAuth::new(secrecy::SecretString::from(
            "token".to_string(),
        )))
        .layer(TimeoutLayer::per_attempt(Duration::from_secs(30)))
        .build()
        .unwrap()
}

fn http(c: &mut Criterion) {
    let rt = runtime();
    let base = rt.block_on(start_server());
    let url = format!("{base}users/42");
    let raw = reqwest::Client::new();
    let defaults = HttpClient::with_defaults(&base).unwrap();
    let stacked = full_stack(&base);

    let mut group = c.benchmark_group("http-get-json");
    group.throughput(Throughput::Elements(REQUESTS as u64));
    group.bench_function("raw reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                futures::stream::iter(0..REQUESTS)
                    .map(|_| {
                        let raw = raw.clone();
                        let url = url.clone();
                        async move {
                            let response = raw.get(&url).send().await.unwrap();
                            assert!(response.status().is_success());
                            let body = response.bytes().await.unwrap();
                            serde_json::from_slice::<Value>(&body).unwrap()
                        }
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .count()
                    .await
            })
        })
    });
    for (name, client) in [
        ("kernelize default layers", &defaults),
        ("kernelize all layers", &stacked),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    futures::stream::iter(0..REQUESTS)
                        .map(|_| async { client.get::<Value, _>("users/42", &()).await.unwrap() })
                        .buffer_unordered(IN_FLIGHT)
                        .count()
                        .await
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, http);
criterion_main!(benches);
