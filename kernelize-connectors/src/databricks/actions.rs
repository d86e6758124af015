//! The `databricks-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;

use kernelize_core::{Action, Payload, Permission, Records};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::client::{LoadOutcome, StageFormat};
use crate::saas::network;

fn yes() -> bool {
    true
}

/// A parameter value of `query`: a JSON scalar (its type inferred: text STRING, integer
/// BIGINT, other numbers DOUBLE, boolean BOOLEAN, null a NULL), or `{value, type}` with an
/// explicit SQL type (`{"value": "2024-05-01", "type": "DATE"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    /// A value with an explicit SQL type.
    Typed {
        /// The value (a scalar; sent as text).
        value: Value,
        /// The SQL type (`INT`, `DATE`, `TIMESTAMP`, `DECIMAL(10,2)`...).
        #[serde(rename = "type")]
        kind: String,
    },
    /// A JSON scalar.
    Plain(Value),
}

/// Config of `query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// The SQL statement (also accepted as `sql` or `query`). Bind values with named
    /// markers, `:name`, never by pasting them into the text.
    #[serde(alias = "sql", alias = "query")]
    pub statement: String,
    /// Values of the `:name` markers. A marker without one takes the call's variable of
    /// that name (a workflow's `last_sync`, `run_id`, parameters) when there is one.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    /// The SQL warehouse; the plugin's `warehouse_id` when absent.
    #[serde(default)]
    pub warehouse_id: Option<String>,
    /// The default catalog; the plugin's when absent.
    #[serde(default)]
    pub catalog: Option<String>,
    /// The default schema; the plugin's when absent.
    #[serde(default)]
    pub schema: Option<String>,
    /// How long the submission waits for a result before polling (`0s`, `5s`–`50s`); the
    /// plugin's `wait_timeout` when absent.
    #[serde(default)]
    pub wait_timeout: Option<String>,
    /// The most rows the warehouse returns.
    #[serde(default)]
    pub row_limit: Option<u64>,
}

/// Config of `load`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// The target table: `name`, `schema.name` or `catalog.schema.name`.
    pub table: String,
    /// The staged file's format: `json` (JSON lines, the default) or `csv`.
    #[serde(default)]
    pub format: StageFormat,
    /// The volume directory to stage in; the plugin's `staging_path` when absent.
    #[serde(default)]
    pub staging_path: Option<String>,
    /// The SQL warehouse; the plugin's `warehouse_id` when absent.
    #[serde(default)]
    pub warehouse_id: Option<String>,
    /// The default catalog; the plugin's when absent.
    #[serde(default)]
    pub catalog: Option<String>,
    /// The default schema; the plugin's when absent.
    #[serde(default)]
    pub schema: Option<String>,
    /// Let the table take new columns from the rows (`'mergeSchema' = 'true'`); on by
    /// default, which also fills a table created without columns.
    #[serde(default = "yes")]
    pub merge_schema: bool,
    /// More `FORMAT_OPTIONS` of `COPY INTO`.
    #[serde(default)]
    pub format_options: BTreeMap<String, String>,
    /// More `COPY_OPTIONS` of `COPY INTO` (`force`...).
    #[serde(default)]
    pub copy_options: BTreeMap<String, String>,
    /// Keep the staged file instead of deleting it after the copy.
    #[serde(default)]
    pub keep_staged_file: bool,
}

/// Config of `run_job`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunJobConfig {
    /// The job's id.
    pub job_id: i64,
    /// Job-level parameters (values other than text are sent as their JSON text).
    #[serde(default)]
    pub job_parameters: Option<BTreeMap<String, Value>>,
    /// Parameters of notebook tasks, for jobs without job-level parameters.
    #[serde(default)]
    pub notebook_params: Option<BTreeMap<String, Value>>,
    /// Parameters of Python tasks, for jobs without job-level parameters.
    #[serde(default)]
    pub python_params: Option<Vec<Value>>,
    /// Wait for the run to end (the default); `false` returns right after it starts.
    #[serde(default = "yes")]
    pub wait: bool,
    /// The idempotency token; the call's idempotency key when absent (hashed to 34
    /// characters when longer than Databricks' 64).
    #[serde(default)]
    pub idempotency_token: Option<String>,
}

