//! Retry and timeout layers against a real server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scripted_server;

use std::time::{Duration, SystemTime};

use kernelize_connectors::http::{
    HttpClient, Method, RetryLayer, RetryPolicy, TimeoutLayer, Verdict,
};
use kernelize_core::ErrorKind;
use scripted_server::{ScriptedServer, Step};
use serde_json::{Value, json};

/// Quick retries, so the tests do not wait for the default backoff.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    }
}

fn client(server: &ScriptedServer, policy: RetryPolicy) -> HttpClient {
    HttpClient::builder(&server.url())
        .unwrap()
        .layer(TimeoutLayer::per_call(Duration::from_secs(20)))
        .layer(RetryLayer::new(policy))
        .layer(TimeoutLayer::per_attempt(Duration::from_secs(5)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn retries_after_429_respect_retry_after_in_seconds() {
    let server = ScriptedServer::start(vec![Step::status(429).header("retry-after", "1")]).await;
    let answer: Value = client(&server, quick()).get("items", &()).await.unwrap();
    assert_eq!(answer, json!({"done": true}));
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1].at - arrivals[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(4),
        "waited {gap:?}"
    );
}

#[tokio::test]
async fn retries_after_429_respect_retry_after_as_an_http_date() {
    let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let server = ScriptedServer::start(vec![Step::status(429).header("retry-after", &when)]).await;
    let _: Value = client(&server, quick()).get("items", &()).await.unwrap();
    let arrivals = server.arrivals();
    let gap = arrivals[1].at - arrivals[0].at;
    // An HTTP date has whole seconds, so the wait is between one and two seconds.
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(4),
        "waited {gap:?}"
    );
}

#[tokio::test]
async fn a_503_is_retried_with_backoff_until_it_succeeds() {
    let server = ScriptedServer::start(vec![Step::status(503), Step::status(503)]).await;
    let answer: Value = client(&server, quick()).get("items", &()).await.unwrap();
    assert_eq!(answer["done"], true);
    assert_eq!(server.arrivals().len(), 3);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_with_the_last_status_in_the_error() {
    let steps = vec![Step::status(503).body("still down"); 10];
    let server = ScriptedServer::start(steps).await;
    let err = client(&server, quick())
        .get::<Value, _>("items", &())
        .await
        .unwrap_err();
    assert_eq!(server.arrivals().len(), 4);
    assert_eq!(err.status(), Some(503));
    assert!(err.is_temporary());
    assert!(err.message().contains("still down"), "{err}");
}

#[tokio::test]
async fn a_400_is_not_retried_and_its_body_is_in_the_error() {
    let server = ScriptedServer::start(vec![Step::json(
        400,
        json!({"error": "field `name` is required"}),
    )])
    .await;
    let err = client(&server, quick())
        .get::<Value, _>("items", &())
        .await
        .unwrap_err();
    assert_eq!(server.arrivals().len(), 1);
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_temporary());
    assert!(err.message().contains("field `name` is required"), "{err}");
}

#[tokio::test]
async fn a_post_without_an_idempotency_key_is_sent_once() {
    let server = ScriptedServer::start(vec![Step::status(503), Step::status(503)]).await;
    let err = client(&server, quick())
        .post::<Value, _>("orders", &json!({"sku": "A-1"}))
        .await
        .unwrap_err();
    assert_eq!(server.arrivals().len(), 1);
    assert_eq!(err.status(), Some(503));
}

#[tokio::test]
async fn a_post_refused_with_429_is_retried_after_its_retry_after() {
    let server = ScriptedServer::start(vec![Step::status(429).header("retry-after", "1")]).await;
    let started = std::time::Instant::now();
    let answer: Value = client(&server, quick())
        .post("orders", &json!({"sku": "A-1"}))
        .await
        .unwrap();
    assert_eq!(answer["done"], true);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2);
    assert!(!arrivals[1].headers.contains_key("idempotency-key"));
}

#[tokio::test]
async fn a_replayable_post_is_retried_without_an_idempotency_key() {
    let server = ScriptedServer::start(vec![Step::status(503)]).await;
    let client = client(&server, quick());
    let request = client
        .request(Method::POST, "statements?requestId=7f3a")
        .unwrap()
        .json(&json!({"statement": "select 1"}))
        .unwrap()
        .replayable();
    assert!(client.send_ok(request).await.unwrap().is_success());
    assert_eq!(server.arrivals().len(), 2);
}

