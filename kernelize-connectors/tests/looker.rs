//! The `looker-connector` against the Looker fake: called by action name with JSON config,
//! as a workflow calls it, through a plugin manager.

#![cfg(feature = "looker")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kernelize_connectors::looker;
use kernelize_core::arrow_array::Array;
use kernelize_core::arrow_array::cast::AsArray;
use kernelize_core::arrow_array::types::{Date32Type, Float64Type, Int64Type};
use kernelize_core::arrow_schema::DataType;
use kernelize_core::{ErrorKind, Payload, PluginManager};
use kernelize_fakes::looker::{self as fake, Config};
use serde_json::{Value, json};

mod saas_common;
use saas_common::records;

const ALL_FIELDS: [&str; 6] = [
    "orders.id",
    "orders.status",
    "orders.created_date",
    "orders.total_amount",
    "orders.is_paid",
    "users.count",
];

fn settings(fake: &kernelize_fakes::Fake) -> Value {
    json!({
        "base_url": fake.url(),
        "client_id": fake::CLIENT_ID,
        "client_secret": "${secret:LOOKER_SECRET}",
        "poll": {"initial": "10ms", "max": "20ms"},
        "http": {"retry": {"base_delay": "20ms", "max_delay": "50ms"}},
    })
}

async fn manager_with(settings: Value, secret: &str) -> PluginManager {
    saas_common::activated(
        looker::factory(),
        settings,
        &[("LOOKER_SECRET", secret)],
        vec![],
    )
    .await
}

async fn manager(fake: &kernelize_fakes::Fake) -> PluginManager {
    manager_with(settings(fake), fake::CLIENT_SECRET).await
}

async fn call(m: &PluginManager, action: &str, config: Value) -> kernelize_core::Result<Payload> {
    saas_common::call(m, looker::ID, action, config, Payload::Empty).await
}

fn query(extra: Value) -> Value {
    let q = json!({"model": "thelook", "view": "orders", "fields": ALL_FIELDS});
    saas_common::overlaid(q, extra)
}

// ---------------------------------------------------------------- queries

#[tokio::test]
async fn an_inline_query_logs_in_once_and_returns_typed_records() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "run_inline_query",
        query(json!({"sorts": ["orders.id"], "limit": 500, "query_timezone": "UTC"})),
    )
    .await
    .unwrap();
    let batch = records(out).concat().unwrap();
    assert_eq!(batch.num_rows(), 4);
    let schema = batch.schema();
    let columns: Vec<(&str, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().clone()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("orders.id", DataType::Int64),
            ("orders.status", DataType::Utf8),
            ("orders.created_date", DataType::Date32),
            ("orders.total_amount", DataType::Float64),
            ("orders.is_paid", DataType::Utf8),
            ("users.count", DataType::Int64),
        ]
    );
    assert_eq!(
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(batch.column(1).as_string::<i32>().value(0), "complete");
    assert_eq!(batch.column(2).as_primitive::<Date32Type>().value(0), 19844);
    assert!(batch.column(2).is_null(3));
    assert_eq!(batch.column(3).as_primitive::<Float64Type>().value(1), 5.0);
    assert_eq!(batch.column(4).as_string::<i32>().value(0), "Yes");

    let logins = fake.journal().matching("POST", "/api/4.0/login");
    assert_eq!(logins.len(), 1);
    assert_eq!(
        logins[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = logins[0].form();
    assert_eq!(form["client_id"], fake::CLIENT_ID);
    assert_eq!(form["client_secret"], fake::CLIENT_SECRET);
    assert!(logins[0].query.is_empty(), "credentials never in the URL");
    let runs = fake.journal().matching("POST", "/api/4.0/queries/run/json");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].header("authorization"), Some("token fake-token"));
    let body = runs[0].json();
    assert_eq!(body["model"], "thelook");
    assert_eq!(body["view"], "orders");
    assert_eq!(body["fields"], json!(ALL_FIELDS));
    assert_eq!(body["sorts"], json!(["orders.id"]));
    assert_eq!(body["limit"], "500", "Looker takes the limit as text");
    assert_eq!(body["query_timezone"], "UTC");
}

