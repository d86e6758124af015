//! [`DatabricksClient`]: the Databricks REST calls the connector makes — SQL Statement
//! Execution, the Files API, Jobs and the MLflow model registry — typed, and usable from
//! Rust without the plugin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Records, Result};
use rand::Rng;
use reqwest::Method;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::config::{Credentials, DatabricksSettings, check_volume_path, check_wait_timeout};
use crate::http::{
    BearerAuth, ClientAuthMethod, ClientCredentials, HttpClient, Layer, OAuth2ClientCredentials,
    Request, Response, excerpt,
};
use crate::saas::{
    Column, ColumnType, Poll, PollSettings, build_client, poll_until, records_from_rows,
    send_checked, token_client,
};

/// The most chunks one statement result is read in, whatever its manifest says.
pub const MAX_CHUNKS: usize = 100_000;

/// The most pages `list_models` reads unless told otherwise.
pub const DEFAULT_MAX_PAGES: usize = 100;

/// A client of one Databricks workspace. Cloning is cheap and shares the connection pool
/// and the OAuth token.
#[derive(Debug, Clone)]
pub struct DatabricksClient {
    http: HttpClient,
    inner: Arc<Defaults>,
}

#[derive(Debug)]
struct Defaults {
    wait_timeout: String,
    max_rows: usize,
}

// --- SQL Statement Execution: wire types ----------------------------------------------------

/// A named parameter of a statement (`:name` in its text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatementParameter {
    /// The marker's name, without the colon.
    pub name: String,
    /// The value as text; `null` binds SQL NULL.
    pub value: Option<String>,
    /// The SQL type (`INT`, `DATE`, `DECIMAL(10,2)`...); STRING when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The body of `POST /api/2.0/sql/statements`. Results are always asked for INLINE as
/// JSON_ARRAY, and a statement that outlasts `wait_timeout` continues (and is polled).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementRequest {
    /// The SQL text.
    pub statement: String,
    /// The SQL warehouse that runs it.
    pub warehouse_id: String,
    /// The default catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// The default schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Named parameters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<StatementParameter>,
    /// How long the submission waits for a result (`0s`, `5s`–`50s`).
    pub wait_timeout: String,
    /// Always `CONTINUE`: the statement goes on past `wait_timeout` and is polled.
    pub on_wait_timeout: &'static str,
    /// Always `INLINE`.
    pub disposition: &'static str,
    /// Always `JSON_ARRAY`.
    pub format: &'static str,
    /// The most rows the warehouse returns (the result is then marked truncated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_limit: Option<u64>,
}

impl StatementRequest {
    /// A statement for `warehouse_id`, with the client's `wait_timeout` filled in when sent.
    pub fn new(statement: impl Into<String>, warehouse_id: impl Into<String>) -> Self {
        Self {
            statement: statement.into(),
            warehouse_id: warehouse_id.into(),
            catalog: None,
            schema: None,
            parameters: Vec::new(),
            wait_timeout: String::new(),
            on_wait_timeout: "CONTINUE",
            disposition: "INLINE",
            format: "JSON_ARRAY",
            row_limit: None,
        }
    }
}

/// A statement's state and its error, if it failed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatementStatus {
    /// PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED or CLOSED.
    #[serde(default)]
    pub state: String,
    /// What went wrong, for FAILED.
    #[serde(default)]
    pub error: Option<ServiceError>,
    /// The SQLSTATE of a failure.
    #[serde(default)]
    pub sql_state: Option<String>,
}

/// An error inside a statement's status.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceError {
    /// `BAD_REQUEST`, `NOT_FOUND`...
    #[serde(default)]
    pub error_code: Option<String>,
    /// The message (with the SQL error class in brackets).
    #[serde(default)]
    pub message: Option<String>,
}

/// A result column's description.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ColumnInfo {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its type name (`INT`, `LONG`, `DECIMAL`, `STRING`...).
    #[serde(default)]
    pub type_name: Option<String>,
    /// Its full type (`DECIMAL(10,2)`, `BIGINT`).
    #[serde(default)]
    pub type_text: Option<String>,
    /// A decimal's precision.
    #[serde(default)]
    pub type_precision: Option<u32>,
    /// A decimal's scale.
    #[serde(default)]
    pub type_scale: Option<i32>,
}

/// The columns of a result.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResultSchema {
    /// The columns, in order.
    #[serde(default)]
    pub columns: Vec<ColumnInfo>,
}

/// A result's manifest: its schema and how it is chunked.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Manifest {
    /// The schema.
    #[serde(default)]
    pub schema: ResultSchema,
    /// How many chunks there are.
    #[serde(default)]
    pub total_chunk_count: Option<u64>,
    /// How many rows there are.
    #[serde(default)]
    pub total_row_count: Option<u64>,
    /// Whether `row_limit` or `byte_limit` cut the result short.
    #[serde(default)]
    pub truncated: bool,
}

/// One chunk of a result.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResultData {
    /// The chunk's index.
    #[serde(default)]
    pub chunk_index: Option<u64>,
    /// Its rows, cells as text or null (absent for an empty result).
    #[serde(default)]
    pub data_array: Option<Vec<Vec<Value>>>,
    /// The next chunk's index, when there is one.
    #[serde(default)]
    pub next_chunk_index: Option<u64>,
    /// The path of the next chunk, when there is one.
    #[serde(default)]
    pub next_chunk_internal_link: Option<String>,
}

/// The answer of the statement API (submission, poll).
#[derive(Debug, Clone, Deserialize)]
pub struct StatementResponse {
    /// The statement's id.
    pub statement_id: String,
    /// Its state.
    #[serde(default)]
    pub status: StatementStatus,
    /// The result's manifest, once SUCCEEDED.
    #[serde(default)]
    pub manifest: Option<Manifest>,
    /// The first chunk, once SUCCEEDED.
    #[serde(default)]
    pub result: Option<ResultData>,
}

