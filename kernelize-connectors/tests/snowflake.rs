//! The `snowflake-connector` against the fake SQL API v2 (`kernelize_fakes::snowflake`):
//! every action called by name with JSON config, as a workflow calls it.

#![cfg(feature = "snowflake")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine;
use kernelize_connectors::snowflake::{
    self, MigrateConfig, SnowflakeClient, SnowflakeSettings, Statement, migrate,
};
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Call, ErrorKind, Payload, Permission, PermissionGuard, PluginManager};
use kernelize_fakes::Fake;
use kernelize_fakes::snowflake::{Config, MissingTokenType, Table, public_key_fingerprint};
use serde_json::{Value, json};

mod saas_common;

const PRIVATE_KEY: &str = include_str!("fixtures/jwt-test-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/jwt-test-key.pub.pem");

/// The extract of `examples/workflows/data_sync.yaml`.
const DATA_SYNC_QUERY: &str = "SELECT * FROM sales_data WHERE updated_at > :last_sync";

async fn fake(config: Config) -> Fake {
    kernelize_fakes::snowflake::start(config).await.unwrap()
}

/// A fake that answers at once, without the 429 of the default.
fn quick() -> Config {
    Config {
        pending_polls: 0,
        rate_limited: 0,
        ..Config::default()
    }
}

fn settings(fake: &Fake, auth: Value) -> Value {
    json!({
        "account": "kz12345.us-east-1",
        "user": "loader",
        "base_url": fake.url(),
        "auth": auth,
        "warehouse": "LOAD_WH",
        "database": "ANALYTICS",
        "schema": "PUBLIC",
        "role": "LOADER",
        "poll": {"initial": "10ms", "max": "20ms"},
        "http": {"retry": {"base_delay": "10ms", "max_delay": "50ms"}},
    })
}

fn oauth(fake: &Fake) -> Value {
    settings(fake, json!({"type": "oauth", "token": "fake-token"}))
}

async fn manager_with(settings: Value, extra: Vec<Permission>) -> PluginManager {
    saas_common::activated(snowflake::factory(), settings, &[], extra).await
}

async fn manager(settings: Value) -> PluginManager {
    manager_with(settings, Vec::new()).await
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
) -> kernelize_core::Result<Payload> {
    saas_common::call(manager, snowflake::ID, action, config, Payload::Empty).await
}

async fn rows(manager: &PluginManager, action: &str, config: Value) -> Vec<Value> {
    saas_common::json_rows(call(manager, action, config).await.unwrap())
}

fn submits(fake: &Fake) -> Vec<kernelize_fakes::Seen> {
    fake.journal().matching("POST", "/api/v2/statements")
}

