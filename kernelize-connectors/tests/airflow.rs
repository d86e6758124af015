//! The `airflow-connector` plugin against the Airflow fake (`kernelize_fakes::airflow`),
//! called by action name with JSON config, as a workflow calls it: Airflow 2 (`/api/v1`,
//! Basic) and Airflow 3 (`/api/v2`, token from `/auth/token`).
#![cfg(feature = "airflow")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::airflow;
use kernelize_core::arrow_schema::DataType;
use kernelize_core::{Call, ErrorKind, Payload, Permission, PluginManager};
use kernelize_fakes::airflow::{Config, SEEDED_RUN, Version};
use kernelize_fakes::{Fake, Seen};
use serde_json::{Value, json};

mod saas_common;

// ---------------------------------------------------------------------------------------
// helpers

fn settings(fake: &Fake, version: &str) -> Value {
    json!({
        "base_url": fake.url(),
        "api_version": version,
        "username": "admin",
        "password": "fake-password",
        "poll": {"initial": "10ms", "max": "20ms", "max_wait": "10s"},
        "http": {"retry": {"base_delay": "10ms", "max_delay": "50ms"}},
    })
}

async fn manager(settings: Value) -> PluginManager {
    saas_common::activated(airflow::factory(), settings, &[], vec![]).await
}

async fn start(config: Config) -> (Fake, PluginManager) {
    let version = match config.version {
        Version::V1 => "v1",
        Version::V2 => "v2",
    };
    let fake = kernelize_fakes::airflow::start(config).await.unwrap();
    let m = manager(settings(&fake, version)).await;
    (fake, m)
}

fn v1() -> Config {
    Config {
        version: Version::V1,
        ..Config::default()
    }
}

