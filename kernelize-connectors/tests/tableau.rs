//! The `tableau-connector` against the Tableau fake: every action called the way a workflow
//! calls it (by name, with JSON config, through a plugin manager), and the typed client.

#![cfg(feature = "tableau")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kernelize_connectors::tableau::{self, TableauClient, TableauSettings};
use kernelize_core::{ErrorKind, Payload, Permission, PluginManager};
use kernelize_fakes::Fake;
use kernelize_fakes::tableau::{Config, DATASOURCE_ID, PROJECT_ID, SITE_ID, VIEW_PNG};
use secrecy::SecretString;
use serde_json::{Value, json};

mod saas_common;
use saas_common::sent;

async fn fake(config: Config) -> Fake {
    kernelize_fakes::tableau::start(config).await.unwrap()
}

fn settings_json(fake: &Fake, extra: Value) -> Value {
    let settings = json!({
        "base_url": fake.url(),
        "site": "kernelize",
        "token_name": "fake-pat",
        "token_secret": "${secret:TABLEAU_PAT}",
        "poll": {"initial": "10ms", "max": "20ms", "max_wait": "10s"},
        "http": {"retry": {"base_delay": "10ms", "max_delay": "50ms"}}
    });
    saas_common::overlaid(settings, extra)
}

async fn manager_with(fake: &Fake, extra: Value, grants: Vec<Permission>) -> PluginManager {
    saas_common::activated(
        tableau::factory(),
        settings_json(fake, extra),
        &[("TABLEAU_PAT", "fake-pat-secret")],
        grants,
    )
    .await
}

async fn manager(fake: &Fake) -> PluginManager {
    manager_with(fake, json!({}), Vec::new()).await
}

async fn call(
    manager: &PluginManager,
    action: &str,
    config: Value,
    input: Payload,
) -> kernelize_core::Result<Payload> {
    saas_common::call(manager, tableau::ID, action, config, input).await
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

// ---------------------------------------------------------------------------------------
// sessions

#[tokio::test]
async fn sign_in_sends_the_personal_access_token_and_later_calls_carry_the_session_token() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let session = call_json(&m, "sign_in", json!({})).await.unwrap();
    assert_eq!(session["site_id"], SITE_ID);
    assert_eq!(session["site_content_url"], "kernelize");
    assert!(
        session.get("token").is_none(),
        "the token stays inside the plugin"
    );

    call_json(&m, "list_workbooks", json!({})).await.unwrap();

    let sign_ins = fake.journal().matching("POST", "/api/3.22/auth/signin");
    assert_eq!(sign_ins.len(), 1, "one sign-in serves every call");
    let body = sign_ins[0].json();
    assert_eq!(body["credentials"]["personalAccessTokenName"], "fake-pat");
    assert_eq!(
        body["credentials"]["personalAccessTokenSecret"],
        "fake-pat-secret"
    );
    assert_eq!(body["credentials"]["site"]["contentUrl"], "kernelize");
    assert_eq!(sign_ins[0].header("content-type"), Some("application/json"));
    let list = fake
        .journal()
        .matching("GET", &format!("/api/3.22/sites/{SITE_ID}/workbooks"));
    assert_eq!(list[0].header("x-tableau-auth"), Some("fake-token"));
    assert_eq!(list[0].header("accept"), Some("application/json"));
}

#[tokio::test]
async fn the_first_call_signs_in_by_itself() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let views = call(&m, "list_views", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(views.num_rows(), 7);
    let paths: Vec<String> = fake.requests().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths[0], "/api/3.22/auth/signin", "{paths:?}");
}