fn jwt_claims(authorization: &str) -> Value {
    let token = authorization.strip_prefix("Bearer ").unwrap();
    let claims = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn data_sync_extract_runs_against_the_default_fake() {
    // Given the default fake: 429 once, 202 before the result, two rows a partition.
    let fake = fake(Config::default()).await;
    let m = manager(oauth(&fake)).await;

    // When the workflow's extract runs on a first run (last_sync is the epoch).
    let call = Call::new("extract", Payload::Empty)
        .with_config(json!({"query": DATA_SYNC_QUERY}))
        .with_var("last_sync", "1970-01-01T00:00:00.000Z");
    let records = m
        .call(snowflake::ID, call)
        .await
        .unwrap()
        .into_records()
        .unwrap();

    // Then every row of both partitions comes back, typed.
    assert_eq!(records.num_rows(), 4);
    let types: Vec<String> = records
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    assert_eq!(types[0], "ID:Int64");
    assert_eq!(types[1], "REGION:Utf8");
    assert_eq!(types[2], "AMOUNT:Decimal128(12, 2)");
    assert!(types[3].starts_with("UPDATED_AT:Timestamp(µs"), "{types:?}");
    let rows = records.to_json_rows().unwrap();
    assert_eq!(rows[0]["ID"], 1);
    assert_eq!(rows[0]["REGION"], "north");
    assert_eq!(rows[0]["UPDATED_AT"], "2024-01-05T08:00:00Z");
    assert_eq!(rows[3]["AMOUNT"], Value::Null);
    assert_eq!(rows[3]["UPDATED_AT"], "2024-04-20T09:15:00.500Z");

    // And the requests were the documented ones.
    let posts = submits(&fake);
    assert_eq!(posts.len(), 2, "the 429 is answered by one resend");
    let body = posts[1].json();
    assert_eq!(
        body["statement"],
        "SELECT * FROM sales_data WHERE updated_at > ?"
    );
    assert_eq!(
        body["bindings"],
        json!({"1": {"type": "TEXT", "value": "1970-01-01T00:00:00Z"}})
    );
    assert_eq!(body["warehouse"], "LOAD_WH");
    assert_eq!(body["database"], "ANALYTICS");
    assert_eq!(body["schema"], "PUBLIC");
    assert_eq!(body["role"], "LOADER");
    for post in &posts {
        assert_eq!(post.header("authorization"), Some("Bearer fake-token"));
        assert_eq!(
            post.header("x-snowflake-authorization-token-type"),
            Some("OAUTH")
        );
        assert_eq!(post.header("accept"), Some("application/json"));
        assert!(
            post.header("user-agent")
                .unwrap()
                .starts_with("kernelize-snowflake-connector/")
        );
        assert_eq!(post.param("nullable").as_deref(), Some("true"));
        assert_eq!(post.param("async").as_deref(), Some("false"));
    }
    let gets = fake.journal().matching("GET", "/api/v2/statements/*");
    assert!(
        gets.iter().any(|g| g.param("partition").is_none()),
        "the 202 is polled"
    );
    assert_eq!(
        gets.iter()
            .filter(|g| g.param("partition").as_deref() == Some("1"))
            .count(),
        1,
        "the second partition is fetched once"
    );
}

#[tokio::test]
async fn a_429_is_resent_with_the_same_request_id_and_retry_true() {
    let fake = fake(Config {
        pending_polls: 0,
        ..Config::default()
    })
    .await;
    let m = manager(oauth(&fake)).await;

    let rows = rows(
        &m,
        "query",
        json!({"statement": "SELECT * FROM sales_data"}),
    )
    .await;

    assert_eq!(rows.len(), 4);
    let posts = submits(&fake);
    assert_eq!(posts.len(), 2);
    let id = posts[0].param("requestId").unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "a version 4 UUID: {id}");
    assert_eq!(posts[1].param("requestId").unwrap(), id);
    assert_eq!(posts[0].param("retry"), None);
    assert_eq!(posts[1].param("retry").as_deref(), Some("true"));
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let fake = fake(Config {
        pending_polls: 0,
        retry_after_secs: Some(1),
        ..Config::default()
    })
    .await;
    let m = manager(oauth(&fake)).await;

    let started = Instant::now();
    let rows = rows(
        &m,
        "query",
        json!({"statement": "SELECT COUNT(*) FROM sales_data"}),
    )
    .await;

    assert_eq!(rows[0]["COUNT(*)"], 4);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn extract_binds_last_sync_and_params_as_bindings() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;

    let call = Call::new("extract", Payload::Empty)
        .with_config(json!({
            "query": "SELECT id, region FROM sales_data WHERE updated_at > :last_sync AND region <> :skip ORDER BY id",
            "params": {"skip": "east"},
        }))
        .with_var("last_sync", "2024-02-01T01:00:00+01:00")
        .with_var("skip", "ignored: params win");
    let rows = m
        .call(snowflake::ID, call)
        .await
        .unwrap()
        .into_records()
        .unwrap()
        .to_json_rows()
        .unwrap();

    assert_eq!(
        rows,
        vec![
            json!({"ID": 2, "REGION": "south"}),
            json!({"ID": 4, "REGION": "west"})
        ]
    );
    let body = submits(&fake)[0].json();
    assert_eq!(
        body["statement"],
        "SELECT id, region FROM sales_data WHERE updated_at > ? AND region <> ? ORDER BY id"
    );
    assert_eq!(
        body["bindings"],
        json!({
            "1": {"type": "TEXT", "value": "2024-02-01T00:00:00Z"},
            "2": {"type": "TEXT", "value": "east"},
        })
    );
}

#[tokio::test]
async fn extract_without_last_sync_reads_from_the_epoch() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;

    let rows = rows(&m, "extract", json!({"query": DATA_SYNC_QUERY})).await;

    assert_eq!(rows.len(), 4);
    assert_eq!(
        submits(&fake)[0].json()["bindings"]["1"]["value"],
        "1970-01-01T00:00:00Z"
    );
}

