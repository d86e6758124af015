//! Workflow files: parsed with the position of every node, and validated against a catalog
//! of plugins, each problem reported at its file, line and column.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kernelize_core::plugin::{ActionDescriptor, PayloadDescriptor};
use kernelize_core::semver::Version;
use kernelize_core::{Category, Error, ErrorKind, PluginManager, PluginMetadata};
use kernelize_workflow::definition::{
    Diagnostic, Diagnostics, MAX_DEPTH, MAX_FILE_BYTES, OnFailure, load, parse, validate,
};
use serde_json::{Value, json};

fn action(name: &str, config: Value) -> ActionDescriptor {
    ActionDescriptor {
        name: name.into(),
        description: format!("{name}, for tests"),
        config,
        input: PayloadDescriptor::of_kind("any"),
        output: PayloadDescriptor::of_kind("any"),
        permissions: vec![],
    }
}

fn plugin(
    id: &str,
    version: &str,
    category: Category,
    actions: Vec<ActionDescriptor>,
) -> PluginMetadata {
    PluginMetadata::new(id, id, Version::parse(version).unwrap(), category).actions(actions)
}

/// The plugins of the issue's example, with schemas shaped like the real connectors'.
fn catalog() -> Vec<PluginMetadata> {
    let mut snowflake = plugin(
        "snowflake-connector",
        "1.2.0",
        Category::Connector,
        vec![
            action(
                "extract",
                json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "batch_size": {"type": "integer", "minimum": 1}
                    },
                    "required": ["query"],
                    "additionalProperties": false
                }),
            ),
            action("delete_rows", json!({"type": "object"})),
        ],
    );
    snowflake.config_schema = json!({
        "type": "object",
        "properties": {
            "account": {"type": "string"},
            "warehouse": {"type": "string"},
            "port": {"type": "integer"},
            "password": {"type": "string"}
        },
        "additionalProperties": false
    });
    vec![
        snowflake,
        plugin(
            "data-transformer",
            "0.3.0",
            Category::DataProcessor,
            vec![action(
                "normalize",
                json!({
                    "type": "object",
                    "properties": {"target_schema": {"type": "string"}},
                    "required": ["target_schema"]
                }),
            )],
        ),
        plugin(
            "databricks-connector",
            "2.0.0",
            Category::Connector,
            vec![
                action(
                    "load",
                    json!({
                        "type": "object",
                        "properties": {"table": {"type": "string"}},
                        "required": ["table"]
                    }),
                ),
                action("truncate", json!({"type": "object"})),
            ],
        ),
        plugin(
            "slack-notifier",
            "1.0.0",
            Category::Monitoring,
            vec![action(
                "send_message",
                json!({
                    "type": "object",
                    "properties": {
                        "channel": {"type": "string", "pattern": "^#"},
                        "text": {"type": "string"}
                    },
                    "required": ["channel"]
                }),
            )],
        ),
    ]
}

/// Every diagnostic of parsing then validating `yaml` against [`catalog`].
fn problems(yaml: &str) -> Vec<Diagnostic> {
    let loaded = match parse("flow.yaml", yaml) {
        Ok(loaded) => loaded,
        Err(d) => return d.0,
    };
    match validate(&loaded, &catalog()) {
        Ok(()) => Vec::new(),
        Err(d) => d.0,
    }
}

/// The one diagnostic `yaml` gives.
fn only(yaml: &str) -> Diagnostic {
    let mut found = problems(yaml);
    assert_eq!(found.len(), 1, "expected one diagnostic, got: {found:#?}");
    found.remove(0)
}

