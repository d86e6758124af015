//! Circuit breaker, rate limit and concurrency limit against a real server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scripted_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_connectors::http::{
    BreakerSettings, BreakerState, CircuitBreaker, ConcurrencyLimit, HttpClient, Layer, RateLimit,
};
use scripted_server::{ScriptedServer, Step};
use serde_json::Value;

fn breaker_client(server: &ScriptedServer, breaker: Arc<CircuitBreaker>) -> HttpClient {
    HttpClient::builder(&server.url())
        .unwrap()
        .shared_layer(breaker as Arc<dyn Layer>)
        .build()
        .unwrap()
}

fn settings() -> BreakerSettings {
    BreakerSettings {
        failure_threshold: 3,
        open_for: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn the_breaker_opens_after_n_failures_fails_fast_and_closes_after_a_good_probe() {
    let server = ScriptedServer::start(vec![Step::status(503); 3]).await;
    let breaker = Arc::new(CircuitBreaker::new(settings()));
    let client = breaker_client(&server, breaker.clone());
    for _ in 0..3 {
        assert_eq!(
            client.get::<Value, _>("x", &()).await.unwrap_err().status(),
            Some(503)
        );
    }
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    // Open: refused without reaching the server.
    let err = client.get::<Value, _>("x", &()).await.unwrap_err();
    assert!(err.message().contains("circuit breaker is open"), "{err}");
    assert!(err.is_temporary());
    assert!(err.retry_after().is_some());
    assert_eq!(server.arrivals().len(), 3);
    // After `open_for`, one probe goes; it succeeds and the breaker closes.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let _: Value = client.get("x", &()).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
    assert_eq!(server.arrivals().len(), 4);
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let server = ScriptedServer::start(vec![Step::status(500); 4]).await;
    let breaker = Arc::new(CircuitBreaker::new(settings()));
    let client = breaker_client(&server, breaker.clone());
    for _ in 0..3 {
        let _ = client.get::<Value, _>("x", &()).await;
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        client.get::<Value, _>("x", &()).await.unwrap_err().status(),
        Some(500)
    );
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    assert!(client.get::<Value, _>("x", &()).await.is_err());
    assert_eq!(server.arrivals().len(), 4);
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let server = ScriptedServer::start(vec![Step::status(404); 5]).await;
    let breaker = Arc::new(CircuitBreaker::new(settings()));
    let client = breaker_client(&server, breaker.clone());
    for _ in 0..5 {
        let _ = client.get::<Value, _>("x", &()).await;
    }
    assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
    assert_eq!(server.arrivals().len(), 5);
}

#[tokio::test]
async fn the_rate_limit_spaces_requests_across_clones() {
    let server = ScriptedServer::start(vec![]).await;
    let client = HttpClient::builder(&server.url())
        .unwrap()
        .layer(RateLimit::new(20, 1).unwrap())
        .build()
        .unwrap();
    let started = Instant::now();
    let calls = (0..9).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get::<Value, _>("x", &()).await })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    // Nine requests at 20 a second after a burst of one: at least 8 × 50 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(380),
        "{:?}",
        started.elapsed()
    );
    let arrivals = server.arrivals();
    let span = arrivals.last().unwrap().at - arrivals[0].at;
    assert!(span >= Duration::from_millis(380), "{span:?}");
    assert!(RateLimit::new(0, 1).is_err());
}

#[tokio::test]
async fn the_concurrency_limit_holds_calls_back() {
    let server =
        ScriptedServer::start(vec![Step::status(200).delay(Duration::from_millis(200)); 4]).await;
    let client = HttpClient::builder(&server.url())
        .unwrap()
        .layer(ConcurrencyLimit::new(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let calls = (0..4).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send_ok(client.request(reqwest::Method::GET, "x").unwrap())
                .await
        })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    // Two at a time, 200 ms each: two rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(390),
        "{:?}",
        started.elapsed()
    );
    let arrivals = server.arrivals();
    assert!(arrivals[2].at - arrivals[0].at >= Duration::from_millis(190));

    let slow =
        ScriptedServer::start(vec![Step::status(200).delay(Duration::from_millis(300))]).await;
    let slow_client = HttpClient::builder(&slow.url())
        .unwrap()
        .layer(ConcurrencyLimit::new(1).max_wait(Duration::from_millis(50)))
        .build()
        .unwrap();
    let first = {
        let c = slow_client.clone();
        tokio::spawn(async move {
            c.send_ok(c.request(reqwest::Method::GET, "x").unwrap())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = slow_client.get::<Value, _>("x", &()).await.unwrap_err();
    assert!(err.message().contains("free slot"), "{err}");
    assert!(first.await.unwrap().unwrap().is_success());
}
