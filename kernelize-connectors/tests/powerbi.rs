//! The `powerbi-connector` against the Power BI fake (API and Entra token endpoint): every
//! action called the way a workflow calls it (by name, with JSON config, through a plugin
//! manager), and the typed client.

#![cfg(feature = "powerbi")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::powerbi::{self, PowerBiClient, PowerBiSettings, RefreshOptions};
use kernelize_core::{ErrorKind, Payload, PluginManager, Records};
use kernelize_fakes::Fake;
use kernelize_fakes::powerbi::{
    Config, DATASET_ID, FAILING_DATASET_ID, GATEWAY_ID, GROUP_ID, MY_DATASET_ID, PUSH_DATASET_ID,
    PUSH_TABLE, REPORT_ID, SCOPE,
};
use secrecy::SecretString;
use serde_json::{Value, json};

mod saas_common;
use saas_common::sent;

async fn fake(config: Config) -> Fake {
    kernelize_fakes::powerbi::start(config).await.unwrap()
}

fn settings_json(fake: &Fake, extra: Value) -> Value {
    let settings = json!({
        "base_url": format!("{}/v1.0/myorg", fake.url()),
        "authority": fake.url(),
        "tenant_id": "fake-tenant",
        "client_id": "fake-client-id",
        "client_secret": "${secret:POWERBI_SECRET}",
        "group_id": GROUP_ID,
        "poll": {"initial": "10ms", "max": "20ms", "max_wait": "10s"},
        "http": {"retry": {"base_delay": "10ms", "max_delay": "50ms"}}
    });
    saas_common::overlaid(settings, extra)
}

async fn manager_with(fake: &Fake, extra: Value, secret: &str) -> PluginManager {
    saas_common::activated(
        powerbi::factory(),
        settings_json(fake, extra),
        &[("POWERBI_SECRET", secret)],
        vec![],
    )
    .await
}

async fn manager(fake: &Fake) -> PluginManager {
    manager_with(fake, json!({}), "fake-client-secret").await
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Payload> {
    saas_common::call(manager, powerbi::ID, action, config, input).await
}

async fn call_json(
    manager: &PluginManager,
    action: &str,
    config: Value,
) -> kernelize_core::Result<Value> {
    call(manager, action, config, Payload::Empty)
        .await?
        .into_json()
}

async fn call_rows(manager: &PluginManager, action: &str, config: Value) -> Vec<Value> {
    saas_common::json_rows(call(manager, action, config, Payload::Empty).await.unwrap())
}

const API: &str = "/v1.0/myorg";

// ---------------------------------------------------------------------------------------
// authentication

#[tokio::test]
async fn a_client_credentials_token_is_fetched_once_and_sent_as_bearer() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let datasets = call(&m, "list_datasets", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(datasets.num_rows(), 3);
    call_rows(&m, "list_reports", json!({})).await;

    let tokens = sent(&fake, "POST", "/oauth2/v2.0/token");
    assert_eq!(tokens.len(), 1, "one token serves both calls");
    assert_eq!(tokens[0].path, "/fake-tenant/oauth2/v2.0/token");
    let form = tokens[0].form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "fake-client-id");
    assert_eq!(form["client_secret"], "fake-client-secret");
    assert_eq!(form["scope"], SCOPE);
    let list = fake
        .journal()
        .matching("GET", &format!("{API}/groups/{GROUP_ID}/datasets"));
    assert_eq!(list[0].header("authorization"), Some("Bearer fake-token"));
}

#[tokio::test]
async fn a_wrong_client_secret_is_permission_denied_quoting_entra() {
    let fake = fake(Config::default()).await;
    let m = manager_with(&fake, json!({}), "not-the-secret").await;
    let err = call_json(&m, "list_datasets", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.message().contains("AADSTS7000215"), "{err}");
    assert!(!err.to_string().contains("not-the-secret"), "{err}");
    assert!(
        sent(&fake, "GET", API).is_empty(),
        "no API call without a token"
    );
}

// ---------------------------------------------------------------------------------------
// lists

#[tokio::test]
async fn list_datasets_types_the_columns() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let records: Records = call(&m, "list_datasets", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    use kernelize_core::arrow_schema::DataType;
    let schema = records.schema();
    assert_eq!(
        schema.field_with_name("isRefreshable").unwrap().data_type(),
        &DataType::Boolean
    );
    assert!(matches!(
        schema.field_with_name("createdDate").unwrap().data_type(),
        DataType::Timestamp(_, _)
    ));
    let rows = records.to_json_rows().unwrap();
    let push = rows.iter().find(|r| r["id"] == PUSH_DATASET_ID).unwrap();
    assert_eq!(push["addRowsAPIEnabled"], true);
    assert_eq!(push["isRefreshable"], false);
}