#[tokio::test]
async fn an_expired_session_signs_in_again_once_and_replays_the_call() {
    let fake = fake(Config {
        expire_session_after: Some(1),
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    call_json(&m, "list_workbooks", json!({})).await.unwrap();
    // The session expires now: this call answers 401 / 401002 first.
    let records = call(&m, "list_workbooks", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(records.num_rows(), 5);

    let sign_ins = fake.journal().matching("POST", "/api/3.22/auth/signin");
    assert_eq!(sign_ins.len(), 2);
    let lists = fake
        .journal()
        .matching("GET", &format!("/api/3.22/sites/{SITE_ID}/workbooks"));
    let tokens: Vec<Option<&str>> = lists.iter().map(|s| s.header("x-tableau-auth")).collect();
    assert_eq!(
        tokens,
        vec![Some("fake-token"), Some("fake-token"), Some("fake-token-2")],
        "the refused call is replayed once with the new token"
    );
}

#[tokio::test]
async fn wrong_credentials_are_permission_denied_with_tableaus_code() {
    let fake = fake(Config {
        token_secret: "another-secret".into(),
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let err = call_json(&m, "list_workbooks", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.status(), Some(401));
    assert!(err.message().contains("401001"), "{err}");
    assert!(err.message().contains("Signin Error"), "{err}");
    assert!(!err.to_string().contains("fake-pat-secret"), "{err}");
}

#[tokio::test]
async fn sign_out_ends_the_session_and_shutdown_signs_out() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    call_json(&m, "sign_in", json!({})).await.unwrap();
    let out = call_json(&m, "sign_out", json!({})).await.unwrap();
    assert_eq!(out["signed_out"], true);
    let again = call_json(&m, "sign_out", json!({})).await.unwrap();
    assert_eq!(again["signed_out"], false, "no session is open any more");
    let sign_outs = fake.journal().matching("POST", "/api/3.22/auth/signout");
    assert_eq!(sign_outs.len(), 1);
    assert_eq!(sign_outs[0].header("x-tableau-auth"), Some("fake-token"));

    // A new session, closed by the plugin's shutdown.
    call_json(&m, "sign_in", json!({})).await.unwrap();
    m.deactivate(tableau::ID, false).await.unwrap();
    let sign_outs = fake.journal().matching("POST", "/api/3.22/auth/signout");
    assert_eq!(sign_outs.len(), 2);
    assert_eq!(sign_outs[1].header("x-tableau-auth"), Some("fake-token-2"));
}

// ---------------------------------------------------------------------------------------
// lists

#[tokio::test]
async fn list_workbooks_follows_every_page_and_types_the_columns() {
    let fake = fake(Config {
        workbooks: 5,
        ..Config::default()
    })
    .await;
    let m = manager_with(&fake, json!({"page_size": 2}), Vec::new()).await;
    let records = call(&m, "list_workbooks", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(records.num_rows(), 5);
    let schema = records.schema();
    use kernelize_core::arrow_schema::DataType;
    assert_eq!(
        schema.field_with_name("size").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("showTabs").unwrap().data_type(),
        &DataType::Boolean
    );
    assert!(matches!(
        schema.field_with_name("createdAt").unwrap().data_type(),
        DataType::Timestamp(_, _)
    ));
    let rows = records.to_json_rows().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Workbook 1",
            "Workbook 2",
            "Workbook 3",
            "Workbook 4",
            "Workbook 5"
        ]
    );
    assert_eq!(rows[0]["projectId"], PROJECT_ID);

    let pages: Vec<(Option<String>, Option<String>)> = fake
        .journal()
        .matching("GET", &format!("/api/3.22/sites/{SITE_ID}/workbooks"))
        .iter()
        .map(|s| (s.param("pageNumber"), s.param("pageSize")))
        .collect();
    let two = Some("2".to_string());
    assert_eq!(
        pages,
        vec![
            (Some("1".into()), two.clone()),
            (Some("2".into()), two.clone()),
            (Some("3".into()), two)
        ],
        "stops once totalAvailable items are in"
    );
}

#[tokio::test]
async fn a_limit_stops_early_and_a_list_over_max_items_asks_for_a_filter() {
    let fake = fake(Config {
        workbooks: 9,
        ..Config::default()
    })
    .await;
    let m = manager_with(&fake, json!({"page_size": 3, "max_items": 5}), Vec::new()).await;
    let records = call(
        &m,
        "list_workbooks",
        json!({"limit": 4, "filter": "name:has:Work"}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_records()
    .unwrap();
    assert_eq!(records.num_rows(), 4);
    let seen = fake
        .journal()
        .matching("GET", &format!("/api/3.22/sites/{SITE_ID}/workbooks"));
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].param("filter").as_deref(), Some("name:has:Work"));

    let err = call_json(&m, "list_workbooks", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("9 workbooks"), "{err}");
    assert!(err.message().contains("max_items"), "{err}");
}

#[tokio::test]
async fn list_views_of_the_site_and_of_one_workbook() {
    let fake = fake(Config {
        workbooks: 3,
        views: 7,
        ..Config::default()
    })
    .await;
    let m = manager_with(&fake, json!({"page_size": 3}), Vec::new()).await;
    let all = call(&m, "list_views", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(all.num_rows(), 7);
    assert_eq!(
        fake.journal()
            .matching("GET", &format!("/api/3.22/sites/{SITE_ID}/views"))
            .len(),
        3
    );
    let rows = all.to_json_rows().unwrap();
    assert_eq!(rows[1]["totalViewCount"], 20);
    let workbook = rows[0]["workbookId"].as_str().unwrap().to_string();

    let some = call(
        &m,
        "list_views",
        json!({"workbook_id": workbook}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_records()
    .unwrap()
    .to_json_rows()
    .unwrap();
    assert!(!some.is_empty() && some.len() < 7);
    assert!(some.iter().all(|r| r["workbookId"] == workbook.as_str()));
}

// ---------------------------------------------------------------------------------------
// publishing

fn hyper_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn a_small_datasource_is_published_in_one_multipart_mixed_request() {
    let config = Config::default();
    let published = config.published.clone();
    let fake = fake(config).await;
    let m = manager(&fake).await;
    let file = hyper_bytes(3000);
    let out = call(
        &m,
        "publish_datasource",
        json!({"name": "Sales & Returns", "project_id": PROJECT_ID, "file_name": "sales.hyper",
               "description": "nightly", "mode": "overwrite"}),
        Payload::bytes(file.clone(), "application/octet-stream"),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(out["bytes"], 3000);
    assert_eq!(out["chunks"], 0);
    assert_eq!(out["datasource"]["name"], "Sales & Returns");
    assert!(out["datasource"]["id"].is_string());

    let all = published.all();
    assert_eq!(all.len(), 1);
    assert_eq!(&all[0].content[..], &file[..], "the file arrives unchanged");
    assert_eq!(all[0].file_name.as_deref(), Some("sales.hyper"));
    assert_eq!(all[0].datasource_type, "hyper");
    assert_eq!(all[0].mode, "overwrite");
    assert_eq!(all[0].description.as_deref(), Some("nightly"));

    let seen = fake
        .journal()
        .matching("POST", &format!("/api/3.22/sites/{SITE_ID}/datasources"));
    assert_eq!(seen.len(), 1);
    let content_type = seen[0].header("content-type").unwrap();
    assert!(
        content_type.starts_with("multipart/mixed; boundary="),
        "{content_type}"
    );
    assert_eq!(seen[0].param("datasourceType").as_deref(), Some("hyper"));
    assert_eq!(seen[0].param("overwrite").as_deref(), Some("true"));
    assert!(sent(&fake, "POST", "/fileUploads").is_empty());
}

#[tokio::test]
async fn a_large_datasource_goes_in_chunks_and_is_reassembled() {
    let config = Config::default();
    let published = config.published.clone();
    let fake = fake(config).await;
    let m = manager_with(
        &fake,
        json!({"chunk_threshold": 1000, "chunk_size": 400}),
        Vec::new(),
    )
    .await;
    let file = hyper_bytes(2500);
    let out = call(
        &m,
        "publish_datasource",
        json!({"name": "Big", "project_id": PROJECT_ID, "file_name": "big.hyper"}),
        Payload::bytes(file.clone(), "application/octet-stream"),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(out["chunks"], 7);
    let session = out["upload_session_id"].as_str().unwrap().to_string();

    let all = published.all();
    assert_eq!(
        &all[0].content[..],
        &file[..],
        "the chunks reassemble to the file"
    );
    assert_eq!(all[0].chunks, 7);
    assert_eq!(all[0].upload_session.as_deref(), Some(session.as_str()));

    let site = format!("/api/3.22/sites/{SITE_ID}");
    assert_eq!(
        fake.journal()
            .matching("POST", &format!("{site}/fileUploads"))
            .len(),
        1
    );
    let appends = fake
        .journal()
        .matching("PUT", &format!("{site}/fileUploads/{session}"));
    assert_eq!(appends.len(), 7);
    assert!(appends.iter().all(|s| {
        s.header("content-type")
            .unwrap()
            .starts_with("multipart/mixed; boundary=")
    }));
    let publish = fake
        .journal()
        .matching("POST", &format!("{site}/datasources"));
    assert_eq!(publish[0].param("uploadSessionId"), Some(session));
    assert_eq!(publish[0].param("overwrite").as_deref(), Some("false"));
}

#[tokio::test]
async fn the_typed_client_publishes_a_file_from_disk_a_chunk_at_a_time() {
    let config = Config::default();
    let published = config.published.clone();
    let fake = fake(config).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.tdsx");
    let file = hyper_bytes(1500);
    std::fs::write(&path, &file).unwrap();
    let mut settings = TableauSettings::new(
        fake.url(),
        "fake-pat",
        SecretString::from("fake-pat-secret"),
    );
    settings.site = "kernelize".into();
    settings.chunk_threshold = 1000;
    settings.chunk_size = 600;
    let client = TableauClient::new(&settings).unwrap();
    let out = client
        .publish_datasource(
            &tableau::DatasourceFile::Path {
                path: path.clone(),
                file_name: "orders.tdsx".into(),
            },
            &tableau::PublishOptions {
                name: "Orders".into(),
                project_id: PROJECT_ID.into(),
                description: None,
                datasource_type: None,
                mode: tableau::PublishMode::CreateNew,
                as_job: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.chunks, 3);
    assert_eq!(out.bytes, 1500);
    let all = published.all();
    assert_eq!(&all[0].content[..], &file[..]);
    assert_eq!(all[0].datasource_type, "tdsx");
    let appends = sent(&fake, "PUT", "/fileUploads/");
    let sizes: Vec<usize> = appends.iter().map(|s| s.body.len()).collect();
    assert!(sizes[0] > 600 && sizes[2] < sizes[0], "{sizes:?}");
}

#[tokio::test]
async fn the_plugin_publishes_a_path_it_is_granted_and_refuses_any_other() {
    let config = Config::default();
    let published = config.published.clone();
    let fake = fake(config).await;
    let granted = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let file = hyper_bytes(1500);
    let path = granted.path().join("orders.hyper");
    std::fs::write(&path, &file).unwrap();
    let outside = elsewhere.path().join("payroll.hyper");
    std::fs::write(&outside, &file).unwrap();
    let m = manager_with(
        &fake,
        json!({}),
        vec![Permission::FileRead {
            path: granted.path().to_path_buf(),
        }],
    )
    .await;

    // A file in the granted directory is read and published, named by its path.
    let out = call(
        &m,
        "publish_datasource",
        json!({"name": "Orders", "project_id": PROJECT_ID, "path": path}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(out["bytes"], 1500);
    assert_eq!(out["datasource"]["name"], "Orders");
    let all = published.all();
    assert_eq!(all.len(), 1);
    assert_eq!(&all[0].content[..], &file[..], "the file arrives unchanged");
    assert_eq!(all[0].file_name.as_deref(), Some("orders.hyper"));
    assert_eq!(all[0].datasource_type, "hyper");

    // A file outside it, or a link inside it to one outside, is refused before anything
    // is sent.
    let seen = fake.requests().len();
    let mut refused = vec![outside.clone()];
    #[cfg(unix)]
    {
        let link = granted.path().join("link.hyper");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        refused.push(link);
    }
    for path in refused {
        let err = call(
            &m,
            "publish_datasource",
            json!({"name": "Payroll", "project_id": PROJECT_ID, "path": path}),
            Payload::Empty,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    }

    // Without a file grant no path is read.
    let plain = manager(&fake).await;
    let err = call(
        &plain,
        "publish_datasource",
        json!({"name": "Orders", "project_id": PROJECT_ID, "path": path}),
        Payload::Empty,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("was not granted"), "{err}");
    assert_eq!(
        fake.requests().len(),
        seen,
        "nothing was sent for a refused path"
    );
    assert_eq!(published.all().len(), 1);
}

#[tokio::test]
async fn a_bytes_input_needs_a_file_name() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let err = call(
        &m,
        "publish_datasource",
        json!({"name": "X", "project_id": PROJECT_ID}),
        Payload::bytes(hyper_bytes(10), "application/octet-stream"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("file_name"), "{err}");
}

#[tokio::test]
async fn publishing_as_a_job_waits_for_the_job() {
    let fake = fake(Config {
        job_polls: 2,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let out = call(
        &m,
        "publish_datasource",
        json!({"name": "Jobbed", "project_id": PROJECT_ID, "file_name": "j.hyper", "as_job": true}),
        Payload::bytes(hyper_bytes(10), "application/octet-stream"),
    )
    .await
    .unwrap()
    .into_json()
    .unwrap();
    assert_eq!(out["job"]["status"], "Success");
    assert_eq!(out["job"]["job_type"], "PublishDatasource");
    assert!(out["datasource"].is_null());
    assert_eq!(sent(&fake, "GET", "/jobs/").len(), 3);
}

#[tokio::test]
async fn publishing_refuses_bad_input_before_sending_and_reports_tableaus_conflicts() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let bytes = || Payload::bytes(hyper_bytes(10), "application/octet-stream");
    let err = call(
        &m,
        "publish_datasource",
        json!({"name": "X", "project_id": PROJECT_ID, "file_name": "x.csv"}),
        bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("hyper, tds, tdsx, tde"), "{err}");
    let err = call(
        &m,
        "publish_datasource",
        json!({"name": "X", "project_id": PROJECT_ID, "file_name": "x.hyper"}),
        Payload::json(json!({"not": "a file"})),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(sent(&fake, "POST", "/datasources").is_empty());

    // The fake's own data source is called "Sales extract": publishing anew is a conflict.
    let err = call(
        &m,
        "publish_datasource",
        json!({"name": "Sales extract", "project_id": PROJECT_ID, "file_name": "s.hyper"}),
        bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(err.status(), Some(409));
    assert!(err.message().contains("409004"), "{err}");

    let err = call(
        &m,
        "publish_datasource",
        json!({"name": "Y", "project_id": "no-such-project", "file_name": "y.hyper"}),
        bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("404005"), "{err}");
}

// ---------------------------------------------------------------------------------------
// extract refreshes

#[tokio::test]
async fn refresh_extract_polls_the_job_until_it_finishes() {
    let fake = fake(Config {
        job_polls: 3,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let job = call_json(
        &m,
        "refresh_extract",
        json!({"datasource_id": DATASOURCE_ID}),
    )
    .await
    .unwrap();
    assert_eq!(job["status"], "Success");
    assert_eq!(job["finish_code"], 0);
    assert_eq!(job["job_type"], "RefreshExtract");
    assert_eq!(job["datasource_id"], DATASOURCE_ID);

    let refresh = fake.journal().matching(
        "POST",
        &format!("/api/3.22/sites/{SITE_ID}/datasources/{DATASOURCE_ID}/refresh"),
    );
    assert_eq!(refresh[0].json(), json!({}));
    let polls = sent(&fake, "GET", "/jobs/");
    assert_eq!(
        polls.len(),
        4,
        "three polls in progress, the fourth finished"
    );
}

#[tokio::test]
async fn a_refresh_answered_200_is_taken_like_202() {
    let fake = fake(Config {
        refresh_status: 200,
        job_polls: 0,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let job = call_json(
        &m,
        "refresh_extract",
        json!({"datasource_id": DATASOURCE_ID}),
    )
    .await
    .unwrap();
    assert_eq!(job["status"], "Success");
}

#[tokio::test]
async fn refresh_without_waiting_returns_the_started_job_and_get_job_follows_it() {
    let fake = fake(Config {
        job_polls: 1,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let job = call_json(
        &m,
        "refresh_extract",
        json!({"datasource_id": DATASOURCE_ID, "wait": false}),
    )
    .await
    .unwrap();
    assert_eq!(job["status"], "InProgress");
    assert!(sent(&fake, "GET", "/jobs/").is_empty());
    let id = job["id"].as_str().unwrap();
    let first = call_json(&m, "get_job", json!({"job_id": id}))
        .await
        .unwrap();
    assert_eq!(first["progress"], 50);
    let second = call_json(&m, "get_job", json!({"job_id": id}))
        .await
        .unwrap();
    assert_eq!(second["status"], "Success");
}

#[tokio::test]
async fn a_failed_refresh_is_an_error_quoting_the_jobs_notes() {
    let fake = fake(Config {
        refresh_finish_code: 1,
        job_polls: 1,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let err = call_json(
        &m,
        "refresh_extract",
        json!({"datasource_id": DATASOURCE_ID}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Remote);
    assert!(err.message().contains("failed"), "{err}");
    assert!(err.message().contains("refused the connection"), "{err}");
    assert_eq!(err.context_value("datasource_id"), Some(DATASOURCE_ID));
}

#[tokio::test]
async fn a_cancelled_refresh_is_an_error_too() {
    let fake = fake(Config {
        refresh_finish_code: 2,
        job_polls: 0,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let err = call_json(
        &m,
        "refresh_extract",
        json!({"datasource_id": DATASOURCE_ID}),
    )
    .await
    .unwrap_err();
    assert!(err.message().contains("cancelled"), "{err}");
}

#[tokio::test]
async fn a_refresh_already_queued_is_a_clear_invalid_state_error() {
    let fake = fake(Config {
        refresh_conflict: true,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    let err = call_json(
        &m,
        "refresh_extract",
        json!({"datasource_id": DATASOURCE_ID}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidState);
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.context_value("tableau_code"), Some("409093"));
    assert!(err.message().contains("already queued or running"), "{err}");
}

#[tokio::test]
async fn refreshing_an_unknown_datasource_is_not_found() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let err = call_json(&m, "refresh_extract", json!({"datasource_id": "0000-nope"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("could not be found"), "{err}");
    let err = call_json(&m, "refresh_extract", json!({"datasource_id": "../sites"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

// ---------------------------------------------------------------------------------------
// view images

#[tokio::test]
async fn export_view_image_returns_the_png_with_view_filters() {
    let fake = fake(Config::default()).await;
    let m = manager(&fake).await;
    let views = call(&m, "list_views", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap()
        .to_json_rows()
        .unwrap();
    let view = views[0]["id"].as_str().unwrap().to_string();
    let image = call(
        &m,
        "export_view_image",
        json!({"view_id": view, "max_age_minutes": 5, "filters": {"Region": "West", "Ship Mode": "Air"}}),
        Payload::Empty,
    )
    .await
    .unwrap()
    .into_blob()
    .unwrap();
    assert_eq!(image.media_type, "image/png");
    assert_eq!(&image.data[..], VIEW_PNG);
    let seen = fake.journal().matching(
        "GET",
        &format!("/api/3.22/sites/{SITE_ID}/views/{view}/image"),
    );
    assert_eq!(seen[0].param("resolution").as_deref(), Some("high"));
    assert_eq!(seen[0].param("maxAge").as_deref(), Some("5"));
    assert_eq!(seen[0].param("vf_Region").as_deref(), Some("West"));
    assert_eq!(seen[0].param("vf_Ship Mode").as_deref(), Some("Air"));
}

// ---------------------------------------------------------------------------------------
// rate limits (undocumented by Tableau: both forms)

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let fake = fake(Config {
        rate_limit_times: 1,
        rate_limit_retry_after: Some(1),
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    call_json(&m, "sign_in", json!({})).await.unwrap();
    let started = Instant::now();
    let records = call(&m, "list_workbooks", json!({}), Payload::Empty)
        .await
        .unwrap()
        .into_records()
        .unwrap();
    assert_eq!(records.num_rows(), 5);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let lists = sent(&fake, "GET", "/workbooks");
    assert_eq!(lists.len(), 2);
    assert!(lists[1].at.duration_since(lists[0].at) >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_and_retries_even_a_post() {
    let fake = fake(Config {
        rate_limit_times: 1,
        rate_limit_retry_after: None,
        job_polls: 0,
        ..Config::default()
    })
    .await;
    let m = manager(&fake).await;
    call_json(&m, "sign_in", json!({})).await.unwrap();
    let job = call_json(
        &m,
        "refresh_extract",
        json!({"datasource_id": DATASOURCE_ID}),
    )
    .await
    .unwrap();
    assert_eq!(job["status"], "Success");
    assert_eq!(sent(&fake, "POST", "/refresh").len(), 2);
}

// ---------------------------------------------------------------------------------------
// the typed client

#[tokio::test]
async fn the_typed_client_works_without_the_plugin() {
    let fake = fake(Config::default()).await;
    let mut settings = TableauSettings::new(
        fake.url(),
        "fake-pat",
        SecretString::from("fake-pat-secret"),
    );
    settings.site = "kernelize".into();
    let client = TableauClient::new(&settings).unwrap();
    let info = client.sign_in(false).await.unwrap();
    assert_eq!(info.user_id, kernelize_fakes::tableau::USER_ID);
    let workbooks = client
        .workbooks(&tableau::ListQuery::default())
        .await
        .unwrap();
    assert_eq!(workbooks.len(), 5);
    let job = client.refresh_extract(DATASOURCE_ID, false).await.unwrap();
    assert!(!job.is_finished());
    let err = client
        .refresh_extract(DATASOURCE_ID, true)
        .await
        .unwrap_err();
    assert!(err.message().contains("3.25"), "{err}");
    assert!(client.sign_out().await.unwrap());
    assert!(!format!("{client:?}").contains("fake-pat-secret"));
}