#[tokio::test]
async fn a_put_sent_once_is_not_resent_after_a_503_but_is_after_a_429() {
    let server = ScriptedServer::start(vec![Step::status(503)]).await;
    let client = client(&server, quick());
    let append = |client: &HttpClient| {
        client
            .request(Method::PUT, "uploads/7")
            .unwrap()
            .bytes(&b"chunk"[..], "application/octet-stream")
            .send_once()
    };
    let err = client.send_ok(append(&client)).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.arrivals().len(), 1);

    let server = ScriptedServer::start(vec![Step::status(429)]).await;
    let client = self::client(&server, quick());
    assert!(client.send_ok(append(&client)).await.unwrap().is_success());
    assert_eq!(server.arrivals().len(), 2);
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_retried_with_the_same_key_and_body() {
    let server = ScriptedServer::start(vec![Step::status(503)]).await;
    let client = client(&server, quick());
    let request = client
        .request(Method::POST, "orders")
        .unwrap()
        .json(&json!({"sku": "A-1"}))
        .unwrap()
        .idempotency_key("order-7f3a")
        .unwrap();
    let response = client.send_ok(request).await.unwrap();
    assert!(response.is_success());
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2);
    for a in &arrivals {
        assert_eq!(a.headers["idempotency-key"], "order-7f3a");
        assert_eq!(a.body.as_ref(), br#"{"sku":"A-1"}"#);
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_is_a_rate_limited_error_carrying_the_wait() {
    let server = ScriptedServer::start(vec![Step::status(429).header("retry-after", "3600")]).await;
    let err = client(&server, quick())
        .get::<Value, _>("items", &())
        .await
        .unwrap_err();
    assert_eq!(server.arrivals().len(), 1);
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn a_hung_attempt_is_cut_by_the_attempt_timeout_and_retried() {
    let server =
        ScriptedServer::start(vec![Step::status(200).delay(Duration::from_secs(10))]).await;
    let client = HttpClient::builder(&server.url())
        .unwrap()
        .layer(TimeoutLayer::per_call(Duration::from_secs(20)))
        .layer(RetryLayer::new(quick()))
        .layer(TimeoutLayer::per_attempt(Duration::from_millis(300)))
        .build()
        .unwrap();
    let answer: Value = client.get("items", &()).await.unwrap();
    assert_eq!(answer["done"], true);
    assert_eq!(server.arrivals().len(), 2);
}

#[tokio::test]
async fn the_call_timeout_bounds_retries_and_their_waits() {
    let steps = vec![Step::status(503).header("retry-after", "2"); 5];
    let server = ScriptedServer::start(steps).await;
    let client = HttpClient::builder(&server.url())
        .unwrap()
        .layer(TimeoutLayer::per_call(Duration::from_millis(500)))
        .layer(RetryLayer::new(quick()))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.get::<Value, _>("items", &()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("whole call"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.arrivals().len(), 1);
}

#[tokio::test]
async fn a_vendor_classifier_retries_a_200_that_says_it_failed() {
    let server = ScriptedServer::start(vec![Step::json(
        200,
        json!({"ok": false, "error": "ratelimited"}),
    )])
    .await;
    let retry = RetryLayer::new(quick()).classify(|response| {
        let failed = response
            .json::<Value>()
            .is_ok_and(|body| body["ok"] == false && body["error"] == "ratelimited");
        if failed {
            Verdict::Retry { after: None }
        } else {
            Verdict::Done
        }
    });
    let client = HttpClient::builder(&server.url())
        .unwrap()
        .layer(retry)
        .build()
        .unwrap();
    let answer: Value = client.get("chat.postMessage", &()).await.unwrap();
    assert_eq!(answer["done"], true);
    assert_eq!(server.arrivals().len(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported_without_the_query() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = HttpClient::builder(&format!("http://127.0.0.1:{port}/"))
        .unwrap()
        .layer(RetryLayer::new(quick()))
        .build()
        .unwrap();
    let err = client
        .get::<Value, _>("items", &[("api_key", "s3cr3t-value")])
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.message().contains("GET http://127.0.0.1"), "{err}");
    let everything = format!("{err:?} {}", err.chain().join(" | "));
    assert!(!everything.contains("s3cr3t-value"), "{everything}");
}

#[tokio::test]
async fn query_parameters_and_paths_reach_the_server() {
    let server = ScriptedServer::start(vec![]).await;
    let client = HttpClient::builder(&format!("{}api/v2", server.url()))
        .unwrap()
        .build()
        .unwrap();
    let _: Value = client
        .get("users", &json!({"limit": 10, "q": "a b", "skip": null}))
        .await
        .unwrap();
    let uri = server.arrivals()[0].uri.to_string();
    assert_eq!(uri, "/api/v2/users?limit=10&q=a+b");
}
