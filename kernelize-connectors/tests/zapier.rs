//! The `zapier-connector` plugin against the Zapier fake (`kernelize_fakes::zapier`),
//! called by action name with JSON config, as a workflow calls it: catch-hook triggers and
//! REST Hook subscriptions kept in a file.
#![cfg(feature = "zapier")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use kernelize_connectors::zapier;
use kernelize_core::{Call, ErrorKind, Payload, Permission, PluginManager, Records};
use kernelize_fakes::Fake;
use kernelize_fakes::zapier::{ACCOUNT, Answer, Config, HOOK};
use serde_json::{Value, json};

mod saas_common;

// ---------------------------------------------------------------------------------------
// helpers

fn hook(fake: &Fake) -> String {
    format!("{}/hooks/catch/{ACCOUNT}/{HOOK}/", fake.url())
}

fn target(fake: &Fake, id: &str) -> String {
    format!("{}/hooks/standard/{ACCOUNT}/{id}/", fake.url())
}

/// The plugin with `settings`, the fakes' network grant and `grants`.
async fn manager_with(settings: Value, grants: Vec<Permission>) -> PluginManager {
    saas_common::activated(zapier::factory(), settings, &[], grants).await
}

fn write(dir: &Path) -> Permission {
    Permission::FileWrite {
        path: dir.to_path_buf(),
    }
}

async fn manager(settings: Value) -> PluginManager {
    manager_with(settings, vec![]).await
}

async fn call(
    m: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Value> {
    saas_common::call(m, zapier::ID, action, config, input)
        .await?
        .into_json()
}

// ---------------------------------------------------------------------------------------
// trigger

#[tokio::test]
async fn trigger_posts_the_input_as_json_and_reads_the_debug_payload() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let m = manager(json!({"hook_url": hook(&fake)})).await;
    let out = call(
        &m,
        "trigger",
        Value::Null,
        Payload::Json(json!({"order": 42, "items": [{"sku": "A"}]})),
    )
    .await
    .unwrap();
    assert_eq!(out["sent"], 1);
    let answer = &out["answers"][0];
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"]["status"], "success");
    assert!(answer["request_id"].as_str().unwrap().len() > 10);
    assert!(answer["attempt"].is_string() && answer["id"].is_string());

    let seen = fake
        .journal()
        .matching("POST", &format!("/hooks/catch/{ACCOUNT}/{HOOK}/"));
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].json(),
        json!({"order": 42, "items": [{"sku": "A"}]})
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        seen[0].header("x-recurse-parse"),
        None,
        "parsing is Zapier's default"
    );
}

#[tokio::test]
async fn silent_mode_and_an_empty_answer_are_both_success() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let m = manager(json!({"hook_url": format!("{}silent/", hook(&fake))})).await;
    let out = call(&m, "trigger", Value::Null, Payload::Json(json!({"a": 1})))
        .await
        .unwrap();
    assert_eq!(
        out["answers"][0],
        json!({"status": 200, "request_id": null, "id": null, "attempt": null, "body": null})
    );
    assert!(
        fake.requests()[0]
            .path
            .ends_with(&format!("{HOOK}/silent/"))
    );

    let quiet = kernelize_fakes::zapier::start(Config {
        answer: Answer::Empty,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(json!({"hook_url": hook(&quiet)})).await;
    let out = call(&m, "trigger", Value::Null, Payload::Json(json!({"a": 1})))
        .await
        .unwrap();
    assert_eq!(out["answers"][0]["body"], Value::Null);
}

#[tokio::test]
async fn raw_parse_false_sends_x_recurse_parse_false() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let m = manager(json!({"hook_url": hook(&fake)})).await;
    call(
        &m,
        "trigger",
        json!({"raw_parse": false, "body": {"nested": {"keep": "whole"}}}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let seen = &fake.requests()[0];
    assert_eq!(seen.header("x-recurse-parse"), Some("false"));
    assert_eq!(
        seen.json(),
        json!({"nested": {"keep": "whole"}}),
        "the config's body wins over the input"
    );
}

#[tokio::test]
async fn records_go_one_request_per_row_or_as_one_array() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let m = manager(json!({"hook_url": hook(&fake)})).await;
    let rows = || {
        Payload::Records(
            Records::from_json_rows(&[
                json!({"id": 1, "name": "a"}),
                json!({"id": 2, "name": "b"}),
            ])
            .unwrap(),
        )
    };
    let out = call(&m, "trigger", Value::Null, rows()).await.unwrap();
    assert_eq!(out["sent"], 2);
    let out = call(&m, "trigger", json!({"rows": "array"}), rows())
        .await
        .unwrap();
    assert_eq!(out["sent"], 1);
    let bodies: Vec<Value> = fake.requests().iter().map(|s| s.json()).collect();
    assert_eq!(
        bodies,
        [
            json!({"id": 1, "name": "a"}),
            json!({"id": 2, "name": "b"}),
            json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]),
        ]
    );
}