/// A finished statement's result: typed columns and every row.
#[derive(Debug, Clone)]
pub struct StatementResult {
    /// The statement's id.
    pub statement_id: String,
    /// The columns, typed from the manifest.
    pub columns: Vec<Column>,
    /// The rows, cells as the API sent them.
    pub rows: Vec<Vec<Value>>,
    /// Whether the warehouse cut the result short (`row_limit`).
    pub truncated: bool,
}

impl StatementResult {
    /// The result as records with typed columns.
    pub fn to_records(&self) -> Result<Records> {
        records_from_rows(&self.columns, &self.rows)
    }

    /// A cell of the first row by column name (for one-row answers such as `COPY INTO`'s).
    pub fn first_row_value(&self, column: &str) -> Option<&Value> {
        let index = self
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(column))?;
        self.rows.first()?.get(index)
    }
}

/// The record type a Databricks column type becomes: integers (`INT`, `BIGINT`/`LONG`,
/// `SMALLINT`/`SHORT`, `TINYINT`/`BYTE`), floats (`FLOAT`, `DOUBLE`), decimals (with the
/// column's precision and scale, `DECIMAL(10,0)` when unstated), booleans, dates,
/// timestamps (`TIMESTAMP`, `TIMESTAMP_NTZ`) and text for everything else (`STRING`,
/// `BINARY` as base64, intervals, and `ARRAY`/`MAP`/`STRUCT` as JSON text).
pub fn column_type(info: &ColumnInfo) -> ColumnType {
    let text = info.type_text.as_deref().unwrap_or("").to_ascii_uppercase();
    let name = match info.type_name.as_deref() {
        Some(n) if !n.is_empty() => n.to_ascii_uppercase(),
        _ => text.split('(').next().unwrap_or("").trim().to_string(),
    };
    match name.as_str() {
        "BYTE" | "TINYINT" | "SHORT" | "SMALLINT" | "INT" | "INTEGER" | "LONG" | "BIGINT" => {
            ColumnType::Integer
        }
        "FLOAT" | "REAL" | "DOUBLE" => ColumnType::Float,
        "DECIMAL" | "DEC" | "NUMERIC" => {
            let (mut precision, mut scale) = (info.type_precision, info.type_scale);
            if precision.is_none()
                && let Some(args) = text.split_once('(').and_then(|(_, a)| a.strip_suffix(')'))
            {
                let mut parts = args.split(',').map(|p| p.trim());
                precision = parts.next().and_then(|p| p.parse().ok());
                scale = parts.next().and_then(|s| s.parse().ok());
            }
            ColumnType::Decimal {
                precision: u8::try_from(precision.unwrap_or(10).clamp(1, 38)).unwrap_or(38),
                scale: i8::try_from(scale.unwrap_or(0).clamp(0, 38)).unwrap_or(0),
            }
        }
        "BOOLEAN" => ColumnType::Boolean,
        "DATE" => ColumnType::Date,
        "TIMESTAMP" | "TIMESTAMP_NTZ" => ColumnType::Timestamp,
        _ => ColumnType::Text,
    }
}

// --- Jobs and MLflow: wire types --------------------------------------------------------------

/// The body of `POST /api/2.2/jobs/run-now`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunNow {
    /// The job.
    pub job_id: i64,
    /// Job-level parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_parameters: Option<BTreeMap<String, String>>,
    /// Parameters of notebook tasks (legacy jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notebook_params: Option<BTreeMap<String, String>>,
    /// Parameters of Python tasks (legacy jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python_params: Option<Vec<String>>,
    /// A token (at most 64 characters) that makes a repeated request start one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_token: Option<String>,
}

/// The answer of `run-now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunNowResponse {
    /// The new run.
    pub run_id: i64,
    /// Its number among the job's runs.
    #[serde(default)]
    pub number_in_job: Option<i64>,
}

/// A run's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunState {
    /// QUEUED, PENDING, RUNNING, TERMINATING, TERMINATED, SKIPPED, INTERNAL_ERROR, BLOCKED,
    /// WAITING_FOR_RETRY.
    #[serde(default)]
    pub life_cycle_state: Option<String>,
    /// SUCCESS, FAILED, TIMEDOUT, CANCELED... once terminated.
    #[serde(default)]
    pub result_state: Option<String>,
    /// Why the run is in this state.
    #[serde(default)]
    pub state_message: Option<String>,
}

/// A job run, as `runs/get` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// The run.
    pub run_id: i64,
    /// Its job.
    #[serde(default)]
    pub job_id: Option<i64>,
    /// Its number among the job's runs.
    #[serde(default)]
    pub number_in_job: Option<i64>,
    /// Its name.
    #[serde(default)]
    pub run_name: Option<String>,
    /// Its page in the workspace UI.
    #[serde(default)]
    pub run_page_url: Option<String>,
    /// Its state.
    #[serde(default)]
    pub state: RunState,
    /// When it started, in epoch milliseconds.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// When it ended, in epoch milliseconds.
    #[serde(default)]
    pub end_time: Option<i64>,
}

/// A tag of a registered model or a model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelTag {
    /// Its key.
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: Option<String>,
}

/// A version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelVersion {
    /// The model's name.
    #[serde(default)]
    pub name: String,
    /// The version number, as text.
    #[serde(default)]
    pub version: String,
    /// PENDING_REGISTRATION, READY or FAILED_REGISTRATION.
    #[serde(default)]
    pub status: Option<String>,
    /// Why registration failed.
    #[serde(default)]
    pub status_message: Option<String>,
    /// None, Staging, Production or Archived.
    #[serde(default)]
    pub current_stage: Option<String>,
    /// Where the model's files come from.
    #[serde(default)]
    pub source: Option<String>,
    /// The MLflow run that produced it.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Creation time, in epoch milliseconds.
    #[serde(default)]
    pub creation_timestamp: Option<i64>,
    /// Last update, in epoch milliseconds.
    #[serde(default)]
    pub last_updated_timestamp: Option<i64>,
    /// Who created it.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Everything else the API said.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegisteredModel {
    /// Its name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Creation time, in epoch milliseconds.
    #[serde(default)]
    pub creation_timestamp: Option<i64>,
    /// Last update, in epoch milliseconds.
    #[serde(default)]
    pub last_updated_timestamp: Option<i64>,
    /// Who created it.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The latest version in each stage.
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<ModelTag>,
    /// Everything else the API said (`id`, `permission_level`...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The body of `model-versions/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateModelVersion {
    /// The registered model.
    pub name: String,
    /// Where the model's files are (`runs:/<run_id>/model`, `dbfs:/...`).
    pub source: String,
    /// The MLflow run that produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// A link to that run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_link: Option<String>,
    /// A description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<ModelTag>,
}

