//! `examples/workflows/data_sync.yaml` with `data_sync.vendors.yaml`, end to end: Snowflake →
//! `data-transformer` → Databricks → Slack, each vendor a fake started as a separate process
//! (`kernelize-fake`), reached through the settings' `${env:..}` URLs and `${secret:..}`
//! credentials exactly as a user runs the pair against the real services. Only the network
//! grants change: the vendors' hosts become 127.0.0.1.
//!
//! The fakes come from the `kernelize-fakes` crate's `kernelize-fake` binary, built beside
//! `kernelize` by a workspace build (`cargo build -p kernelize-fakes --features all`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A fake vendor running as a child process; killed when dropped.
struct FakeProcess {
    child: Child,
    url: String,
}

impl FakeProcess {
    fn start(vendor: &str) -> Self {
        let binary = Path::new(env!("CARGO_BIN_EXE_kernelize")).with_file_name("kernelize-fake");
        assert!(
            binary.exists(),
            "{} is missing: build it with `cargo build -p kernelize-fakes --features all`",
            binary.display()
        );
        let mut child = Command::new(&binary)
            .args([vendor, "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kernelize-fake starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("kernelize-fake {vendor} printed `{line}`"))
            .to_string();
        FakeProcess { child, url }
    }

    /// Every request the fake received (`GET /_fake/journal`, over a plain TCP stream).
    fn journal(&self) -> Vec<Value> {
        let authority = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(authority).unwrap();
        write!(
            stream,
            "GET /_fake/journal HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        serde_json::from_str::<Value>(body)
            .unwrap()
            .as_array()
            .cloned()
            .unwrap()
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn requests<'a>(journal: &'a [Value], method: &str, path: &str) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|r| r["method"] == method && r["path"].as_str().unwrap_or("").starts_with(path))
        .collect()
}

#[test]
fn data_sync_runs_from_snowflake_through_databricks_to_slack() {
    let snowflake = FakeProcess::start("snowflake");
    let databricks = FakeProcess::start("databricks");
    let slack = FakeProcess::start("slack");

    let dir = tempfile::tempdir().unwrap();
    let vendors =
        std::fs::read_to_string(repo().join("examples/workflows/data_sync.vendors.yaml")).unwrap();
    let local = vendors
        .replace("\"*.snowflakecomputing.com\"", "127.0.0.1")
        .replace("\"*.cloud.databricks.com\"", "127.0.0.1")
        .replace("\"slack.com\"", "127.0.0.1");
    assert_eq!(local.matches("host: 127.0.0.1").count(), 3);
    let config = dir.path().join("vendors.yaml");
    std::fs::write(&config, local).unwrap();
    let private_key = std::fs::read_to_string(
        repo().join("kernelize-connectors/tests/fixtures/jwt-test-key.pem"),
    )
    .unwrap();

    let run = |store: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_kernelize"))
            .current_dir(repo())
            .args([
                "run",
                "examples/workflows/data_sync.yaml",
                "--json",
                "--config",
            ])
            .arg(&config)
            .arg("--store")
            .arg(format!("sqlite://{}", store.display()))
            .env("SNOWFLAKE_URL", &snowflake.url)
            .env("SNOWFLAKE_ACCOUNT", "KZ12345")
            .env("SNOWFLAKE_USER", "LOADER")
            .env("SNOWFLAKE_WAREHOUSE", "COMPUTE_WH")
            .env("SNOWFLAKE_DATABASE", "SALES")
            .env("SNOWFLAKE_SCHEMA", "PUBLIC")
            .env("KERNELIZE_SECRET_SNOWFLAKE_PRIVATE_KEY", &private_key)
            .env("DATABRICKS_HOST", &databricks.url)
            .env("DATABRICKS_WAREHOUSE_ID", "fake-warehouse")
            .env("DATABRICKS_STAGING_PATH", "/Volumes/main/default/staging")
            .env("KERNELIZE_SECRET_DATABRICKS_TOKEN", "dapi-fake-token")
            .env("SLACK_API_URL", format!("{}/api/", slack.url))
            .env("KERNELIZE_SECRET_SLACK_BOT_TOKEN", "xoxb-fake-token")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kernelize run failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let store = dir.path().join("runs.db");
    let report = run(&store);
    assert_eq!(report["status"], "succeeded", "{report:#}");

    // Snowflake: a key-pair JWT, the query with `:last_sync` bound (the epoch on a first
    // run), a 202 polled to its result, and the second partition fetched.
    let sf = snowflake.journal();
    let submits = requests(&sf, "POST", "/api/v2/statements");
    let submit = submits.last().unwrap();
    assert!(
        submit["headers"]["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer ey")
    );
    assert_eq!(
        submit["headers"]["x-snowflake-authorization-token-type"],
        "KEYPAIR_JWT"
    );
    let body: Value = serde_json::from_str(submit["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["statement"],
        "SELECT * FROM sales_data WHERE updated_at > ?"
    );
    assert_eq!(body["bindings"]["1"]["value"], "1970-01-01T00:00:00Z");
    assert_eq!(body["warehouse"], "COMPUTE_WH");
    let handle_polls: Vec<_> = requests(&sf, "GET", "/api/v2/statements/");
    assert!(
        handle_polls
            .iter()
            .any(|r| r["query"].as_str().unwrap_or("").contains("partition=1")),
        "the second partition was fetched: {handle_polls:#?}"
    );

    // Databricks: the normalized rows staged as a file in the volume, COPY INTO the table,
    // the staged file deleted.
    let db = databricks.journal();
    let uploads = requests(
        &db,
        "PUT",
        "/api/2.0/fs/files/Volumes/main/default/staging/",
    );
    assert_eq!(uploads.len(), 1, "{db:#?}");
    let staged = uploads[0]["body"].as_str().unwrap();
    assert_eq!(staged.lines().count(), 4, "one JSON line per row: {staged}");
    let statements: Vec<String> = requests(&db, "POST", "/api/2.0/sql/statements")
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap()["statement"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        statements
            .iter()
            .any(|s| s.starts_with("COPY INTO sales_analytics")),
        "{statements:?}"
    );
    assert_eq!(
        requests(
            &db,
            "DELETE",
            "/api/2.0/fs/files/Volumes/main/default/staging/"
        )
        .len(),
        1
    );

    // Slack: one message to the channel saying how many rows were loaded.
    let sl = slack.journal();
    let posts = requests(&sl, "POST", "/api/chat.postMessage");
    assert_eq!(posts.len(), 1, "{sl:#?}");
    assert_eq!(
        posts[0]["headers"]["authorization"],
        "Bearer xoxb-fake-token"
    );
    let message: Value = serde_json::from_str(posts[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(message["channel"], "#data-pipeline");
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("4 rows") && text.contains("sales_analytics"),
        "{text}"
    );

    // A second run binds the start of the first as `:last_sync`.
    let again = run(&store);
    assert_eq!(again["status"], "succeeded", "{again:#}");
    let sf = snowflake.journal();
    let last = requests(&sf, "POST", "/api/v2/statements")
        .last()
        .cloned()
        .unwrap();
    let body: Value = serde_json::from_str(last["body"].as_str().unwrap()).unwrap();
    let bound = body["bindings"]["1"]["value"].as_str().unwrap();
    assert_ne!(bound, "1970-01-01T00:00:00Z");
    assert!(bound.starts_with("20"), "{bound}");
}

#[test]
fn plugins_info_shows_each_saas_connector_with_its_actions_and_settings() {
    let expected: &[(&str, &[&str])] = &[
        (
            "snowflake-connector",
            &["query", "extract", "load", "migrate", "cancel"],
        ),
        (
            "databricks-connector",
            &["query", "load", "run_job", "mlflow"],
        ),
        (
            "bigquery-connector",
            &["query", "insert", "schema", "dry_run"],
        ),
        (
            "tableau-connector",
            &[
                "sign_in",
                "sign_out",
                "publish_datasource",
                "refresh_extract",
                "list_workbooks",
                "list_views",
                "export_view_image",
            ],
        ),
        (
            "powerbi-connector",
            &[
                "list_datasets",
                "refresh_dataset",
                "push_rows",
                "list_reports",
                "clone_report",
                "rebind_report",
                "list_gateways",
            ],
        ),
        (
            "looker-connector",
            &[
                "login",
                "run_inline_query",
                "run_look",
                "list_models",
                "get_model",
                "create_embed_url",
            ],
        ),
        ("zapier-connector", &["trigger", "subscribe", "unsubscribe"]),
        (
            "power-automate-connector",
            &["trigger_flow", "request_approval"],
        ),
        (
            "airflow-connector",
            &[
                "trigger_dag",
                "dag_run_status",
                "list_dags",
                "pause",
                "unpause",
                "list_task_instances",
            ],
        ),
        (
            "wordpress-connector",
            &["list", "create", "update", "delete", "upload_media"],
        ),
        (
            "drupal-connector",
            &["list", "create", "update", "delete", "sync_taxonomy"],
        ),
        (
            "shopify-connector",
            &[
                "list_products",
                "upsert_product",
                "list_orders",
                "set_inventory",
                "list_customers",
            ],
        ),
        ("slack-notifier", &["send_message", "send_webhook"]),
    ];
    for (id, actions) in expected {
        let out = Command::new(env!("CARGO_BIN_EXE_kernelize"))
            .args(["plugins", "info", id, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "plugins info {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        let names: Vec<&str> = info["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        for action in *actions {
            assert!(names.contains(action), "{id} lacks `{action}`: {names:?}");
        }
        let schema = info["config_schema"].to_string();
        assert!(
            schema.contains("base_url") || schema.contains("host") || schema.contains("url"),
            "{id}: {schema}"
        );
        for a in info["actions"].as_array().unwrap() {
            assert!(
                !a["description"].as_str().unwrap().is_empty(),
                "{id} {}",
                a["name"]
            );
        }
    }
}