#[tokio::test]
async fn an_unbound_placeholder_is_refused_before_any_request() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;

    let err = call(
        &m,
        "extract",
        json!({"query": "SELECT * FROM sales_data WHERE id = :id"}),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains(":id"), "{err}");
    assert!(submits(&fake).is_empty());
}

#[tokio::test]
async fn query_binds_positional_params_with_snowflake_types() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;

    let rows = rows(
        &m,
        "query",
        json!({"statement": "SELECT region FROM sales_data WHERE id >= ? AND amount > ?", "params": [2, 100.5]}),
    )
    .await;

    assert_eq!(rows, vec![json!({"REGION": "east"})]);
    assert_eq!(
        submits(&fake)[0].json()["bindings"],
        json!({"1": {"type": "FIXED", "value": "2"}, "2": {"type": "REAL", "value": "100.5"}})
    );
}

#[tokio::test]
async fn a_bad_statement_is_an_error_with_snowflake_code_and_sql_state() {
    // Given a fake that answers 202 first, so the failure arrives on a poll.
    let fake = fake(Config {
        rate_limited: 0,
        ..Config::default()
    })
    .await;
    let m = manager(oauth(&fake)).await;

    let err = call(
        &m,
        "query",
        json!({"statement": "SELECT * FROM no_such_table"}),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Remote);
    assert_eq!(err.status(), Some(422));
    assert!(!err.is_temporary());
    assert!(
        err.message()
            .contains("Object 'NO_SUCH_TABLE' does not exist"),
        "{err}"
    );
    assert_eq!(err.context_value("code"), Some("002003"));
    assert_eq!(err.context_value("sql_state"), Some("42S02"));
    assert!(err.context_value("statement_handle").is_some());
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_a_timeout_error_and_is_not_resent() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;

    let err = call(
        &m,
        "query",
        json!({"statement": "SELECT SYSTEM$WAIT(30)", "timeout": "2s"}),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.status(), Some(408));
    assert!(err.message().contains("000630"), "{err}");
    let posts = submits(&fake);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json()["timeout"], 2);
}

#[tokio::test]
async fn key_pair_jwt_names_account_user_and_fingerprint_and_verifies() {
    // Given a fake that knows the user's public key.
    let fake = fake(Config {
        account: Some("KZ12345".into()),
        user: Some("LOADER".into()),
        public_key_pem: Some(PUBLIC_KEY.into()),
        ..quick()
    })
    .await;
    let m = manager(settings(
        &fake,
        json!({"type": "key_pair", "private_key": PRIVATE_KEY}),
    ))
    .await;

    let rows = rows(&m, "query", json!({"statement": "SELECT 1"})).await;

    assert_eq!(rows, vec![json!({"1": 1})]);
    let post = &submits(&fake)[0];
    assert_eq!(
        post.header("x-snowflake-authorization-token-type"),
        Some("KEYPAIR_JWT")
    );
    let claims = jwt_claims(post.header("authorization").unwrap());
    let fingerprint = public_key_fingerprint(PUBLIC_KEY).unwrap();
    assert_eq!(claims["iss"], format!("KZ12345.LOADER.{fingerprint}"));
    assert_eq!(claims["sub"], "KZ12345.LOADER");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 59 * 60);
}

#[tokio::test]
async fn a_fingerprint_of_another_key_is_refused_as_permission_denied() {
    let fake = fake(Config {
        public_key_pem: Some(PUBLIC_KEY.into()),
        ..quick()
    })
    .await;
    let wrong = format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let m = manager(settings(
        &fake,
        json!({"type": "key_pair", "private_key": PRIVATE_KEY, "public_key_fingerprint": wrong}),
    ))
    .await;

    let err = call(&m, "query", json!({"statement": "SELECT 1"}))
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.status(), Some(401));
    assert!(err.message().contains("JWT token is invalid"), "{err}");
    assert!(!err.to_string().contains("BEGIN PRIVATE KEY"));
    // The JWT layer signs a new token once after a 401, then gives up.
    assert_eq!(submits(&fake).len(), 2);
}