/// The body of `databricks/model-versions/transition-stage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionStage {
    /// The registered model.
    pub name: String,
    /// The version.
    pub version: String,
    /// None, Staging, Production or Archived.
    pub stage: String,
    /// Archive the versions now in `stage`.
    pub archive_existing_versions: bool,
    /// A comment recorded with the transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One page of registered models.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelsPage {
    /// The models.
    #[serde(default)]
    pub registered_models: Vec<RegisteredModel>,
    /// The token of the next page, when there is one.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

// --- load ---------------------------------------------------------------------------------------

/// The file format `load` stages rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageFormat {
    /// JSON lines (one object per row, nulls written out): keeps numbers, booleans and
    /// nulls apart from text.
    #[default]
    Json,
    /// CSV with a header line (`'header' = 'true'`, `'inferSchema' = 'true'`).
    Csv,
}

impl StageFormat {
    fn extension(self) -> &'static str {
        match self {
            StageFormat::Json => "json",
            StageFormat::Csv => "csv",
        }
    }

    fn fileformat(self) -> &'static str {
        match self {
            StageFormat::Json => "JSON",
            StageFormat::Csv => "CSV",
        }
    }
}

/// What [`DatabricksClient::load`] stages and copies.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The target table (`name`, `schema.name` or `catalog.schema.name`, parts optionally
    /// in backquotes).
    pub table: String,
    /// The rows.
    pub records: Records,
    /// The file format.
    pub format: StageFormat,
    /// The volume directory to stage in (`/Volumes/<catalog>/<schema>/<volume>[/dir]`).
    pub staging_path: String,
    /// The SQL warehouse that runs `COPY INTO`.
    pub warehouse_id: String,
    /// The default catalog of the statement.
    pub catalog: Option<String>,
    /// The default schema of the statement.
    pub schema: Option<String>,
    /// Let the table take new columns from the file (`'mergeSchema' = 'true'`, needed for
    /// a table created without columns).
    pub merge_schema: bool,
    /// More `FORMAT_OPTIONS`.
    pub format_options: BTreeMap<String, String>,
    /// More `COPY_OPTIONS`.
    pub copy_options: BTreeMap<String, String>,
    /// Keep the staged file instead of deleting it.
    pub keep_staged_file: bool,
}

/// What `load` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadOutcome {
    /// The table.
    pub table: String,
    /// Rows `COPY INTO` reported loaded (`num_inserted_rows`, else `num_affected_rows`,
    /// else the rows staged).
    pub rows_loaded: u64,
    /// Rows written to the staged file.
    pub rows_staged: u64,
    /// The staged file's format, `json` or `csv`.
    pub format: StageFormat,
    /// The staged file's path (none when there were no rows to load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_path: Option<String>,
    /// The staged file's size in bytes.
    pub staged_bytes: u64,
    /// Whether the staged file was deleted afterwards.
    pub staged_file_deleted: bool,
    /// Why deleting the staged file failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_error: Option<String>,
    /// The `COPY INTO` statement's id (none when there were no rows to load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_id: Option<String>,
}

impl DatabricksClient {
    /// A client for the workspace in `settings` (no network traffic until the first call).
    pub fn new(settings: &DatabricksSettings) -> Result<Self> {
        settings.check()?;
        let host = settings.host_url()?;
        let auth: Arc<dyn Layer> = match settings.credentials()? {
            Credentials::Token(token) => Arc::new(BearerAuth::new(token)),
            Credentials::OAuth {
                token_url,
                client_id,
                client_secret,
            } => {
                let http = token_client(&settings.http)?;
                Arc::new(OAuth2ClientCredentials::new(
                    ClientCredentials {
                        token_url,
                        client_id,
                        client_secret,
                        scopes: vec!["all-apis".into()],
                        extra: Vec::new(),
                        // The official SDK sends the id and secret as HTTP Basic.
                        client_auth: ClientAuthMethod::Basic,
                        refresh_margin: Duration::from_secs(60),
                    },
                    http,
                ))
            }
        };
        let http = build_client(host.as_str(), &settings.http, None, vec![auth])?;
        Ok(Self {
            http,
            inner: Arc::new(Defaults {
                wait_timeout: settings.wait_timeout.clone(),
                max_rows: settings.max_rows,
            }),
        })
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends `request`; a non-2xx answer becomes an error naming the status, the
    /// `error_code` and the message.
    async fn send(&self, request: Request) -> Result<Response> {
        let describe = request.describe();
        send_checked(&self.http, request, &describe, api_error).await
    }

    async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        self.send(request).await?.json()
    }

    // --- statements --------------------------------------------------------------------------

    /// Submits a statement (`POST /api/2.0/sql/statements`); the answer may already hold the
    /// result, or say PENDING/RUNNING.
    pub async fn submit_statement(&self, request: &StatementRequest) -> Result<StatementResponse> {
        let mut request = request.clone();
        if request.wait_timeout.is_empty() {
            request.wait_timeout = self.inner.wait_timeout.clone();
        }
        check_wait_timeout(&request.wait_timeout)?;
        let http = self
            .http
            .request(Method::POST, "api/2.0/sql/statements")?
            .json(&request)?;
        self.call(http).await
    }

