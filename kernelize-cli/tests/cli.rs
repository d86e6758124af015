//! The built `kernelize` binary: exit codes, error lines and JSON output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn kernelize(args: &[&str]) -> Output {
    kernelize_in(&workspace(), args)
}

fn kernelize_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(args)
        .current_dir(dir)
        .env_remove("KERNELIZE_LOG")
        // Runs are recorded in memory, not in the user's store.
        .env("KERNELIZE_STORE", "memory:")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with `code` and a single-line cause on stderr containing `needle`.
fn assert_fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stderr: {err}\nstdout: {}",
        stdout(o)
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.lines().next().unwrap().contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn json_stdout(o: &Output) -> Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn version_prints_the_package_version() {
    let o = kernelize(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("kernelize {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn plugins_list_json_has_the_builtins_with_their_fields() {
    let list = json_stdout(&kernelize(&["plugins", "list", "--json"]));
    let items = list.as_array().unwrap();
    for id in ["data-transformer", "file", "log-notifier"] {
        let p = items
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"));
        for field in ["id", "name", "version", "category", "actions"] {
            assert!(!p[field].is_null(), "{id} lacks {field}");
        }
        assert!(!p["actions"].as_array().unwrap().is_empty());
    }
    let transformer = items
        .iter()
        .find(|p| p["id"] == "data-transformer")
        .unwrap();
    assert_eq!(transformer["category"], "data_processor");
    let actions: Vec<&str> = transformer["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "select",
        "rename",
        "cast",
        "fill_defaults",
        "validate",
        "normalize",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[test]
fn plugins_list_prints_a_table() {
    let o = kernelize(&["plugins", "list"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains("log-notifier") && out.contains("send_message"),
        "{out}"
    );
}

#[test]
fn plugins_info_json_describes_actions_and_schemas() {
    let info = json_stdout(&kernelize(&["plugins", "info", "log-notifier", "--json"]));
    assert_eq!(info["id"], "log-notifier");
    assert_eq!(info["actions"][0]["name"], "send_message");
    assert!(info["actions"][0]["config"]["properties"]["channel"].is_object());
}

#[test]
fn unknown_plugin_exits_2_and_names_the_known_ones() {
    let o = kernelize(&["plugins", "info", "snowflake"]);
    assert_fails(&o, 2, "unknown plugin `snowflake`");
    let known = stderr(&o);
    for id in ["data-transformer", "file", "log-notifier"] {
        assert!(known.contains(id), "{known}");
    }
    let o = kernelize(&["exec", "nope", "run"]);
    assert_fails(&o, 2, "unknown plugin `nope`");
}

#[test]
fn unknown_action_exits_2_and_names_the_known_ones() {
    let o = kernelize(&["exec", "log-notifier", "shout"]);
    assert_fails(&o, 2, "unknown action `shout`; known actions: send_message");
}

#[test]
fn bad_json_input_exits_2_with_one_line() {
    let o = kernelize(&[
        "exec",
        "log-notifier",
        "send_message",
        "--input",
        "{\"text\": ",
    ]);
    assert_fails(&o, 2, "invalid JSON");
}

#[test]
fn bad_usage_exits_2() {
    let o = kernelize(&["exec"]);
    assert_eq!(o.status.code(), Some(2));
    let o = kernelize(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn csv_with_a_broken_row_exits_2_naming_line_and_column() {
    let o = kernelize(&[
        "exec",
        "data-transformer",
        "select",
        "--config",
        r#"{"columns": ["order_id"]}"#,
        "--input",
        "examples/data/sales_broken.csv",
    ]);
    // The broken value makes the inferred type of `amount` a string, so selecting works;
    // casting it is what fails, naming the row and column.
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kernelize(&[
        "exec",
        "data-transformer",
        "cast",
        "--config",
        r#"{"columns": {"amount": "float64"}}"#,
        "--input",
        "examples/data/sales_broken.csv",
    ]);
    assert_fails(&o, 2, "amount");
    assert!(stderr(&o).contains("row 3"), "{}", stderr(&o));
}

#[test]
fn csv_with_a_ragged_row_exits_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ragged.csv");
    std::fs::write(&path, "a,b\n1,2\n3,4,5\n").unwrap();
    let o = kernelize(&[
        "exec",
        "data-transformer",
        "select",
        "--config",
        r#"{"columns": ["a"]}"#,
        "--input",
        path.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, "line 3");
}

#[test]
fn exec_transforms_the_sample_file_to_json_rows() {
    let rows = json_stdout(&kernelize(&[
        "exec",
        "data-transformer",
        "normalize",
        "--input",
        "examples/data/sales.csv",
        "--config",
        r#"{"lowercase": ["region", "currency"], "timestamps": {"updated_at": null}}"#,
        "--json",
    ]));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["region"], "north");
    assert_eq!(rows[1]["currency"], "eur");
    assert_eq!(rows[3]["customer"], "Umbrella");
    // 17:30 at +01:00 is 16:30 UTC.
    assert!(
        rows[3]["updated_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-03T16:30:00"),
        "{}",
        rows[3]
    );
}

#[test]
fn exec_reads_inline_json_rows_as_records() {
    let rows = json_stdout(&kernelize(&[
        "exec",
        "data-transformer",
        "rename",
        "--config",
        r#"{"columns": {"a": "b"}}"#,
        "--input",
        r#"[{"a": 1}, {"a": 2}]"#,
        "--json",
    ]));
    assert_eq!(rows, serde_json::json!([{"b": 1}, {"b": 2}]));
}

#[test]
fn file_plugin_reads_inside_the_current_directory_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.csv"), "x,y\n1,a\n2,b\n").unwrap();
    let rows = json_stdout(&kernelize_in(
        dir.path(),
        &[
            "exec",
            "file",
            "read",
            "--config",
            r#"{"path": "in.csv"}"#,
            "--json",
        ],
    ));
    assert_eq!(rows.as_array().unwrap().len(), 2);

    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("out.csv");
    std::fs::write(&outside, "x\n1\n").unwrap();
    let config = serde_json::json!({ "path": outside }).to_string();
    let o = kernelize_in(dir.path(), &["exec", "file", "read", "--config", &config]);
    assert_fails(&o, 2, "permission denied");
}

#[test]
fn exec_writes_output_files_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let o = kernelize(&[
        "exec",
        "data-transformer",
        "select",
        "--config",
        r#"{"columns": ["order_id", "amount"]}"#,
        "--input",
        "examples/data/sales.csv",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(
        text.lines().next().unwrap().contains("\"order_id\":1001"),
        "{text}"
    );
}

#[test]
fn resolve_reports_a_dependency_cycle_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("plugins.json");
    let plugin = |id: &str, dep: &str| {
        serde_json::json!({
            "id": id, "name": id, "version": "1.0.0", "description": "", "author": "",
            "category": "connector", "config_schema": {}, "actions": [],
            "dependencies": [{"id": dep, "req": "^1"}],
        })
    };
    let plugins = serde_json::json!([plugin("a", "b"), plugin("b", "c"), plugin("c", "a")]);
    std::fs::write(&manifest, plugins.to_string()).unwrap();
    let o = kernelize(&[
        "plugins",
        "resolve",
        "a",
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, "dependency cycle: a 1.0.0 -> b ^1 -> c ^1 -> a ^1");
}

#[test]
fn resolve_prints_versions_in_activation_order() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("plugins.json");
    let plugins = serde_json::json!([{
        "id": "sales-sync", "name": "Sales sync", "version": "2.1.0", "description": "",
        "author": "", "category": "workflow", "config_schema": {}, "actions": [],
        "dependencies": [{"id": "file", "req": "^0.1"}, {"id": "data-transformer", "req": ">=0.1"}],
    }]);
    std::fs::write(&manifest, plugins.to_string()).unwrap();
    let out = json_stdout(&kernelize(&[
        "plugins",
        "resolve",
        "sales-sync",
        "--manifest",
        manifest.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(out["versions"]["sales-sync"], "2.1.0");
    assert_eq!(
        out["order"].as_array().unwrap().last().unwrap(),
        "sales-sync"
    );
}

#[test]
fn log_notifier_send_message_prints_what_it_sent() {
    let out = json_stdout(&kernelize(&[
        "exec",
        "log-notifier",
        "send_message",
        "--config",
        r##"{"channel": "#data-pipeline"}"##,
        "--input",
        r#"{"text": "sync finished"}"#,
        "--json",
    ]));
    assert_eq!(out["text"], "sync finished");
    assert_eq!(out["channel"], "#data-pipeline");
}

#[test]
fn invalid_plugin_config_exits_2_naming_the_field() {
    let o = kernelize(&[
        "exec",
        "log-notifier",
        "send_message",
        "--plugin-config",
        r#"{"limits": {"call_timeout": "soon"}}"#,
        "--input",
        r#""hi""#,
    ]);
    assert_fails(&o, 2, "invalid --plugin-config");
    assert!(
        stderr(&o).contains("invalid duration `soon`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn plugin_settings_reference_missing_secrets_by_name() {
    let o = kernelize(&[
        "exec",
        "log-notifier",
        "send_message",
        "--plugin-config",
        r#"{"settings": {"token": "${secret:chat_token}"}}"#,
        "--input",
        r#""hi""#,
    ]);
    assert_fails(&o, 2, "secret `chat_token`");
}

#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    let o = kernelize(&[
        "exec",
        "log-notifier",
        "send_message",
        "--input",
        r#"{"text": "plain please"}"#,
    ]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains("plain please"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}