#[tokio::test]
async fn my_workspace_is_used_without_a_group_or_with_me() {
    let fake = fake(Config::default()).await;
    let m = manager_with(&fake, json!({"group_id": null}), "fake-client-secret").await;
    let rows = call_rows(&m, "list_datasets", json!({})).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], MY_DATASET_ID);
    assert_eq!(
        fake.journal()
            .matching("GET", &format!("{API}/datasets"))
            .len(),
        1
    );

    let grouped = manager(&fake).await;
    let rows = call_rows(&grouped, "list_datasets", json!({"group_id": "me"})).await;
    assert_eq!(rows[0]["id"], MY_DATASET_ID);
    let err = call_json(&grouped, "list_datasets", json!({"group_id": "a/../b"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn list_reports_gateways_and_gateway_datasources() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let reports = call_rows(&m, "list_reports", json!({})).await;
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["id"], REPORT_ID);
    assert_eq!(reports[0]["datasetId"], DATASET_ID);

    let gateways = call_rows(&m, "list_gateways", json!({})).await;
    assert_eq!(gateways.len(), 2);
    assert_eq!(gateways[0]["id"], GATEWAY_ID);
    assert_eq!(gateways[0]["publicKeyExponent"], "AQAB");
    assert_eq!(
        fake.journal()
            .matching("GET", &format!("{API}/gateways"))
            .len(),
        1
    );

    let sources = call_rows(
        &m,
        "list_gateway_datasources",
        json!({"gateway_id": GATEWAY_ID}),
    )
    .await;
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0]["datasourceType"], "Sql");
    assert_eq!(sources[0]["gatewayId"], GATEWAY_ID);

    let err = call_json(
        &m,
        "list_gateway_datasources",
        json!({"gateway_id": "00000000-0000-0000-0000-000000000000"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.context_value("powerbi_code"),
        Some("DMTS_GatewayNotFoundError")
    );
}

// ---------------------------------------------------------------------------------------
// refreshes

#[tokio::test]
async fn a_refresh_is_accepted_with_202_and_followed_in_the_history_until_completed() {
    let fake = fake(Config {
        refresh_polls: 2,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let refresh = call_json(&m, "refresh_dataset", json!({"dataset_id": DATASET_ID}))
        .await
        .unwrap();
    assert_eq!(refresh["status"], "Completed");
    assert_eq!(refresh["refresh_type"], "ViaApi");
    assert!(refresh["end_time"].is_string());
    let request_id = refresh["request_id"].as_str().unwrap();
    let location = refresh["location"].as_str().unwrap();
    assert!(
        location.ends_with(&format!("/refreshes/{request_id}")),
        "{location}"
    );

    let path = format!("{API}/groups/{GROUP_ID}/datasets/{DATASET_ID}/refreshes");
    let posts = fake.journal().matching("POST", &path);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json(), json!({"notifyOption": "NoNotification"}));
    let polls = fake.journal().matching("GET", &path);
    assert_eq!(polls.len(), 3, "Unknown twice, then Completed");
    assert!(
        polls
            .iter()
            .all(|p| p.param("$top").as_deref() == Some("10"))
    );
}

#[tokio::test]
async fn an_enhanced_refresh_sends_its_options() {
    let fake = fake(Config {
        refresh_polls: 0,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let refresh = call_json(
        &m,
        "refresh_dataset",
        json!({"dataset_id": DATASET_ID, "type": "Full", "commit_mode": "transactional",
               "max_parallelism": 2, "retry_count": 1, "objects": [{"table": "Sales"}],
               "notify_option": "NoNotification"}),
    )
    .await
    .unwrap();
    assert_eq!(refresh["refresh_type"], "ViaEnhancedApi");
    let posts = sent(&fake, "POST", "/refreshes");
    assert_eq!(
        posts[0].json(),
        json!({"notifyOption": "NoNotification", "type": "Full", "commitMode": "transactional",
               "maxParallelism": 2, "retryCount": 1, "objects": [{"table": "Sales"}]})
    );
}

#[tokio::test]
async fn a_failed_refresh_is_an_error_with_the_service_exception() {
    let fake = fake(Config {
        refresh_polls: 1,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let err = call_json(
        &m,
        "refresh_dataset",
        json!({"dataset_id": FAILING_DATASET_ID}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert!(err.message().contains("failed"), "{err}");
    assert!(
        err.message()
            .contains("ModelRefreshFailed_CredentialsNotSpecified"),
        "{err}"
    );
    assert!(
        err.message().contains("credentials of the data source"),
        "{err}"
    );
    assert_eq!(err.context_value("dataset_id"), Some(FAILING_DATASET_ID));
    assert!(err.context_value("request_id").is_some());
}

#[tokio::test]
async fn a_refresh_not_waited_for_is_returned_as_accepted_and_listed_in_the_history() {
    let fake = fake(Config {
        refresh_polls: 5,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let accepted = call_json(
        &m,
        "refresh_dataset",
        json!({"dataset_id": DATASET_ID, "wait": false}),
    )
    .await
    .unwrap();
    assert_eq!(accepted["status"], "Accepted");
    assert!(sent(&fake, "GET", "/refreshes").is_empty());
    let history = call_rows(
        &m,
        "list_refreshes",
        json!({"dataset_id": DATASET_ID, "top": 5}),
    )
    .await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["requestId"], accepted["request_id"]);
    assert_eq!(history[0]["status"], "Unknown");
    assert_eq!(
        sent(&fake, "GET", "/refreshes")[0].param("$top").as_deref(),
        Some("5")
    );
}

#[tokio::test]
async fn refreshing_an_unknown_dataset_is_not_found_with_power_bis_code() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let err = call_json(
        &m,
        "refresh_dataset",
        json!({"dataset_id": "00000000-1111-2222-3333-444444444444"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.context_value("powerbi_code"), Some("ItemNotFound"));
    assert!(err.message().contains("is not found"), "{err}");

    let err = call_json(
        &m,
        "refresh_dataset",
        json!({"dataset_id": PUSH_DATASET_ID}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("cannot be refreshed"), "{err}");
}

// ---------------------------------------------------------------------------------------
// push rows

fn rows(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": i, "region": if i % 2 == 0 { "West" } else { "East" }, "amount": i as f64 * 1.5}))
        .collect()
}

#[tokio::test]
async fn push_rows_goes_in_chunks_of_at_most_10000_in_order() {
    let config = Config::default();
    let pushed = config.pushed.clone();
    let fake = fake(config).await;
    let m = manager(&fake).await;
    let input = rows(25_000);
    let report = call(
        &m,
        "push_rows",
        json!({"dataset_id": PUSH_DATASET_ID, "table": PUSH_TABLE}),
        Payload::json(Value::Array(input.clone())),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(report, json!({"chunks": 3, "rows": 25_000}));
    let posts = fake.journal().matching(
        "POST",
        &format!("{API}/groups/{GROUP_ID}/datasets/{PUSH_DATASET_ID}/tables/{PUSH_TABLE}/rows"),
    );
    let sizes: Vec<usize> = posts
        .iter()
        .map(|p| p.json()["rows"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [10_000, 10_000, 5_000]);
    assert_eq!(pushed.rows(), input, "every row once, in order");
}

#[tokio::test]
async fn records_are_pushed_one_object_per_row_with_a_smaller_chunk() {
    let config = Config::default();
    let pushed = config.pushed.clone();
    let fake = fake(config).await;
    let m = manager(&fake).await;
    let records = Records::from_json_rows(&rows(5)).unwrap();
    let report = call(
        &m,
        "push_rows",
        json!({"dataset_id": PUSH_DATASET_ID, "table": PUSH_TABLE, "chunk_rows": 2}),
        Payload::Records(records),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(report, json!({"chunks": 3, "rows": 5}));
    let received = pushed.rows();
    assert_eq!(received.len(), 5);
    assert_eq!(received[4]["region"], "West");
    assert_eq!(received[4]["amount"], 6.0);
}

#[tokio::test]
async fn a_429_on_push_is_waited_out_for_its_retry_after() {
    let config = Config {
        push_rate_limit_times: 1,
        retry_after_secs: 1,
        ..Config::default()
    };
    let pushed = config.pushed.clone();
    let fake = fake(config).await;
    let m = manager(&fake).await;
    let started = Instant::now();
    let report = call(
        &m,
        "push_rows",
        json!({"dataset_id": PUSH_DATASET_ID, "table": PUSH_TABLE, "chunk_rows": 3}),
        Payload::json(Value::Array(rows(7))),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report, json!({"chunks": 3, "rows": 7}));
    let posts = sent(&fake, "POST", "/rows");
    assert_eq!(posts.len(), 4, "the refused chunk is sent again");
    assert!(posts[1].at.duration_since(posts[0].at) >= Duration::from_secs(1));
    assert_eq!(pushed.rows(), rows(7), "no row twice");
}

#[tokio::test]
async fn a_push_over_the_servers_limit_is_refused_with_a_clear_error() {
    let fake = fake(Config {
        max_rows_per_request: 100,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let err = call(
        &m,
        "push_rows",
        json!({"dataset_id": PUSH_DATASET_ID, "table": PUSH_TABLE, "chunk_rows": 150}),
        Payload::json(Value::Array(rows(300))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.status(), Some(400));
    assert!(err.message().contains("limit of 100 rows"), "{err}");
    assert_eq!(err.context_value("rows_sent"), Some("0"));

    let err = call(
        &m,
        "push_rows",
        json!({"dataset_id": PUSH_DATASET_ID, "table": PUSH_TABLE, "chunk_rows": 20_000}),
        Payload::json(Value::Array(rows(3))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("10000"), "{err}");
}

#[tokio::test]
async fn a_table_name_is_encoded_into_the_path() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let err = call(
        &m,
        "push_rows",
        json!({"dataset_id": PUSH_DATASET_ID, "table": "Sales Q1/2"}),
        Payload::json(Value::Array(rows(1))),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("Sales Q1/2"), "{err}");
    let posts = sent(&fake, "POST", "/tables/");
    assert!(
        posts[0].path.ends_with("/tables/Sales%20Q1%2F2/rows"),
        "{}",
        posts[0].path
    );
}

// ---------------------------------------------------------------------------------------
// reports

#[tokio::test]
async fn clone_then_rebind_deploys_a_report() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let clone = call_json(
        &m,
        "clone_report",
        json!({"report_id": REPORT_ID, "name": "Sales (prod)", "target_workspace_id": GROUP_ID,
               "target_model_id": FAILING_DATASET_ID}),
    )
    .await
    .unwrap();
    assert_eq!(clone["name"], "Sales (prod)");
    assert_eq!(clone["datasetId"], FAILING_DATASET_ID);
    let new_id = clone["id"].as_str().unwrap().to_string();
    let posts = fake.journal().matching(
        "POST",
        &format!("{API}/groups/{GROUP_ID}/reports/{REPORT_ID}/Clone"),
    );
    assert_eq!(
        posts[0].json(),
        json!({"name": "Sales (prod)", "targetWorkspaceId": GROUP_ID,
               "targetModelId": FAILING_DATASET_ID})
    );

    let rebound = call_json(
        &m,
        "rebind_report",
        json!({"report_id": new_id, "dataset_id": DATASET_ID}),
    )
    .await
    .unwrap();
    assert_eq!(
        rebound,
        json!({"report_id": new_id, "dataset_id": DATASET_ID})
    );
    let posts = fake.journal().matching(
        "POST",
        &format!("{API}/groups/{GROUP_ID}/reports/{new_id}/Rebind"),
    );
    assert_eq!(posts[0].json(), json!({"datasetId": DATASET_ID}));

    let reports = call_rows(&m, "list_reports", json!({})).await;
    let deployed = reports.iter().find(|r| r["id"] == new_id.as_str()).unwrap();
    assert_eq!(deployed["datasetId"], DATASET_ID);
}

#[tokio::test]
async fn report_errors_are_clear() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let err = call_json(
        &m,
        "clone_report",
        json!({"report_id": REPORT_ID, "name": " "}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        sent(&fake, "POST", "/Clone").is_empty(),
        "refused before sending"
    );

    let err = call_json(
        &m,
        "rebind_report",
        json!({"report_id": "11111111-2222-3333-4444-555555555555", "dataset_id": DATASET_ID}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.context_value("powerbi_code"),
        Some("PowerBIEntityNotFound")
    );
}

// ---------------------------------------------------------------------------------------
// the typed client

#[tokio::test]
async fn the_typed_client_works_without_the_plugin() {
    let fake = fake(Config {
        refresh_polls: 0,
        ..Config::default()
    })
    .await;
    let mut settings = PowerBiSettings::new(
        "fake-tenant",
        "fake-client-id",
        SecretString::from("fake-client-secret"),
    );
    settings.base_url = format!("{}/v1.0/myorg", fake.url());
    settings.authority = fake.url().to_string();
    settings.group_id = Some(GROUP_ID.into());
    let client = PowerBiClient::new(&settings).unwrap();
    assert_eq!(client.datasets(None).await.unwrap().len(), 3);
    let accepted = client
        .start_refresh(None, DATASET_ID, &RefreshOptions::default())
        .await
        .unwrap();
    let history = client
        .refresh_history(None, DATASET_ID, Some(1))
        .await
        .unwrap();
    assert_eq!(history[0].request_id, accepted.request_id);
    assert_eq!(history[0].status, "Completed");
    assert!(!format!("{client:?}").contains("fake-client-secret"));
}