fn at(d: &Diagnostic) -> (usize, usize) {
    (d.line, d.column)
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

// ---------------------------------------------------------------------------------------
// The issue's example

#[test]
fn the_issue_example_parses_and_validates_cleanly() {
    let loaded = load(&fixture("data_sync.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let flow = &loaded.file.workflows["data_sync"];
    let names: Vec<&str> = flow.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "extract_data",
            "transform_data",
            "load_data",
            "notify_completion"
        ]
    );
    assert_eq!(flow.triggers[0].schedule.as_deref(), Some("0 */6 * * *"));
    assert_eq!(
        flow.triggers[1].webhook.as_deref(),
        Some("/trigger/data-sync")
    );
    assert_eq!(
        flow.steps[0].config,
        json!({"query": "SELECT * FROM sales_data WHERE updated_at > :last_sync"})
    );
    assert_eq!(flow.steps[3].config, json!({"channel": "#data-pipeline"}));
    assert!(loaded.source.ends_with("data_sync.yaml"));
    // Line 17, column 17 is `databricks-connector`.
    assert_eq!(
        loaded
            .position("/workflows/data_sync/steps/2/plugin")
            .map(|p| (p.line, p.column)),
        Some((17, 17))
    );

    validate(&loaded, &catalog()).unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn the_issue_example_fails_against_a_catalog_without_its_plugins() {
    let loaded = load(&fixture("data_sync.yaml")).unwrap();
    let found = validate(&loaded, &Vec::<PluginMetadata>::new()).unwrap_err();
    assert_eq!(found.len(), 4, "{found}");
    assert_eq!(at(&found.0[0]), (8, 17));
    assert!(
        found.0[0]
            .message
            .contains("unknown plugin `snowflake-connector`")
    );
}

// ---------------------------------------------------------------------------------------
// Steps

#[test]
fn a_workflow_without_steps_is_reported_at_its_steps() {
    let d = only("workflows:\n  empty:\n    steps: []\n");
    assert_eq!(at(&d), (3, 12));
    assert_eq!(d.pointer, "/workflows/empty/steps");
    assert!(d.message.contains("workflow `empty` has no steps"), "{d}");
}

#[test]
fn duplicate_step_names_are_reported_at_the_second() {
    let d = only(
        r##"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "SELECT 1" }
      - name: extract
        plugin: slack-notifier
        action: send_message
        config: { channel: "#x" }
"##,
    );
    assert_eq!(at(&d), (8, 15));
    assert!(d.message.contains("duplicate step name `extract`"), "{d}");
    assert!(d.message.contains("line 4"), "{d}");
}

#[test]
fn an_unknown_plugin_lists_the_known_ones() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: a
        plugin: snowflake
        action: extract
"#,
    );
    assert_eq!(at(&d), (5, 17));
    assert_eq!(d.pointer, "/workflows/w/steps/0/plugin");
    assert!(d.message.contains("unknown plugin `snowflake`"), "{d}");
    assert!(
        d.message.contains(
            "data-transformer, databricks-connector, slack-notifier, snowflake-connector"
        ),
        "{d}"
    );
    assert_eq!(
        d.to_string(),
        format!("flow.yaml:5:17: workflows.w.steps[0].plugin: {}", d.message)
    );
}

#[test]
fn an_unknown_action_lists_the_plugins_actions() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: a
        plugin: snowflake-connector
        action: extrac
"#,
    );
    assert_eq!(at(&d), (6, 17));
    assert!(
        d.message.contains(
            "plugin `snowflake-connector` has no action `extrac`; its actions: extract, delete_rows"
        ),
        "{d}"
    );
}

#[test]
fn a_compensation_must_name_a_known_plugin_and_action() {
    let found = problems(
        r#"workflows:
  w:
    steps:
      - name: load
        plugin: databricks-connector
        action: load
        config: { table: t }
        compensate:
          plugin: databricks-connector
          action: drop
      - name: other
        plugin: databricks-connector
        action: load
        config: { table: t }
        compensate: { plugin: nope, action: drop }
"#,
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(at(&found[0]), (10, 19));
    assert!(
        found[0]
            .message
            .contains("has no action `drop`; its actions: load, truncate")
    );
    assert_eq!(at(&found[1]), (15, 31));
    assert!(found[1].message.contains("unknown plugin `nope`"));
}

#[test]
fn a_step_config_is_checked_against_its_action_schema_at_the_failing_node() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config:
          query: "SELECT * FROM t"
          batch_size: 0
"#,
    );
    assert_eq!(at(&d), (9, 23));
    assert_eq!(d.pointer, "/workflows/w/steps/0/config/batch_size");
    assert!(
        d.message
            .contains("config of `snowflake-connector` action `extract`"),
        "{d}"
    );
    assert!(d.message.contains("minimum of 1"), "{d}");
}