#[tokio::test]
async fn filters_and_sorts_reach_looker() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "run_inline_query",
        query(json!({
            "fields": ["orders.id", "orders.total_amount"],
            "filters": {"orders.status": "complete"},
            "sorts": ["orders.total_amount desc"],
        })),
    )
    .await
    .unwrap();
    let rows = records(out).to_json_rows().unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"orders.id": 3, "orders.total_amount": 120.5}),
            json!({"orders.id": 1, "orders.total_amount": 19.99}),
        ]
    );
}

#[tokio::test]
async fn csv_results_become_records_through_the_csv_reader() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "run_inline_query",
        query(json!({"result_format": "csv"})),
    )
    .await
    .unwrap();
    let batch = records(out).concat().unwrap();
    assert_eq!(batch.num_rows(), 4);
    assert_eq!(batch.schema().field(0).name(), "Orders ID");
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
    assert_eq!(
        fake.journal()
            .matching("POST", "/api/4.0/queries/run/csv")
            .len(),
        1
    );
}

#[tokio::test]
async fn other_formats_come_back_as_bytes_of_their_media_type_or_json() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    for (format, media) in [
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("sql", "application/sql"),
        ("html", "text/html"),
        ("md", "text/markdown"),
        ("txt", "text/tab-separated-values"),
        (
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    ] {
        let out = call(
            &m,
            "run_inline_query",
            query(json!({"result_format": format})),
        )
        .await
        .unwrap();
        let Payload::Bytes(blob) = out else {
            panic!("{format}: expected bytes")
        };
        assert_eq!(blob.media_type, media, "{format}");
        assert!(!blob.data.is_empty(), "{format}");
    }
    let Payload::Bytes(png) = call(
        &m,
        "run_inline_query",
        query(json!({"result_format": "png"})),
    )
    .await
    .unwrap() else {
        panic!()
    };
    assert_eq!(&png.data[..4], b"\x89PNG");
    let detail = call(
        &m,
        "run_inline_query",
        query(json!({"result_format": "json_detail"})),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(detail["data"][0]["orders.id"]["value"], 1);
    assert_eq!(detail["fields"]["measures"][0]["name"], "users.count");
}

#[tokio::test]
async fn an_unknown_field_is_a_clear_validation_error() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let err = call(
        &m,
        "run_inline_query",
        query(json!({"fields": ["orders.nope"]})),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.status(), Some(422));
    assert!(err.message().contains("Validation Failed"), "{err}");
    assert!(
        err.message().contains("fields: Unknown field: orders.nope"),
        "{err}"
    );
    assert!(err.context_value("documentation_url").is_some());
}

