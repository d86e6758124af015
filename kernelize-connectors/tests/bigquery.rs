//! The `bigquery-connector` against the BigQuery fake: called by action name with JSON
//! config, as a workflow calls it, through a plugin manager.

#![cfg(feature = "bigquery")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::bigquery;
use kernelize_core::arrow_array::Array;
use kernelize_core::arrow_array::cast::AsArray;
use kernelize_core::arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use kernelize_core::arrow_schema::{DataType, TimeUnit};
use kernelize_core::{Call, ErrorKind, Payload, PluginManager, Records};
use kernelize_fakes::bigquery::{self as fake, Config};
use serde_json::{Value, json};

mod saas_common;
use saas_common::records;

const PRIVATE_KEY: &str = include_str!("fixtures/jwt-test-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/jwt-test-key.pub.pem");

/// A service-account key file for the fake's service account, as IAM hands it out (its
/// `token_uri` is Google's: the settings' `token_url` points the connector at the fake).
fn key_file(client_email: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": fake::PROJECT_ID,
        "private_key_id": "0123456789abcdef",
        "private_key": PRIVATE_KEY,
        "client_email": client_email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

fn verifying() -> Config {
    Config {
        public_key_pem: Some(PUBLIC_KEY.into()),
        ..Config::default()
    }
}

/// Settings pointing at `fake`, with fast polls and retries; `extra` overrides.
fn settings(fake: &kernelize_fakes::Fake, extra: Value) -> Value {
    let base = json!({
        "base_url": format!("{}/bigquery/v2", fake.url()),
        "token_url": format!("{}/token", fake.url()),
        "service_account_key": "${secret:BQ_KEY}",
        "poll": {"initial": "10ms", "max": "20ms"},
        "http": {"retry": {"base_delay": "20ms", "max_delay": "50ms"}},
    });
    saas_common::overlaid(base, extra)
}

async fn manager_with_key(settings: Value, key: String) -> PluginManager {
    saas_common::activated(bigquery::factory(), settings, &[("BQ_KEY", &key)], vec![]).await
}

async fn manager(settings: Value) -> PluginManager {
    manager_with_key(settings, key_file(fake::CLIENT_EMAIL)).await
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Payload> {
    saas_common::call(manager, bigquery::ID, action, config, input).await
}

// ---------------------------------------------------------------- query

#[tokio::test]
async fn query_signs_in_polls_reads_every_page_and_types_the_columns() {
    let fake = fake::start(verifying()).await.unwrap();
    let m = manager(settings(&fake, json!({"location": "EU"}))).await;
    let out = call(
        &m,
        "query",
        json!({
            "query": "SELECT * FROM fake_dataset.events WHERE id > @min_id AND created > @since",
            "params": {"min_id": 0, "since": {"type": "TIMESTAMP", "value": "2024-01-01 00:00:00 UTC"}},
            "labels": {"team": "data"},
            "maximum_bytes_billed": 1000000000u64,
        }),
        Payload::Empty,
    )
    .await
    .unwrap();
    let records = records(out);
    assert_eq!(records.num_rows(), 5);
    let batch = records.concat().unwrap();
    let schema = batch.schema();
    let types: Vec<(&str, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("id", DataType::Int64),
            ("name", DataType::Utf8),
            ("amount", DataType::Decimal128(38, 9)),
            ("score", DataType::Float64),
            ("active", DataType::Boolean),
            ("day", DataType::Date32),
            (
                "created",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            ),
            ("tags", DataType::Utf8),
            ("meta", DataType::Utf8),
        ]
    );
    let ids = batch.column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.values().to_vec(), vec![1, 2, 3, 4, 5]);
    assert_eq!(batch.column(1).as_string::<i32>().value(0), "alpha");
    assert!(batch.column(1).is_null(2));
    let amounts = batch.column(2).as_primitive::<Decimal128Type>();
    assert_eq!(amounts.value(0), 12_500_000_000);
    assert_eq!(amounts.value(4), 7_000_000_001);
    let scores = batch.column(3).as_primitive::<Float64Type>();
    assert_eq!(scores.value(3), -0.35);
    assert_eq!(scores.value(4), 1000.0);
    assert!(batch.column(4).as_boolean().value(0));
    let days = batch.column(5).as_primitive::<Date32Type>();
    assert_eq!(days.value(0), 19844); // 2024-05-01
    let created = batch.column(6).as_primitive::<TimestampMicrosecondType>();
    // "1.7145216E9" seconds is 2024-05-01T00:00:00Z; "1714809600.5" keeps its half second.
    assert_eq!(created.value(0), 1_714_521_600_000_000);
    assert_eq!(created.value(3), 1_714_809_600_500_000);
    assert!(created.is_null(2));
    assert_eq!(batch.column(7).as_string::<i32>().value(0), r#"["a","b"]"#);
    assert_eq!(
        batch.column(8).as_string::<i32>().value(0),
        r#"{"source":"web","rank":1}"#
    );

    // One token, fetched with a signed assertion the fake verified.
    let tokens = fake.journal().matching("POST", "/token");
    assert_eq!(tokens.len(), 1);
    let form = tokens[0].form();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    // jobs.query: GoogleSQL, named typed parameters, a requestId, the location.
    let posts = fake
        .journal()
        .matching("POST", "/bigquery/v2/projects/fake-project/queries");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].header("authorization"), Some("Bearer ya29.fake-1"));
    let body = posts[0].json();
    assert_eq!(body["useLegacySql"], false);
    assert_eq!(body["location"], "EU");
    assert_eq!(body["parameterMode"], "NAMED");
    assert_eq!(body["labels"], json!({"team": "data"}));
    assert_eq!(body["maximumBytesBilled"], "1000000000");
    assert_eq!(body["requestId"].as_str().unwrap().len(), 36);
    let params = body["queryParameters"].as_array().unwrap();
    assert!(params.contains(&json!({
        "name": "min_id", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "0"}
    })));
    assert!(params.contains(&json!({
        "name": "since", "parameterType": {"type": "TIMESTAMP"},
        "parameterValue": {"value": "2024-01-01 00:00:00 UTC"}
    })));
    // jobs.query answered jobComplete: false; one poll completed it with the first page,
    // and two more pages followed by pageToken, all in the job's location.
    let gets = fake
        .journal()
        .matching("GET", "/bigquery/v2/projects/fake-project/queries/*");
    assert_eq!(gets.len(), 3);
    assert!(gets[0].param("pageToken").is_none());
    assert!(gets[1].param("pageToken").is_some());
    assert!(gets[2].param("pageToken").is_some());
    assert!(
        gets.iter()
            .all(|g| g.param("location").as_deref() == Some("EU"))
    );
}