    /// A statement's state and, once SUCCEEDED, its manifest and first chunk.
    pub async fn get_statement(&self, id: &str) -> Result<StatementResponse> {
        let request = self
            .http
            .request(
                Method::GET,
                &format!("api/2.0/sql/statements/{}", segment(id)),
            )?
            .path_template("/api/2.0/sql/statements/{id}");
        self.call(request).await
    }

    /// Chunk `index` of a SUCCEEDED statement's result.
    pub async fn get_chunk(&self, id: &str, index: u64) -> Result<ResultData> {
        let request = self
            .http
            .request(
                Method::GET,
                &format!(
                    "api/2.0/sql/statements/{}/result/chunks/{index}",
                    segment(id)
                ),
            )?
            .path_template("/api/2.0/sql/statements/{id}/result/chunks/{index}");
        self.call(request).await
    }

    /// The chunk a `next_chunk_internal_link` points at (a path on the workspace).
    async fn get_chunk_link(&self, link: &str) -> Result<ResultData> {
        if link.starts_with("http://") || link.starts_with("https://") {
            return Err(Error::new(
                ErrorKind::Remote,
                "Databricks gave an absolute next_chunk_internal_link; only workspace paths are followed",
            ));
        }
        let request = self
            .http
            .request(Method::GET, link)?
            .path_template("/api/2.0/sql/statements/{id}/result/chunks/{index}");
        self.call(request).await
    }

    /// Asks the warehouse to cancel a statement (`POST .../{id}/cancel`).
    pub async fn cancel_statement(&self, id: &str) -> Result<()> {
        let request = self
            .http
            .request(
                Method::POST,
                &format!("api/2.0/sql/statements/{}/cancel", segment(id)),
            )?
            .path_template("/api/2.0/sql/statements/{id}/cancel")
            // Cancelling twice is cancelling once.
            .replayable();
        self.send(request).await.map(|_| ())
    }

    /// Runs a statement to the end: submits it, polls while it is PENDING or RUNNING (as
    /// `poll` says, within the call's deadline), and reads every chunk of its result.
    ///
    /// A statement that ends FAILED, CANCELED or CLOSED is an error carrying the
    /// statement's `error_code` and message. When the wait is given up — the call is
    /// cancelled, its deadline passes, `poll.max_wait` runs out, or the future is dropped —
    /// the statement is cancelled on the warehouse.
    pub async fn execute(
        &self,
        ctx: &ActionContext,
        request: &StatementRequest,
        poll: &PollSettings,
    ) -> Result<StatementResult> {
        let submitted = self.submit_statement(request).await?;
        let id = submitted.statement_id.clone();
        let mut guard = CancelOnDrop {
            client: Some(self.clone()),
            id: id.clone(),
        };
        let done = if is_running(&submitted.status.state) {
            let this = self;
            let what = format!("Databricks statement {id}");
            poll_until(ctx, poll, &what, move || {
                let id = id.clone();
                async move {
                    let answer = this.get_statement(&id).await?;
                    Ok(if is_running(&answer.status.state) {
                        Poll::Pending(answer.status.state.clone())
                    } else {
                        Poll::Ready(answer)
                    })
                }
            })
            .await?
        } else {
            submitted
        };
        guard.disarm();
        match done.status.state.as_str() {
            "SUCCEEDED" => self.collect(ctx, done).await,
            _ => Err(statement_error(&done)),
        }
    }

