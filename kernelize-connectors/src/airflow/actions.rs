//! The `airflow-connector`'s typed actions: their names, per-call configs, outputs and
//! handlers.

use async_trait::async_trait;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Handler, Payload, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AirflowConnector;
use super::client::{DagFilter, DagRun, TriggerDagRun, run_id_for_key};
use crate::saas::{Column, ColumnType, records_from_rows, saas_action};

fn yes() -> bool {
    true
}

/// Config of `trigger_dag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerDagConfig {
    /// The DAG to run.
    pub dag_id: String,
    /// The run's id. When absent and the call has an idempotency key (a workflow step
    /// does), the id is derived from the key (`kernelize__<key>`), so that a repeated call
    /// (the same step attempt, resumed) finds its run instead of starting a second; with
    /// neither, Airflow names the run.
    #[serde(default)]
    pub dag_run_id: Option<String>,
    /// The run's `conf`; the input (a JSON object) when absent, `{}` when there is none.
    #[serde(default)]
    pub conf: Option<Map<String, Value>>,
    /// The logical date (RFC 3339); none by default (v2 sends `"logical_date": null`).
    #[serde(default)]
    pub logical_date: Option<String>,
    /// The data interval's start (with `data_interval_end`).
    #[serde(default)]
    pub data_interval_start: Option<String>,
    /// The data interval's end.
    #[serde(default)]
    pub data_interval_end: Option<String>,
    /// Airflow 3 only: the earliest time the run may start.
    #[serde(default)]
    pub run_after: Option<String>,
    /// A note shown on the run.
    #[serde(default)]
    pub note: Option<String>,
    /// When Airflow answers 409 for a `dag_run_id` given here, return the existing run
    /// instead of failing. (Always on for ids derived from the idempotency key.)
    #[serde(default)]
    pub reuse_existing: bool,
    /// Wait until the run is `success` or `failed` (polling as the `poll` setting says).
    #[serde(default)]
    pub wait: bool,
    /// With `wait`, a run that ends `failed` is an error (the default); `false` returns it.
    #[serde(default = "yes")]
    pub fail_on_failure: bool,
}

/// What `trigger_dag` returns: the run, and whether it existed before this call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggeredRun {
    /// The run (after waiting, with `wait`).
    #[serde(flatten)]
    pub run: DagRun,
    /// `true` when the id was taken and the existing run was returned (409 handling).
    pub already_existed: bool,
}

saas_action!(
    /// `trigger_dag`: starts a DAG run.
    TriggerDag,
    "trigger_dag",
    "Triggers a DAG run (POST /api/{v}/dags/{dag_id}/dagRuns), optionally waiting for it to finish.",
    TriggerDagConfig,
    Payload,
    TriggeredRun
);

/// Config of `dag_run_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DagRunStatusConfig {
    /// The DAG.
    pub dag_id: String,
    /// The run; the input's `dag_run_id` (the output of `trigger_dag`) when absent.
    #[serde(default)]
    pub dag_run_id: Option<String>,
    /// Wait until the run is `success` or `failed`.
    #[serde(default)]
    pub wait: bool,
    /// With `wait`, a run that ends `failed` is an error (the default); `false` returns it.
    #[serde(default = "yes")]
    pub fail_on_failure: bool,
}

saas_action!(
    /// `dag_run_status`: one run's state, or its end with `wait`.
    DagRunStatus,
    "dag_run_status",
    "Reads a DAG run (GET /api/{v}/dags/{dag_id}/dagRuns/{dag_run_id}), optionally waiting until it finishes.",
    DagRunStatusConfig,
    Payload,
    DagRun
);

/// Config of `list_dags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ListDagsConfig {
    /// Only DAGs with any of these tags.
    pub tags: Vec<String>,
    /// Only paused (`true`) or only unpaused (`false`) DAGs.
    pub paused: Option<bool>,
    /// Only DAGs whose id matches this SQL `LIKE` pattern (`%` any text, `_` one character).
    pub dag_id_pattern: Option<String>,
}

saas_action!(
    /// `list_dags`: every DAG, as records.
    ListDags,
    "list_dags",
    "Lists the DAGs (GET /api/{v}/dags, every page) as records.",
    ListDagsConfig,
    Payload,
    Records
);

/// Config of `pause` and `unpause`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DagConfig {
    /// The DAG.
    pub dag_id: String,
}

/// A DAG's paused flag after `pause` or `unpause`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DagPaused {
    /// The DAG.
    pub dag_id: String,
    /// Whether it is paused now.
    pub is_paused: bool,
}

saas_action!(
    /// `pause`: stops the scheduler from starting new runs of a DAG.
    Pause,
    "pause",
    "Pauses a DAG (PATCH /api/{v}/dags/{dag_id}?update_mask=is_paused).",
    DagConfig,
    Payload,
    DagPaused
);

saas_action!(
    /// `unpause`: lets the scheduler start runs of a DAG again.
    Unpause,
    "unpause",
    "Unpauses a DAG (PATCH /api/{v}/dags/{dag_id}?update_mask=is_paused).",
    DagConfig,
    Payload,
    DagPaused
);