#[tokio::test]
async fn max_results_makes_smaller_pages() {
    let fake = fake::start(Config {
        incomplete_answers: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let out = call(
        &m,
        "query",
        json!({"query": "SELECT 1", "max_results": 1}),
        Payload::Empty,
    )
    .await
    .unwrap();
    assert_eq!(records(out).num_rows(), 5);
    let gets = fake
        .journal()
        .matching("GET", "/bigquery/v2/projects/fake-project/queries/*");
    assert_eq!(
        gets.len(),
        4,
        "the first page came with jobs.query, four more by pageToken"
    );
    assert!(
        gets.iter()
            .all(|g| g.param("maxResults").as_deref() == Some("1"))
    );
}

#[tokio::test]
async fn more_rows_than_max_rows_is_an_error_not_a_silent_cut() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({"max_rows": 3}))).await;
    let err = call(&m, "query", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("max_rows"), "{err}");
}

#[tokio::test]
async fn dml_answers_the_affected_row_count() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let out = call(
        &m,
        "query",
        json!({"query": "UPDATE fake_dataset.events SET name = 'x' WHERE id < 4"}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let rows = records(out).to_json_rows().unwrap();
    assert_eq!(rows, vec![json!({"num_dml_affected_rows": 3})]);
}

#[tokio::test]
async fn workflow_variables_named_in_the_sql_are_bound() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let call_ = Call::new("query", Payload::Empty)
        .with_config(json!({"query": "SELECT * FROM t WHERE created > @last_sync"}))
        .with_var("last_sync", "2024-05-01T00:00:00Z")
        .with_var("run_id", "r-1");
    m.call(bigquery::ID, call_).await.unwrap();
    let body = fake
        .journal()
        .matching("POST", "/bigquery/v2/projects/fake-project/queries")[0]
        .json();
    assert_eq!(
        body["queryParameters"],
        json!([{
            "name": "last_sync", "parameterType": {"type": "TIMESTAMP"},
            "parameterValue": {"value": "2024-05-01T00:00:00Z"}
        }])
    );
}

#[tokio::test]
async fn an_invalid_query_is_a_clear_error_with_bigquerys_message() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let err = call(
        &m,
        "query",
        json!({"query": "SELECT SYNTAX_ERROR FROM t"}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.context_value("reason"), Some("invalidQuery"));
    assert!(err.message().contains("Syntax error"), "{err}");
    assert!(!err.is_temporary());
}