#[test]
fn unexpected_and_missing_config_properties_are_reported_where_they_belong() {
    let found = problems(
        r#"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "SELECT 1", qurey: "SELECT 2" }
      - name: load
        plugin: databricks-connector
        action: load
"#,
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    // The unexpected key itself.
    assert_eq!(at(&found[0]), (7, 38));
    assert!(found[0].message.contains("qurey"), "{}", found[0]);
    // No config at all: reported at the step.
    assert_eq!(at(&found[1]), (8, 9));
    assert!(
        found[1]
            .message
            .contains("\"table\" is a required property"),
        "{}",
        found[1]
    );
}

#[test]
fn strings_with_references_are_left_to_the_run_by_schema_checks() {
    let d = only(
        r#"workflows:
  w:
    params: { size: 100 }
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config:
          query: "${params.query_text}"
          batch_size: "${params.size}"
"#,
    );
    // `batch_size` would fail `integer`, but its value comes from the reference; the only
    // problem is the undeclared parameter.
    assert_eq!(at(&d), (9, 18));
    assert!(
        d.message.contains("declares no parameter `query_text`"),
        "{d}"
    );
    assert!(d.message.contains("declared: size"), "{d}");
}

// ---------------------------------------------------------------------------------------
// Plugin instances

#[test]
fn an_instance_of_an_unknown_plugin_is_reported_once() {
    let d = only(
        r#"plugins:
  warehouse:
    plugin: snowflake-connecter
workflows:
  w:
    steps:
      - name: a
        plugin: warehouse
        action: extract
        config: { query: "SELECT 1" }
"#,
    );
    assert_eq!(at(&d), (3, 13));
    assert!(
        d.message.contains(
            "instance `warehouse` is for plugin `snowflake-connecter`, which is not installed"
        ),
        "{d}"
    );
}

#[test]
fn an_instance_named_after_an_unknown_plugin_is_reported_at_its_key() {
    let d = only("plugins:\n  snowflake:\n    settings: {}\n");
    assert_eq!(at(&d), (2, 3));
    assert!(
        d.message
            .contains("plugin `snowflake`, which is not installed"),
        "{d}"
    );
}

#[test]
fn instance_steps_resolve_to_their_plugin() {
    let found = problems(
        r#"plugins:
  warehouse:
    plugin: snowflake-connector
workflows:
  w:
    steps:
      - name: a
        plugin: warehouse
        action: load
"#,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(at(&found[0]), (9, 17));
    assert!(
        found[0]
            .message
            .contains("plugin `snowflake-connector` has no action `load`")
    );
}

#[test]
fn an_instance_version_must_be_a_requirement_an_installed_version_meets() {
    let found = problems(
        r#"plugins:
  warehouse:
    plugin: snowflake-connector
    version: "one point two"
  lake:
    plugin: databricks-connector
    version: "^1.0"
  chat:
    plugin: slack-notifier
    version: "^1"
"#,
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(at(&found[0]), (4, 14));
    assert!(
        found[0]
            .message
            .contains("not a semver version requirement")
    );
    assert_eq!(at(&found[1]), (7, 14));
    assert!(found[1].message.contains(
        "no installed version of `databricks-connector` satisfies `^1.0`; installed: 2.0.0"
    ));
}

#[test]
fn instance_settings_are_checked_against_the_plugin_schema() {
    let found = problems(
        r#"plugins:
  warehouse:
    plugin: snowflake-connector
    settings:
      account: acme
      port: "${env:SF_PORT}"
      warehouse: 42
      pasword: "${secret:SF_PASSWORD}"
"#,
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(at(&found[0]), (7, 18));
    assert!(
        found[0]
            .message
            .contains("settings of `snowflake-connector`")
    );
    assert!(found[0].message.contains("string"), "{}", found[0]);
    assert_eq!(at(&found[1]), (8, 7));
    assert!(found[1].message.contains("pasword"), "{}", found[1]);
}

#[test]
fn run_references_are_refused_in_plugin_settings() {
    let d = only(
        r#"plugins:
  warehouse:
    plugin: snowflake-connector
    settings: { account: "${params.account}" }
"#,
    );
    assert_eq!(at(&d), (4, 26));
    assert!(
        d.message.contains("cannot be used in plugin settings"),
        "{d}"
    );
}

// ---------------------------------------------------------------------------------------
// The graph

#[test]
fn depends_on_must_name_other_steps_of_the_workflow() {
    let found = problems(
        r##"workflows:
  w:
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        config: { channel: "#a" }
      - name: b
        plugin: slack-notifier
        action: send_message
        config: { channel: "#b" }
        depends_on: [a, c, b]
"##,
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(at(&found[0]), (12, 25));
    assert!(
        found[0]
            .message
            .contains("step `b` depends on `c`, which is not a step")
    );
    assert!(found[0].message.contains("steps: a, b"));
    assert_eq!(at(&found[1]), (12, 28));
    assert!(found[1].message.contains("step `b` depends on itself"));
}

#[test]
fn a_dependency_cycle_is_named_step_by_step() {
    let d = only(
        r##"workflows:
  w:
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        config: { channel: "#a" }
        depends_on: [c]
      - name: b
        plugin: slack-notifier
        action: send_message
        config: { channel: "#b" }
      - name: c
        plugin: slack-notifier
        action: send_message
        config: { channel: "#c" }
"##,
    );
    // a waits for c (written), b for a and c for b (listed order).
    assert_eq!(at(&d), (8, 22));
    assert!(d.message.contains("a -> c -> b -> a"), "{d}");
}

// ---------------------------------------------------------------------------------------
// References

const REFERENCES: &str = r##"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "SELECT 1" }
      - name: notify
        plugin: slack-notifier
        action: send_message
        depends_on: []
        config:
          channel: "#data"
          text: "${steps.extract.output.rows} rows, ${steps.extrct.output}"
      - name: load
        plugin: databricks-connector
        action: load
        depends_on: [extract]
        input: "${steps.notify.output}"
        config: { table: "${steps.load.output}" }
"##;

#[test]
fn a_reference_to_a_step_that_does_not_exist_is_reported() {
    let found = problems(REFERENCES);
    let d = found
        .iter()
        .find(|d| d.message.contains("extrct"))
        .expect("a diagnostic about extrct");
    assert_eq!(at(d), (14, 17));
    assert!(
        d.message
            .contains("workflow `w` has no step `extrct`; steps: extract, notify, load")
    );
}

#[test]
fn a_reference_to_a_step_that_may_not_have_finished_is_reported() {
    let found = problems(REFERENCES);
    assert_eq!(found.len(), 4, "{found:#?}");
    // notify runs from the start (depends_on: []), so extract may still be running.
    assert_eq!(at(&found[0]), (14, 17));
    assert!(
        found[0]
            .message
            .contains("${steps.extract.output.rows}: step `extract` is not sure to finish before step `notify`"),
        "{}",
        found[0]
    );
    // load waits for extract only, not for notify.
    assert_eq!(at(&found[2]), (19, 16));
    assert!(
        found[2]
            .message
            .contains("step `notify` is not sure to finish before step `load`")
    );
    // A step's config cannot use its own output.
    assert_eq!(at(&found[3]), (20, 26));
    assert!(
        found[3]
            .message
            .contains("step `load` cannot refer to itself")
    );
}

#[test]
fn steps_listed_before_without_depends_on_may_be_referenced() {
    let found = problems(
        r##"workflows:
  w:
    params: { schema: analytics }
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "SELECT 1" }
      - name: transform
        plugin: data-transformer
        action: normalize
        when: "${steps.extract.status} == 'succeeded' and ${params.schema} != ''"
        config: { target_schema: "${params.schema}.${steps.extract.output.table}" }
      - name: notify
        plugin: slack-notifier
        action: send_message
        config: { channel: "#x", text: "${steps.extract.output.rows}" }
        compensate:
          plugin: slack-notifier
          action: send_message
          config: { channel: "#x", text: "undo ${steps.notify.output.ts}" }
"##,
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_malformed_reference_says_what_is_expected() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "${param.x}" }
"#,
    );
    assert_eq!(at(&d), (7, 26));
    assert!(d.message.contains("`${param.x}` is not a reference"), "{d}");
}

#[test]
fn a_when_condition_must_parse() {
    let d = only(
        r#"workflows:
  w:
    params: { x: 1 }
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        when: "${params.x} >"
        config: { query: "SELECT 1" }
"#,
    );
    assert_eq!(at(&d), (8, 15));
    assert!(d.message.contains("is not a valid condition"), "{d}");
}

#[test]
fn a_when_condition_references_are_checked() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        when: "${params.enabled}"
        config: { query: "SELECT 1" }
"#,
    );
    assert_eq!(at(&d), (7, 15));
    assert!(d.message.contains("declares no parameter `enabled`"), "{d}");
}

// ---------------------------------------------------------------------------------------
// Failure handling and limits

#[test]
fn a_failure_handler_must_be_a_step() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "SELECT 1" }
        on_failure: { handler: cleanup }