#[tokio::test]
async fn key_pair_needs_a_user_and_a_jwt_lifetime_of_at_most_an_hour() {
    let fake = fake(quick()).await;
    for auth in [
        json!({"type": "key_pair", "private_key": PRIVATE_KEY, "jwt_lifetime": "2h"}),
        json!({"type": "key_pair", "private_key": "not a key"}),
    ] {
        let manager =
            saas_common::configured(snowflake::factory(), settings(&fake, auth), &[], vec![]);
        let err = manager.activate(snowflake::ID).await.unwrap_err();
        assert!(
            format!("{err}").contains("jwt_lifetime") || format!("{err}").contains("private_key"),
            "{err}"
        );
    }
    let mut no_user = settings(
        &fake,
        json!({"type": "key_pair", "private_key": PRIVATE_KEY}),
    );
    no_user.as_object_mut().unwrap().remove("user");
    let settings: SnowflakeSettings = serde_json::from_value(no_user).unwrap();
    let err = SnowflakeClient::new(&settings).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    assert!(err.message().contains("user"), "{err}");
}

#[tokio::test]
async fn oauth_may_leave_out_the_token_type_header() {
    let fake = fake(quick()).await;
    let m = manager(settings(
        &fake,
        json!({"type": "oauth", "token": "fake-token", "send_token_type": false}),
    ))
    .await;

    rows(&m, "query", json!({"statement": "SELECT 1"})).await;

    assert_eq!(
        submits(&fake)[0].header("x-snowflake-authorization-token-type"),
        None
    );

    // A server that wants the header refuses the request.
    let strict = kernelize_fakes::snowflake::start(Config {
        missing_token_type: MissingTokenType::Reject,
        ..quick()
    })
    .await
    .unwrap();
    let m = manager(settings(
        &strict,
        json!({"type": "oauth", "token": "fake-token", "send_token_type": false}),
    ))
    .await;
    let err = call(&m, "query", json!({"statement": "SELECT 1"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
}

#[tokio::test]
async fn a_programmatic_access_token_says_so() {
    let fake = fake(quick()).await;
    let m = manager(settings(
        &fake,
        json!({"type": "programmatic_access_token", "token": "fake-pat"}),
    ))
    .await;

    rows(&m, "query", json!({"statement": "SELECT 1"})).await;

    let post = &submits(&fake)[0];
    assert_eq!(post.header("authorization"), Some("Bearer fake-pat"));
    assert_eq!(
        post.header("x-snowflake-authorization-token-type"),
        Some("PROGRAMMATIC_ACCESS_TOKEN")
    );
}

#[tokio::test]
async fn a_wrong_oauth_token_is_permission_denied_with_snowflake_message() {
    let fake = fake(quick()).await;
    let m = manager(settings(&fake, json!({"type": "oauth", "token": "stale"}))).await;

    let err = call(&m, "query", json!({"statement": "SELECT 1"}))
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(
        err.message().contains("Invalid OAuth access token"),
        "{err}"
    );
    assert!(!err.to_string().contains("stale"), "{err}");
}

const CREATE_ANALYTICS: &str = "CREATE TABLE sales_analytics (id NUMBER(38,0), region VARCHAR, amount NUMBER(12,2), ok BOOLEAN, updated_at TIMESTAMP_NTZ)";

fn sample_rows(n: usize) -> Value {
    Value::Array(
        (1..=n)
            .map(|i| {
                json!({
                    "id": i,
                    "region": if i % 2 == 0 { Value::Null } else { json!(format!("r{i}")) },
                    "amount": i as f64 + 0.25,
                    "ok": i % 2 == 0,
                    "updated_at": format!("2024-06-0{i}T10:00:00Z"),
                })
            })
            .collect(),
    )
}

#[tokio::test]
async fn load_inserts_batches_with_array_binding_and_the_rows_read_back() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;
    call(&m, "query", json!({"statement": CREATE_ANALYTICS}))
        .await
        .unwrap();

    let summary = m
        .call(
            snowflake::ID,
            Call::new("load", Payload::Json(sample_rows(5)))
                .with_config(json!({"table": "sales_analytics", "batch_size": 2})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();

    assert_eq!(summary["rows_inserted"], 5);
    assert_eq!(summary["batches"], 3);
    assert_eq!(summary["statement_handles"].as_array().unwrap().len(), 3);
    let inserts: Vec<Value> = submits(&fake)
        .iter()
        .map(|s| s.json())
        .filter(|b| b["statement"].as_str().unwrap().starts_with("INSERT"))
        .collect();
    assert_eq!(inserts.len(), 3);
    let sql = inserts[0]["statement"].as_str().unwrap();
    assert!(sql.starts_with("INSERT INTO sales_analytics ("), "{sql}");
    assert!(sql.ends_with(") VALUES (?, ?, ?, ?, ?)"), "{sql}");
    let bindings = &inserts[0]["bindings"];
    let by_name = |name: &str| {
        let i = columns_of(&inserts[0])
            .split(", ")
            .position(|c| c == name)
            .unwrap();
        bindings[(i + 1).to_string()].clone()
    };
    assert_eq!(by_name("id"), json!({"type": "FIXED", "value": ["1", "2"]}));
    assert_eq!(
        by_name("region"),
        json!({"type": "TEXT", "value": ["r1", null]})
    );
    assert_eq!(
        by_name("amount"),
        json!({"type": "REAL", "value": ["1.25", "2.25"]})
    );
    assert_eq!(
        by_name("ok"),
        json!({"type": "BOOLEAN", "value": ["false", "true"]})
    );

    let back = rows(
        &m,
        "query",
        json!({"statement": "SELECT id, region, amount, ok, updated_at FROM sales_analytics ORDER BY id"}),
    )
    .await;
    assert_eq!(back.len(), 5);
    assert_eq!(back[0]["ID"], 1);
    assert_eq!(back[0]["REGION"], "r1");
    assert_eq!(back[1]["REGION"], Value::Null);
    assert_eq!(back[1]["OK"], true);
    assert_eq!(back[4]["UPDATED_AT"], "2024-06-05T10:00:00Z");
}

fn columns_of(body: &Value) -> String {
    let s = body["statement"].as_str().unwrap();
    let open = s.find('(').unwrap();
    let close = s.find(')').unwrap();
    s[open + 1..close].to_string()
}

#[tokio::test]
async fn load_can_bind_row_by_row() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;
    call(&m, "query", json!({"statement": CREATE_ANALYTICS}))
        .await
        .unwrap();

    let summary = m
        .call(
            snowflake::ID,
            Call::new("load", Payload::Json(sample_rows(3)))
                .with_config(json!({"table": "SALES_ANALYTICS", "binding": "rows"})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();

    assert_eq!(summary["rows_inserted"], 3);
    assert_eq!(summary["batches"], 1);
    let insert = submits(&fake).last().unwrap().json();
    assert!(
        insert["statement"]
            .as_str()
            .unwrap()
            .ends_with("VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)"),
        "{insert}"
    );
    assert_eq!(insert["bindings"].as_object().unwrap().len(), 15);
    let count = rows(
        &m,
        "query",
        json!({"statement": "SELECT COUNT(*) FROM sales_analytics"}),
    )
    .await;
    assert_eq!(count[0]["COUNT(*)"], 3);
}

#[tokio::test]
async fn extracted_records_load_into_another_table_unchanged() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;
    call(
        &m,
        "query",
        json!({"statement": "CREATE TABLE sales_copy (id NUMBER(38,0), region VARCHAR, amount NUMBER(12,2), updated_at TIMESTAMP_NTZ)"}),
    )
    .await
    .unwrap();
    let extracted = call(&m, "extract", json!({"query": DATA_SYNC_QUERY}))
        .await
        .unwrap();

    let summary = m
        .call(
            snowflake::ID,
            Call::new("load", extracted).with_config(json!({"table": "sales_copy"})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();

    assert_eq!(summary["rows_inserted"], 4);
    let original = rows(
        &m,
        "query",
        json!({"statement": "SELECT * FROM sales_data ORDER BY id"}),
    )
    .await;
    let copy = rows(
        &m,
        "query",
        json!({"statement": "SELECT * FROM sales_copy ORDER BY id"}),
    )
    .await;
    assert_eq!(copy, original);
}

#[tokio::test]
async fn a_resent_insert_is_not_applied_twice() {
    // Given a fake that runs the first insert but loses its answer (503).
    let fake = fake(Config {
        unavailable_after_submit: 1,
        tables: vec![Table::new("T", &[("ID", "NUMBER(38,0)")])],
        ..quick()
    })
    .await;
    let m = manager(oauth(&fake)).await;

    let summary = m
        .call(
            snowflake::ID,
            Call::new("load", Payload::Json(json!([{"ID": 1}, {"ID": 2}])))
                .with_config(json!({"table": "T"})),
        )
        .await
        .unwrap()
        .into_json()
        .unwrap();

    assert_eq!(summary["rows_inserted"], 2);
    let posts = submits(&fake);
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].param("requestId"), posts[1].param("requestId"));
    assert_eq!(posts[1].param("retry").as_deref(), Some("true"));
    let count = rows(&m, "query", json!({"statement": "SELECT COUNT(*) FROM t"})).await;
    assert_eq!(count[0]["COUNT(*)"], 2, "the rows were inserted once");
}

#[tokio::test]
async fn a_resumed_load_sends_the_same_request_ids_with_retry() {
    let fake = fake(Config {
        tables: vec![Table::new("T", &[("ID", "NUMBER(38,0)")])],
        ..quick()
    })
    .await;
    let m = manager(oauth(&fake)).await;
    let load = || {
        Call::new("load", Payload::Json(json!([{"ID": 1}, {"ID": 2}])))
            .with_config(json!({"table": "T"}))
            .with_idempotency_key("run-7/step-load/1")
    };

    m.call(snowflake::ID, load()).await.unwrap();
    m.call(snowflake::ID, load()).await.unwrap();

    let posts = submits(&fake);
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].param("requestId"), posts[1].param("requestId"));
    assert!(
        posts
            .iter()
            .all(|p| p.param("retry").as_deref() == Some("true"))
    );
    let count = rows(&m, "query", json!({"statement": "SELECT COUNT(*) FROM t"})).await;
    assert_eq!(count[0]["COUNT(*)"], 2);
}

fn migrations() -> Value {
    json!([
        {"version": "2", "description": "add notes", "sql": "ALTER TABLE customers ADD COLUMN notes VARCHAR"},
        {"version": "1", "description": "customers", "sql": "CREATE TABLE customers (id NUMBER(38,0) NOT NULL, name VARCHAR)"},
        {"version": "1.1", "description": "orders and items", "sql": "CREATE TABLE orders (id NUMBER(38,0));\nCREATE TABLE items (id NUMBER(38,0), order_id NUMBER(38,0));"},
    ])
}

#[tokio::test]
async fn migrate_applies_pending_migrations_in_order_once() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;

    let first = call(&m, "migrate", json!({"migrations": migrations()}))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    let second = call(&m, "migrate", json!({"migrations": migrations()}))
        .await
        .unwrap()
        .into_json()
        .unwrap();

    let versions = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["version"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(versions(&first["applied"]), ["1", "1.1", "2"]);
    assert_eq!(first["already_applied"], json!([]));
    assert_eq!(second["applied"], json!([]));
    assert_eq!(second["already_applied"], json!(["1", "1.1", "2"]));

    let history = rows(
        &m,
        "query",
        json!({"statement": "SELECT installed_rank, version, description, checksum, success FROM KERNELIZE_SCHEMA_HISTORY ORDER BY installed_rank"}),
    )
    .await;
    assert_eq!(history.len(), 3);
    assert_eq!(history[1]["VERSION"], "1.1");
    assert_eq!(history[1]["DESCRIPTION"], "orders and items");
    assert_eq!(history[1]["SUCCESS"], true);
    assert_eq!(history[1]["CHECKSUM"].as_str().unwrap().len(), 64);
    // The two-statement migration went as one multi-statement request.
    let multi = submits(&fake)
        .iter()
        .map(|s| s.json())
        .find(|b| {
            b["statement"]
                .as_str()
                .unwrap()
                .starts_with("CREATE TABLE orders")
        })
        .unwrap();
    assert_eq!(multi["parameters"]["multi_statement_count"], 2);
    let columns = rows(
        &m,
        "query",
        json!({"statement": "SELECT id, name, notes FROM customers"}),
    )
    .await;
    assert!(columns.is_empty());
}

#[tokio::test]
async fn migrate_refuses_a_changed_migration() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;
    call(&m, "migrate", json!({"migrations": migrations()}))
        .await
        .unwrap();

    let mut changed = migrations();
    changed[1]["sql"] =
        json!("CREATE TABLE customers (id NUMBER(38,0) NOT NULL, name VARCHAR, email VARCHAR)");
    let err = call(&m, "migrate", json!({"migrations": changed}))
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message()
            .contains("migration 1 changed after it was applied"),
        "{err}"
    );
    assert_eq!(err.context_value("version"), Some("1"));
}

