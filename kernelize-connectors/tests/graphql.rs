//! The GraphQL client against real servers on loopback: an HTTP server for queries and
//! mutations, a graphql-transport-ws server for subscriptions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod graphql_server;
mod scripted_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use graphql_server::WsServer;
use kernelize_connectors::graphql::{
    GraphQLClient, GraphQLErrors, GraphQLRequest, PathSegment, SubscriptionOptions, retry_verdict,
};
use kernelize_connectors::http::{
    HttpClient, IDEMPOTENCY_KEY, Layer, Next, Request, Response, RetryLayer, RetryPolicy,
    TimeoutLayer,
};
use kernelize_core::ErrorKind;
use scripted_server::{ScriptedServer, Step};
use serde::Deserialize;
use serde_json::{Value, json};

/// Quick retries, so the tests do not wait for the default backoff.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

/// The usual stack with the crate's default retry classification.
fn http(server: &ScriptedServer) -> HttpClient {
    HttpClient::builder(&server.url())
        .unwrap()
        .layer(TimeoutLayer::per_call(Duration::from_secs(20)))
        .layer(RetryLayer::new(quick()))
        .layer(TimeoutLayer::per_attempt(Duration::from_secs(5)))
        .build()
        .unwrap()
}

fn client(server: &ScriptedServer) -> GraphQLClient {
    GraphQLClient::new(http(server), "graphql").unwrap()
}

fn body_of(arrival: &scripted_server::Arrival) -> Value {
    serde_json::from_slice(&arrival.body).unwrap()
}

// ---------------------------------------------------------------------------------------
// Queries and mutations over HTTP
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn partial_data_with_errors_is_returned_as_both() {
    let server = ScriptedServer::start(vec![Step::json(
        200,
        json!({
            "data": {"user": {"name": "Ada", "email": null}},
            "errors": [{
                "message": "email is private",
                "locations": [{"line": 1, "column": 30}],
                "path": ["user", "email"],
                "extensions": {"code": "FORBIDDEN"}
            }]
        }),
    )])
    .await;

    let answer = client(&server)
        .execute(
            "query User($id: ID!) { user(id: $id) { name email } }",
            &json!({"id": "7"}),
        )
        .await
        .unwrap();

    assert_eq!(
        answer.data,
        Some(json!({"user": {"name": "Ada", "email": null}}))
    );
    assert_eq!(answer.errors.len(), 1);
    let error = &answer.errors[0];
    assert_eq!(error.message, "email is private");
    assert_eq!(
        error.path,
        vec![
            PathSegment::Field("user".into()),
            PathSegment::Field("email".into())
        ]
    );
    assert_eq!(error.locations[0].column, 30);
    assert_eq!(error.code(), Some("FORBIDDEN"));
    assert_eq!(answer.http_status, Some(200));

    // The request was the standard POST body.
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 1);
    assert_eq!(arrivals[0].method, "POST");
    assert_eq!(arrivals[0].uri.path(), "/graphql");
    assert_eq!(
        body_of(&arrivals[0]),
        json!({"query": "query User($id: ID!) { user(id: $id) { name email } }", "variables": {"id": "7"}})
    );
    let accept = arrivals[0].headers["accept"].to_str().unwrap();
    assert!(
        accept.contains("application/graphql-response+json"),
        "{accept}"
    );
}

#[tokio::test]
async fn a_query_is_retried_after_a_503_without_a_graphql_body() {
    let server = ScriptedServer::start(vec![
        Step::status(503).body("upstream unavailable"),
        Step::json(200, json!({"data": {"ok": true}})),
    ])
    .await;

    let answer = client(&server).execute("{ ok }", &()).await.unwrap();

    assert_eq!(answer.data, Some(json!({"ok": true})));
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2, "the query was sent again");
    let first = arrivals[0].headers.get(IDEMPOTENCY_KEY).expect("a key");
    assert_eq!(
        arrivals[1].headers.get(IDEMPOTENCY_KEY),
        Some(first),
        "both attempts carry the same key"
    );
}

#[tokio::test]
async fn a_query_is_retried_after_an_attempt_timeout() {
    let server = ScriptedServer::start(vec![
        Step::json(200, json!({"data": {"late": true}})).delay(Duration::from_secs(3)),
        Step::json(200, json!({"data": {"late": false}})),
    ])
    .await;
    let http = HttpClient::builder(&server.url())
        .unwrap()
        .layer(RetryLayer::new(quick()))
        .layer(TimeoutLayer::per_attempt(Duration::from_millis(300)))
        .build()
        .unwrap();

    let answer = GraphQLClient::new(http, "graphql")
        .unwrap()
        .execute("query Late { late }", &())
        .await
        .unwrap();

    assert_eq!(answer.data, Some(json!({"late": false})));
    assert_eq!(server.arrivals().len(), 2);
}