    /// Reads every chunk of a SUCCEEDED statement.
    async fn collect(
        &self,
        ctx: &ActionContext,
        response: StatementResponse,
    ) -> Result<StatementResult> {
        let id = response.statement_id;
        let manifest = response.manifest.ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                format!("Databricks statement {id} SUCCEEDED without a manifest"),
            )
        })?;
        let max_rows = self.inner.max_rows;
        if let Some(total) = manifest.total_row_count
            && total > max_rows as u64
        {
            return Err(too_many_rows(&id, total, max_rows));
        }
        let columns: Vec<Column> = manifest
            .schema
            .columns
            .iter()
            .map(|c| Column::new(&c.name, column_type(c)))
            .collect();
        let total_chunks = manifest.total_chunk_count.unwrap_or(0);
        let mut next = match response.result {
            Some(first) => Some(first),
            None if total_chunks > 0 => Some(self.get_chunk(&id, 0).await?),
            None => None,
        };
        let mut rows: Vec<Vec<Value>> = Vec::new();
        let mut chunks = 0usize;
        while let Some(data) = next.take() {
            chunks += 1;
            if chunks > MAX_CHUNKS {
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!("Databricks statement {id} has more than {MAX_CHUNKS} chunks"),
                ));
            }
            let cells = data.data_array.unwrap_or_default();
            if rows.len() + cells.len() > max_rows {
                return Err(too_many_rows(
                    &id,
                    (rows.len() + cells.len()) as u64,
                    max_rows,
                ));
            }
            rows.extend(cells);
            next = match (data.next_chunk_internal_link, data.next_chunk_index) {
                (Some(link), _) => {
                    ctx.check_alive()?;
                    Some(self.get_chunk_link(&link).await?)
                }
                (None, Some(index)) => {
                    ctx.check_alive()?;
                    Some(self.get_chunk(&id, index).await?)
                }
                (None, None) => None,
            };
        }
        if let Some(total) = manifest.total_row_count
            && total != rows.len() as u64
        {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!(
                    "Databricks statement {id}: the manifest says {total} rows, the chunks held {}",
                    rows.len()
                ),
            ));
        }
        Ok(StatementResult {
            statement_id: id,
            columns,
            rows,
            truncated: manifest.truncated,
        })
    }

    // --- files ---------------------------------------------------------------------------------

    fn file_url(&self, path: &str) -> Result<Url> {
        let mut url = self.http.url("api/2.0/fs/files")?;
        url.path_segments_mut()
            .map_err(|()| Error::new(ErrorKind::ConfigInvalid, "the host URL cannot take a path"))?
            .pop_if_empty()
            .extend(path.split('/').filter(|s| !s.is_empty()));
        Ok(url)
    }

    /// Uploads `data` to `path` (a `/Volumes/...` file) with the Files API
    /// (`PUT /api/2.0/fs/files{path}`, raw bytes, at most 5 GiB).
    pub async fn upload_file(&self, path: &str, data: Bytes, overwrite: bool) -> Result<()> {
        let url = self.file_url(path)?;
        let request = self
            .http
            .request(Method::PUT, url.as_str())?
            .query(&[("overwrite", if overwrite { "true" } else { "false" })])?
            .bytes(data, "application/octet-stream")
            .path_template("/api/2.0/fs/files/{path}");
        self.send(request).await.map(|_| ())
    }

    /// Downloads a file with the Files API.
    pub async fn download_file(&self, path: &str) -> Result<Bytes> {
        let url = self.file_url(path)?;
        let request = self
            .http
            .request(Method::GET, url.as_str())?
            .path_template("/api/2.0/fs/files/{path}");
        Ok(self.send(request).await?.body)
    }

    /// Deletes a file with the Files API.
    pub async fn delete_file(&self, path: &str) -> Result<()> {
        let url = self.file_url(path)?;
        let request = self
            .http
            .request(Method::DELETE, url.as_str())?
            .path_template("/api/2.0/fs/files/{path}");
        self.send(request).await.map(|_| ())
    }

    /// Stages `request.records` as a file in a volume, runs `COPY INTO` from it and deletes
    /// it (unless asked to keep it); the staged file is deleted when `COPY INTO` fails too.
    /// No rows load nothing: no file, no statement, `rows_loaded` 0.
    pub async fn load(
        &self,
        ctx: &ActionContext,
        request: &LoadRequest,
        poll: &PollSettings,
    ) -> Result<LoadOutcome> {
        let table = check_table_name(&request.table)?;
        check_volume_path("staging_path", &request.staging_path)?;
        if request.records.num_rows() == 0 {
            return Ok(LoadOutcome {
                table,
                rows_loaded: 0,
                rows_staged: 0,
                format: request.format,
                staged_path: None,
                staged_bytes: 0,
                staged_file_deleted: false,
                cleanup_error: None,
                statement_id: None,
            });
        }
        let mut data = Vec::new();
        match request.format {
            StageFormat::Json => request.records.to_ndjson(&mut data)?,
            StageFormat::Csv => request.records.to_csv(&mut data)?,
        }
        let rows_staged = request.records.num_rows() as u64;
        let name = format!(
            "kernelize-{}-{:016x}.{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            rand::rng().random::<u64>(),
            request.format.extension()
        );
        let path = format!("{}/{name}", request.staging_path.trim_end_matches('/'));
        let staged_bytes = data.len() as u64;
        self.upload_file(&path, Bytes::from(data), false).await?;

        let statement = copy_into_sql(request, &table, &path)?;
        let mut sql = StatementRequest::new(statement, &request.warehouse_id);
        sql.catalog = request.catalog.clone();
        sql.schema = request.schema.clone();
        let copied = self.execute(ctx, &sql, poll).await;

        let (deleted, cleanup_error) = if request.keep_staged_file {
            (false, None)
        } else {
            match self.delete_file(&path).await {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.message().to_string())),
            }
        };
        let result = match copied {
            Ok(r) => r,
            Err(e) => {
                return Err(e
                    .with_context("staged_path", &path)
                    .with_context("staged_file_deleted", deleted));
            }
        };
        let count = |column: &str| {
            result.first_row_value(column).and_then(|v| match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
        };
        let rows_loaded = count("num_inserted_rows")
            .or_else(|| count("num_affected_rows"))
            .unwrap_or(rows_staged);
        Ok(LoadOutcome {
            table,
            rows_loaded,
            rows_staged,
            format: request.format,
            staged_path: Some(path),
            staged_bytes,
            staged_file_deleted: deleted,
            cleanup_error,
            statement_id: Some(result.statement_id),
        })
    }

    // --- jobs --------------------------------------------------------------------------------

    /// Starts a run of a job (`POST /api/2.2/jobs/run-now`). With an `idempotency_token`
    /// the request is retried like an idempotent one: Databricks starts one run per token.
    pub async fn run_now(&self, body: &RunNow) -> Result<RunNowResponse> {
        let mut request = self
            .http
            .request(Method::POST, "api/2.2/jobs/run-now")?
            .json(body)?;
        if body.idempotency_token.is_some() {
            request = request.replayable();
        }
        self.call(request).await
    }

    /// A run's state (`GET /api/2.2/jobs/runs/get?run_id=`).
    pub async fn get_run(&self, run_id: i64) -> Result<Run> {
        let request = self
            .http
            .request(Method::GET, "api/2.2/jobs/runs/get")?
            .query(&[("run_id", run_id)])?;
        self.call(request).await
    }

    /// Polls a run until its life cycle ends (TERMINATED, SKIPPED or INTERNAL_ERROR) and
    /// returns it; whether it succeeded is the caller's to judge ([`run_outcome`]).
    pub async fn wait_for_run(
        &self,
        ctx: &ActionContext,
        run_id: i64,
        poll: &PollSettings,
    ) -> Result<Run> {
        let what = format!("Databricks job run {run_id}");
        poll_until(ctx, poll, &what, || async move {
            let run = self.get_run(run_id).await?;
            let state = run.state.life_cycle_state.clone().unwrap_or_default();
            Ok(match state.as_str() {
                "TERMINATED" | "SKIPPED" | "INTERNAL_ERROR" => Poll::Ready(run),
                _ => Poll::Pending(state),
            })
        })
        .await
    }

    // --- MLflow ------------------------------------------------------------------------------

    /// Creates a registered model.
    pub async fn create_model(
        &self,
        name: &str,
        description: Option<&str>,
        tags: &[ModelTag],
    ) -> Result<RegisteredModel> {
        let mut body = serde_json::json!({ "name": name });
        if let Some(d) = description {
            body["description"] = Value::from(d);
        }
        if !tags.is_empty() {
            body["tags"] = serde_json::to_value(tags)?;
        }
        let request = self
            .http
            .request(Method::POST, "api/2.0/mlflow/registered-models/create")?
            .json(&body)?;
        let answer: Value = self.call(request).await?;
        unwrap_key(answer, &["registered_model"], "registered-models/create")
    }

    /// One page of registered models.
    pub async fn list_models_page(
        &self,
        max_results: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<ModelsPage> {
        let request = self
            .http
            .request(Method::GET, "api/2.0/mlflow/registered-models/list")?
            .query(&serde_json::json!({"max_results": max_results, "page_token": page_token}))?;
        self.call(request).await
    }

    /// Every registered model, following `next_page_token` for at most `max_pages` pages
    /// (an error when there are more).
    pub async fn list_models(
        &self,
        ctx: &ActionContext,
        max_results: Option<u32>,
        max_pages: usize,
    ) -> Result<Vec<RegisteredModel>> {
        let mut models = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..max_pages.max(1) {
            ctx.check_alive()?;
            let page = self.list_models_page(max_results, token.as_deref()).await?;
            models.extend(page.registered_models);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(models),
            }
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "there are more than {} pages of registered models; raise `max_pages` or `max_results`",
                max_pages.max(1)
            ),
        ))
    }

    /// A registered model (`GET /api/2.0/mlflow/databricks/registered-models/get`, the
    /// workspace variant that also gives its id and the caller's permission level).
    pub async fn get_model(&self, name: &str) -> Result<RegisteredModel> {
        let request = self
            .http
            .request(
                Method::GET,
                "api/2.0/mlflow/databricks/registered-models/get",
            )?
            .query(&[("name", name)])?;
        let answer: Value = self.call(request).await?;
        unwrap_key(
            answer,
            &["registered_model_databricks", "registered_model"],
            "registered-models/get",
        )
    }

    /// Creates a model version (it starts PENDING_REGISTRATION).
    pub async fn create_model_version(&self, body: &CreateModelVersion) -> Result<ModelVersion> {
        let request = self
            .http
            .request(Method::POST, "api/2.0/mlflow/model-versions/create")?
            .json(body)?;
        let answer: Value = self.call(request).await?;
        unwrap_key(answer, &["model_version"], "model-versions/create")
    }

    /// A model version.
    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let request = self
            .http
            .request(Method::GET, "api/2.0/mlflow/model-versions/get")?
            .query(&[("name", name), ("version", version)])?;
        let answer: Value = self.call(request).await?;
        unwrap_key(answer, &["model_version"], "model-versions/get")
    }

    /// Polls a model version until it is READY; FAILED_REGISTRATION is an error with its
    /// status message.
    pub async fn wait_model_version_ready(
        &self,
        ctx: &ActionContext,
        name: &str,
        version: &str,
        poll: &PollSettings,
    ) -> Result<ModelVersion> {
        let what = format!("model version {name} {version}");
        let ready = poll_until(ctx, poll, &what, || async move {
            let v = self.get_model_version(name, version).await?;
            Ok(match v.status.as_deref() {
                Some("PENDING_REGISTRATION") => Poll::Pending("PENDING_REGISTRATION".into()),
                _ => Poll::Ready(v),
            })
        })
        .await?;
        match ready.status.as_deref() {
            Some("READY") | None => Ok(ready),
            Some(other) => Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "model version {name} {version} ended {other}: {}",
                    ready
                        .status_message
                        .as_deref()
                        .unwrap_or("(no status message)")
                ),
            )
            .with_context("model", name)
            .with_context("version", version)),
        }
    }

    /// Moves a model version to a stage (the workspace endpoint
    /// `POST /api/2.0/mlflow/databricks/model-versions/transition-stage`).
    pub async fn transition_stage(&self, body: &TransitionStage) -> Result<ModelVersion> {
        let request = self
            .http
            .request(
                Method::POST,
                "api/2.0/mlflow/databricks/model-versions/transition-stage",
            )?
            .json(body)?;
        let answer: Value = self.call(request).await?;
        unwrap_key(
            answer,
            &["model_version_databricks", "model_version"],
            "model-versions/transition-stage",
        )
    }
}