#[tokio::test]
async fn migrate_refuses_an_out_of_order_migration() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;
    call(
        &m,
        "migrate",
        json!({"migrations": [
            {"version": "1", "sql": "CREATE TABLE a (id NUMBER)"},
            {"version": "3", "sql": "CREATE TABLE c (id NUMBER)"},
        ], "history_table": "schema_history"}),
    )
    .await
    .unwrap();

    let err = call(
        &m,
        "migrate",
        json!({"migrations": [
            {"version": "1", "sql": "CREATE TABLE a (id NUMBER)"},
            {"version": "2", "sql": "CREATE TABLE b (id NUMBER)"},
            {"version": "3", "sql": "CREATE TABLE c (id NUMBER)"},
        ], "history_table": "schema_history"}),
    )
    .await
    .unwrap_err();

    assert!(
        err.message().contains("migration 2 is older than 3"),
        "{err}"
    );
    let b = call(&m, "query", json!({"statement": "SELECT * FROM b"})).await;
    assert!(b.is_err(), "nothing was applied");
}

#[tokio::test]
async fn a_failed_migration_is_recorded_and_blocks_the_next_run() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;
    let bad = json!({"migrations": [
        {"version": "1", "sql": "CREATE TABLE a (id NUMBER)"},
        {"version": "2", "sql": "ALTER TABLE missing ADD COLUMN x NUMBER"},
    ]});

    let err = call(&m, "migrate", bad.clone()).await.unwrap_err();
    assert!(err.message().contains("migration 2 failed"), "{err}");
    assert!(
        err.message().contains("applied before it in this call: 1"),
        "{err}"
    );

    let err = call(&m, "migrate", bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert!(err.message().contains("SUCCESS = FALSE"), "{err}");
}