#[tokio::test]
async fn a_mutation_is_not_retried() {
    let server = ScriptedServer::start(vec![
        Step::status(503),
        Step::json(200, json!({"data": {"pay": true}})),
    ])
    .await;

    let err = client(&server)
        .execute(
            "mutation Pay($n: Int) { pay(amount: $n) }",
            &json!({"n": 5}),
        )
        .await
        .unwrap_err();

    assert_eq!(err.status(), Some(503));
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 1, "a mutation is sent once");
    assert!(arrivals[0].headers.get(IDEMPOTENCY_KEY).is_none());
}

#[tokio::test]
async fn the_named_operation_decides_whether_a_request_is_retryable() {
    let document = "query Read { a } mutation Write { b }";
    let server = ScriptedServer::start(vec![
        Step::status(503),
        Step::status(503),
        Step::json(200, json!({"data": {"a": 1}})),
    ])
    .await;
    let client = client(&server);

    let err = client
        .execute_operation(document, "Write", &())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.arrivals().len(), 1);

    let answer = client
        .execute_operation(document, "Read", &())
        .await
        .unwrap();
    assert_eq!(answer.data, Some(json!({"a": 1})));
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 3);
    assert_eq!(body_of(&arrivals[2])["operationName"], "Read");
}

#[tokio::test]
async fn graphql_errors_in_a_200_never_cause_a_retry() {
    let server = ScriptedServer::start(vec![
        Step::json(
            200,
            json!({"data": null, "errors": [{"message": "try again later"}]}),
        ),
        Step::json(200, json!({"data": {"ok": true}})),
    ])
    .await;

    let answer = client(&server).execute("{ ok }", &()).await.unwrap();

    assert_eq!(answer.data, None);
    assert_eq!(answer.errors[0].message, "try again later");
    assert_eq!(server.arrivals().len(), 1);
}

#[tokio::test]
async fn a_5xx_carrying_graphql_errors_is_a_response_and_not_retried() {
    let server = ScriptedServer::start(vec![
        Step::json(500, json!({"errors": [{"message": "resolver crashed"}]})),
        Step::json(200, json!({"data": {"ok": true}})),
    ])
    .await;
    let http = HttpClient::builder(&server.url())
        .unwrap()
        .layer(RetryLayer::new(quick()).classify(retry_verdict))
        .build()
        .unwrap();

    let answer = GraphQLClient::new(http, "graphql")
        .unwrap()
        .execute("{ ok }", &())
        .await
        .unwrap();

    assert_eq!(answer.errors[0].message, "resolver crashed");
    assert_eq!(answer.http_status, Some(500));
    assert_eq!(server.arrivals().len(), 1);
}

#[tokio::test]
async fn a_400_with_graphql_errors_is_a_response() {
    let server = ScriptedServer::start(vec![Step::json(
        400,
        json!({"errors": [{"message": "Cannot query field \"nope\" on type \"Query\".", "locations": [{"line": 1, "column": 3}]}]}),
    )])
    .await;

    let answer = client(&server).execute("{ nope }", &()).await.unwrap();

    assert_eq!(answer.http_status, Some(400));
    assert_eq!(answer.data, None);
    assert!(answer.errors[0].message.contains("nope"));
    let err = answer.into_data().unwrap_err();
    assert!(GraphQLErrors::of(&err).is_some());
}