async fn call(
    m: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Payload> {
    saas_common::call(m, airflow::ID, action, config, input).await
}

async fn call_json(
    m: &PluginManager,
    action: &str,
    config: Value,
    input: Value,
) -> kernelize_core::Result<Value> {
    call(m, action, config, Payload::Json(input))
        .await?
        .into_json()
}

fn keys(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn api_requests(fake: &Fake) -> Vec<Seen> {
    fake.requests()
        .into_iter()
        .filter(|s| s.path.starts_with("/api/"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// trigger_dag

#[tokio::test]
async fn v2_trigger_signs_in_and_sends_logical_date_null_and_only_documented_fields() {
    let (fake, m) = start(Config::default()).await;
    let run = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders", "note": "from kernelize"}),
        json!({"since": "2024-04-01"}),
    )
    .await
    .unwrap();
    assert_eq!(run["dag_id"], "etl_orders");
    assert_eq!(run["state"], "queued");
    assert_eq!(
        run["conf"],
        json!({"since": "2024-04-01"}),
        "the input is the conf"
    );
    assert_eq!(run["already_existed"], false);
    assert!(run["dag_run_id"].as_str().unwrap().starts_with("manual__"));

    let sign_in = fake.journal().matching("POST", "/auth/token");
    assert_eq!(sign_in.len(), 1);
    assert_eq!(
        sign_in[0].json(),
        json!({"username": "admin", "password": "fake-password"})
    );
    assert!(
        sign_in[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );

    let posts = fake
        .journal()
        .matching("POST", "/api/v2/dags/etl_orders/dagRuns");
    assert_eq!(posts.len(), 1);
    assert!(
        posts[0]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ")
    );
    let body = posts[0].json();
    assert_eq!(
        keys(&body),
        ["conf", "logical_date", "note"],
        "only documented fields, no run id without a key"
    );
    assert_eq!(
        body["logical_date"],
        Value::Null,
        "v2 sends the key as null"
    );
    assert_eq!(body["conf"], json!({"since": "2024-04-01"}));
}

#[tokio::test]
async fn v1_trigger_uses_basic_auth_and_leaves_logical_date_out() {
    let (fake, m) = start(v1()).await;
    let run = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "daily_report", "conf": {"region": "eu"}}),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(run["state"], "queued");
    assert_eq!(run["conf"], json!({"region": "eu"}));
    assert!(
        fake.journal().matching("POST", "/auth/token").is_empty(),
        "v1 does not sign in"
    );
    let posts = fake
        .journal()
        .matching("POST", "/api/v1/dags/daily_report/dagRuns");
    assert_eq!(posts.len(), 1);
    // base64("admin:fake-password")
    assert_eq!(
        posts[0].header("authorization"),
        Some("Basic YWRtaW46ZmFrZS1wYXNzd29yZA==")
    );
    assert_eq!(keys(&posts[0].json()), ["conf"]);
}

#[tokio::test]
async fn a_given_logical_date_and_run_id_are_sent_and_a_bad_date_is_a_clear_422() {
    let (fake, m) = start(Config::default()).await;
    let run = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders", "dag_run_id": "backfill:2024-04-30", "logical_date": "2024-04-30T00:00:00+00:00"}),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(run["dag_run_id"], "backfill:2024-04-30");
    assert_eq!(run["logical_date"], "2024-04-30T00:00:00+00:00");
    let body = fake
        .journal()
        .matching("POST", "/api/v2/dags/etl_orders/dagRuns")[0]
        .json();
    assert_eq!(body["logical_date"], "2024-04-30T00:00:00+00:00");

    let error = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders", "logical_date": "yesterday"}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
    assert_eq!(error.status(), Some(422));
    assert!(
        error
            .message()
            .contains("body.logical_date: Input should be a valid datetime"),
        "{error}"
    );
}

#[tokio::test]
async fn a_repeated_call_with_the_same_idempotency_key_returns_the_run_it_started() {
    let (fake, m) = start(Config::default()).await;
    let trigger = |key: &str| {
        Call::new("trigger_dag", Payload::Empty)
            .with_config(json!({"dag_id": "etl_orders"}))
            .with_idempotency_key(key)
    };
    let first = m
        .call(airflow::ID, trigger("run-9/load/1"))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    let again = m
        .call(airflow::ID, trigger("run-9/load/1"))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    let id = first["dag_run_id"].as_str().unwrap();
    assert!(id.starts_with("kernelize__run-9_load_1-"), "{id}");
    assert_eq!(first["already_existed"], false);
    assert_eq!(again["dag_run_id"], id);
    assert_eq!(again["already_existed"], true);

    let posts = fake
        .journal()
        .matching("POST", "/api/v2/dags/etl_orders/dagRuns");
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[1].json()["dag_run_id"],
        id,
        "both attempts ask for the same id"
    );
    assert_eq!(
        fake.journal()
            .matching("GET", "/api/v2/dags/etl_orders/dagRuns/*")
            .len(),
        1,
        "the 409 is answered by fetching the existing run"
    );
}

#[tokio::test]
async fn a_trigger_whose_answer_was_lost_is_retried_and_finds_its_run_but_only_with_a_run_id() {
    let (fake, m) = start(Config {
        lost_trigger_answers: 1,
        ..Config::default()
    })
    .await;
    let call = Call::new("trigger_dag", Payload::Empty)
        .with_config(json!({"dag_id": "etl_orders"}))
        .with_idempotency_key("run-3/load/1");
    let run = m
        .call(airflow::ID, call)
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(
        run["already_existed"], true,
        "the retry met the run the first attempt made"
    );
    let posts = fake
        .journal()
        .matching("POST", "/api/v2/dags/etl_orders/dagRuns");
    assert_eq!(posts.len(), 2, "sent again after the 503");
    assert_eq!(posts[0].json()["dag_run_id"], posts[1].json()["dag_run_id"]);

    // Without a run id a second attempt could start a second run: a 503 is the answer.
    let (fake, m) = start(Config {
        lost_trigger_answers: 1,
        ..Config::default()
    })
    .await;
    let error = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders"}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert_eq!(error.status(), Some(503));
    assert!(error.is_temporary());
    assert_eq!(
        fake.journal()
            .matching("POST", "/api/v2/dags/etl_orders/dagRuns")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_taken_run_id_given_in_the_config_is_a_conflict_error_unless_reuse_existing() {
    for config in [Config::default(), v1()] {
        let (_fake, m) = start(config).await;
        let trigger = json!({"dag_id": "etl_orders", "dag_run_id": "nightly-1"});
        call_json(&m, "trigger_dag", trigger.clone(), Value::Null)
            .await
            .unwrap();
        let error = call_json(&m, "trigger_dag", trigger, Value::Null)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Remote, "{error}");
        assert_eq!(error.status(), Some(409));
        assert!(!error.is_temporary());
        assert!(
            error.message().contains("Unique constraint violation")
                || error.message().contains("Conflict: DAGRun with DAG ID: 'etl_orders' and DAGRun ID: 'nightly-1' already exists"),
            "{error}"
        );
        let reused = call_json(
            &m,
            "trigger_dag",
            json!({"dag_id": "etl_orders", "dag_run_id": "nightly-1", "reuse_existing": true}),
            Value::Null,
        )
        .await
        .unwrap();
        assert_eq!(reused["already_existed"], true);
    }
}

#[tokio::test]
async fn wait_polls_the_run_until_it_succeeds() {
    let (fake, m) = start(Config {
        polls_to_finish: 3,
        ..Config::default()
    })
    .await;
    let run = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "ml_training", "wait": true}),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(run["state"], "success");
    assert!(run["end_date"].is_string());
    let polls = fake
        .journal()
        .matching("GET", "/api/v2/dags/ml_training/dagRuns/*");
    assert_eq!(
        polls.len(),
        3,
        "queued → running, running → running, → success"
    );
}

#[tokio::test]
async fn a_run_that_fails_is_an_error_unless_fail_on_failure_is_off() {
    let (_fake, m) = start(Config {
        final_state: "failed".into(),
        polls_to_finish: 1,
        ..v1()
    })
    .await;
    let error = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders", "wait": true}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Remote);
    assert!(error.message().contains("ended `failed`"), "{error}");
    assert_eq!(error.context_value("dag_id"), Some("etl_orders"));

    let run = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders", "dag_run_id": "second", "wait": true, "fail_on_failure": false}),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(run["state"], "failed");
}

#[tokio::test]
async fn waiting_ends_with_a_timeout_at_max_wait_naming_the_last_state() {
    let fake = kernelize_fakes::airflow::start(Config {
        polls_to_finish: u32::MAX,
        ..Config::default()
    })
    .await
    .unwrap();
    let mut s = settings(&fake, "v2");
    s["poll"] = json!({"initial": "10ms", "max": "10ms", "max_wait": "200ms"});
    let m = manager(s).await;
    let started = Instant::now();
    let error = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders", "wait": true}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(error.message().contains("last state: running"), "{error}");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

// ---------------------------------------------------------------------------------------
// dag_run_status

#[tokio::test]
async fn dag_run_status_takes_the_run_id_from_the_input_and_encodes_it_in_the_path() {
    for config in [Config::default(), v1()] {
        let (_fake, m) = start(config).await;
        let run = call_json(
            &m,
            "dag_run_status",
            json!({"dag_id": "customer_sync"}),
            json!({"dag_run_id": SEEDED_RUN, "dag_id": "customer_sync", "state": "queued"}),
        )
        .await
        .unwrap();
        assert_eq!(run["dag_run_id"], SEEDED_RUN);
        assert_eq!(run["state"], "success");
        assert_eq!(run["run_type"], "scheduled");
    }
}

#[tokio::test]
async fn dag_run_status_with_wait_follows_a_triggered_run_and_without_a_run_id_says_what_is_missing()
 {
    let (_fake, m) = start(Config::default()).await;
    let triggered = call_json(
        &m,
        "trigger_dag",
        json!({"dag_id": "etl_orders"}),
        Value::Null,
    )
    .await
    .unwrap();
    let done = call_json(
        &m,
        "dag_run_status",
        json!({"dag_id": "etl_orders", "wait": true}),
        triggered.clone(),
    )
    .await
    .unwrap();
    assert_eq!(done["dag_run_id"], triggered["dag_run_id"]);
    assert_eq!(done["state"], "success");

    let error = call_json(
        &m,
        "dag_run_status",
        json!({"dag_id": "etl_orders"}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.message().contains("dag_run_id"), "{error}");
}

#[tokio::test]
async fn an_unknown_dag_is_not_found_with_airflows_words_in_both_versions() {
    let (_fake, m) = start(v1()).await;
    let error = call_json(&m, "trigger_dag", json!({"dag_id": "nope"}), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(error.status(), Some(404));
    assert!(
        error
            .message()
            .contains("DAG not found: DAG with dag_id: 'nope' not found"),
        "{error}"
    );

    let (_fake, m) = start(Config::default()).await;
    let error = call_json(
        &m,
        "dag_run_status",
        json!({"dag_id": "etl_orders", "dag_run_id": "missing"}),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(
        error.message().contains("DagRun ID: 'missing' not found"),
        "{error}"
    );
    assert_eq!(error.context_value("dag_run_id"), Some("missing"));
}

// ---------------------------------------------------------------------------------------
// list_dags, pause, unpause, list_task_instances

#[tokio::test]
async fn list_dags_reads_every_page_into_typed_records() {
    for config in [Config::default(), v1()] {
        let version = config.version;
        let fake = kernelize_fakes::airflow::start(config).await.unwrap();
        let mut s = settings(&fake, if version == Version::V1 { "v1" } else { "v2" });
        s["page_size"] = json!(2);
        let m = manager(s).await;
        let records = call(&m, "list_dags", Value::Null, Payload::Empty)
            .await
            .unwrap()
            .into_records()
            .unwrap();
        assert_eq!(records.num_rows(), 5);
        let schema = records.schema();
        assert_eq!(
            schema.field_with_name("is_paused").unwrap().data_type(),
            &DataType::Boolean
        );
        assert!(matches!(
            schema
                .field_with_name("last_parsed_time")
                .unwrap()
                .data_type(),
            DataType::Timestamp(_, _)
        ));
        let rows = records.to_json_rows().unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r["dag_id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "customer_sync",
                "daily_report",
                "etl_orders",
                "ml_training",
                "weekly_cleanup"
            ]
        );
        assert_eq!(rows[4]["is_paused"], true);
        assert_eq!(rows[0]["is_active"], true);
        assert_eq!(rows[0]["tags"], "team-a, daily");
        assert_eq!(rows[0]["owners"], "airflow, data-team");
        assert_eq!(rows[0]["schedule"], "0 6 * * *");
        assert_eq!(rows[1]["schedule"], "@hourly");
        assert!(
            rows[0]["next_dagrun"]
                .as_str()
                .unwrap()
                .starts_with("2024-05-02T06:00:00")
        );

        let pages = api_requests(&fake);
        let offsets: Vec<String> = pages.iter().map(|p| p.param("offset").unwrap()).collect();
        assert_eq!(offsets, ["0", "2", "4"], "three pages of two");
        assert!(
            pages
                .iter()
                .all(|p| p.param("limit").as_deref() == Some("2"))
        );
    }
}

#[tokio::test]
async fn list_dags_filters_go_in_the_query() {
    let (fake, m) = start(Config::default()).await;
    let records = call(
        &m,
        "list_dags",
        json!({"tags": ["team-b", "ml"], "paused": false, "dag_id_pattern": "report"}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_records()
    .unwrap();
    let rows = records.to_json_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["dag_id"], "daily_report");
    let seen = &fake.journal().matching("GET", "/api/v2/dags")[0];
    let tags: Vec<String> = seen
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| k == "tags")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(tags, ["team-b", "ml"]);
    assert_eq!(seen.param("paused").as_deref(), Some("false"));
    assert_eq!(seen.param("dag_id_pattern").as_deref(), Some("report"));
}

#[tokio::test]
async fn a_listing_longer_than_max_pages_is_an_error_not_a_short_list() {
    let fake = kernelize_fakes::airflow::start(Config::default())
        .await
        .unwrap();
    let mut s = settings(&fake, "v2");
    s["page_size"] = json!(1);
    s["max_pages"] = json!(2);
    let m = manager(s).await;
    let error = call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.message().contains("more than 2 pages"), "{error}");
}

#[tokio::test]
async fn pause_and_unpause_patch_is_paused_with_its_update_mask() {
    for config in [Config::default(), v1()] {
        let (fake, m) = start(config).await;
        let paused = call_json(&m, "pause", json!({"dag_id": "etl_orders"}), Value::Null)
            .await
            .unwrap();
        assert_eq!(paused, json!({"dag_id": "etl_orders", "is_paused": true}));
        let unpaused = call_json(
            &m,
            "unpause",
            json!({"dag_id": "weekly_cleanup"}),
            Value::Null,
        )
        .await
        .unwrap();
        assert_eq!(
            unpaused,
            json!({"dag_id": "weekly_cleanup", "is_paused": false})
        );
        let patches: Vec<Seen> = fake
            .requests()
            .into_iter()
            .filter(|s| s.method == "PATCH")
            .collect();
        assert_eq!(patches.len(), 2);
        assert_eq!(
            patches[0].param("update_mask").as_deref(),
            Some("is_paused")
        );
        assert_eq!(patches[0].json(), json!({"is_paused": true}));
        assert_eq!(patches[1].json(), json!({"is_paused": false}));

        let rows = call(&m, "list_dags", json!({"paused": true}), Payload::Empty)
            .await
            .unwrap()
            .into_records()
            .unwrap()
            .to_json_rows()
            .unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r["dag_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["etl_orders"], "the fake kept both changes");
    }
}

#[tokio::test]
async fn list_task_instances_pages_through_a_runs_tasks() {
    for config in [Config::default(), v1()] {
        let version = config.version;
        let fake = kernelize_fakes::airflow::start(config).await.unwrap();
        let mut s = settings(&fake, if version == Version::V1 { "v1" } else { "v2" });
        s["page_size"] = json!(2);
        let m = manager(s).await;
        let records = call(
            &m,
            "list_task_instances",
            json!({"dag_id": "customer_sync", "dag_run_id": SEEDED_RUN}),
            Payload::Empty,
        )
        .await
        .unwrap()
        .into_records()
        .unwrap();
        let schema = records.schema();
        assert_eq!(
            schema.field_with_name("try_number").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            schema.field_with_name("duration").unwrap().data_type(),
            &DataType::Float64
        );
        let rows = records.to_json_rows().unwrap();
        let tasks: Vec<&str> = rows
            .iter()
            .map(|r| r["task_id"].as_str().unwrap())
            .collect();
        assert_eq!(tasks, ["extract", "transform", "load"]);
        assert!(rows.iter().all(|r| r["state"] == "success"));
        assert_eq!(rows[0]["operator"], "PythonOperator");
        assert_eq!(rows[0]["duration"], 30.5);
        let pages = fake.journal().matching("GET", "/api/*");
        assert_eq!(pages.len(), 2, "two pages of at most two");
        assert!(pages[0].path.ends_with("/taskInstances"));
    }
}

// ---------------------------------------------------------------------------------------
// authentication, rate limits, settings

#[tokio::test]
async fn a_token_refused_with_401_is_replaced_once_and_the_request_sent_again() {
    let (fake, m) = start(Config {
        token_ttl: Duration::from_millis(300),
        exp_claim: false,
        ..Config::default()
    })
    .await;
    call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rows = call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(rows.num_rows(), 5);
    assert_eq!(fake.journal().matching("POST", "/auth/token").len(), 2);
    let lists = fake.journal().matching("GET", "/api/v2/dags");
    assert_eq!(
        lists.len(),
        3,
        "first call, then the refused request and its replay"
    );
    assert_ne!(
        lists[1].header("authorization"),
        lists[2].header("authorization")
    );
}

#[tokio::test]
async fn a_token_is_replaced_before_its_exp_without_a_refused_request() {
    let (fake, m) = start(Config {
        token_ttl: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap();
    call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap();
    assert_eq!(
        fake.journal().matching("POST", "/auth/token").len(),
        1,
        "the token is shared"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap();
    assert_eq!(
        fake.journal().matching("POST", "/auth/token").len(),
        2,
        "replaced within its margin"
    );
    assert_eq!(
        fake.journal().matching("GET", "/api/v2/dags").len(),
        3,
        "no request was refused"
    );
}

#[tokio::test]
async fn a_wrong_password_is_permission_denied_without_the_password() {
    for (config, version) in [(Config::default(), "v2"), (v1(), "v1")] {
        let fake = kernelize_fakes::airflow::start(config).await.unwrap();
        let mut s = settings(&fake, version);
        s["password"] = json!("hunter2-wrong");
        let m = manager(s).await;
        let error = call(&m, "list_dags", Value::Null, Payload::Empty)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
        assert_eq!(error.status(), Some(401));
        assert!(!error.to_string().contains("hunter2"), "{error}");
        if version == "v2" {
            assert!(
                error.message().contains("user name or password of `admin`"),
                "{error}"
            );
            assert_eq!(
                fake.journal().matching("POST", "/auth/token").len(),
                1,
                "no retry of a refusal"
            );
        } else {
            assert!(error.message().contains("Unauthorized"), "{error}");
        }
    }
}

#[tokio::test]
async fn a_429_from_a_proxy_is_waited_out_for_its_retry_after() {
    let (fake, m) = start(Config {
        rate_limited: 1,
        retry_after_secs: 1,
        ..Config::default()
    })
    .await;
    let started = Instant::now();
    let records = call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(records.num_rows(), 5);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    let lists = fake.journal().matching("GET", "/api/v2/dags");
    assert_eq!(lists.len(), 2);
    assert!(lists[1].at.duration_since(lists[0].at) >= Duration::from_secs(1));
}

#[tokio::test]
async fn bad_settings_are_refused_at_activation() {
    for (bad, says) in [
        (
            json!({"base_url": "http://127.0.0.1:1", "api_version": "v3", "username": "a", "password": "b"}),
            "v3",
        ),
        (
            json!({"base_url": "http://127.0.0.1:1", "api_version": "v2", "username": "a"}),
            "password",
        ),
        (
            json!({"base_url": "http://127.0.0.1:1", "api_version": "v2", "access_token": "t", "page_size": 500}),
            "page_size",
        ),
        (
            json!({"base_url": "ftp://host", "api_version": "v1", "access_token": "t"}),
            "base_url",
        ),
        (
            json!({"base_url": "http://127.0.0.1:1", "api_version": "v1", "access_token": "t", "extra": 1}),
            "extra",
        ),
    ] {
        let manager = saas_common::configured(
            airflow::factory(),
            bad,
            &[],
            vec![Permission::Network { host: "*".into() }],
        );
        let error = manager.activate(airflow::ID).await.unwrap_err();
        assert!(error.to_string().contains(says), "{says}: {error}");
    }
}

#[tokio::test]
async fn an_access_token_is_sent_as_is_without_signing_in() {
    let fake = kernelize_fakes::airflow::start(Config::default())
        .await
        .unwrap();
    let m =
        manager(json!({"base_url": fake.url(), "api_version": "v2", "access_token": "not-issued"}))
            .await;
    let error = call(&m, "list_dags", Value::Null, Payload::Empty)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(fake.journal().matching("POST", "/auth/token").is_empty());
    assert_eq!(
        fake.journal().matching("GET", "/api/v2/dags")[0].header("authorization"),
        Some("Bearer not-issued")
    );
}
