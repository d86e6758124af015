//! The generic `http` plugin, called the way workflows and the command line call it: by
//! action name with JSON config and input, through a plugin manager.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scripted_server;

use std::time::Duration;

use kernelize_connectors::http::plugin::{self, HttpSettings};
use kernelize_core::{Call, ErrorKind, Payload, Permission, PluginConfig, PluginManager};
use scripted_server::{ScriptedServer, Step};
use serde_json::{Value, json};

async fn manager(settings: Value, grant: &str) -> PluginManager {
    let manager = PluginManager::new();
    manager.install(plugin::factory()).unwrap();
    manager.configure(
        plugin::ID,
        PluginConfig::with_settings(settings).grant(Permission::Network { host: grant.into() }),
    );
    manager.activate(plugin::ID).await.unwrap();
    manager
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
    input: Value,
) -> kernelize_core::Result<Value> {
    let call = Call::new(action, Payload::Json(input)).with_config(config);
    manager.call(plugin::ID, call).await?.into_json()
}

#[tokio::test]
async fn request_takes_its_config_and_returns_status_headers_and_body() {
    let server = ScriptedServer::start(vec![
        Step::json(200, json!({"id": 42})).header("x-request-id", "r-1"),
        Step::status(200)
            .header("content-type", "text/csv")
            .body("a,b\n1,2\n"),
        Step::status(201),
    ])
    .await;
    let m = manager(
        json!({"base_url": server.url(), "headers": {"x-team": "data"}}),
        "127.0.0.1",
    )
    .await;
    let answer = call(
        &m,
        "request",
        json!({"url": "users", "headers": {"accept": "application/json"}, "query": {"a": 1, "b": "two"}}),
        json!({"ignored": "a GET takes no body"}),
    )
    .await
    .unwrap();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"], json!({"id": 42}));
    assert_eq!(answer["headers"]["x-request-id"], "r-1");
    let answer = call(
        &m,
        "request",
        json!({"method": "post", "url": "upload", "body": "plain text"}),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(
        answer["body"], "a,b\n1,2\n",
        "a body that is not JSON comes back as text"
    );
    // The input is the body of a POST whose config has none (a step sending what the
    // step before it produced).
    let answer = call(
        &m,
        "request",
        json!({"method": "POST", "url": "orders"}),
        json!([{"id": 1}, {"id": 2}]),
    )
    .await
    .unwrap();
    assert_eq!(answer["status"], 201);
    assert_eq!(answer["body"], Value::Null);

    let seen = server.arrivals();
    assert_eq!(seen[0].uri.to_string(), "/users?a=1&b=two");
    assert!(seen[0].body.is_empty());
    assert_eq!(seen[0].headers["accept"], "application/json");
    assert_eq!(
        seen[0].headers["x-team"], "data",
        "the plugin's headers go with every call"
    );
    assert_eq!(seen[1].method, "POST");
    assert_eq!(&seen[1].body[..], b"plain text");
    assert!(
        seen[1].headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(&seen[2].body[..], br#"[{"id":1},{"id":2}]"#);
    assert_eq!(seen[2].headers["content-type"], "application/json");
}

#[tokio::test]
async fn a_non_2xx_answer_after_retries_is_an_error_with_the_status_and_body() {
    let server = ScriptedServer::start(vec![
        Step::status(503).body("busy, try later"),
        Step::status(503).body("still busy"),
        Step::status(404).body("no such user"),
    ])
    .await;
    let m = manager(
        json!({"base_url": server.url(), "retry": {"max_attempts": 2, "base_delay": "10ms"}}),
        "*",
    )
    .await;
    let error = call(&m, "request", json!({"url": "users/1"}), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503), "{error}");
    assert!(error.to_string().contains("still busy"), "{error}");
    assert_eq!(
        server.arrivals().len(),
        2,
        "the plugin's retry policy was used"
    );

    // A per-call override: no retries, and a 404 is an error at once.
    let error = call(
        &m,
        "request",
        json!({"url": "users/2", "retry": {"max_attempts": 1}}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert!(error.to_string().contains("no such user"), "{error}");
    assert_eq!(server.arrivals().len(), 3);
}

#[tokio::test]
async fn per_call_overrides_change_auth_and_timeouts_for_that_call_only() {
    let server = ScriptedServer::start(vec![
        Step::status(200),
        Step::status(200),
        Step::status(200).delay(Duration::from_millis(500)),
    ])
    .await;
    let m = manager(
        json!({"base_url": server.url(), "auth": {"type": "bearer", "token": "plugin-token"}}),
        "*",
    )
    .await;
    call(&m, "request", json!({"url": "a"}), Value::Null)
        .await
        .unwrap();
    call(
        &m,
        "request",
        json!({"url": "b", "auth": {"type": "api_key", "header": "X-Key", "key": "call-key"}}),
        Value::Null,
    )
    .await
    .unwrap();
    let error = call(
        &m,
        "request",
        json!({"url": "c", "timeout": {"call": "200ms", "attempt": "100ms"}, "retry": {"max_attempts": 1}}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    let seen = server.arrivals();
    assert_eq!(seen[0].headers["authorization"], "Bearer plugin-token");
    assert_eq!(seen[1].headers["x-key"], "call-key");
    assert!(!seen[1].headers.contains_key("authorization"));
}

#[tokio::test]
async fn the_calls_idempotency_key_is_sent_and_makes_a_post_retryable() {
    let server = ScriptedServer::start(vec![Step::status(503), Step::status(201)]).await;
    let m = manager(
        json!({"base_url": server.url(), "retry": {"max_attempts": 2, "base_delay": "10ms"}}),
        "*",
    )
    .await;
    let call = Call::new("request", Payload::Empty)
        .with_config(json!({"method": "POST", "url": "orders", "body": {"id": 1}}))
        .with_idempotency_key("run-1/create/1");
    let answer = m.call(plugin::ID, call).await.unwrap().into_json().unwrap();
    assert_eq!(answer["status"], 201);
    let seen = server.arrivals();
    assert_eq!(
        seen.len(),
        2,
        "the POST was retried because it carried a key"
    );
    assert!(
        seen.iter()
            .all(|a| a.headers["idempotency-key"] == "run-1/create/1")
    );
}

#[tokio::test]
async fn paginate_collects_the_items_of_every_page() {
    let server = ScriptedServer::start(vec![
        Step::json(200, json!({"data": [1, 2], "next": "p2"})),
        Step::json(200, json!({"data": [3], "next": "p3"})),
        Step::json(200, json!({"data": [4], "next": null})),
    ])
    .await;
    let m = manager(json!({"base_url": server.url()}), "*").await;
    let out = call(
        &m,
        "paginate",
        json!({
            "url": "items",
            "pagination": {"kind": "cursor", "cursor_param": "page_token", "cursor_path": "next"},
            "items_path": "data"
        }),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({"items": [1, 2, 3, 4], "pages": 3, "complete": true})
    );
    assert_eq!(server.arrivals()[2].uri.to_string(), "/items?page_token=p3");
}

#[tokio::test]
async fn bad_requests_are_input_errors_and_hosts_need_a_grant() {
    let server = ScriptedServer::start(vec![]).await;
    let m = manager(json!({}), "api.example.com").await;
    let error = call(&m, "request", json!({"url": "relative/path"}), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.to_string().contains("base_url"), "{error}");
    let error = call(
        &m,
        "request",
        json!({"url": "http://x/", "method": "GE T"}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    let error = call(
        &m,
        "request",
        json!({"url": "http://x/", "colour": 1}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("colour"), "{error}");
    let error = call(&m, "paginate", json!({"url": "http://x/"}), Value::Null)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("pagination"), "{error}");
    // 127.0.0.1 is not granted: nothing is sent.
    let error = call(&m, "request", json!({"url": server.url()}), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert!(server.arrivals().is_empty());
}

#[test]
fn settings_never_show_or_write_back_a_credential() {
    let settings: HttpSettings = serde_json::from_value(json!({
        "base_url": "https://api.example.com",
        "auth": {"type": "oauth2_client_credentials", "token_url": "https://id.example.com/token",
                 "client_id": "app", "client_secret": "s3cr3t-value"}
    }))
    .unwrap();
    let debug = format!("{settings:?}");
    let written = serde_json::to_string(&settings).unwrap();
    for text in [&debug, &written] {
        assert!(!text.contains("s3cr3t-value"), "{text}");
    }
    assert!(written.contains(r#""redacted":true"#), "{written}");
    let bad = serde_json::from_value::<HttpSettings>(json!({"auth": {"type": "kerberos"}}));
    assert!(bad.is_err());
}
