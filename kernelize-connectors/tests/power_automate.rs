//! The `power-automate-connector` plugin against the Power Automate fake
//! (`kernelize_fakes::power_automate`), called by action name with JSON config, as a
//! workflow calls it: HTTP-triggered flows with a SAS signature or an Entra bearer token,
//! and approvals polled to their decision.
#![cfg(feature = "power-automate")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::power_automate;
use kernelize_core::{ErrorKind, Payload, PluginManager, Records};
use kernelize_fakes::Fake;
use kernelize_fakes::power_automate::{
    CLIENT_ID, CLIENT_SECRET, Config, FLOW_ACCEPTED, FLOW_APPROVAL, FLOW_RESPONSE, SCOPE, SIG,
    StatusLink, TENANT,
};
use serde_json::{Value, json};

mod saas_common;

// ---------------------------------------------------------------------------------------
// helpers

const SIGNED: &str = "sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=";

fn legacy_url(fake: &Fake, flow: &str) -> String {
    format!(
        "{}/workflows/{flow}/triggers/manual/paths/invoke?api-version=2016-06-01&{SIGNED}{SIG}",
        fake.url()
    )
}

fn direct_url(fake: &Fake, flow: &str) -> String {
    format!(
        "{}/powerautomate/automations/direct/workflows/{flow}/triggers/manual/paths/invoke?api-version=1&{SIGNED}{SIG}",
        fake.url()
    )
}

fn tenant_only_url(fake: &Fake, flow: &str) -> String {
    format!(
        "{}/powerautomate/automations/direct/workflows/{flow}/triggers/manual/paths/invoke?api-version=1",
        fake.url()
    )
}

fn entra(fake: &Fake, secret: &str) -> Value {
    json!({
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "token_url": format!("{}/{TENANT}/oauth2/v2.0/token", fake.url()),
    })
}

async fn manager(mut settings: Value) -> PluginManager {
    if settings.get("poll").is_none() {
        settings["poll"] = json!({"initial": "10ms", "max": "20ms", "max_wait": "10s"});
    }
    saas_common::activated(power_automate::factory(), settings, &[], vec![]).await
}

async fn call(
    m: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Value> {
    saas_common::call(m, power_automate::ID, action, config, input)
        .await?
        .into_json()
}

async fn start(config: Config) -> Fake {
    kernelize_fakes::power_automate::start(config)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// trigger_flow

#[tokio::test]
async fn trigger_flow_posts_json_with_the_signature_and_takes_202_accepted() {
    let fake = start(Config::default()).await;
    let m = manager(json!({"flow_url": legacy_url(&fake, FLOW_ACCEPTED)})).await;
    let out = call(
        &m,
        "trigger_flow",
        Value::Null,
        Payload::Json(json!({"order": 7})),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], 202);
    assert_eq!(out["body"], Value::Null);
    assert!(out["run_id"].as_str().unwrap().starts_with("08584"));

    let seen = fake.journal().matching(
        "POST",
        &format!("/workflows/{FLOW_ACCEPTED}/triggers/manual/paths/invoke"),
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].json(), json!({"order": 7}));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[0].param("api-version").as_deref(), Some("2016-06-01"));
    assert_eq!(seen[0].param("sig").as_deref(), Some(SIG));
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "the signature is the only credential"
    );
}

#[tokio::test]
async fn a_response_actions_status_and_body_come_back() {
    let fake = start(Config::default()).await;
    let m = manager(json!({})).await;
    let rows = Records::from_json_rows(&[json!({"id": 1}), json!({"id": 2})]).unwrap();
    let out = call(
        &m,
        "trigger_flow",
        json!({"flow_url": direct_url(&fake, FLOW_RESPONSE), "headers": {"x-request-source": "kernelize"}}),
        Payload::Records(rows),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(
        out["body"],
        json!({"received": [{"id": 1}, {"id": 2}]}),
        "records go as an array of rows"
    );
    let seen = &fake.requests()[0];
    assert!(
        seen.path
            .starts_with("/powerautomate/automations/direct/workflows/")
    );
    assert_eq!(seen.param("api-version").as_deref(), Some("1"));
    assert_eq!(seen.header("x-request-source"), Some("kernelize"));
}

#[tokio::test]
async fn a_tenant_only_flow_gets_an_entra_bearer_token_fetched_once() {
    let fake = start(Config::default()).await;
    let m = manager(json!({"flow_url": tenant_only_url(&fake, FLOW_RESPONSE), "entra": entra(&fake, CLIENT_SECRET)})).await;
    for _ in 0..2 {
        let out = call(
            &m,
            "trigger_flow",
            json!({"body": {"a": 1}}),
            Payload::Empty,
        )
        .await
        .unwrap();
        assert_eq!(out["status"], 200);
    }
    let tokens = fake
        .journal()
        .matching("POST", &format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(tokens.len(), 1, "the token is shared");
    let form = tokens[0].form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], SCOPE);
    assert_eq!(form["client_id"], CLIENT_ID);
    let invokes = fake.journal().matching("POST", "/powerautomate/*");
    assert_eq!(invokes.len(), 2);
    assert!(invokes.iter().all(|s| {
        s.header("authorization")
            .unwrap()
            .starts_with("Bearer fake-entra-token-")
    }));
    assert!(invokes.iter().all(|s| s.param("sig").is_none()));
}

