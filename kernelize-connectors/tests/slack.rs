//! The `slack-notifier` against the Slack fake, called the way workflows call it: by
//! action name with JSON config and input, through a plugin manager.

#![cfg(feature = "slack")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::slack;
use kernelize_core::{ErrorKind, Payload, PluginConfig, PluginManager, Records};
use kernelize_fakes::Fake;
use kernelize_fakes::slack::{Config, DATA_PIPELINE, TOKEN, WEBHOOK_PATH};
use serde_json::{Value, json};

mod saas_common;

fn settings(fake: &Fake) -> Value {
    json!({
        "base_url": format!("{}/api/", fake.url()),
        "token": TOKEN,
        "webhook_url": format!("{}{WEBHOOK_PATH}", fake.url()),
        "http": {"retry": {"base_delay": "10ms"}},
    })
}

async fn manager(settings: Value) -> PluginManager {
    saas_common::activated(slack::factory(), settings, &[], vec![]).await
}

async fn send(
    m: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Value> {
    saas_common::call(m, slack::ID, action, config, input)
        .await?
        .into_json()
}

fn posts(fake: &Fake) -> Vec<kernelize_fakes::Seen> {
    fake.journal().matching("POST", "/api/chat.postMessage")
}

/// What the fake's channel holds, newest first, as `conversations.history` lists it.
async fn history(fake: &Fake, channel: &str) -> Vec<Value> {
    let answer: Value = reqwest::Client::new()
        .get(format!("{}/api/conversations.history", fake.url()))
        .query(&[("channel", channel)])
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    answer["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn send_message_posts_json_with_the_bot_token_and_returns_the_ts() {
    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let sent = send(
        &m,
        "send_message",
        json!({"channel": "#data-pipeline", "text": "*done*", "unfurl_links": false, "thread_ts": "1714550400.000001"}),
        Payload::Empty,
    )
    .await
    .unwrap();

    assert_eq!(sent["channel"], DATA_PIPELINE);
    assert_eq!(sent["text"], "*done*");
    assert_eq!(
        sent["warnings"],
        json!([]),
        "charset given, no missing_charset warning"
    );
    assert!(sent["ts"].as_str().unwrap().starts_with("1714550400."));
    let seen = posts(&fake);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        seen[0].json(),
        json!({"channel": "#data-pipeline", "text": "*done*", "thread_ts": "1714550400.000001", "unfurl_links": false})
    );
    let stored = history(&fake, DATA_PIPELINE).await;
    assert_eq!(stored[0]["text"], "*done*");
    assert_eq!(stored[0]["thread_ts"], "1714550400.000001");
}

#[tokio::test]
async fn without_text_the_message_summarizes_the_input() {
    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    // What data_sync's notify step gets from the Databricks load before it.
    let load_outcome = json!({
        "table": "sales_analytics", "rows_loaded": 42, "rows_staged": 42, "format": "json",
        "staged_path": "/Volumes/main/default/staging/kernelize-x.json", "staged_bytes": 1234,
        "staged_file_deleted": true, "statement_id": "01ef"
    });

    let sent = send(
        &m,
        "send_message",
        json!({"channel": "#data-pipeline"}),
        Payload::Json(load_outcome),
    )
    .await
    .unwrap();
    assert_eq!(sent["text"], "Loaded 42 rows into `sales_analytics`.");

    let records = Records::from_json_rows(&[
        json!({"id": 1, "region": "n"}),
        json!({"id": 2, "region": "s"}),
    ])
    .unwrap();
    send(
        &m,
        "send_message",
        json!({"channel": DATA_PIPELINE}),
        Payload::Records(records),
    )
    .await
    .unwrap();

    let bodies: Vec<Value> = posts(&fake).iter().map(|s| s.json()).collect();
    assert_eq!(bodies[0]["text"], "Loaded 42 rows into `sales_analytics`.");
    assert_eq!(bodies[1]["text"], "2 records (columns: id, region)");
    let stored = history(&fake, "#data-pipeline").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["text"], "Loaded 42 rows into `sales_analytics`.");

    let error = send(
        &m,
        "send_message",
        json!({"channel": "#data-pipeline"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.message().contains("nothing to send"), "{error}");
    assert_eq!(posts(&fake).len(), 2, "nothing was sent");
}

#[tokio::test]
async fn blocks_are_sent_as_given_without_a_summary() {
    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]);

    let sent = send(
        &m,
        "send_message",
        json!({"channel": "general", "blocks": blocks}),
        Payload::Json(json!({"a": 1})),
    )
    .await
    .unwrap();

    assert_eq!(sent["channel"], "C0000000001");
    assert_eq!(sent["text"], Value::Null);
    assert_eq!(
        posts(&fake)[0].json(),
        json!({"channel": "general", "blocks": blocks})
    );
}