#[tokio::test]
async fn migrate_reads_a_directory_of_versioned_files_it_may_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("V1__create_things.sql"),
        "CREATE TABLE things (id NUMBER)",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("V1_1__add_name.sql"),
        "ALTER TABLE things ADD COLUMN name VARCHAR",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a migration").unwrap();
    let fake = fake(quick()).await;
    let settings: SnowflakeSettings = serde_json::from_value(oauth(&fake)).unwrap();
    let client = SnowflakeClient::new(&settings).unwrap();
    let config: MigrateConfig = serde_json::from_value(json!({"directory": dir.path()})).unwrap();

    // With a file-read grant on the directory (Rust code holding the client).
    let mut ctx = context();
    ctx.permissions = PermissionGuard::new(
        "snowflake-connector",
        vec![Permission::FileRead {
            path: dir.path().to_path_buf(),
        }],
        None,
    );
    let summary = migrate::migrate(&client, &ctx, &config).await.unwrap();
    assert_eq!(summary.applied.len(), 2);
    assert_eq!(summary.applied[0].description, "create things");
    assert_eq!(summary.applied[1].version, "1.1");

    // Through the plugin, a host's file-read grant on the directory lets it read it (the
    // migrations are already applied, so nothing more is)...
    let granted = manager_with(
        oauth(&fake),
        vec![Permission::FileRead {
            path: dir.path().to_path_buf(),
        }],
    )
    .await;
    let answer = call(&granted, "migrate", json!({"directory": dir.path()}))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(answer["applied"], json!([]), "{answer}");

    // ...and without one the directory is not read.
    let m = manager(oauth(&fake)).await;
    let err = call(&m, "migrate", json!({"directory": dir.path()}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
}

fn context() -> ActionContext {
    ActionContext {
        action: "test".into(),
        deadline: None,
        cancel: Default::default(),
        permissions: PermissionGuard::none(),
        idempotency_key: None,
        vars: Default::default(),
    }
}

#[tokio::test]
async fn an_async_statement_can_be_cancelled() {
    // Given a statement that stays running.
    let fake = fake(Config {
        pending_polls: 1000,
        ..quick()
    })
    .await;
    let m = manager(oauth(&fake)).await;
    let submitted = call(
        &m,
        "query",
        json!({"statement": "SELECT * FROM sales_data", "async": true}),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    let handle = submitted["statement_handle"].as_str().unwrap().to_string();
    assert_eq!(submits(&fake)[0].param("async").as_deref(), Some("true"));

    // When it is cancelled.
    let cancelled = call(&m, "cancel", json!({"statement_handle": handle}))
        .await
        .unwrap()
        .into_json()
        .unwrap();

    // Then Snowflake says so, and its result is a cancelled error.
    assert_eq!(cancelled["message"], "successfully canceled");
    assert_eq!(
        fake.journal()
            .matching("POST", &format!("/api/v2/statements/{handle}/cancel"))
            .len(),
        1
    );
    let err = call(&m, "result", json!({"statement_handle": handle}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(err.message().contains("SQL execution canceled"), "{err}");
}

#[tokio::test]
async fn result_reads_an_async_statement_when_it_is_done() {
    let fake = fake(Config {
        pending_polls: 3,
        ..quick()
    })
    .await;
    let m = manager(oauth(&fake)).await;
    let submitted = call(
        &m,
        "query",
        json!({"statement": "SELECT * FROM sales_data", "async": true}),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    let rows = rows(
        &m,
        "result",
        json!({"statement_handle": submitted["statement_handle"]}),
    )
    .await;

    assert_eq!(rows.len(), 4);
}

#[tokio::test]
async fn a_call_past_its_deadline_cancels_the_statement_on_snowflake() {
    let fake = fake(Config {
        pending_polls: 100_000,
        ..quick()
    })
    .await;
    let m = manager(oauth(&fake)).await;

    let err = m
        .call(
            snowflake::ID,
            Call::new("query", Payload::Empty)
                .with_config(json!({"statement": "SELECT * FROM sales_data"}))
                .with_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Timeout);
    let started = Instant::now();
    while fake
        .journal()
        .matching("POST", "/api/v2/statements/*")
        .is_empty()
        && started.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancels = fake.journal().matching("POST", "/api/v2/statements/*");
    assert_eq!(cancels.len(), 1);
    assert!(cancels[0].path.ends_with("/cancel"));
}

#[tokio::test]
async fn several_statements_need_a_count_and_give_each_result() {
    let fake = fake(Config {
        rate_limited: 0,
        ..Config::default()
    })
    .await;
    let m = manager(oauth(&fake)).await;
    let sql = "SELECT COUNT(*) FROM sales_data; SELECT region FROM sales_data WHERE id = :id";

    let err = call(&m, "query", json!({"statement": sql, "params": {"id": 3}}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("multi_statement_count: 2"), "{err}");

    let out = call(
        &m,
        "query",
        json!({"statement": sql, "params": {"id": 3}, "multi_statement_count": 2}),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    let statements = out["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[0]["rows"], json!([{"COUNT(*)": 4}]));
    assert_eq!(statements[1]["rows"], json!([{"REGION": "east"}]));
    assert_eq!(
        submits(&fake).last().unwrap().json()["parameters"]["multi_statement_count"],
        2
    );
}

#[tokio::test]
async fn later_partitions_with_metadata_and_upper_case_types_read_the_same() {
    let fake = fake(Config {
        later_partitions_with_metadata: true,
        upper_case_type_names: true,
        partition_rows: 1,
        ..quick()
    })
    .await;
    let m = manager(oauth(&fake)).await;

    let rows = rows(&m, "extract", json!({"query": DATA_SYNC_QUERY})).await;

    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2]["AMOUNT"].to_string(), "310.25");
    assert_eq!(
        fake.journal()
            .matching("GET", "/api/v2/statements/*")
            .iter()
            .filter(|g| g.param("partition").is_some())
            .count(),
        3
    );
}

#[tokio::test]
async fn max_rows_is_checked_before_the_partitions_are_fetched() {
    let fake = fake(quick()).await;
    let m = manager(oauth(&fake)).await;

    let err = call(
        &m,
        "extract",
        json!({"query": "SELECT * FROM sales_data", "max_rows": 3}),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("4 rows, more than the 3"), "{err}");
    assert!(
        fake.journal()
            .matching("GET", "/api/v2/statements/*")
            .is_empty()
    );
}

#[tokio::test]
async fn the_client_works_without_the_plugin() {
    let fake = fake(Config::default()).await;
    let settings: SnowflakeSettings = serde_json::from_value(oauth(&fake)).unwrap();
    let client = SnowflakeClient::new(&settings).unwrap();
    let ctx = context();

    let result = client
        .execute(
            &ctx,
            &Statement::new("SELECT * FROM sales_data ORDER BY id DESC"),
            None,
        )
        .await
        .unwrap();

    assert_eq!(result.rows.len(), 4);
    assert_eq!(result.rows[0][0], json!("4"));
    assert_eq!(result.columns[3].kind, "timestamp_ntz");
    assert!(!result.statement_handle.is_empty());
}