#[tokio::test]
async fn mixing_or_missing_credentials_is_refused_before_anything_is_sent() {
    let fake = start(Config::default()).await;
    let m = manager(json!({"entra": entra(&fake, CLIENT_SECRET)})).await;
    let error = call(
        &m,
        "trigger_flow",
        json!({"flow_url": direct_url(&fake, FLOW_RESPONSE)}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(
        error.message().contains("refuses a request with both"),
        "{error}"
    );
    let m = manager(json!({})).await;
    let error = call(
        &m,
        "trigger_flow",
        json!({"flow_url": tenant_only_url(&fake, FLOW_RESPONSE)}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(error.message().contains("configure `entra`"), "{error}");
    let error = call(&m, "trigger_flow", Value::Null, Payload::Empty)
        .await
        .unwrap_err();
    assert!(error.message().contains("flow_url"), "{error}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_wrong_signature_is_permission_denied_with_the_services_code_and_no_query_shown() {
    let fake = start(Config::default()).await;
    let url = legacy_url(&fake, FLOW_ACCEPTED).replace(SIG, "stolen-or-stale-sig");
    let m = manager(json!({"flow_url": url})).await;
    let error = call(&m, "trigger_flow", Value::Null, Payload::Json(json!({})))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert_eq!(error.status(), Some(401));
    assert!(
        error
            .message()
            .contains("DirectApiInvalidAuthorizationSignature"),
        "{error}"
    );
    assert!(
        error.message().contains(&format!(
            "/workflows/{FLOW_ACCEPTED}/triggers/manual/paths/invoke"
        )),
        "{error}"
    );
    assert!(
        !error.to_string().contains("stolen-or-stale-sig"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("api-version"),
        "no query in messages: {error}"
    );
}

#[tokio::test]
async fn service_errors_become_clear_errors_by_status() {
    let fake = start(Config::default()).await;
    let m = manager(json!({})).await;
    let no_version = format!(
        "{}/workflows/{FLOW_ACCEPTED}/triggers/manual/paths/invoke?{SIGNED}{SIG}",
        fake.url()
    );
    let error = call(
        &m,
        "trigger_flow",
        json!({"flow_url": no_version}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(
        error.message().contains("MissingApiVersionParameter"),
        "{error}"
    );

    let error = call(
        &m,
        "trigger_flow",
        json!({"flow_url": legacy_url(&fake, "deleted-flow")}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(error.message().contains("WorkflowNotFound"), "{error}");

    // The approval flow's trigger schema requires `assigned_to`.
    let error = call(
        &m,
        "trigger_flow",
        json!({"flow_url": legacy_url(&fake, FLOW_APPROVAL), "body": {"title": "x"}}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert_eq!(error.status(), Some(400));
    assert!(
        error.message().contains("TriggerInputSchemaMismatch"),
        "{error}"
    );
    assert!(!error.is_temporary());
}

#[tokio::test]
async fn a_bad_client_secret_is_permission_denied_at_the_token_endpoint() {
    let fake = start(Config::default()).await;
    let m = manager(json!({"flow_url": tenant_only_url(&fake, FLOW_RESPONSE), "entra": entra(&fake, "not-the-secret")})).await;
    let error = call(&m, "trigger_flow", Value::Null, Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert!(error.message().contains("token endpoint"), "{error}");
    assert!(error.message().contains("invalid_client"), "{error}");
    assert!(!error.to_string().contains("not-the-secret"));
    assert!(
        fake.journal()
            .matching("POST", "/powerautomate/*")
            .is_empty()
    );
}

#[tokio::test]
async fn a_throttled_trigger_is_waited_out_for_its_retry_after() {
    let fake = start(Config {
        rate_limited: 1,
        retry_after_secs: 1,
        ..Config::default()
    })
    .await;
    let m = manager(json!({"flow_url": legacy_url(&fake, FLOW_ACCEPTED)})).await;
    let started = Instant::now();
    let out = call(
        &m,
        "trigger_flow",
        Value::Null,
        Payload::Json(json!({"a": 1})),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], 202);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1));
}

// ---------------------------------------------------------------------------------------
// request_approval

#[tokio::test]
async fn request_approval_polls_the_status_url_until_approved() {
    let fake = start(Config::default()).await;
    let m = manager(json!({"flow_url": legacy_url(&fake, FLOW_APPROVAL)})).await;
    let out = call(
        &m,
        "request_approval",
        json!({"title": "Release 1.4", "assigned_to": "cab@contoso.com", "requestor": "ci@contoso.com", "extra": {"ticket": "CHG-9"}}),
        Payload::Json(json!("Changes: faster exports")),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], "Approved");
    assert_eq!(out["approved"], true);
    assert_eq!(out["comments"], "Looks good");
    assert_eq!(out["polls"], 3, "two pending answers, then the decision");
    let approval_id = out["approval_id"].as_str().unwrap();

    let request = &fake.journal().matching(
        "POST",
        &format!("/workflows/{FLOW_APPROVAL}/triggers/manual/paths/invoke"),
    )[0];
    assert_eq!(
        request.json(),
        json!({"title": "Release 1.4", "assigned_to": "cab@contoso.com", "details": "Changes: faster exports", "requestor": "ci@contoso.com", "ticket": "CHG-9"})
    );
    let polls = fake.journal().matching("GET", "/workflows/*");
    assert_eq!(polls.len(), 3);
    assert!(
        polls[0]
            .path
            .ends_with(&format!("/approvals/{approval_id}"))
    );
    assert_eq!(polls[0].param("sig").as_deref(), Some(SIG));
}

#[tokio::test]
async fn a_location_header_alone_is_followed_and_202_means_pending() {
    let fake = start(Config {
        status_link: StatusLink::Location,
        pending_202: true,
        approval_polls: 1,
        ..Config::default()
    })
    .await;
    let m = manager(json!({"flow_url": direct_url(&fake, FLOW_APPROVAL)})).await;
    let out = call(
        &m,
        "request_approval",
        json!({"title": "t", "assigned_to": "a@contoso.com"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    assert_eq!(out["status"], "Approved");
    assert_eq!(out["polls"], 2);
    assert!(
        out["approval_id"].as_str().unwrap().starts_with("apr-"),
        "read from the status answer"
    );
}

#[tokio::test]
async fn a_rejection_is_an_answer_or_with_fail_on_reject_an_error() {
    let fake = start(Config {
        approval_outcome: "Rejected".into(),
        status_link: StatusLink::Body,
        approval_polls: 0,
        ..Config::default()
    })
    .await;
    let m = manager(json!({"flow_url": legacy_url(&fake, FLOW_APPROVAL)})).await;
    let out = call(
        &m,
        "request_approval",
        json!({"title": "t", "assigned_to": "a@contoso.com"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    assert_eq!(out["status"], "Rejected");
    assert_eq!(out["approved"], false);
    let error = call(
        &m,
        "request_approval",
        json!({"title": "Budget", "assigned_to": "a@contoso.com", "fail_on_reject": true}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert!(
        error
            .message()
            .contains("`Budget` was rejected: Not this quarter"),
        "{error}"
    );
}

#[tokio::test]
async fn without_wait_the_request_returns_pending_and_a_long_approval_times_out() {
    let fake = start(Config {
        approval_polls: u32::MAX,
        ..Config::default()
    })
    .await;
    let m = manager(json!({"flow_url": legacy_url(&fake, FLOW_APPROVAL)})).await;
    let out = call(
        &m,
        "request_approval",
        json!({"title": "t", "assigned_to": "a@contoso.com", "wait": false}),
        Payload::Empty,
    )
    .await
    .unwrap();
    assert_eq!(out["status"], "Pending");
    assert_eq!(out["polls"], 0);
    assert!(fake.journal().matching("GET", "/workflows/*").is_empty());

    let started = Instant::now();
    let error = call(
        &m,
        "request_approval",
        json!({"title": "Slow", "assigned_to": "a@contoso.com", "max_wait": "150ms"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.message().contains("the approval `Slow`"), "{error}");
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn an_approval_flow_without_a_status_url_is_a_clear_error() {
    let fake = start(Config::default()).await;
    let m = manager(json!({"flow_url": legacy_url(&fake, FLOW_ACCEPTED)})).await;
    let error = call(
        &m,
        "request_approval",
        json!({"title": "t", "assigned_to": "a@contoso.com"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert!(error.message().contains("without a status URL"), "{error}");
}