#[tokio::test]
async fn an_answer_that_is_not_graphql_is_an_error() {
    let server = ScriptedServer::start(vec![
        Step::json(200, json!({"done": true})),
        Step::status(401).body("<html>login</html>"),
    ])
    .await;
    let client = client(&server);

    let err = client.execute("{ a }", &()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert_eq!(err.status(), Some(200));
    assert!(err.message().contains("not a GraphQL response"), "{err}");

    let err = client.execute("{ a }", &()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.status(), Some(401));
}

#[derive(Debug, Deserialize, PartialEq)]
struct Viewer {
    viewer: User,
}

#[derive(Debug, Deserialize, PartialEq)]
struct User {
    login: String,
    followers: u32,
}

#[tokio::test]
async fn typed_execute_deserializes_data() {
    let server = ScriptedServer::start(vec![
        Step::json(
            200,
            json!({"data": {"viewer": {"login": "ada", "followers": 12}}, "extensions": {"cost": 1}}),
        ),
        Step::json(200, json!({"data": {"viewer": {"login": 5}}})),
    ])
    .await;
    let client = client(&server);

    let answer = client
        .execute_as::<Viewer, _>("{ viewer { login followers } }", &())
        .await
        .unwrap();
    assert_eq!(answer.extensions.as_ref().unwrap()["cost"], 1);
    assert_eq!(
        answer.into_data().unwrap(),
        Viewer {
            viewer: User {
                login: "ada".into(),
                followers: 12
            }
        }
    );

    let err = client
        .execute_as::<Viewer, _>("{ viewer { login followers } }", &())
        .await
        .unwrap_err();
    assert!(err.message().contains("does not fit"), "{err}");
}

/// What the stack saw of one request: its cache TTL, whether it may be retried, and its
/// idempotency key.
type Seen = (Option<Duration>, bool, Option<String>);

/// Records what reaches the bottom of the stack.
#[derive(Default, Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl Layer for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> kernelize_core::Result<Response> {
        let key = request
            .headers
            .get(IDEMPOTENCY_KEY)
            .map(|v| v.to_str().unwrap().to_string());
        self.seen
            .lock()
            .unwrap()
            .push((request.cache_ttl, request.is_idempotent(), key));
        next.run(request).await
    }
}

fn recorded(server: &ScriptedServer) -> (HttpClient, Recorder) {
    let recorder = Recorder::default();
    let http = HttpClient::builder(&server.url())
        .unwrap()
        .layer(recorder.clone())
        .build()
        .unwrap();
    (http, recorder)
}

#[tokio::test]
async fn queries_are_marked_cacheable_and_mutations_never() {
    let server = ScriptedServer::start(vec![Step::json(200, json!({"data": {}})); 5]).await;
    let (http, recorder) = recorded(&server);
    let minute = Duration::from_secs(60);
    let client = GraphQLClient::new(http.clone(), "graphql")
        .unwrap()
        .cache(minute);

    client.execute("{ a }", &()).await.unwrap();
    client.execute("mutation { b }", &()).await.unwrap();
    client
        .send(GraphQLRequest::new("{ a }").uncached())
        .await
        .unwrap();
    client
        .send(GraphQLRequest::new("mutation { b }").cache(minute))
        .await
        .unwrap();
    GraphQLClient::new(http, "graphql")
        .unwrap()
        .send(GraphQLRequest::new("query { a }").cache(Duration::from_secs(5)))
        .await
        .unwrap();

    let seen: Vec<(Option<Duration>, bool)> = recorder
        .seen()
        .into_iter()
        .map(|(ttl, idempotent, _)| (ttl, idempotent))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some(minute), true),
            (None, false),
            (None, true),
            (None, false),
            (Some(Duration::from_secs(5)), true),
        ]
    );
}

#[tokio::test]
async fn identical_cacheable_queries_carry_identical_keys_and_others_never_share_one() {
    let server = ScriptedServer::start(vec![Step::json(200, json!({"data": {}})); 5]).await;
    let (http, recorder) = recorded(&server);
    let client = GraphQLClient::new(http, "graphql")
        .unwrap()
        .cache(Duration::from_secs(60));
    let query = "query Q($id: ID) { a(id: $id) }";

    client.execute(query, &json!({"id": 1})).await.unwrap();
    client.execute(query, &json!({"id": 1})).await.unwrap();
    client.execute(query, &json!({"id": 2})).await.unwrap();
    let uncached = || GraphQLRequest::new(query).uncached();
    client.send(uncached()).await.unwrap();
    client.send(uncached()).await.unwrap();

    let keys: Vec<String> = recorder
        .seen()
        .into_iter()
        .map(|(_, _, key)| key.unwrap())
        .collect();
    // A response cache keys requests by their headers: the same query must look the same.
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    // Without caching, a key is never reused, so no server replays an old answer.
    assert_ne!(keys[3], keys[4]);
}

// ---------------------------------------------------------------------------------------
// Subscriptions over WebSocket
// ---------------------------------------------------------------------------------------

fn ws_client(base: &str, options: SubscriptionOptions) -> GraphQLClient {
    let http = HttpClient::builder(base).unwrap().build().unwrap();
    GraphQLClient::new(http, "graphql")
        .unwrap()
        .subscriptions(options)
}