#[tokio::test]
async fn get_sends_fields_as_query_parameters_and_put_a_json_body() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let m = manager(json!({"hook_url": hook(&fake)})).await;
    call(
        &m,
        "trigger",
        json!({"method": "get"}),
        Payload::Json(json!({"name": "Ada", "n": 3, "tags": ["x"]})),
    )
    .await
    .unwrap();
    call(
        &m,
        "trigger",
        json!({"method": "put"}),
        Payload::Json(json!({"name": "Ada"})),
    )
    .await
    .unwrap();
    let seen = fake.requests();
    assert_eq!(seen[0].method, "GET");
    assert!(seen[0].body.is_empty());
    assert_eq!(seen[0].param("name").as_deref(), Some("Ada"));
    assert_eq!(seen[0].param("n").as_deref(), Some("3"));
    assert_eq!(seen[0].param("tags").as_deref(), Some(r#"["x"]"#));
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(seen[1].json(), json!({"name": "Ada"}));

    let error = call(
        &m,
        "trigger",
        json!({"method": "get"}),
        Payload::Json(json!([1, 2])),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn bytes_are_sent_as_they_are_with_their_media_type() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let m = manager(json!({"hook_url": hook(&fake)})).await;
    call(
        &m,
        "trigger",
        Value::Null,
        Payload::bytes("<order id=\"7\"/>", "application/xml"),
    )
    .await
    .unwrap();
    let seen = &fake.requests()[0];
    assert_eq!(&seen.body[..], b"<order id=\"7\"/>");
    assert_eq!(seen.header("content-type"), Some("application/xml"));
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after_even_for_a_post() {
    let fake = kernelize_fakes::zapier::start(Config {
        rate_limited: 1,
        retry_after_secs: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(json!({"hook_url": hook(&fake)})).await;
    let started = Instant::now();
    let out = call(&m, "trigger", Value::Null, Payload::Json(json!({"a": 1})))
        .await
        .unwrap();
    assert_eq!(out["sent"], 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1));
}

#[tokio::test]
async fn an_unknown_hook_is_not_found_and_the_error_never_shows_the_hook_path() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let m = manager(json!({})).await;
    let secret_path = format!("/hooks/catch/{ACCOUNT}/zz9secret/");
    let error = call(
        &m,
        "trigger",
        json!({"hook_url": format!("{}{secret_path}", fake.url())}),
        Payload::Json(json!({"a": 1})),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert_eq!(error.status(), Some(404));
    assert!(error.message().contains("No hook found"), "{error}");
    assert!(!error.to_string().contains("zz9secret"), "{error}");
    assert_eq!(fake.requests().len(), 1, "a 404 is not retried");

    let error = call(&m, "trigger", Value::Null, Payload::Json(json!({})))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(error.message().contains("hook_url"), "{error}");
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_an_error() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let to = hook(&fake);
    let app = axum::Router::new().fallback(move || {
        let to = to.clone();
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, to)],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let m = manager(json!({"hook_url": format!("http://{addr}/hooks/catch/1/moved/")})).await;
    let error = call(&m, "trigger", Value::Null, Payload::Json(json!({"a": 1})))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert_eq!(error.status(), Some(307));
    assert!(error.message().contains("not followed"), "{error}");
    assert!(
        fake.requests().is_empty(),
        "the data never reached the redirect's target"
    );
}

#[tokio::test]
async fn a_hook_on_a_host_without_a_grant_is_refused_without_showing_the_path() {
    let m = manager_with(
        json!({}),
        vec![Permission::Network {
            host: "example.org".into(),
        }],
    )
    .await;
    let error = call(
        &m,
        "trigger",
        json!({"hook_url": "https://hooks.zapier.com/hooks/catch/1/topsecret/"}),
        Payload::Json(json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(error.to_string().contains("hooks.zapier.com"), "{error}");
    assert!(!error.to_string().contains("topsecret"), "{error}");
}

// ---------------------------------------------------------------------------------------
// REST Hooks

#[tokio::test]
async fn rest_hooks_subscribe_notify_and_drop_subscriptions_zapier_answers_410() {
    let fake = kernelize_fakes::zapier::start(Config {
        gone_targets: vec!["zap-off".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state").join("subs.json");
    let settings = json!({"subscriptions_file": file});
    let m = manager_with(settings.clone(), vec![write(dir.path())]).await;

    // Zapier's performSubscribe, as the gateway hands it over: the input.
    let live = call(
        &m,
        "subscribe",
        Value::Null,
        Payload::Json(json!({"target_url": target(&fake, "zap-1"), "event": "order.created"})),
    )
    .await
    .unwrap();
    assert!(live["id"].as_str().unwrap().starts_with("sub_"));
    assert_eq!(live["event"], "order.created");
    assert!(live["created_at"].as_str().unwrap().ends_with('Z'));
    let off = call(
        &m,
        "subscribe",
        json!({"target_url": target(&fake, "zap-off"), "event": "order.created"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    call(
        &m,
        "subscribe",
        json!({"target_url": target(&fake, "zap-2"), "event": "order.paid"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let again = call(
        &m,
        "subscribe",
        Value::Null,
        Payload::Json(json!({"url": target(&fake, "zap-1"), "event": "order.created"})),
    )
    .await
    .unwrap();
    assert_eq!(
        again["id"], live["id"],
        "subscribing again returns the same subscription"
    );

    let out = call(
        &m,
        "notify",
        json!({"event": "order.created"}),
        Payload::Json(json!({"order": 7})),
    )
    .await
    .unwrap();
    assert_eq!(out["subscriptions"], 2);
    assert_eq!(out["delivered"], 1);
    assert_eq!(out["removed"], json!([off["id"]]));
    assert_eq!(out["failed"], json!([]));
    let delivered = fake.journal().matching("POST", "/hooks/standard/*");
    assert_eq!(
        delivered.len(),
        2,
        "one to each subscription to the event, none to order.paid"
    );
    assert!(delivered.iter().all(|s| s.json() == json!({"order": 7})));

    // A new plugin instance (another process) reads the same file.
    let other = manager_with(settings, vec![write(dir.path())]).await;
    let rows = other
        .call(zapier::ID, Call::new("list_subscriptions", Payload::Empty))
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert!(matches!(
        rows.schema()
            .field_with_name("created_at")
            .unwrap()
            .data_type(),
        kernelize_core::arrow_schema::DataType::Timestamp(_, _)
    ));
    let rows = rows.to_json_rows().unwrap();
    let events: Vec<&str> = rows.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["order.created", "order.paid"],
        "the 410 one is gone, in the file too"
    );
    let filtered = other
        .call(
            zapier::ID,
            Call::new("list_subscriptions", Payload::Empty)
                .with_config(json!({"event": "order.paid"})),
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(filtered.num_rows(), 1);

    // Zapier's performUnsubscribe sends bundle.subscribeData.id.
    let out = call(
        &other,
        "unsubscribe",
        Value::Null,
        Payload::Json(json!({"id": live["id"]})),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({"id": live["id"], "removed": true}));
    let out = call(&m, "unsubscribe", json!({"id": live["id"]}), Payload::Empty)
        .await
        .unwrap();
    assert_eq!(out["removed"], false, "twice is not an error");

    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["subscriptions"].as_array().unwrap().len(), 1);
    let names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["subs.json"],
        "no lock or temporary file left behind"
    );
}

#[tokio::test]
async fn notify_reports_failed_deliveries_or_fails_with_require_all() {
    let fake = kernelize_fakes::zapier::start(Config::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = manager_with(
        json!({"subscriptions_file": dir.path().join("subs.json")}),
        vec![write(dir.path())],
    )
    .await;
    call(
        &m,
        "subscribe",
        json!({"target_url": target(&fake, "ok"), "event": "e"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let broken = call(
        &m,
        "subscribe",
        json!({"target_url": format!("{}/nowhere", fake.url()), "event": "e"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let out = call(
        &m,
        "notify",
        json!({"event": "e", "payload": {"x": 1}}),
        Payload::Empty,
    )
    .await
    .unwrap();
    assert_eq!(out["delivered"], 1);
    assert_eq!(out["failed"][0]["id"], broken["id"]);
    assert_eq!(out["failed"][0]["status"], 404);
    assert_eq!(
        out["removed"],
        json!([]),
        "only a 410 removes a subscription"
    );

    let error = call(
        &m,
        "notify",
        json!({"event": "e", "payload": {"x": 1}, "require_all": true}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert!(
        error.message().contains("1 of 2 deliveries of `e` failed"),
        "{error}"
    );
}

#[tokio::test]
async fn rest_hook_actions_need_the_file_setting_and_grant_and_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(json!({"subscriptions_file": dir.path().join("subs.json")})).await;
    let error = call(
        &m,
        "subscribe",
        json!({"target_url": "https://hooks.zapier.com/hooks/standard/1/2/", "event": "e"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");

    let m = manager(json!({})).await;
    let error = call(&m, "list_subscriptions", Value::Null, Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(error.message().contains("subscriptions_file"), "{error}");

    let m = manager_with(
        json!({"subscriptions_file": dir.path().join("subs.json")}),
        vec![write(dir.path())],
    )
    .await;
    let error = call(&m, "subscribe", json!({"event": "e"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.message().contains("target_url"), "{error}");
    let error = call(
        &m,
        "subscribe",
        json!({"target_url": "not a url", "event": "e"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    let error = call(&m, "unsubscribe", Value::Null, Payload::Empty)
        .await
        .unwrap_err();
    assert!(error.message().contains("subscribeData.id"), "{error}");
}