#[tokio::test]
async fn ok_false_answers_become_errors_naming_the_slack_error() {
    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    let text = |channel: &str| json!({"channel": channel, "text": "hi"});

    let error = send(&m, "send_message", text("#nope"), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert!(
        error
            .message()
            .contains("chat.postMessage failed: channel_not_found"),
        "{error}"
    );
    assert!(error.message().contains("#nope"), "{error}");
    assert_eq!(error.context_value("error"), Some("channel_not_found"));
    assert_eq!(error.status(), Some(200), "Slack says it inside a 200");

    let error = send(&m, "send_message", text("#private-ops"), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert_eq!(error.context_value("error"), Some("not_in_channel"));

    let error = send(&m, "send_message", text("#old-alerts"), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidState, "{error}");
    assert_eq!(error.context_value("error"), Some("is_archived"));

    let error = send(
        &m,
        "send_message",
        json!({"channel": "#general", "blocks": [{"text": "no type"}]}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.context_value("error"), Some("invalid_blocks"));

    let mut wrong = settings(&fake);
    wrong["token"] = json!("xoxb-wrong-token");
    let refused = saas_common::configured(slack::factory(), wrong, &[], vec![]);
    let error = refused.activate(slack::ID).await.unwrap_err();
    assert!(
        error.message().contains("auth.test failed: invalid_auth"),
        "activation checks the token: {error}"
    );
    assert!(!error.to_string().contains("xoxb-wrong-token"));

    let mut s = slack::SlackSettings::with_token("xoxb-wrong-token".to_string().into());
    s.base_url = format!("{}/api/", fake.url());
    let client = slack::SlackClient::new(&s).unwrap();
    let message = slack::PostMessage {
        channel: "#general".into(),
        text: Some("hi".into()),
        ..Default::default()
    };
    let error = client.post_message(&message).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert_eq!(error.context_value("error"), Some("invalid_auth"));
}

#[tokio::test]
async fn missing_scope_says_which_scope_is_needed() {
    let fake = kernelize_fakes::slack::start(Config {
        scopes: vec!["channels:read".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let error = send(
        &m,
        "send_message",
        json!({"channel": "#general", "text": "x"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert!(error.message().contains("missing_scope"), "{error}");
    assert!(
        error
            .message()
            .contains("needs `chat:write` and has `channels:read`"),
        "{error}"
    );
    assert_eq!(error.context_value("needed"), Some("chat:write"));
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after() {
    let fake = kernelize_fakes::slack::start(Config {
        rate_limited: 1,
        retry_after: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let started = Instant::now();
    let sent = send(
        &m,
        "send_message",
        json!({"channel": "#general", "text": "x"}),
        Payload::Empty,
    )
    .await
    .unwrap();

    assert_eq!(sent["channel"], "C0000000001");
    assert!(started.elapsed() >= Duration::from_secs(1));
    let seen = posts(&fake);
    assert_eq!(seen.len(), 2, "refused once, then posted");
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1));
    assert_eq!(history(&fake, "#general").await.len(), 1, "posted once");
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_policy_allows_is_a_rate_limited_error() {
    let fake = kernelize_fakes::slack::start(Config {
        rate_limited: 1,
        retry_after: 120,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let error = send(
        &m,
        "send_message",
        json!({"channel": "#general", "text": "x"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn warnings_of_a_successful_post_are_returned() {
    let fake = kernelize_fakes::slack::start(Config {
        warning: Some("superfluous_charset".into()),
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let sent = send(
        &m,
        "send_message",
        json!({"channel": "#general", "text": "x"}),
        Payload::Empty,
    )
    .await
    .unwrap();

    assert_eq!(sent["warnings"], json!(["superfluous_charset"]));
}

#[tokio::test]
async fn send_webhook_posts_json_and_reads_ok() {
    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let sent = send(
        &m,
        "send_webhook",
        json!({}),
        Payload::Json(json!({"table": "t", "rows_loaded": 1})),
    )
    .await
    .unwrap();

    assert_eq!(
        sent,
        json!({"delivered": true, "text": "Loaded 1 row into `t`."})
    );
    let seen = fake.journal().matching("POST", WEBHOOK_PATH);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].json(), json!({"text": "Loaded 1 row into `t`."}));
    assert!(
        seen[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        seen[0].header("authorization").is_none(),
        "the bot token is not sent to webhooks"
    );
    assert_eq!(
        history(&fake, DATA_PIPELINE).await[0]["text"],
        "Loaded 1 row into `t`."
    );
}

#[tokio::test]
async fn webhook_error_texts_become_errors_that_keep_the_url_secret() {
    for (status, text, kind) in [
        (400, "invalid_payload", ErrorKind::InvalidInput),
        (403, "action_prohibited", ErrorKind::PermissionDenied),
        (404, "channel_not_found", ErrorKind::NotFound),
        (410, "channel_is_archived", ErrorKind::InvalidState),
        (500, "rollup_error", ErrorKind::Remote),
    ] {
        let fake = kernelize_fakes::slack::start(Config {
            webhook_error: Some((status, text.into())),
            ..Config::default()
        })
        .await
        .unwrap();
        let m = manager(settings(&fake)).await;

        let error = send(&m, "send_webhook", json!({"text": "x"}), Payload::Empty)
            .await
            .unwrap_err();

        assert_eq!(error.kind(), kind, "{text}: {error}");
        assert_eq!(error.status(), Some(status));
        assert!(
            error
                .message()
                .contains(&format!("answered {status}: {text}")),
            "{error}"
        );
        assert!(
            !error.to_string().contains("XXXXXXXX"),
            "the URL stays out: {error}"
        );
        assert_eq!(
            fake.journal().matching("POST", WEBHOOK_PATH).len(),
            1,
            "{text}: not retried"
        );
    }
}

#[tokio::test]
async fn a_webhook_url_in_the_config_is_used_and_checked_against_grants() {
    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let mut token_only = settings(&fake);
    token_only.as_object_mut().unwrap().remove("webhook_url");
    let m = manager(token_only).await;

    let error = send(&m, "send_webhook", json!({"text": "x"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid, "{error}");

    let url = format!("{}{WEBHOOK_PATH}", fake.url());
    send(
        &m,
        "send_webhook",
        json!({"text": "x", "webhook_url": url}),
        Payload::Empty,
    )
    .await
    .unwrap();
    assert_eq!(fake.journal().matching("POST", WEBHOOK_PATH).len(), 1);

    let elsewhere = url.replace("127.0.0.1", "localhost");
    let error = send(
        &m,
        "send_webhook",
        json!({"text": "x", "webhook_url": elsewhere}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert!(!error.to_string().contains("XXXXXXXX"), "{error}");

    let error = send(
        &m,
        "send_webhook",
        json!({"text": "x", "webhook_url": format!("{}/services/T1/B1/wrong", fake.url())}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert!(error.message().contains("no_service"), "{error}");
    assert!(!error.to_string().contains("wrong"), "{error}");
}

#[tokio::test]
async fn settings_need_a_token_or_a_webhook() {
    let empty = PluginManager::new();
    empty.install(slack::factory()).unwrap();
    empty.configure(slack::ID, PluginConfig::with_settings(json!({})));
    let error = empty.activate(slack::ID).await.unwrap_err();
    assert!(error.to_string().contains("`token`"), "{error}");

    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let mut webhook_only = settings(&fake);
    webhook_only.as_object_mut().unwrap().remove("token");
    let m = manager(webhook_only).await;
    let error = send(
        &m,
        "send_message",
        json!({"channel": "#general", "text": "x"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid, "{error}");
    assert!(posts(&fake).is_empty());
}

#[tokio::test]
async fn the_client_checks_the_token_with_auth_test() {
    let fake = kernelize_fakes::slack::start(Config::default())
        .await
        .unwrap();
    let mut s = slack::SlackSettings::with_token(TOKEN.to_string().into());
    s.base_url = format!("{}/api/", fake.url());
    let client = slack::SlackClient::new(&s).unwrap();

    let me = client.auth_test().await.unwrap();

    assert_eq!(me.bot_id.as_deref(), Some("B0FAKEBOT"));
    let seen = fake.journal().matching("POST", "/api/auth.test");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}