/// Cancels a statement when dropped armed: the wait for it was given up.
struct CancelOnDrop {
    client: Option<DatabricksClient>,
    id: String,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.client = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                match client.cancel_statement(&id).await {
                    Ok(()) => tracing::debug!(statement_id = %id, "cancelled the Databricks statement"),
                    Err(e) => tracing::warn!(statement_id = %id, error = %e, "could not cancel the Databricks statement"),
                }
            });
        }
    }
}

fn is_running(state: &str) -> bool {
    matches!(state, "PENDING" | "RUNNING")
}

/// A path segment for an id the API gave (ids are UUIDs; anything else is escaped).
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn too_many_rows(id: &str, rows: u64, max: usize) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "Databricks statement {id} returns {rows} rows, more than `max_rows` ({max}); narrow the query, set `row_limit`, or raise `max_rows`"
        ),
    )
}

/// The error of a statement that ended FAILED, CANCELED or CLOSED.
fn statement_error(response: &StatementResponse) -> Error {
    let id = &response.statement_id;
    let state = response.status.state.as_str();
    let error = response.status.error.clone().unwrap_or_default();
    let code = error.error_code.unwrap_or_else(|| "UNKNOWN".into());
    let message = error.message.unwrap_or_else(|| "(no message)".into());
    let (kind, temporary) = match state {
        "CANCELED" => (ErrorKind::Cancelled, false),
        "CLOSED" => (ErrorKind::InvalidState, false),
        _ => service_kind(&code),
    };
    let mut e = Error::new(
        kind,
        format!("Databricks statement {id} ended {state}: {code}: {message}"),
    )
    .with_context("statement_id", id)
    .with_context("error_code", &code);
    if let Some(sql_state) = &response.status.sql_state {
        e = e.with_context("sql_state", sql_state);
    }
    if temporary {
        e.set_temporary()
    } else {
        e.set_permanent()
    }
}