#[tokio::test]
async fn a_subscription_receives_three_events_and_completes() {
    let server = WsServer::start(|mut conn| async move {
        let init = conn.accept_init().await;
        let subscribe = conn.expect("subscribe").await;
        let id = subscribe["id"].clone();
        conn.send(json!({"type": "ping"})).await;
        let pong = conn.expect("pong").await;
        for n in 1..=3 {
            conn.send(json!({"id": id, "type": "next", "payload": {"data": {"tick": n}}}))
                .await;
        }
        conn.send(json!({"id": id, "type": "complete"})).await;
        let (after, close) = conn.until_closed().await;
        (conn.headers, init, subscribe, pong, after, close)
    })
    .await;
    let options = SubscriptionOptions::new()
        .init_payload(&json!({"authToken": "s3cret"}))
        .unwrap();
    let client = ws_client(&server.http_url(), options);

    let subscription = client
        .subscribe(
            "subscription Ticks($every: Int) { tick(every: $every) }",
            &json!({"every": 1}),
        )
        .await
        .unwrap();
    let events: Vec<_> = subscription.collect().await;

    let ticks: Vec<Value> = events
        .into_iter()
        .map(|event| event.unwrap().data.unwrap()["tick"].clone())
        .collect();
    assert_eq!(ticks, vec![json!(1), json!(2), json!(3)]);
    let (headers, init, subscribe, pong, after, close) = server.finish().await;
    assert_eq!(headers["sec-websocket-protocol"], "graphql-transport-ws");
    assert_eq!(init["payload"], json!({"authToken": "s3cret"}));
    assert_eq!(
        subscribe["payload"],
        json!({"query": "subscription Ticks($every: Int) { tick(every: $every) }", "variables": {"every": 1}})
    );
    assert_eq!(pong["type"], "pong");
    assert!(after.is_empty(), "nothing after complete: {after:?}");
    assert_eq!(close, Some(1000));
}

#[tokio::test]
async fn unsubscribe_sends_complete_to_the_server() {
    let server = WsServer::start(|mut conn| async move {
        conn.accept_init().await;
        let subscribe = conn.expect("subscribe").await;
        let id = subscribe["id"].clone();
        conn.send(json!({"id": id, "type": "next", "payload": {"data": {"n": 1}}}))
            .await;
        let (after, close) = conn.until_closed().await;
        (id, after, close)
    })
    .await;
    let client = ws_client(&server.http_url(), SubscriptionOptions::new());
    let mut subscription = client.subscribe("subscription { n }", &()).await.unwrap();
    let first = subscription.next().await.unwrap().unwrap();
    assert_eq!(first.data, Some(json!({"n": 1})));
    let handle = subscription.handle();

    subscription.unsubscribe().await;

    assert!(handle.is_finished());
    let (id, after, close) = server.finish().await;
    assert_eq!(after, vec![json!({"id": id, "type": "complete"})]);
    assert_eq!(close, Some(1000));
}

#[tokio::test]
async fn unsubscribing_through_a_handle_ends_the_stream() {
    let server = WsServer::start(|mut conn| async move {
        conn.accept_init().await;
        let id = conn.expect("subscribe").await["id"].clone();
        let (after, _) = conn.until_closed().await;
        (id, after)
    })
    .await;
    let client = ws_client(&server.http_url(), SubscriptionOptions::new());
    let mut subscription = client.subscribe("subscription { n }", &()).await.unwrap();
    let handle = subscription.handle();

    let consumer = tokio::spawn(async move { subscription.next().await.is_none() });
    handle.unsubscribe().await;

    assert!(consumer.await.unwrap(), "the stream ended");
    let (id, after) = server.finish().await;
    assert_eq!(after, vec![json!({"id": id, "type": "complete"})]);
}

#[tokio::test]
async fn dropping_a_subscription_sends_complete() {
    let server = WsServer::start(|mut conn| async move {
        conn.accept_init().await;
        let id = conn.expect("subscribe").await["id"].clone();
        let (after, _) = conn.until_closed().await;
        (id, after)
    })
    .await;
    let client = ws_client(&server.http_url(), SubscriptionOptions::new());
    let subscription = client.subscribe("subscription { n }", &()).await.unwrap();

    drop(subscription);

    let (id, after) = server.finish().await;
    assert_eq!(after, vec![json!({"id": id, "type": "complete"})]);
}