#[tokio::test]
async fn the_fake_refuses_legacy_sql_as_bigquery_does() {
    let fake = fake::start(Config::default()).await.unwrap();
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/bigquery/v2/projects/fake-project/queries",
            fake.url()
        ))
        .bearer_auth(fake::ACCESS_TOKEN)
        .json(&json!({"query": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "invalidQuery");
}

// ---------------------------------------------------------------- rate limits, failures

#[tokio::test]
async fn rate_limit_exceeded_403_is_retried_with_the_same_request_id() {
    let fake = fake::start(Config {
        rate_limit_times: 1,
        incomplete_answers: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let out = call(&m, "query", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap();
    assert_eq!(records(out).num_rows(), 5);
    let posts = fake
        .journal()
        .matching("POST", "/bigquery/v2/projects/fake-project/queries");
    assert_eq!(posts.len(), 2, "the 403 rateLimitExceeded was retried once");
    assert_eq!(posts[0].json()["requestId"], posts[1].json()["requestId"]);
}

#[tokio::test]
async fn a_backend_error_is_retried_and_the_request_id_finds_the_job_already_made() {
    let fake = fake::start(Config {
        backend_error_times: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let out = call(&m, "query", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap();
    assert_eq!(records(out).num_rows(), 5);
    let posts = fake
        .journal()
        .matching("POST", "/bigquery/v2/projects/fake-project/queries");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].json()["requestId"], posts[1].json()["requestId"]);
    let gets = fake
        .journal()
        .matching("GET", "/bigquery/v2/projects/fake-project/queries/*");
    assert!(
        gets.iter().all(|g| g.path.ends_with("/job_fake_2")),
        "one job (counter 1 was the token)"
    );
}

#[tokio::test]
async fn quota_exceeded_fails_at_once_with_a_long_retry_after() {
    let fake = fake::start(Config {
        quota_exceeded: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let err = call(&m, "query", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(err.message().contains("quota exceeded"), "{err}");
    assert!(err.retry_after().unwrap() >= Duration::from_secs(600));
    assert_eq!(err.status(), Some(403));
    assert_eq!(
        fake.journal()
            .matching("POST", "/bigquery/v2/projects/fake-project/queries")
            .len(),
        1,
        "quotaExceeded is not retried"
    );
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn the_token_is_reused_across_calls() {
    let fake = fake::start(verifying()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    for _ in 0..2 {
        call(&m, "dry_run", json!({"query": "SELECT 1"}), Payload::Empty)
            .await
            .unwrap();
    }
    assert_eq!(fake.journal().matching("POST", "/token").len(), 1);
}

#[tokio::test]
async fn a_plain_access_token_is_sent_as_is() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(
        &fake,
        json!({"service_account_key": null, "access_token": "fake-token", "project_id": "fake-project"}),
    ))
    .await;
    call(&m, "dry_run", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap();
    assert!(fake.journal().matching("POST", "/token").is_empty());
    let post = &fake
        .journal()
        .matching("POST", "/bigquery/v2/projects/fake-project/queries")[0];
    assert_eq!(post.header("authorization"), Some("Bearer fake-token"));
}

#[tokio::test]
async fn a_refused_access_token_is_permission_denied() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(
        &fake,
        json!({"service_account_key": null, "access_token": "wrong-token", "project_id": "fake-project"}),
    ))
    .await;
    let err = call(&m, "dry_run", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!(err.status(), Some(401));
    assert!(!format!("{err:?}").contains("wrong-token"));
}

#[tokio::test]
async fn an_assertion_from_an_unknown_service_account_is_refused() {
    let fake = fake::start(verifying()).await.unwrap();
    let m = manager_with_key(
        settings(&fake, json!({})),
        key_file("someone-else@fake-project.iam.gserviceaccount.com"),
    )
    .await;
    let err = call(&m, "dry_run", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("invalid_grant"), "{err}");
    assert!(
        !err.message().contains("BEGIN"),
        "the key never appears: {err}"
    );
}

// ---------------------------------------------------------------- insert

#[tokio::test]
async fn insert_batches_rows_with_ids_from_the_idempotency_key_so_a_repeat_is_deduplicated() {
    let config = Config::default();
    let inserted = config.inserted.clone();
    let fake = fake::start(config).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let rows = json!([
        {"id": 10, "name": "ten"},
        {"id": 11, "name": "eleven"},
        {"id": 12, "name": "twelve", "tags": ["x"]},
    ]);
    let input = Records::from_json_rows(rows.as_array().unwrap()).unwrap();
    for _ in 0..2 {
        let out = m
            .call(
                bigquery::ID,
                Call::new("insert", Payload::Records(input.clone()))
                    .with_config(
                        json!({"dataset": "fake_dataset", "table": "events", "batch_size": 2}),
                    )
                    .with_idempotency_key("step-42"),
            )
            .await
            .unwrap()
            .into_json()
            .unwrap();
        assert_eq!(out["inserted"], 3);
        assert_eq!(out["failed"], 0);
        assert_eq!(out["batches"], 2);
    }
    let posts = fake.journal().matching(
        "POST",
        "/bigquery/v2/projects/fake-project/datasets/fake_dataset/tables/events/insertAll",
    );
    assert_eq!(posts.len(), 4, "two batches, twice");
    let first = posts[0].json();
    assert_eq!(first["rows"][0]["insertId"], "step-42-0");
    assert_eq!(first["rows"][1]["insertId"], "step-42-1");
    assert_eq!(first["rows"][0]["json"]["name"], "ten");
    assert_eq!(first["skipInvalidRows"], false);
    assert_eq!(posts[1].json()["rows"][0]["insertId"], "step-42-2");
    // The repeat was dropped by insertId: three rows stored, not six.
    assert_eq!(inserted.all().len(), 3);
    let table = call(
        &m,
        "schema",
        json!({"dataset": "fake_dataset", "table": "events"}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(table["num_rows"], 8);
}

#[tokio::test]
async fn insert_ids_can_come_from_a_key_column() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    call(
        &m,
        "insert",
        json!({"dataset": "fake_dataset", "table": "events", "insert_id_column": "id",
               "rows": [{"id": 20}, {"id": "21"}]}),
        Payload::Empty,
    )
    .await
    .unwrap();
    let post = &fake.journal().matching("POST", "/bigquery/v2/*")[0];
    let body = post.json();
    assert_eq!(body["rows"][0]["insertId"], "20");
    assert_eq!(body["rows"][1]["insertId"], "21");
}

#[tokio::test]
async fn refused_rows_fail_the_call_by_default_naming_row_and_column() {
    let config = Config::default();
    let inserted = config.inserted.clone();
    let fake = fake::start(config).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let rows = json!([{"id": 30}, {"name": "no id"}, {"id": 32}]);
    let err = call(
        &m,
        "insert",
        json!({"dataset": "fake_dataset", "table": "events", "rows": rows}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.message()
            .contains("row 1: invalid at `id`: Missing required field: id."),
        "{err}"
    );
    assert!(err.message().contains("3 of 3 rows (0 inserted)"), "{err}");
    assert!(
        inserted.all().is_empty(),
        "without skip_invalid_rows nothing is stored"
    );

    // Reported, not failed; and with skip_invalid_rows the good rows are stored.
    let out = call(
        &m,
        "insert",
        json!({"dataset": "fake_dataset", "table": "events", "rows": rows,
               "fail_on_row_errors": false, "skip_invalid_rows": true}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(out["inserted"], 2);
    assert_eq!(out["failed"], 1);
    assert_eq!(
        out["row_errors"],
        json!([{"index": 1, "reason": "invalid", "location": "id", "message": "Missing required field: id."}])
    );
    assert_eq!(inserted.all().len(), 2);
}

#[tokio::test]
async fn stopped_rows_are_reported_with_their_reason() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let out = call(
        &m,
        "insert",
        json!({"dataset": "fake_dataset", "table": "events", "fail_on_row_errors": false,
               "rows": [{"id": 40}, {"id": "forty-one"}]}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(out["inserted"], 0);
    assert_eq!(out["row_errors"][0]["reason"], "stopped");
    assert_eq!(
        out["row_errors"][1]["message"],
        "Cannot convert value to integer."
    );
}

#[tokio::test]
async fn inserting_into_a_missing_table_is_not_found() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let err = call(
        &m,
        "insert",
        json!({"dataset": "fake_dataset", "table": "nope", "rows": [{"id": 1}]}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.message()
            .contains("Table fake-project:fake_dataset.nope"),
        "{err}"
    );
}

// ---------------------------------------------------------------- schema

#[tokio::test]
async fn add_columns_patches_the_whole_schema_guarded_by_the_etag() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let before = call(
        &m,
        "schema",
        json!({"dataset": "fake_dataset", "table": "events"}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(before["fields"].as_array().unwrap().len(), 9);
    assert_eq!(
        before["fields"][0],
        json!({"name": "id", "type": "INTEGER", "mode": "REQUIRED"})
    );
    assert_eq!(before["etag"], "etag-1");

    let out = call(
        &m,
        "schema",
        json!({"dataset": "fake_dataset", "table": "events", "operation": "add_columns",
               "columns": [{"name": "country", "type": "STRING", "description": "ISO code"},
                           {"name": "name", "type": "STRING"}]}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(
        out["added"],
        json!(["country"]),
        "an existing same-typed column is left alone"
    );
    assert_eq!(out["etag"], "etag-2");
    let fields = out["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 10);
    assert_eq!(fields[9]["name"], "country");

    let patch = &fake.journal().matching(
        "PATCH",
        "/bigquery/v2/projects/fake-project/datasets/fake_dataset/tables/events",
    )[0];
    assert_eq!(patch.header("if-match"), Some("etag-1"));
    let sent = patch.json()["schema"]["fields"].clone();
    // Existing columns go back exactly as read (the description and the record's fields
    // included), the new one after them.
    assert_eq!(sent.as_array().unwrap()[..9], fake::events_schema()[..]);
    assert_eq!(
        sent[9],
        json!({"name": "country", "type": "STRING", "description": "ISO code"})
    );
}

#[tokio::test]
async fn a_required_new_column_is_refused_before_anything_is_sent() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let err = call(
        &m,
        "schema",
        json!({"dataset": "fake_dataset", "table": "events", "operation": "add_columns",
               "columns": [{"name": "must", "type": "STRING", "mode": "REQUIRED"}]}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("REQUIRED"), "{err}");
    assert!(fake.journal().matching("GET", "/bigquery/v2/*").is_empty());
    assert!(
        fake.journal()
            .matching("PATCH", "/bigquery/v2/*")
            .is_empty()
    );
}

#[tokio::test]
async fn a_schema_changed_meanwhile_fails_the_patch_instead_of_being_overwritten() {
    let fake = fake::start(Config {
        etag_race_once: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let err = call(
        &m,
        "schema",
        json!({"dataset": "fake_dataset", "table": "events", "operation": "add_columns",
               "columns": [{"name": "country", "type": "STRING"}]}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}");
    assert_eq!(err.status(), Some(412));
    assert!(err.message().contains("etag"), "{err}");
}

#[tokio::test]
async fn changing_an_existing_columns_type_is_refused() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let err = call(
        &m,
        "schema",
        json!({"dataset": "fake_dataset", "table": "events", "operation": "add_columns",
               "columns": [{"name": "id", "type": "STRING"}]}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("already exists"), "{err}");
}

// ---------------------------------------------------------------- dry run

#[tokio::test]
async fn dry_run_reports_bytes_and_cost_without_running() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(settings(&fake, json!({}))).await;
    let out = call(
        &m,
        "dry_run",
        json!({"query": "SELECT * FROM fake_dataset.events", "default_dataset": "fake_dataset"}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(out["total_bytes_processed"], 5u64 * 1024 * 1024 * 1024);
    let cost = out["estimated_cost"].as_f64().unwrap();
    assert!((cost - 5.0 / 1024.0 * 6.25).abs() < 1e-9, "{cost}");
    assert_eq!(out["currency"], "USD");
    assert_eq!(out["cache_hit"], false);
    assert_eq!(out["schema"].as_array().unwrap().len(), 9);
    let body = fake
        .journal()
        .matching("POST", "/bigquery/v2/projects/fake-project/queries")[0]
        .json();
    assert_eq!(body["dryRun"], true);
    assert_eq!(
        body["defaultDataset"],
        json!({"projectId": "fake-project", "datasetId": "fake_dataset"})
    );
    assert!(fake.journal().matching("GET", "/bigquery/v2/*").is_empty());

    let priced = call(
        &m,
        "dry_run",
        json!({"query": "SELECT 1", "price_per_tib": 1024.0}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(priced["estimated_cost"], 5.0);
}

#[tokio::test]
async fn a_poll_that_never_completes_times_out_naming_the_job() {
    let fake = fake::start(Config {
        incomplete_answers: 1000,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(
        &fake,
        json!({"poll": {"initial": "10ms", "max": "20ms", "max_wait": "200ms"}}),
    ))
    .await;
    let started = Instant::now();
    let err = call(&m, "query", json!({"query": "SELECT 1"}), Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("BigQuery job job_fake_"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(150));
}