#[tokio::test]
async fn a_query_without_fields_is_refused_before_anything_is_sent() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let err = call(&m, "run_inline_query", query(json!({"fields": []})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(fake.journal().all().is_empty());
}

#[tokio::test]
async fn an_async_query_task_is_polled_until_complete() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "run_inline_query",
        query(json!({"async_task": true, "cache": false})),
    )
    .await
    .unwrap();
    assert_eq!(records(out).num_rows(), 4);
    let saved = fake.journal().matching("POST", "/api/4.0/queries");
    assert_eq!(saved.len(), 1);
    let task = &fake.journal().matching("POST", "/api/4.0/query_tasks")[0];
    assert_eq!(task.json()["result_format"], "json");
    assert_eq!(task.json()["query_id"], "1001");
    assert_eq!(task.param("cache").as_deref(), Some("false"));
    let polls = fake.journal().matching("GET", "/api/4.0/query_tasks/task2");
    assert_eq!(polls.len(), 3, "two `running` answers, then `complete`");
    assert_eq!(
        fake.journal()
            .matching("GET", "/api/4.0/query_tasks/task2/results")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_task_status_in_capitals_is_understood() {
    let fake = fake::start(Config {
        task_complete_status: "Complete".into(),
        task_polls: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "run_inline_query",
        query(json!({"async_task": true, "result_format": "csv"})),
    )
    .await
    .unwrap();
    assert_eq!(records(out).num_rows(), 4);
}

// ---------------------------------------------------------------- looks, models, embed

#[tokio::test]
async fn a_look_runs_with_its_query_parameters() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "run_look",
        json!({"look_id": 42, "limit": 2, "apply_formatting": true, "cache": false}),
    )
    .await
    .unwrap();
    assert_eq!(records(out).num_rows(), 2);
    let get = &fake.journal().matching("GET", "/api/4.0/looks/42/run/json")[0];
    assert_eq!(get.param("limit").as_deref(), Some("2"));
    assert_eq!(get.param("apply_formatting").as_deref(), Some("true"));
    assert_eq!(get.param("cache").as_deref(), Some("false"));

    let err = call(&m, "run_look", json!({"look_id": "99"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("Not found"), "{err}");
}

#[tokio::test]
async fn models_are_read_page_by_page() {
    let fake = fake::start(Config {
        models: 5,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "list_models",
        json!({"page_size": 2, "exclude_empty": true}),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    let names: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["thelook", "model_2", "model_3", "model_4", "model_5"]
    );
    let gets = fake.journal().matching("GET", "/api/4.0/lookml_models");
    let offsets: Vec<String> = gets.iter().map(|g| g.param("offset").unwrap()).collect();
    assert_eq!(offsets, vec!["0", "2", "4"]);
    assert!(
        gets.iter()
            .all(|g| g.param("limit").as_deref() == Some("2"))
    );
    assert_eq!(gets[0].param("exclude_empty").as_deref(), Some("true"));
}

#[tokio::test]
async fn an_instance_without_model_paging_is_read_once() {
    let fake = fake::start(Config {
        models: 3,
        ignore_model_paging: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    let out = call(&m, "list_models", json!({"page_size": 3}))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(out.as_array().unwrap().len(), 3);
    assert_eq!(
        fake.journal()
            .matching("GET", "/api/4.0/lookml_models")
            .len(),
        2
    );
}

#[tokio::test]
async fn one_model_is_read_with_its_explores() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let model = call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(model["explores"][0]["name"], "orders");
    let err = call(&m, "get_model", json!({"name": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_signed_embed_url_is_created_for_an_external_user() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let out = call(
        &m,
        "create_embed_url",
        json!({
            "target_url": "https://co.looker.example/embed/dashboards/7",
            "session_length": 600,
            "external_user_id": "customer-17",
            "first_name": "Ada",
            "permissions": ["access_data", "see_user_dashboards"],
            "models": ["thelook"],
            "user_attributes": {"region": "EU"},
            "force_logout_login": true,
        }),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    let url = out["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://co.looker.example/login/embed/%2Fembed%2Fdashboards%2F7?"),
        "{url}"
    );
    assert!(url.contains("signature="), "{url}");
    let body = fake.journal().matching("POST", "/api/4.0/embed/sso_url")[0].json();
    assert_eq!(body["external_user_id"], "customer-17");
    assert_eq!(body["session_length"], 600);
    assert_eq!(body["user_attributes"], json!({"region": "EU"}));
    assert_eq!(body["models"], json!(["thelook"]));
    assert!(body.get("group_ids").is_none(), "empty lists are left out");

    let err = call(
        &m,
        "create_embed_url",
        json!({"target_url": "https://co.looker.example/embed/dashboards/7", "models": ["thelook"]}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        fake.journal()
            .matching("POST", "/api/4.0/embed/sso_url")
            .len(),
        1,
        "the incomplete one was not sent"
    );
}

// ---------------------------------------------------------------- login, sessions, limits

#[tokio::test]
async fn login_says_how_long_the_session_lasts_but_never_gives_the_token() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    let out = call(&m, "login", Value::Null)
        .await
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(out, json!({"expires_in": 3600, "token_type": "Bearer"}));
    assert!(!out.to_string().contains("fake-token"));
    // The session the action opened is the one later calls use.
    call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap();
    assert_eq!(fake.journal().matching("POST", "/api/4.0/login").len(), 1);
    let get = &fake
        .journal()
        .matching("GET", "/api/4.0/lookml_models/thelook")[0];
    assert_eq!(get.header("authorization"), Some("token fake-token"));
}

#[tokio::test]
async fn the_session_is_renewed_before_it_expires() {
    let fake = fake::start(Config {
        expires_in: 2,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap();
    // The token lasts 2 s; the connector renews it half way (the margin is at most half the
    // lifetime), before Looker would refuse it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap();
    assert_eq!(fake.journal().matching("POST", "/api/4.0/login").len(), 2);
    let gets = fake
        .journal()
        .matching("GET", "/api/4.0/lookml_models/thelook");
    assert_eq!(gets.len(), 2, "no call was refused");
    assert_eq!(gets[1].header("authorization"), Some("token fake-token-2"));
}

#[tokio::test]
async fn a_session_ended_by_looker_is_renewed_once_after_a_401() {
    let fake = fake::start(Config {
        session_valid_for: Some(Duration::from_millis(200)),
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap();
    let seen: Vec<(String, String)> = fake
        .requests()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    let get = (
        "GET".to_string(),
        "/api/4.0/lookml_models/thelook".to_string(),
    );
    let login = ("POST".to_string(), "/api/4.0/login".to_string());
    assert_eq!(
        seen,
        vec![login.clone(), get.clone(), get.clone(), login, get]
    );
    let gets = fake
        .journal()
        .matching("GET", "/api/4.0/lookml_models/thelook");
    assert_eq!(gets[2].header("authorization"), Some("token fake-token-2"));
}

#[tokio::test]
async fn a_429_is_waited_out_and_retried() {
    let fake = fake::start(Config {
        rate_limit_times: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    let out = call(&m, "run_inline_query", query(json!({})))
        .await
        .unwrap();
    assert_eq!(records(out).num_rows(), 4);
    assert_eq!(
        fake.journal()
            .matching("POST", "/api/4.0/queries/run/json")
            .len(),
        2
    );
}

#[tokio::test]
async fn a_rate_limited_login_is_retried() {
    let fake = fake::start(Config {
        login_rate_limit_times: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap();
    assert_eq!(fake.journal().matching("POST", "/api/4.0/login").len(), 2);
}

#[tokio::test]
async fn persistent_429s_end_as_a_rate_limited_error() {
    let fake = fake::start(Config {
        rate_limit_times: 100,
        ..Config::default()
    })
    .await
    .unwrap();
    let m = manager(&fake).await;
    let err = call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(err.is_temporary());
    assert!(err.message().contains("Too Many Requests"), "{err}");
}

#[tokio::test]
async fn a_wrong_api_key_is_permission_denied_without_the_secret() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager_with(settings(&fake), "wrong-secret-value").await;
    let err = call(&m, "get_model", json!({"name": "thelook"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!(err.status(), Some(404));
    assert!(err.message().contains("API login"), "{err}");
    assert!(!format!("{err:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn shutting_down_logs_out() {
    let fake = fake::start(Config::default()).await.unwrap();
    let m = manager(&fake).await;
    call(&m, "login", Value::Null).await.unwrap();
    m.deactivate(looker::ID, false).await.unwrap();
    let logout = fake.journal().matching("DELETE", "/api/4.0/logout");
    assert_eq!(logout.len(), 1);
    assert_eq!(logout[0].header("authorization"), Some("token fake-token"));
}