/// The error kind of a Databricks `error_code`, and whether retrying may help.
fn service_kind(code: &str) -> (ErrorKind, bool) {
    match code {
        "NOT_FOUND" | "RESOURCE_DOES_NOT_EXIST" | "ENDPOINT_NOT_FOUND" => {
            (ErrorKind::NotFound, false)
        }
        "UNAUTHENTICATED" | "PERMISSION_DENIED" | "INVALID_TOKEN" => {
            (ErrorKind::PermissionDenied, false)
        }
        "BAD_REQUEST" | "INVALID_PARAMETER_VALUE" | "MALFORMED_REQUEST" | "INVALID_REQUEST" => {
            (ErrorKind::InvalidInput, false)
        }
        "REQUEST_LIMIT_EXCEEDED" | "RESOURCE_EXHAUSTED" | "TOO_MANY_REQUESTS" => {
            (ErrorKind::RateLimited, true)
        }
        "DEADLINE_EXCEEDED" => (ErrorKind::Timeout, true),
        "CANCELLED" => (ErrorKind::Cancelled, false),
        "ALREADY_EXISTS" | "RESOURCE_ALREADY_EXISTS" | "RESOURCE_CONFLICT" | "ABORTED" => {
            (ErrorKind::InvalidState, false)
        }
        "TEMPORARILY_UNAVAILABLE"
        | "SERVICE_UNDER_MAINTENANCE"
        | "WORKSPACE_TEMPORARILY_UNAVAILABLE"
        | "INTERNAL_ERROR"
        | "IO_ERROR" => (ErrorKind::Remote, true),
        _ => (ErrorKind::Remote, false),
    }
}

/// The error of a non-2xx answer: `{error_code, message}` when the body has them.
fn api_error(response: &Response, request: &str) -> Error {
    let status = response.status.as_u16();
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let field = |k: &str| {
        body.as_ref()
            .and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let code = field("error_code");
    let message = field("message").unwrap_or_else(|| excerpt(&response.body));
    let (kind, temporary) = match code.as_deref().map(service_kind) {
        Some((kind, temporary)) if kind != ErrorKind::Remote || temporary => (kind, temporary),
        _ => match status {
            401 | 403 => (ErrorKind::PermissionDenied, false),
            404 => (ErrorKind::NotFound, false),
            400 => (ErrorKind::InvalidInput, false),
            409 => (ErrorKind::InvalidState, false),
            429 => (ErrorKind::RateLimited, true),
            s => (ErrorKind::Remote, s == 408 || s >= 500),
        },
    };
    let label = code.clone().unwrap_or_else(|| "(no error_code)".into());
    let mut e = Error::new(
        kind,
        format!("Databricks {request} answered {status} {label}: {message}"),
    )
    .with_status(status);
    if let Some(code) = code {
        e = e.with_context("error_code", code);
    }
    if let Some(after) = response.retry_after() {
        e = e.with_retry_after(after);
    }
    if temporary || status == 429 || status >= 500 {
        e.set_temporary()
    } else {
        e.set_permanent()
    }
}

/// The value under the first of `keys` that the answer has, as `T`.
fn unwrap_key<T: DeserializeOwned>(answer: Value, keys: &[&str], what: &str) -> Result<T> {
    let Value::Object(mut map) = answer else {
        return Err(Error::new(
            ErrorKind::Remote,
            format!("Databricks {what} answered something other than a JSON object"),
        ));
    };
    let value = keys.iter().find_map(|k| map.remove(*k)).ok_or_else(|| {
        Error::new(
            ErrorKind::Remote,
            format!(
                "Databricks {what} answered without `{}`",
                keys.join("` or `")
            ),
        )
    })?;
    serde_json::from_value(value).map_err(|e| {
        Error::new(
            ErrorKind::Remote,
            format!("Databricks {what} answered an unexpected shape: {e}"),
        )
    })
}

/// Checks a table name for `COPY INTO`: one to three parts, each a plain identifier
/// (`[A-Za-z0-9_]+`) or a backquoted one without backquotes inside. Returns it as given.
pub fn check_table_name(table: &str) -> Result<String> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`table` ({table}) must be `name`, `schema.name` or `catalog.schema.name`, each part letters, digits and underscores or in backquotes"
            ),
        )
    };
    let mut parts = 0;
    let mut rest = table.trim();
    while !rest.is_empty() {
        parts += 1;
        let (part, tail) = if let Some(quoted) = rest.strip_prefix('`') {
            let end = quoted.find('`').ok_or_else(bad)?;
            let name = &quoted[..end];
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(bad());
            }
            (name, &quoted[end + 1..])
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad());
            }
            (name, &rest[end..])
        };
        let _ = part;
        rest = match tail.strip_prefix('.') {
            Some(t) if !t.is_empty() => t,
            Some(_) => return Err(bad()),
            None if tail.is_empty() => "",
            None => return Err(bad()),
        };
    }
    if parts == 0 || parts > 3 {
        return Err(bad());
    }
    Ok(table.trim().to_string())
}

fn check_option(key: &str, value: &str) -> Result<()> {
    let ok =
        |s: &str| !s.is_empty() && !s.chars().any(|c| c == '\'' || c == '\\' || c.is_control());
    if ok(key) && (value.is_empty() || ok(value)) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "option `{key}` = `{value}` may not hold quotes, backslashes or control characters"
            ),
        ))
    }
}

fn options_sql(options: &BTreeMap<String, String>) -> Result<String> {
    let mut parts = Vec::with_capacity(options.len());
    for (k, v) in options {
        check_option(k, v)?;
        parts.push(format!("'{k}' = '{v}'"));
    }
    Ok(parts.join(", "))
}