"#,
    );
    assert_eq!(at(&d), (8, 32));
    assert!(
        d.message
            .contains("failure handler `cleanup` is not a step"),
        "{d}"
    );
}

#[test]
fn retry_needs_an_attempt_and_a_growing_backoff() {
    let found = problems(
        r#"workflows:
  w:
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "SELECT 1" }
        retry:
          max_attempts: 0
          backoff_coefficient: 0.5
"#,
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(at(&found[0]), (9, 25));
    assert!(
        found[0]
            .message
            .contains("`max_attempts` must be at least 1")
    );
    assert_eq!(at(&found[1]), (10, 32));
    assert!(
        found[1]
            .message
            .contains("`backoff_coefficient` must be a number of at least 1")
    );
}

#[test]
fn concurrency_must_be_at_least_one() {
    let d = only(
        r#"workflows:
  w:
    concurrency: 0
    steps:
      - name: extract
        plugin: snowflake-connector
        action: extract
        config: { query: "SELECT 1" }
"#,
    );
    assert_eq!(at(&d), (3, 18));
    assert!(
        d.message.contains("`concurrency` must be at least 1"),
        "{d}"
    );
}

// ---------------------------------------------------------------------------------------
// Triggers

fn with_triggers(triggers: &str) -> Vec<Diagnostic> {
    problems(&format!(
        "workflows:\n  w:\n    triggers:\n{triggers}    steps:\n      - name: a\n        \
         plugin: slack-notifier\n        action: send_message\n        config: {{ channel: \"#a\" \
         }}\n"
    ))
}