#[tokio::test]
async fn a_server_error_message_is_an_err_item_that_ends_the_stream() {
    let server = WsServer::start(|mut conn| async move {
        conn.accept_init().await;
        let id = conn.expect("subscribe").await["id"].clone();
        conn.send(json!({"id": id, "type": "next", "payload": {"data": {"n": 1}}}))
            .await;
        conn.send(json!({"id": id, "type": "error", "payload": [
            {"message": "subscription field `n` is gone", "path": ["n"]}
        ]}))
        .await;
        conn.until_closed().await
    })
    .await;
    let client = ws_client(&server.http_url(), SubscriptionOptions::new());
    let subscription = client.subscribe("subscription { n }", &()).await.unwrap();

    let events: Vec<_> = subscription.collect().await;

    assert_eq!(events.len(), 2);
    assert!(events[0].is_ok());
    let err = events[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert!(err.message().contains("is gone (at n)"), "{err}");
    let errors = GraphQLErrors::of(err).expect("the errors ride along");
    assert_eq!(errors.0[0].path, vec![PathSegment::Field("n".into())]);
    let (after, close) = server.finish().await;
    assert!(
        after.is_empty(),
        "no complete after the server's error: {after:?}"
    );
    assert_eq!(close, Some(1000));
}

#[tokio::test]
async fn no_connection_ack_in_time_is_a_clear_timeout_error() {
    let server = WsServer::start(|mut conn| async move {
        conn.expect("connection_init").await;
        conn.until_closed().await
    })
    .await;
    let options = SubscriptionOptions::new().ack_timeout(Duration::from_millis(300));
    let client = ws_client(&server.http_url(), options);

    let err = client
        .subscribe("subscription { n }", &())
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("connection_ack"), "{err}");
    assert!(err.is_temporary());
    let (_, close) = server.finish().await;
    assert_eq!(close, Some(4504));
}

#[tokio::test]
async fn a_forbidden_close_at_init_is_permission_denied() {
    let server = WsServer::start(|mut conn| async move {
        conn.expect("connection_init").await;
        conn.close(4403, "Forbidden").await;
    })
    .await;
    let client = ws_client(&server.http_url(), SubscriptionOptions::new());

    let err = client
        .subscribe("subscription { n }", &())
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.status(), Some(4403));
    assert!(err.message().contains("4403 Forbidden"), "{err}");
    server.finish().await;
}

#[tokio::test]
async fn a_close_code_during_a_subscription_is_its_last_item() {
    let server = WsServer::start(|mut conn| async move {
        conn.accept_init().await;
        conn.expect("subscribe").await;
        conn.close(4429, "Too many initialisation requests").await;
    })
    .await;
    let client = ws_client(&server.http_url(), SubscriptionOptions::new());
    let subscription = client.subscribe("subscription { n }", &()).await.unwrap();

    let events: Vec<_> = subscription.collect().await;

    assert_eq!(events.len(), 1);
    let err = events[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.status(), Some(4429));
    server.finish().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_ends_the_subscription() {
    let server = WsServer::start(|mut conn| async move {
        conn.accept_init().await;
        let id = conn.expect("subscribe").await["id"].clone();
        let big = "x".repeat(64 * 1024);
        conn.send(json!({"id": id, "type": "next", "payload": {"data": {"big": big}}}))
            .await;
        conn.until_closed().await
    })
    .await;
    let options = SubscriptionOptions::new().max_message_size(16 * 1024);
    let client = ws_client(&server.http_url(), options);
    let subscription = client.subscribe("subscription { big }", &()).await.unwrap();

    let events: Vec<_> = subscription.collect().await;

    assert_eq!(events.len(), 1);
    let err = events[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData);
    assert!(err.message().contains("16384-byte limit"), "{err}");
    server.finish().await;
}

#[tokio::test]
async fn keepalive_pings_are_sent_and_an_unanswered_one_ends_the_subscription() {
    let server = WsServer::start(|mut conn| async move {
        conn.accept_init().await;
        conn.expect("subscribe").await;
        // Answer the first ping, ignore the rest.
        conn.expect("ping").await;
        conn.send(json!({"type": "pong"})).await;
        conn.until_closed().await
    })
    .await;
    let options = SubscriptionOptions::new().keepalive(Duration::from_millis(250));
    let client = ws_client(&server.http_url(), options);
    let subscription = client.subscribe("subscription { n }", &()).await.unwrap();

    let events: Vec<_> = subscription.collect().await;

    assert_eq!(events.len(), 1);
    let err = events[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("ping"), "{err}");
    let (after, _) = server.finish().await;
    assert!(
        after.iter().all(|m| m["type"] == "ping"),
        "only pings after the first: {after:?}"
    );
    assert!(!after.is_empty());
}