/// `COPY INTO <table> FROM '<path>' FILEFORMAT = JSON|CSV FORMAT_OPTIONS (..) COPY_OPTIONS (..)`.
fn copy_into_sql(request: &LoadRequest, table: &str, path: &str) -> Result<String> {
    let mut format_options = BTreeMap::new();
    let mut copy_options = BTreeMap::new();
    if request.format == StageFormat::Csv {
        format_options.insert("header".to_string(), "true".to_string());
        format_options.insert("inferSchema".to_string(), "true".to_string());
    }
    if request.merge_schema {
        format_options.insert("mergeSchema".to_string(), "true".to_string());
        copy_options.insert("mergeSchema".to_string(), "true".to_string());
    }
    format_options.extend(request.format_options.clone());
    copy_options.extend(request.copy_options.clone());
    let mut sql = format!(
        "COPY INTO {table} FROM '{path}' FILEFORMAT = {}",
        request.format.fileformat()
    );
    if !format_options.is_empty() {
        sql.push_str(&format!(
            " FORMAT_OPTIONS ({})",
            options_sql(&format_options)?
        ));
    }
    if !copy_options.is_empty() {
        sql.push_str(&format!(" COPY_OPTIONS ({})", options_sql(&copy_options)?));
    }
    Ok(sql)
}

/// The `:name` markers of a statement, outside quotes and comments (`::` casts skipped).
pub fn named_markers(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            q @ ('\'' | '"' | '`') => {
                i += 1;
                while i < chars.len() && chars[i] != q {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            ':' if chars.get(i + 1) == Some(&':') => i += 2,
            ':' if chars
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') =>
            {
                let start = i + 1;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The outcome of a finished run: `Ok` for result SUCCESS (or SUCCESS_WITH_FAILURES),
/// an error with the state message otherwise — `timeout` for TIMEDOUT, `cancelled` for
/// CANCELED, `remote` for FAILED and INTERNAL_ERROR, `invalid state` for SKIPPED.
pub fn run_outcome(run: Run) -> Result<Run> {
    let life = run.state.life_cycle_state.clone().unwrap_or_default();
    let result = run.state.result_state.clone().unwrap_or_default();
    if life == "TERMINATED" && matches!(result.as_str(), "SUCCESS" | "SUCCESS_WITH_FAILURES") {
        return Ok(run);
    }
    let (kind, temporary) = match (life.as_str(), result.as_str()) {
        ("SKIPPED", _) => (ErrorKind::InvalidState, false),
        ("INTERNAL_ERROR", _) => (ErrorKind::Remote, true),
        (_, "TIMEDOUT") => (ErrorKind::Timeout, false),
        (_, "CANCELED" | "CANCELLED") => (ErrorKind::Cancelled, false),
        _ => (ErrorKind::Remote, false),
    };
    let state = if result.is_empty() { life } else { result };
    let message = run
        .state
        .state_message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "(no state message)".into());
    let mut e = Error::new(
        kind,
        format!("Databricks job run {} ended {state}: {message}", run.run_id),
    )
    .with_context("run_id", run.run_id);
    if let Some(url) = &run.run_page_url {
        e = e.with_context("run_page_url", url);
    }
    Err(if temporary {
        e.set_temporary()
    } else {
        e.set_permanent()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_skip_quotes_comments_and_casts() {
        let sql = "SELECT ':no', x::INT, `:no` FROM t -- :no\n WHERE a = :min AND b < :max_2 /* :no */ OR c = :min";
        assert_eq!(
            named_markers(sql),
            vec!["min".to_string(), "max_2".to_string()]
        );
    }

    #[test]
    fn table_names_are_one_to_three_safe_parts() {
        for ok in ["sales", "main.default.sales", "`my table`.x", "a_1.b"] {
            assert!(check_table_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b.c.d", "x; DROP TABLE y", "a..b", "a.", "`a", "t'x"] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn column_types_follow_type_name_or_type_text() {
        let info = |name: Option<&str>, text: &str| ColumnInfo {
            name: "c".into(),
            type_name: name.map(String::from),
            type_text: Some(text.into()),
            type_precision: None,
            type_scale: None,
        };
        assert_eq!(
            column_type(&info(Some("LONG"), "BIGINT")),
            ColumnType::Integer
        );
        assert_eq!(column_type(&info(None, "SMALLINT")), ColumnType::Integer);
        assert_eq!(
            column_type(&info(Some("DOUBLE"), "DOUBLE")),
            ColumnType::Float
        );
        assert_eq!(
            column_type(&info(Some("DECIMAL"), "DECIMAL(12,3)")),
            ColumnType::Decimal {
                precision: 12,
                scale: 3
            }
        );
        assert_eq!(
            column_type(&info(Some("TIMESTAMP_NTZ"), "TIMESTAMP_NTZ")),
            ColumnType::Timestamp
        );
        assert_eq!(
            column_type(&info(Some("ARRAY"), "ARRAY<INT>")),
            ColumnType::Text
        );
    }

    #[test]
    fn copy_into_quotes_options_and_refuses_quotes_in_them() {
        let request = LoadRequest {
            table: "sales".into(),
            records: Records::empty(std::sync::Arc::new(
                kernelize_core::arrow_schema::Schema::empty(),
            )),
            format: StageFormat::Csv,
            staging_path: "/Volumes/main/default/staging".into(),
            warehouse_id: "w".into(),
            catalog: None,
            schema: None,
            merge_schema: true,
            format_options: BTreeMap::new(),
            copy_options: BTreeMap::from([("force".to_string(), "true".to_string())]),
            keep_staged_file: false,
        };
        let sql = copy_into_sql(&request, "sales", "/Volumes/main/default/staging/f.csv")
            .unwrap_or_default();
        assert_eq!(
            sql,
            "COPY INTO sales FROM '/Volumes/main/default/staging/f.csv' FILEFORMAT = CSV FORMAT_OPTIONS ('header' = 'true', 'inferSchema' = 'true', 'mergeSchema' = 'true') COPY_OPTIONS ('force' = 'true', 'mergeSchema' = 'true')"
        );
        let mut bad = request;
        bad.copy_options.insert("x".into(), "a'b".into());
        assert!(copy_into_sql(&bad, "sales", "/p").is_err());
    }
}