#[test]
fn a_trigger_has_exactly_one_of_schedule_and_webhook() {
    let found = with_triggers(
        "      - schedule: \"0 */6 * * *\"\n        webhook: /both\n      - missed: run_once\n",
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(at(&found[0]), (4, 9));
    assert!(found[0].message.contains("not both"));
    assert_eq!(at(&found[1]), (6, 9));
    assert!(
        found[1]
            .message
            .contains("needs a `schedule` or a `webhook`")
    );
}

#[test]
fn a_schedule_must_be_a_valid_cron_expression() {
    let found = with_triggers(
        "      - schedule: \"0 25 * * *\"\n      - schedule: \"* * * *\"\n      - schedule: \"*/10 0 \
         */6 * * MON-FRI\"\n",
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(at(&found[0]), (4, 19));
    assert!(
        found[0]
            .message
            .contains("`0 25 * * *` is not a valid cron schedule")
    );
    assert_eq!(at(&found[1]), (5, 19));
    assert!(found[1].message.contains("has 4 fields; a schedule has 5"));
}

#[test]
fn a_schedule_time_zone_must_be_an_iana_name() {
    let found = with_triggers(
        "      - schedule: \"0 9 * * MON-FRI\"\n        timezone: Europe/Pariss\n      - schedule: \
         \"0 9 * * *\"\n        timezone: America/New_York\n",
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(at(&found[0]), (5, 19));
    assert!(
        found[0]
            .message
            .contains("`Europe/Pariss` is not an IANA time zone")
    );
}

#[test]
fn a_webhook_path_starts_with_a_slash() {
    let found = with_triggers("      - webhook: trigger/x\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(at(&found[0]), (4, 18));
    assert!(found[0].message.contains("must start with `/`"));
}

#[test]
fn a_webhook_path_is_used_by_one_workflow_only() {
    let d = only(
        r##"workflows:
  w:
    triggers:
      - webhook: /dup
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        config: { channel: "#a" }
  x:
    triggers:
      - webhook: /dup
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        config: { channel: "#a" }
"##,
    );
    assert_eq!(at(&d), (12, 18));
    assert!(
        d.message.contains("already taken by workflow `w` (line 4)"),
        "{d}"
    );
}

// ---------------------------------------------------------------------------------------
// Reading the YAML

#[test]
fn a_yaml_syntax_error_carries_its_position() {
    let found = problems("workflows:\n  w:\n    steps: [a, b\n    concurrency: 2\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    let d = &found[0];
    assert_eq!(at(d), (4, 16), "{d}");
    assert_eq!(d.pointer, "");
    assert!(d.to_string().starts_with("flow.yaml:4:16: "), "{d}");
}

#[test]
fn a_wrong_type_is_reported_at_the_value() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        retry: {max_attempts: "x"}
"#,
    );
    assert_eq!(at(&d), (7, 31));
    assert_eq!(d.pointer, "/workflows/w/steps/0/retry/max_attempts");
    assert!(
        d.message
            .contains("invalid type: string \"x\", expected u32"),
        "{d}"
    );
    assert!(
        d.to_string()
            .contains("workflows.w.steps[0].retry.max_attempts: invalid type"),
        "{d}"
    );
}

#[test]
fn an_unknown_field_is_reported_at_its_key() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        retries: 3
"#,
    );
    assert_eq!(at(&d), (7, 9));
    assert!(d.message.contains("unknown field `retries`"), "{d}");
}

#[test]
fn bad_durations_and_error_kinds_are_reported_at_the_value() {
    let d = only(
        r#"workflows:
  w:
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        timeout: soon
"#,
    );
    assert_eq!(at(&d), (7, 18));
    assert!(d.message.contains("invalid duration `soon`"), "{d}");

    let d = only(
        r#"workflows:
  w:
    steps:
      - name: a
        plugin: slack-notifier
        action: send_message
        retry: { non_retryable: [timeout, oops] }
"#,
    );
    assert_eq!(at(&d), (7, 33));
    assert!(d.message.contains("unknown error kind `oops`"), "{d}");
}

#[test]
fn yaml_values_keep_their_core_schema_types() {
    let loaded = parse(
        "flow.yaml",
        r#"workflows:
  w:
    params: { n: 12, ratio: 0.5, on: true, none: ~, word: yes, quoted: "12" }
    steps:
      - name: a
        plugin: p
        action: x
        timeout: 1.5
        on_failure: continue
"#,
    )
    .unwrap();
    let flow = &loaded.file.workflows["w"];
    assert_eq!(
        Value::Object(flow.params.clone().into_iter().collect()),
        json!({"n": 12, "ratio": 0.5, "on": true, "none": null, "word": "yes", "quoted": "12"})
    );
    assert_eq!(flow.steps[0].timeout, Some(Duration::from_millis(1500)));
    assert_eq!(flow.steps[0].on_failure, OnFailure::Continue);
}

#[test]
fn duplicate_keys_are_refused_at_the_repeat() {
    let d = only("workflows:\n  w:\n    steps: []\n  w:\n    steps: []\n");
    assert_eq!(at(&d), (4, 3));
    assert!(
        d.message
            .contains("duplicate key `w` (first at line 2, column 3)"),
        "{d}"
    );
}

#[test]
fn a_deeply_nested_document_is_refused_at_the_limit() {
    // Each line opens one more mapping, one column further right.
    let text: String = (0..1_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let d = only(&text);
    assert_eq!(at(&d), (MAX_DEPTH + 1, MAX_DEPTH + 1));
    assert!(d.message.contains("deeper than 128 levels"), "{d}");
}

#[test]
fn exponential_aliases_are_refused() {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let p = i - 1;
        let row = vec![format!("*a{p}"); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{row}]\n"));
    }
    let d = only(&text);
    assert!(d.message.contains("once aliases are expanded"), "{d}");
}

#[test]
fn a_huge_file_is_refused_before_it_is_parsed() {
    let text = format!("# {}\n", "x".repeat(MAX_FILE_BYTES));
    let d = only(&text);
    assert_eq!(at(&d), (1, 1));
    assert!(d.message.contains("limited to 8 MiB"), "{d}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    std::fs::write(&path, &text).unwrap();
    let found = load(&path).unwrap_err();
    assert!(found.0[0].message.contains("limited to 8 MiB"), "{found}");
}

#[test]
fn a_file_that_cannot_be_read_is_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.yaml");
    let found = load(&path).unwrap_err();
    assert_eq!(found.len(), 1);
    assert!(found.0[0].source.ends_with("missing.yaml"));
    assert!(found.0[0].message.contains("cannot open"), "{found}");

    std::fs::write(&path, b"workflows: \xff\n").unwrap();
    let found = load(&path).unwrap_err();
    assert!(found.0[0].message.contains("not UTF-8"), "{found}");
}

// ---------------------------------------------------------------------------------------
// All problems at once

#[test]
fn every_problem_is_reported_in_file_order_as_a_config_invalid_error() {
    let yaml = r##"workflows:
  w:
    concurrency: 0
    triggers:
      - schedule: "every day"
    steps:
      - name: a
        plugin: slak-notifier
        action: send_message
      - name: b
        plugin: slack-notifier
        action: send
"##;
    let loaded = parse("flow.yaml", yaml).unwrap();
    let found: Diagnostics = validate(&loaded, &catalog()).unwrap_err();
    let lines: Vec<usize> = found.iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 5, 8, 12], "{found}");
    let text = found.to_string();
    assert_eq!(text.lines().count(), 4);
    assert!(text.lines().all(|l| l.starts_with("flow.yaml:")), "{text}");

    let error: Error = found.into();
    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(error.message().contains("flow.yaml:8:17: "), "{error}");
}

#[test]
fn a_plugin_manager_is_a_catalog_of_its_installed_plugins() {
    let manager = PluginManager::new();
    manager
        .install_all(kernelize_core::builtins::factories())
        .unwrap();
    let loaded = parse(
        "flow.yaml",
        r#"workflows:
  w:
    steps:
      - name: note
        plugin: log-notifier
        action: send
      - name: other
        plugin: slack-notifier
        action: send_message
"#,
    )
    .unwrap();
    let found = validate(&loaded, &manager).unwrap_err();
    assert_eq!(found.len(), 2, "{found}");
    assert_eq!(at(&found.0[0]), (6, 17));
    assert!(
        found.0[0].message.contains("its actions: send_message"),
        "{found}"
    );
    assert_eq!(at(&found.0[1]), (8, 17));
    assert!(
        found.0[1]
            .message
            .contains("installed plugins: data-transformer, file, log-notifier"),
        "{found}"
    );
}