/// What `run_job` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunJobOutput {
    /// The run.
    pub run_id: i64,
    /// Its number among the job's runs.
    #[serde(default)]
    pub number_in_job: Option<i64>,
    /// The life-cycle state last seen (`TERMINATED`; absent with `wait: false`).
    #[serde(default)]
    pub state: Option<String>,
    /// The result state (`SUCCESS`; absent with `wait: false`).
    #[serde(default)]
    pub result_state: Option<String>,
    /// The state message.
    #[serde(default)]
    pub state_message: Option<String>,
    /// The run's page in the workspace UI.
    #[serde(default)]
    pub run_page_url: Option<String>,
    /// When the run started, in epoch milliseconds.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// When it ended, in epoch milliseconds.
    #[serde(default)]
    pub end_time: Option<i64>,
}

fn version_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "a model version is a number or its text, not {other}"
        ))),
    }
}

/// Config of `mlflow`: the registry operation and its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum MlflowConfig {
    /// Create a registered model; returns it.
    CreateModel {
        /// Its name.
        name: String,
        /// Its description.
        #[serde(default)]
        description: Option<String>,
        /// Its tags.
        #[serde(default)]
        tags: BTreeMap<String, String>,
    },
    /// List registered models as records (name, description, user_id,
    /// creation_timestamp, last_updated_timestamp, latest_versions, tags).
    ListModels {
        /// Models per page (1 to 1,000; the service's default when absent).
        #[serde(default)]
        max_results: Option<u32>,
        /// The most pages read (100 by default); more is an error.
        #[serde(default)]
        max_pages: Option<usize>,
    },
    /// Get a registered model with its latest versions; returns it.
    GetModel {
        /// Its name.
        name: String,
    },
    /// Create a version of a registered model; returns it.
    CreateVersion {
        /// The registered model.
        name: String,
        /// Where the model's files are (`runs:/<run_id>/model`, `dbfs:/...`).
        source: String,
        /// The MLflow run that produced it.
        #[serde(default)]
        run_id: Option<String>,
        /// A link to that run.
        #[serde(default)]
        run_link: Option<String>,
        /// A description.
        #[serde(default)]
        description: Option<String>,
        /// Tags.
        #[serde(default)]
        tags: BTreeMap<String, String>,
        /// Wait until the version is READY (FAILED_REGISTRATION is an error).
        #[serde(default)]
        wait_ready: bool,
    },
    /// Get a model version; returns it.
    GetVersion {
        /// The registered model.
        name: String,
        /// The version (a number or its text).
        #[serde(deserialize_with = "version_text")]
        #[schemars(with = "String")]
        version: String,
        /// Wait until the version is READY (FAILED_REGISTRATION is an error).
        #[serde(default)]
        wait_ready: bool,
    },
    /// Move a model version to a stage; returns the version.
    TransitionStage {
        /// The registered model.
        name: String,
        /// The version (a number or its text).
        #[serde(deserialize_with = "version_text")]
        #[schemars(with = "String")]
        version: String,
        /// `None`, `Staging`, `Production` or `Archived` (any case).
        stage: String,
        /// Archive the versions now in that stage.
        #[serde(default)]
        archive_existing_versions: bool,
        /// A comment recorded with the transition.
        #[serde(default)]
        comment: Option<String>,
    },
}

/// Action `query`.
#[derive(Debug)]
pub struct Query;

impl Action for Query {
    const NAME: &'static str = "query";
    const DESCRIPTION: &'static str = "Run a SQL statement on a SQL warehouse (Statement Execution API, polled, every chunk read) and return its rows as typed records.";
    type Config = QueryConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `load`.
#[derive(Debug)]
pub struct Load;

impl Action for Load {
    const NAME: &'static str = "load";
    const DESCRIPTION: &'static str = "Load the input rows into a table: stage them as a JSON-lines or CSV file in a Unity Catalog volume (Files API), run COPY INTO, delete the file.";
    type Config = LoadConfig;
    type Input = Payload;
    type Output = LoadOutcome;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `run_job`.
#[derive(Debug)]
pub struct RunJob;

impl Action for RunJob {
    const NAME: &'static str = "run_job";
    const DESCRIPTION: &'static str = "Start a job run (run-now, idempotent with the call's key) and wait for it to end; a run that does not succeed is an error with its state message.";
    type Config = RunJobConfig;
    type Input = Payload;
    type Output = RunJobOutput;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `mlflow`.
#[derive(Debug)]
pub struct Mlflow;

impl Action for Mlflow {
    const NAME: &'static str = "mlflow";
    const DESCRIPTION: &'static str = "Work with the MLflow model registry: create_model, list_models (records), get_model, create_version, get_version, transition_stage.";
    type Config = MlflowConfig;
    type Input = Payload;
    type Output = Payload;

    fn permissions() -> Vec<Permission> {
        network()
    }
}
