//! The `databricks-connector` against the Databricks fake: called the way workflows call it
//! (by action name with JSON config and input, through a plugin manager), and its client
//! directly.

#![cfg(feature = "databricks")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::databricks::{self, DatabricksClient, DatabricksSettings};
use kernelize_core::arrow_schema::{DataType, TimeUnit};
use kernelize_core::{Call, ErrorKind, Payload, PluginManager, Records};
use kernelize_fakes::databricks::{Config, TOKEN, VOLUME, WAREHOUSE};
use kernelize_fakes::{Fake, Seen};
use serde_json::{Value, json};

mod saas_common;

fn settings(fake: &Fake) -> Value {
    json!({
        "host": fake.url(),
        "token": TOKEN,
        "warehouse_id": WAREHOUSE,
        "catalog": "main",
        "schema": "default",
        "staging_path": VOLUME,
        "poll": {"initial": "10ms", "max": "20ms"},
        "http": {"retry": {"base_delay": "10ms"}},
    })
}

async fn manager(settings: Value) -> PluginManager {
    saas_common::activated(databricks::factory(), settings, &[], vec![]).await
}

async fn call(m: &PluginManager, call: Call) -> kernelize_core::Result<Payload> {
    m.call(databricks::ID, call).await
}

async fn query(m: &PluginManager, config: Value) -> kernelize_core::Result<Records> {
    call(m, Call::new("query", Payload::Empty).with_config(config))
        .await?
        .into_records()
}

fn statement_posts(fake: &Fake) -> Vec<Seen> {
    fake.journal().matching("POST", "/api/2.0/sql/statements")
}

#[tokio::test]
async fn query_polls_reads_every_chunk_and_types_the_columns() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let records = query(&m, json!({"statement": "SELECT * FROM orders"}))
        .await
        .unwrap();

    assert_eq!(records.num_rows(), 7, "three chunks of 3, 3 and 1 rows");
    let schema = records.schema();
    let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(
        types,
        vec![
            &DataType::Int64,
            &DataType::Utf8,
            &DataType::Decimal128(10, 2),
            &DataType::Float64,
            &DataType::Boolean,
            &DataType::Date32,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ]
    );
    let rows = records.to_json_rows().unwrap();
    assert_eq!(rows[0]["id"], 1);
    let amount = rows[0]["amount"].to_string();
    assert_eq!(
        amount.trim_matches('"').parse::<f64>().unwrap(),
        12.5,
        "{amount}"
    );
    assert_eq!(rows[0]["paid"], true);
    assert_eq!(rows[0]["order_date"], "2024-05-01");
    assert_eq!(rows[5]["customer"], Value::Null);
    assert_eq!(rows[6]["customer"], "grace");

    let posts = statement_posts(&fake);
    assert_eq!(posts.len(), 1);
    let body = posts[0].json();
    assert_eq!(body["statement"], "SELECT * FROM orders");
    assert_eq!(body["warehouse_id"], WAREHOUSE);
    assert_eq!(body["catalog"], "main");
    assert_eq!(body["schema"], "default");
    assert_eq!(body["wait_timeout"], "10s");
    assert_eq!(body["on_wait_timeout"], "CONTINUE");
    assert_eq!(body["disposition"], "INLINE");
    assert_eq!(body["format"], "JSON_ARRAY");
    assert_eq!(
        posts[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let polls = fake.journal().matching("GET", "/api/2.0/sql/statements/*");
    let (status, chunks): (Vec<&Seen>, Vec<&Seen>) = polls
        .iter()
        .partition(|s| !s.path.contains("/result/chunks/"));
    assert_eq!(
        status.len(),
        2,
        "PENDING at submission, RUNNING, then SUCCEEDED"
    );
    assert_eq!(chunks.len(), 2, "chunks 1 and 2 after chunk 0 came inline");
    assert!(chunks[0].path.ends_with("/result/chunks/1"));
    assert!(chunks[1].path.ends_with("/result/chunks/2"));
}

#[tokio::test]
async fn chunks_are_read_by_index_when_no_link_is_given() {
    let fake = kernelize_fakes::databricks::start(Config {
        chunk_links: false,
        chunk_rows: 2,
        polls_before_done: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let records = query(&m, json!({"sql": "SELECT id, customer FROM orders"}))
        .await
        .unwrap();

    assert_eq!(records.num_rows(), 7);
    assert_eq!(records.schema().fields().len(), 2);
    let chunks = fake.journal().matching("GET", "/api/2.0/sql/statements/*");
    assert_eq!(
        chunks.len(),
        3,
        "chunks 1, 2 and 3 by index; no status polls"
    );
    assert!(chunks.iter().all(|s| s.query.is_empty()));
}

#[tokio::test]
async fn query_binds_named_parameters_from_params_and_call_variables() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let records = query(
        &m,
        json!({"statement": "SELECT * FROM orders WHERE id > :min_id", "params": {"min_id": 4}}),
    )
    .await
    .unwrap();
    assert_eq!(records.num_rows(), 3);
    assert_eq!(
        statement_posts(&fake)[0].json()["parameters"],
        json!([{"name": "min_id", "value": "4", "type": "BIGINT"}])
    );

    let typed = Call::new("query", Payload::Empty)
        .with_config(json!({
            "statement": "SELECT id FROM orders WHERE order_date >= :last_sync",
        }))
        .with_var("last_sync", "2024-05-06");
    let records = call(&m, typed).await.unwrap().into_records().unwrap();
    let ids: Vec<Value> = records
        .to_json_rows()
        .unwrap()
        .into_iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(6), json!(7)],
        "the workflow's last_sync is bound, not pasted"
    );
    let body = statement_posts(&fake)[1].json();
    assert_eq!(
        body["statement"],
        "SELECT id FROM orders WHERE order_date >= :last_sync"
    );
    assert_eq!(
        body["parameters"],
        json!([{"name": "last_sync", "value": "2024-05-06"}])
    );
}