/// Config of `list_task_instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTaskInstancesConfig {
    /// The DAG.
    pub dag_id: String,
    /// The run; the input's `dag_run_id` (the output of `trigger_dag`) when absent.
    #[serde(default)]
    pub dag_run_id: Option<String>,
}

saas_action!(
    /// `list_task_instances`: the task instances of a run, as records.
    ListTaskInstances,
    "list_task_instances",
    "Lists the task instances of a DAG run (GET …/dagRuns/{dag_run_id}/taskInstances, every page) as records.",
    ListTaskInstancesConfig,
    Payload,
    Records
);

// ---- handlers -----------------------------------------------------------------------------

/// The `conf` of a trigger: the config's, else the input object, else `{}`.
fn conf_of(config: Option<Map<String, Value>>, input: Payload) -> Result<Map<String, Value>> {
    if let Some(conf) = config {
        return Ok(conf);
    }
    match input.into_json()? {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        other => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the input becomes the run's `conf`, which must be a JSON object, not {}",
                kernelize_core::payload::json_type_name(&other)
            ),
        )),
    }
}

/// The run id of a status or task call: the config's, else the input's `dag_run_id`.
fn run_id_of(config: Option<String>, input: Payload) -> Result<String> {
    if let Some(id) = config {
        return Ok(id);
    }
    let found = match input.into_json() {
        Ok(Value::Object(map)) => map
            .get("dag_run_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    found.ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "give `dag_run_id` in the config, or an input with `dag_run_id` (the output of trigger_dag)",
        )
    })
}

/// A finished run that failed, as an error (when the caller asked for that).
fn check_outcome(run: DagRun, fail_on_failure: bool) -> Result<DagRun> {
    if fail_on_failure && run.state == "failed" {
        return Err(Error::new(
            ErrorKind::Remote,
            format!(
                "DAG run `{}` of `{}` ended `failed`",
                run.dag_run_id, run.dag_id
            ),
        )
        .with_context("dag_id", &run.dag_id)
        .with_context("dag_run_id", &run.dag_run_id)
        .set_permanent());
    }
    Ok(run)
}

#[async_trait]
impl Handler<TriggerDag> for AirflowConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: TriggerDagConfig,
        input: Payload,
    ) -> Result<TriggeredRun> {
        let derived = config.dag_run_id.is_none() && ctx.idempotency_key.is_some();
        let dag_run_id = config
            .dag_run_id
            .clone()
            .or_else(|| ctx.idempotency_key.as_deref().map(run_id_for_key));
        let run = TriggerDagRun {
            dag_run_id,
            conf: conf_of(config.conf, input)?,
            logical_date: config.logical_date,
            data_interval_start: config.data_interval_start,
            data_interval_end: config.data_interval_end,
            run_after: config.run_after,
            note: config.note,
        };
        let triggered = self
            .client
            .trigger_dag(&config.dag_id, &run, derived || config.reuse_existing)
            .await?;
        let mut out = TriggeredRun {
            already_existed: triggered.already_existed,
            run: triggered.run,
        };
        if config.wait && !out.run.is_finished() {
            out.run = self
                .client
                .wait_for_dag_run(&ctx, &self.poll, &config.dag_id, &out.run.dag_run_id)
                .await?;
        }
        if config.wait {
            out.run = check_outcome(out.run, config.fail_on_failure)?;
        }
        Ok(out)
    }
}

#[async_trait]
impl Handler<DagRunStatus> for AirflowConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DagRunStatusConfig,
        input: Payload,
    ) -> Result<DagRun> {
        let run_id = run_id_of(config.dag_run_id, input)?;
        if !config.wait {
            return self.client.get_dag_run(&config.dag_id, &run_id).await;
        }
        let run = self
            .client
            .wait_for_dag_run(&ctx, &self.poll, &config.dag_id, &run_id)
            .await?;
        check_outcome(run, config.fail_on_failure)
    }
}

#[async_trait]
impl Handler<ListDags> for AirflowConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ListDagsConfig,
        _input: Payload,
    ) -> Result<Records> {
        let filter = DagFilter {
            tags: config.tags,
            paused: config.paused,
            dag_id_pattern: config.dag_id_pattern,
        };
        let dags = self.client.list_dags(&filter).await?;
        dags_as_records(&dags)
    }
}

#[async_trait]
impl Handler<Pause> for AirflowConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: DagConfig,
        _input: Payload,
    ) -> Result<DagPaused> {
        set_paused(self, &config.dag_id, true).await
    }
}

#[async_trait]
impl Handler<Unpause> for AirflowConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: DagConfig,
        _input: Payload,
    ) -> Result<DagPaused> {
        set_paused(self, &config.dag_id, false).await
    }
}

async fn set_paused(connector: &AirflowConnector, dag_id: &str, paused: bool) -> Result<DagPaused> {
    let dag = connector.client.set_paused(dag_id, paused).await?;
    let is_paused = dag
        .get("is_paused")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                format!("Airflow answered the update of `{dag_id}` without `is_paused`"),
            )
        })?;
    Ok(DagPaused {
        dag_id: dag_id.to_string(),
        is_paused,
    })
}