#[tokio::test]
async fn a_failed_statement_is_an_error_with_its_error_code_and_message() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let error = query(&m, json!({"statement": "SELECT * FROM no_such_table"}))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(error.message().contains("FAILED"), "{error}");
    assert!(error.message().contains("BAD_REQUEST"), "{error}");
    assert!(
        error.message().contains("TABLE_OR_VIEW_NOT_FOUND"),
        "{error}"
    );
    assert_eq!(error.context_value("error_code"), Some("BAD_REQUEST"));
    assert_eq!(error.context_value("sql_state"), Some("42P01"));
    assert!(error.context_value("statement_id").is_some());

    let error = query(
        &m,
        json!({"statement": "SELECT * FROM orders WHERE id = :missing"}),
    )
    .await
    .unwrap_err();
    assert!(error.message().contains("UNBOUND_SQL_PARAMETER"), "{error}");
}

#[tokio::test]
async fn a_statement_given_up_is_cancelled_on_the_warehouse() {
    let fake = kernelize_fakes::databricks::start(Config {
        never_finish: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let give_up = Call::new("query", Payload::Empty)
        .with_config(json!({"statement": "SELECT * FROM orders"}))
        .with_timeout(Duration::from_millis(300));
    let error = call(&m, give_up).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");

    let until = Instant::now() + Duration::from_secs(5);
    let cancels = loop {
        let cancels = fake.journal().matching("POST", "/api/2.0/sql/statements/*");
        if !cancels.is_empty() || Instant::now() > until {
            break cancels;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(cancels.len(), 1, "the statement was cancelled");
    assert!(cancels[0].path.ends_with("/cancel"));
    let polled = fake.journal().matching("GET", "/api/2.0/sql/statements/*");
    assert!(cancels[0].path.starts_with(polled[0].path.as_str()));
}

#[tokio::test]
async fn rate_limited_requests_wait_out_retry_after() {
    let fake = kernelize_fakes::databricks::start(Config {
        rate_limited: 1,
        retry_after: Some(1),
        polls_before_done: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let started = Instant::now();
    let records = query(&m, json!({"statement": "SELECT count(*) FROM orders"}))
        .await
        .unwrap();

    assert_eq!(records.to_json_rows().unwrap()[0]["count(1)"], 7);
    let posts = statement_posts(&fake);
    assert_eq!(posts.len(), 2, "a 429 is retried even for a POST");
    assert!(
        posts[1].at.duration_since(posts[0].at) >= Duration::from_secs(1),
        "Retry-After: 1 was waited out"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_after_the_backoff() {
    let fake = kernelize_fakes::databricks::start(Config {
        rate_limited: 2,
        retry_after: None,
        polls_before_done: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;

    let records = query(&m, json!({"statement": "SELECT count(*) FROM orders"}))
        .await
        .unwrap();

    assert_eq!(records.num_rows(), 1);
    assert_eq!(statement_posts(&fake).len(), 3);
}

#[tokio::test]
async fn an_error_answer_names_the_status_error_code_and_message() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let mut bad_token = settings(&fake);
    bad_token["token"] = json!("dapi-wrong");
    let m = manager(bad_token).await;
    let error = query(&m, json!({"statement": "SELECT 1"}))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert_eq!(error.status(), Some(401));
    assert!(error.message().contains("UNAUTHENTICATED"), "{error}");
    assert!(error.message().contains("Invalid access token"), "{error}");
    assert!(
        !error.to_string().contains("dapi-wrong"),
        "the token stays out: {error}"
    );

    let m = manager(settings(&fake)).await;
    let error = query(&m, json!({"statement": "SELECT 1", "warehouse_id": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert_eq!(error.status(), Some(404));
    assert_eq!(
        error.context_value("error_code"),
        Some("RESOURCE_DOES_NOT_EXIST")
    );
    assert!(
        error.message().contains("Warehouse nope does not exist"),
        "{error}"
    );
}

#[tokio::test]
async fn load_stages_json_lines_copies_them_into_the_table_and_deletes_the_file() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    let rows = json!([
        {"region": "north", "units": 3, "revenue": 10.5},
        {"region": "south", "units": 5, "revenue": 7.25},
        {"region": "east", "units": null, "revenue": 1.0},
    ]);

    let outcome = call(
        &m,
        Call::new("load", Payload::Json(rows)).with_config(json!({"table": "sales_analytics"})),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    assert_eq!(outcome["table"], "sales_analytics");
    assert_eq!(outcome["rows_loaded"], 3);
    assert_eq!(outcome["rows_staged"], 3);
    assert_eq!(outcome["format"], "json");
    assert_eq!(outcome["staged_file_deleted"], true);
    let staged = outcome["staged_path"].as_str().unwrap().to_string();
    assert!(staged.starts_with(&format!("{VOLUME}/kernelize-")) && staged.ends_with(".json"));

    let puts = fake.journal().matching("PUT", "/api/2.0/fs/files/*");
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, format!("/api/2.0/fs/files{staged}"));
    assert_eq!(puts[0].param("overwrite").as_deref(), Some("false"));
    assert_eq!(
        puts[0].header("content-type"),
        Some("application/octet-stream")
    );
    let lines: Vec<Value> = String::from_utf8(puts[0].body.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["region"], "north");
    assert_eq!(lines[2]["units"], Value::Null);

    let copy = statement_posts(&fake)[0].json();
    assert_eq!(
        copy["statement"],
        format!(
            "COPY INTO sales_analytics FROM '{staged}' FILEFORMAT = JSON FORMAT_OPTIONS ('mergeSchema' = 'true') COPY_OPTIONS ('mergeSchema' = 'true')"
        )
    );
    let deletes = fake.journal().matching("DELETE", "/api/2.0/fs/files/*");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, puts[0].path);

    let count = query(
        &m,
        json!({"statement": "SELECT count(*) FROM main.default.sales_analytics"}),
    )
    .await
    .unwrap();
    assert_eq!(count.to_json_rows().unwrap()[0]["count(1)"], 3);
    let loaded = query(&m, json!({"statement": "SELECT * FROM sales_analytics"}))
        .await
        .unwrap();
    let rows = loaded.to_json_rows().unwrap();
    assert_eq!(rows[1]["region"], "south");
    assert_eq!(
        rows[1]["units"], 5,
        "the table took BIGINT from the JSON numbers"
    );
    assert_eq!(rows[0]["revenue"], 10.5);
}

#[tokio::test]
async fn load_csv_sends_a_header_line_and_appends_records() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    let records = Records::from_json_rows(&[
        json!({"sku": "a-1", "qty": 2}),
        json!({"sku": "b, quoted", "qty": 4}),
    ])
    .unwrap();

    let outcome = call(
        &m,
        Call::new("load", Payload::Records(records))
            .with_config(json!({"table": "`sales_analytics`", "format": "csv"})),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    assert_eq!(outcome["rows_loaded"], 2);
    assert_eq!(outcome["format"], "csv");
    let put = &fake.journal().matching("PUT", "/api/2.0/fs/files/*")[0];
    assert!(put.path.ends_with(".csv"));
    assert_eq!(
        String::from_utf8(put.body.to_vec()).unwrap(),
        "sku,qty\na-1,2\n\"b, quoted\",4\n"
    );
    let sql = statement_posts(&fake)[0].json()["statement"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sql.contains("FILEFORMAT = CSV FORMAT_OPTIONS ('header' = 'true', 'inferSchema' = 'true', 'mergeSchema' = 'true')"), "{sql}");
    let loaded = query(
        &m,
        json!({"statement": "SELECT sku FROM sales_analytics WHERE qty = 4"}),
    )
    .await
    .unwrap();
    assert_eq!(loaded.to_json_rows().unwrap()[0]["sku"], "b, quoted");
}

#[tokio::test]
async fn a_failed_copy_still_deletes_the_staged_file() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let error = call(
        &m,
        Call::new("load", Payload::Json(json!([{"a": 1}])))
            .with_config(json!({"table": "missing_table"})),
    )
    .await
    .unwrap_err();

    assert!(
        error.message().contains("TABLE_OR_VIEW_NOT_FOUND"),
        "{error}"
    );
    assert_eq!(error.context_value("staged_file_deleted"), Some("true"));
    assert_eq!(
        fake.journal()
            .matching("DELETE", "/api/2.0/fs/files/*")
            .len(),
        1
    );
}

#[tokio::test]
async fn load_refuses_bad_tables_and_a_missing_staging_path_before_sending() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    let error = call(
        &m,
        Call::new("load", Payload::Json(json!([{"a": 1}])))
            .with_config(json!({"table": "t; DROP TABLE x"})),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");

    let mut no_staging = settings(&fake);
    no_staging.as_object_mut().unwrap().remove("staging_path");
    let m = manager(no_staging).await;
    let error = call(
        &m,
        Call::new("load", Payload::Json(json!([{"a": 1}]))).with_config(json!({"table": "t"})),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid, "{error}");
    assert!(error.message().contains("staging_path"), "{error}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn run_job_starts_an_idempotent_run_and_polls_until_it_terminates() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    let run = || {
        Call::new("run_job", Payload::Empty)
            .with_config(json!({"job_id": 101, "job_parameters": {"table": "sales", "days": 7}}))
            .with_idempotency_key("run-42/step-3/attempt-1")
    };

    let output = call(&m, run()).await.unwrap().into_json().unwrap();

    assert_eq!(output["state"], "TERMINATED");
    assert_eq!(output["result_state"], "SUCCESS");
    assert_eq!(output["number_in_job"], 1);
    assert!(output["run_page_url"].as_str().unwrap().contains("/run/"));
    let posts = fake.journal().matching("POST", "/api/2.2/jobs/run-now");
    assert_eq!(
        posts[0].json(),
        json!({"job_id": 101, "job_parameters": {"days": "7", "table": "sales"}, "idempotency_token": "run-42/step-3/attempt-1"})
    );
    let polls = fake.journal().matching("GET", "/api/2.2/jobs/runs/get");
    assert_eq!(polls.len(), 3, "PENDING, RUNNING, TERMINATED");
    assert_eq!(polls[0].param("run_id"), Some(output["run_id"].to_string()));

    let again = call(&m, run()).await.unwrap().into_json().unwrap();
    assert_eq!(
        again["run_id"], output["run_id"],
        "the same key starts no second run"
    );
}

#[tokio::test]
async fn a_failed_run_is_an_error_with_its_state_message() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let error = call(
        &m,
        Call::new("run_job", Payload::Empty).with_config(json!({"job_id": 102})),
    )
    .await
    .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Remote, "{error}");
    assert!(error.message().contains("ended FAILED"), "{error}");
    assert!(error.message().contains("Task ingest failed"), "{error}");
    assert!(error.context_value("run_page_url").is_some());

    let error = call(
        &m,
        Call::new("run_job", Payload::Empty).with_config(json!({"job_id": 999})),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert!(
        error.message().contains("Job 999 does not exist"),
        "{error}"
    );
}

#[tokio::test]
async fn run_job_without_wait_returns_right_after_run_now() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let output = call(
        &m,
        Call::new("run_job", Payload::Empty).with_config(json!({"job_id": 101, "wait": false})),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();

    assert!(output["run_id"].as_i64().is_some());
    assert_eq!(output["state"], Value::Null);
    assert!(
        fake.journal()
            .matching("GET", "/api/2.2/jobs/runs/get")
            .is_empty()
    );
    assert!(
        fake.journal().matching("POST", "/api/2.2/jobs/run-now")[0].json()["idempotency_token"]
            .is_null(),
        "no key, no token"
    );
}

#[tokio::test]
async fn mlflow_lists_registered_models_over_pages_as_records() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;

    let records = call(
        &m,
        Call::new("mlflow", Payload::Empty)
            .with_config(json!({"operation": "list_models", "max_results": 2})),
    )
    .await
    .unwrap()
    .into_records()
    .unwrap();

    assert_eq!(records.num_rows(), 5);
    let rows = records.to_json_rows().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["model-0", "model-1", "model-2", "model-3", "model-4"]
    );
    assert_eq!(
        records
            .schema()
            .field_with_name("creation_timestamp")
            .unwrap()
            .data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let pages = fake
        .journal()
        .matching("GET", "/api/2.0/mlflow/registered-models/list");
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].param("page_token"), None);
    assert_eq!(pages[1].param("page_token").as_deref(), Some("page-2"));
    assert_eq!(pages[2].param("max_results").as_deref(), Some("2"));
}

#[tokio::test]
async fn mlflow_creates_a_model_and_a_version_waits_for_it_and_moves_it_to_production() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let m = manager(settings(&fake)).await;
    let mlflow = |config: Value| Call::new("mlflow", Payload::Empty).with_config(config);

    let model = call(&m, mlflow(json!({"operation": "create_model", "name": "churn", "description": "churn model", "tags": {"team": "ds"}})))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(model["name"], "churn");
    assert_eq!(model["tags"], json!([{"key": "team", "value": "ds"}]));

    let version = call(&m, mlflow(json!({"operation": "create_version", "name": "churn", "source": "runs:/abc/model", "run_id": "abc", "wait_ready": true})))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(version["version"], "1");
    assert_eq!(version["status"], "READY");
    assert!(
        !fake
            .journal()
            .matching("GET", "/api/2.0/mlflow/model-versions/get")
            .is_empty()
    );

    let moved = call(&m, mlflow(json!({"operation": "transition_stage", "name": "churn", "version": 1, "stage": "production", "comment": "ship it"})))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(moved["current_stage"], "Production");
    let sent = fake.journal().matching(
        "POST",
        "/api/2.0/mlflow/databricks/model-versions/transition-stage",
    )[0]
    .json();
    assert_eq!(
        sent,
        json!({"name": "churn", "version": "1", "stage": "Production", "archive_existing_versions": false, "comment": "ship it"})
    );

    let got = call(
        &m,
        mlflow(json!({"operation": "get_model", "name": "churn"})),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(got["latest_versions"][0]["current_stage"], "Production");
    assert_eq!(
        got["permission_level"], "CAN_MANAGE",
        "the workspace variant's fields are kept"
    );

    let error = call(
        &m,
        mlflow(json!({"operation": "get_model", "name": "nope"})),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(
        error.message().contains("RESOURCE_DOES_NOT_EXIST"),
        "{error}"
    );
}

#[tokio::test]
async fn mlflow_reads_the_older_transition_answer_and_reports_failed_registration() {
    let fake = kernelize_fakes::databricks::start(Config {
        transition_key: "model_version".into(),
        fail_registration: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(settings(&fake)).await;
    let mlflow = |config: Value| Call::new("mlflow", Payload::Empty).with_config(config);
    call(
        &m,
        mlflow(json!({"operation": "create_version", "name": "model-1", "source": "dbfs:/m"})),
    )
    .await
    .unwrap();

    let error = call(&m, mlflow(json!({"operation": "get_version", "name": "model-1", "version": "1", "wait_ready": true})))
        .await
        .unwrap_err();
    assert!(error.message().contains("FAILED_REGISTRATION"), "{error}");
    assert!(error.message().contains("Failed to copy"), "{error}");

    let moved = call(&m, mlflow(json!({"operation": "transition_stage", "name": "model-1", "version": "1", "stage": "Staging"})))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(moved["current_stage"], "Staging");
}

#[tokio::test]
async fn oauth_m2m_fetches_a_token_with_basic_client_auth_and_scope_all_apis() {
    let fake = kernelize_fakes::databricks::start(Config {
        basic_client_auth_only: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let mut oauth = settings(&fake);
    let map = oauth.as_object_mut().unwrap();
    map.remove("token");
    map.insert(
        "client_id".into(),
        json!(kernelize_fakes::databricks::CLIENT_ID),
    );
    map.insert(
        "client_secret".into(),
        json!(kernelize_fakes::databricks::CLIENT_SECRET),
    );
    let m = manager(oauth).await;

    query(&m, json!({"statement": "SELECT count(*) FROM orders"}))
        .await
        .unwrap();
    query(&m, json!({"statement": "SELECT count(*) FROM orders"}))
        .await
        .unwrap();

    let tokens = fake.journal().matching("POST", "/oidc/v1/token");
    assert_eq!(tokens.len(), 1, "the token is cached");
    let form = tokens[0].form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "all-apis");
    assert!(!form.contains_key("client_secret"));
    assert!(
        tokens[0]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let api = statement_posts(&fake);
    assert!(
        api.iter()
            .all(|s| s.header("authorization") == Some("Bearer fake-oauth-token-1"))
    );

    let mut wrong = settings(&fake);
    let map = wrong.as_object_mut().unwrap();
    map.remove("token");
    map.insert("client_id".into(), json!("fake-client-id"));
    map.insert("client_secret".into(), json!("wrong-secret"));
    let m = manager(wrong).await;
    let error = query(&m, json!({"statement": "SELECT 1"}))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert!(!error.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn settings_are_checked_at_activation() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    for (change, needle) in [
        (json!({"client_id": "x", "client_secret": "y"}), "not both"),
        (json!({"wait_timeout": "60s"}), "wait_timeout"),
        (json!({"staging_path": "/tmp/x"}), "/Volumes/"),
    ] {
        let s = saas_common::overlaid(settings(&fake), change);
        let manager = saas_common::configured(databricks::factory(), s, &[], vec![]);
        let error = manager.activate(databricks::ID).await.unwrap_err();
        assert!(error.to_string().contains(needle), "{needle}: {error}");
    }
}

#[tokio::test]
async fn the_client_uploads_downloads_and_deletes_volume_files() {
    let fake = kernelize_fakes::databricks::start(Config::default())
        .await
        .unwrap();
    let client = DatabricksClient::new(&DatabricksSettings::with_token(
        fake.url(),
        TOKEN.to_string().into(),
    ))
    .unwrap();
    let path = format!("{VOLUME}/dir with space/data.bin");

    client
        .upload_file(&path, bytes::Bytes::from_static(b"\x00\x01abc"), false)
        .await
        .unwrap();
    assert_eq!(
        &client.download_file(&path).await.unwrap()[..],
        b"\x00\x01abc"
    );
    let error = client
        .upload_file(&path, bytes::Bytes::from_static(b"x"), false)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidState, "{error}");
    assert_eq!(error.status(), Some(409));
    client
        .upload_file(&path, bytes::Bytes::from_static(b"x"), true)
        .await
        .unwrap();
    client.delete_file(&path).await.unwrap();
    let error = client.download_file(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");

    let put = &fake.journal().matching("PUT", "/api/2.0/fs/files/*")[0];
    assert_eq!(
        put.path,
        "/api/2.0/fs/files/Volumes/main/default/staging/dir%20with%20space/data.bin"
    );
}