#[async_trait]
impl Handler<ListTaskInstances> for AirflowConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ListTaskInstancesConfig,
        input: Payload,
    ) -> Result<Records> {
        let run_id = run_id_of(config.dag_run_id, input)?;
        let tasks = self
            .client
            .list_task_instances(&config.dag_id, &run_id)
            .await?;
        task_instances_as_records(&tasks)
    }
}

// ---- records ------------------------------------------------------------------------------

fn text_list(value: Option<&Value>, key: Option<&str>) -> Value {
    let Some(Value::Array(items)) = value else {
        return Value::Null;
    };
    let parts: Vec<String> = items
        .iter()
        .filter_map(|item| match (key, item) {
            (Some(k), Value::Object(map)) => map.get(k).and_then(Value::as_str).map(str::to_string),
            (None, Value::String(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    Value::String(parts.join(", "))
}

fn field(item: &Value, name: &str) -> Value {
    item.get(name).cloned().unwrap_or(Value::Null)
}

/// DAGs of either version as records: `dag_id`, `dag_display_name`, `description`,
/// `is_paused`, `is_active` (v1 `is_active`, v2 not `is_stale`), `owners` and `tags`
/// (comma-separated), `schedule` (v1 `schedule_interval.value`, v2 `timetable_summary`),
/// `fileloc`, `last_parsed_time`, `next_dagrun` (v1 `next_dagrun`, v2
/// `next_dagrun_logical_date`), `has_import_errors`.
pub fn dags_as_records(dags: &[Value]) -> Result<Records> {
    let columns = [
        Column::new("dag_id", ColumnType::Text),
        Column::new("dag_display_name", ColumnType::Text),
        Column::new("description", ColumnType::Text),
        Column::new("is_paused", ColumnType::Boolean),
        Column::new("is_active", ColumnType::Boolean),
        Column::new("owners", ColumnType::Text),
        Column::new("tags", ColumnType::Text),
        Column::new("schedule", ColumnType::Text),
        Column::new("fileloc", ColumnType::Text),
        Column::new("last_parsed_time", ColumnType::Timestamp),
        Column::new("next_dagrun", ColumnType::Timestamp),
        Column::new("has_import_errors", ColumnType::Boolean),
    ];
    let rows: Vec<Vec<Value>> = dags
        .iter()
        .map(|dag| {
            let is_active = match (dag.get("is_active"), dag.get("is_stale")) {
                (Some(Value::Bool(active)), _) => Value::Bool(*active),
                (_, Some(Value::Bool(stale))) => Value::Bool(!stale),
                _ => Value::Null,
            };
            let schedule = match (dag.get("schedule_interval"), dag.get("timetable_summary")) {
                (Some(Value::Object(s)), _) => s.get("value").cloned().unwrap_or(Value::Null),
                (Some(Value::String(s)), _) => Value::String(s.clone()),
                (_, Some(summary)) => summary.clone(),
                _ => Value::Null,
            };
            let next = match dag.get("next_dagrun") {
                Some(v) if !v.is_null() => v.clone(),
                _ => field(dag, "next_dagrun_logical_date"),
            };
            vec![
                field(dag, "dag_id"),
                field(dag, "dag_display_name"),
                field(dag, "description"),
                field(dag, "is_paused"),
                is_active,
                text_list(dag.get("owners"), None),
                text_list(dag.get("tags"), Some("name")),
                schedule,
                field(dag, "fileloc"),
                field(dag, "last_parsed_time"),
                next,
                field(dag, "has_import_errors"),
            ]
        })
        .collect();
    records_from_rows(&columns, &rows)
}

/// Task instances of either version as records: `task_id`, `map_index`, `state`,
/// `try_number`, `start_date`, `end_date`, `duration` (seconds), `operator` (v2
/// `operator_name` when `operator` is absent), `pool`, `queue`, `hostname`.
pub fn task_instances_as_records(tasks: &[Value]) -> Result<Records> {
    let columns = [
        Column::new("task_id", ColumnType::Text),
        Column::new("map_index", ColumnType::Integer),
        Column::new("state", ColumnType::Text),
        Column::new("try_number", ColumnType::Integer),
        Column::new("start_date", ColumnType::Timestamp),
        Column::new("end_date", ColumnType::Timestamp),
        Column::new("duration", ColumnType::Float),
        Column::new("operator", ColumnType::Text),
        Column::new("pool", ColumnType::Text),
        Column::new("queue", ColumnType::Text),
        Column::new("hostname", ColumnType::Text),
    ];
    let rows: Vec<Vec<Value>> = tasks
        .iter()
        .map(|ti| {
            let operator = match ti.get("operator") {
                Some(v) if !v.is_null() => v.clone(),
                _ => field(ti, "operator_name"),
            };
            vec![
                field(ti, "task_id"),
                field(ti, "map_index"),
                field(ti, "state"),
                field(ti, "try_number"),
                field(ti, "start_date"),
                field(ti, "end_date"),
                field(ti, "duration"),
                operator,
                field(ti, "pool"),
                field(ti, "queue"),
                field(ti, "hostname"),
            ]
        })
        .collect();
    records_from_rows(&columns, &rows)
}
