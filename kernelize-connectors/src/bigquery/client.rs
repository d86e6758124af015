//! [`BigQueryClient`]: BigQuery REST v2 calls — jobs.query with getQueryResults polling and
//! paging, tabledata.insertAll in batches, tables.get and tables.patch, dry runs — and the
//! mapping of BigQuery's answers (rows, types, errors) to Kernelize's.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::http::{HttpClient, Method, Request, Response, Verdict, default_verdict, excerpt};
use crate::saas::{
    Column, ColumnType, Poll, PollSettings, poll_until, records_from_rows, send_checked, uuid_v4,
};

/// How long to wait after a `quotaExceeded` answer before trying again, as Google's quota
/// guide advises (ten minutes or more).
pub const QUOTA_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The most bytes of rows one insertAll request carries (BigQuery refuses requests over
/// 10 MB); a batch is cut earlier when its rows reach this size.
pub const MAX_INSERT_BYTES: usize = 9 * 1024 * 1024;

/// The largest `batch_size` of an insert (BigQuery's own limit is 50,000 rows a request;
/// it advises 500).
pub const MAX_BATCH_ROWS: usize = 50_000;

/// The retry classification of BigQuery's answers: a 403 whose reason is
/// `rateLimitExceeded` is retried with backoff (BigQuery sends no `Retry-After`);
/// `quotaExceeded` is not (it lasts minutes to a day); 429, 5xx (`backendError`) and 408
/// as by default.
pub fn classify(response: &Response) -> Verdict {
    if response.status.as_u16() == 403 {
        return match error_of(response).and_then(|e| e.reason().map(str::to_string)) {
            Some(reason) if reason == "rateLimitExceeded" => Verdict::Retry {
                after: response.retry_after(),
            },
            _ => Verdict::Done,
        };
    }
    default_verdict(response)
}

/// One entry of a BigQuery error answer's `errors` (an `ErrorProto`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ErrorProto {
    /// A short code: `invalidQuery`, `notFound`, `rateLimitExceeded`, `invalid`, `stopped`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Where the error is: a field name, or `query`.
    #[serde(default)]
    pub location: Option<String>,
    /// What went wrong.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorProto>,
    #[serde(default)]
    status: Option<String>,
}

impl ErrorBody {
    fn reason(&self) -> Option<&str> {
        self.errors.iter().find_map(|e| e.reason.as_deref())
    }
}

fn error_of(response: &Response) -> Option<ErrorBody> {
    serde_json::from_slice::<ErrorEnvelope>(&response.body)
        .ok()
        .map(|e| e.error)
}

/// The error for a non-2xx BigQuery answer: its kind from the status and the `reason`,
/// its message BigQuery's own, with the status and the reason (and the location, when
/// given) as context.
pub fn api_error(response: &Response, request: &str) -> Error {
    let code = response.status.as_u16();
    let body = error_of(response);
    let reason = body
        .as_ref()
        .and_then(|b| b.reason().map(str::to_string))
        .or_else(|| body.as_ref().and_then(|b| b.status.clone()))
        .unwrap_or_else(|| response.status.canonical_reason().unwrap_or("error").into());
    let location = body
        .as_ref()
        .and_then(|b| b.errors.iter().find_map(|e| e.location.clone()));
    let message = body
        .as_ref()
        .and_then(|b| b.message.clone())
        .unwrap_or_else(|| excerpt(&response.body));
    let (kind, lead) = match (code, reason.as_str()) {
        (403, "quotaExceeded") => (ErrorKind::RateLimited, "BigQuery quota exceeded"),
        (403, "rateLimitExceeded") | (429, _) => {
            (ErrorKind::RateLimited, "BigQuery rate limit exceeded")
        }
        (400, _) => (ErrorKind::InvalidInput, "BigQuery refused the request"),
        (401, _) => (
            ErrorKind::PermissionDenied,
            "BigQuery refused the credentials",
        ),
        (403, _) => (ErrorKind::PermissionDenied, "BigQuery denied access"),
        (404, _) => (ErrorKind::NotFound, "BigQuery found no such resource"),
        (409, _) => (ErrorKind::InvalidState, "BigQuery reports a conflict"),
        (412, _) => (
            ErrorKind::InvalidState,
            "the table changed since it was read (its etag no longer matches)",
        ),
        _ => (ErrorKind::Remote, "BigQuery failed"),
    };
    let mut text = format!("{lead}: {request} answered {code} {reason}: {message}");
    if let Some(location) = &location {
        text.push_str(&format!(" (at {location})"));
    }
    let mut error = Error::new(kind, text)
        .with_status(code)
        .with_context("reason", &reason);
    if let Some(location) = location {
        error = error.with_context("location", location);
    }
    if reason == "quotaExceeded" {
        error = error.with_retry_after(QUOTA_RETRY_AFTER).set_temporary();
    } else if let Some(after) = response.retry_after() {
        error = error.with_retry_after(after);
    }
    if code == 408
        || code == 429
        || response.status.is_server_error()
        || reason == "rateLimitExceeded"
    {
        error.set_temporary()
    } else if reason == "quotaExceeded" {
        error
    } else {
        error.set_permanent()
    }
}

/// A table's name: project, dataset and table ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableRef {
    /// The project.
    pub project_id: String,
    /// The dataset.
    pub dataset_id: String,
    /// The table.
    pub table_id: String,
}

impl TableRef {
    fn path(&self) -> Result<String> {
        Ok(format!(
            "projects/{}/datasets/{}/tables/{}",
            segment("project", &self.project_id)?,
            segment("dataset", &self.dataset_id)?,
            segment("table", &self.table_id)?
        ))
    }
}

/// An id as one URL path segment; ids with `/`, `?` or `#` (never valid in BigQuery) are
/// refused rather than escaped into another path.
fn segment<'a>(what: &str, id: &'a str) -> Result<&'a str> {
    if id.is_empty() || id.contains(['/', '?', '#', '%']) || id.chars().any(char::is_whitespace) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{id}` is not a valid BigQuery {what} id"),
        ));
    }
    Ok(id)
}

/// A column of a table or a result (`TableFieldSchema`). Attributes this type does not
/// name (`policyTags`, `maxLength`, `defaultValueExpression` ...) are kept in `extra`, so a
/// schema read and written back loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableFieldSchema {
    /// The column name.
    pub name: String,
    /// The type: `STRING`, `INTEGER` (`INT64`), `FLOAT`, `NUMERIC`, `BIGNUMERIC`,
    /// `BOOLEAN`, `TIMESTAMP`, `DATE`, `TIME`, `DATETIME`, `GEOGRAPHY`, `JSON`, `BYTES`,
    /// `RECORD` (`STRUCT`).
    #[serde(rename = "type")]
    pub field_type: String,
    /// `NULLABLE` (the default), `REQUIRED` or `REPEATED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The columns of a `RECORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<TableFieldSchema>>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Further attributes, as BigQuery gave them.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TableFieldSchema {
    /// A column `name` of `field_type`, nullable.
    pub fn new(name: &str, field_type: &str) -> Self {
        Self {
            name: name.into(),
            field_type: field_type.into(),
            mode: None,
            fields: None,
            description: None,
            extra: Map::new(),
        }
    }

    fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or("NULLABLE")
    }

    fn is_repeated(&self) -> bool {
        self.mode().eq_ignore_ascii_case("REPEATED")
    }

    fn is_record(&self) -> bool {
        matches!(
            self.field_type.to_ascii_uppercase().as_str(),
            "RECORD" | "STRUCT"
        )
    }

    /// The records column type of this BigQuery type (see the module docs for the table).
    pub fn column_type(&self) -> ColumnType {
        if self.is_repeated() {
            return ColumnType::Text;
        }
        match self.field_type.to_ascii_uppercase().as_str() {
            "INTEGER" | "INT64" => ColumnType::Integer,
            "FLOAT" | "FLOAT64" => ColumnType::Float,
            "NUMERIC" => ColumnType::Decimal {
                precision: 38,
                scale: 9,
            },
            "BOOLEAN" | "BOOL" => ColumnType::Boolean,
            "DATE" => ColumnType::Date,
            "TIMESTAMP" => ColumnType::Timestamp,
            _ => ColumnType::Text,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct SchemaBody {
    #[serde(default)]
    fields: Vec<TableFieldSchema>,
}

/// A job's name, as BigQuery gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    /// The project the job ran in.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The job id.
    #[serde(default)]
    pub job_id: Option<String>,
    /// Where it ran.
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Cell {
    #[serde(default)]
    v: Value,
}

#[derive(Debug, Deserialize)]
struct Row {
    #[serde(default)]
    f: Vec<Cell>,
}

/// The body of a jobs.query or getQueryResults answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResponse {
    #[serde(default)]
    schema: Option<SchemaBody>,
    #[serde(default)]
    job_reference: Option<JobReference>,
    #[serde(default)]
    total_rows: Option<String>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    rows: Vec<Row>,
    #[serde(default)]
    job_complete: Option<bool>,
    #[serde(default)]
    cache_hit: Option<bool>,
    #[serde(default)]
    num_dml_affected_rows: Option<String>,
    #[serde(default)]
    total_bytes_processed: Option<String>,
}

/// A named query parameter (`@name` in the SQL), sent with `parameterMode: NAMED`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParameter {
    /// The name, without `@`.
    pub name: String,
    /// Its type: a scalar type (`INT64`, `TIMESTAMP`) or an `ARRAY<...>` of one.
    pub param_type: ParamType,
    /// Its value: a scalar (sent as text), an array for `ARRAY` types, or null.
    pub value: Value,
}

/// A query parameter's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    /// A scalar type: `INT64`, `FLOAT64`, `NUMERIC`, `BIGNUMERIC`, `BOOL`, `STRING`, `BYTES`,
    /// `DATE`, `DATETIME`, `TIME`, `TIMESTAMP`, `JSON`, `GEOGRAPHY`, `INTERVAL`.
    Scalar(String),
    /// An array of a scalar type.
    Array(String),
}

const SCALAR_TYPES: &[&str] = &[
    "INT64",
    "FLOAT64",
    "NUMERIC",
    "BIGNUMERIC",
    "BOOL",
    "STRING",
    "BYTES",
    "DATE",
    "DATETIME",
    "TIME",
    "TIMESTAMP",
    "JSON",
    "GEOGRAPHY",
    "INTERVAL",
];

fn scalar_type(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let canonical = match upper.as_str() {
        "INTEGER" => "INT64",
        "FLOAT" => "FLOAT64",
        "BOOLEAN" => "BOOL",
        "DECIMAL" => "NUMERIC",
        "BIGDECIMAL" => "BIGNUMERIC",
        other => other,
    };
    SCALAR_TYPES
        .contains(&canonical)
        .then(|| canonical.to_string())
}

impl ParamType {
    /// Reads `INT64`, `integer`, `ARRAY<STRING>`; anything else is an error naming the
    /// parameter.
    pub fn parse(param: &str, text: &str) -> Result<Self> {
        let upper = text.trim().to_ascii_uppercase();
        let parsed = match upper
            .strip_prefix("ARRAY<")
            .and_then(|rest| rest.strip_suffix('>'))
        {
            Some(inner) => scalar_type(inner).map(ParamType::Array),
            None => scalar_type(&upper).map(ParamType::Scalar),
        };
        parsed.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "parameter `{param}`: `{text}` is not a BigQuery parameter type (one of {}, or ARRAY<type>)",
                    SCALAR_TYPES.join(", ")
                ),
            )
        })
    }

    /// The type a plain JSON value gets: `INT64` for integers, `FLOAT64` for other numbers,
    /// `BOOL`, `STRING`, and `ARRAY<...>` of the first element's (`STRING` when empty).
    /// Null and objects have no type of their own.
    pub fn infer(param: &str, value: &Value) -> Result<Self> {
        fn scalar(v: &Value) -> Option<&'static str> {
            match v {
                Value::Bool(_) => Some("BOOL"),
                Value::Number(n) if n.is_i64() || n.is_u64() => Some("INT64"),
                Value::Number(_) => Some("FLOAT64"),
                Value::String(_) => Some("STRING"),
                _ => None,
            }
        }
        match value {
            Value::Array(items) => {
                let inner = match items.iter().find(|v| !v.is_null()) {
                    None => Some("STRING"),
                    Some(first) => scalar(first),
                };
                inner.map(|t| ParamType::Array(t.into()))
            }
            other => scalar(other).map(|t| ParamType::Scalar(t.into())),
        }
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "parameter `{param}`: cannot tell the BigQuery type of {}; write it as {{\"type\": \"...\", \"value\": ...}}",
                    kernelize_core::payload::json_type_name(value)
                ),
            )
        })
    }
}

fn scalar_text(param: &str, value: &Value) -> Result<Value> {
    Ok(match value {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(s.clone()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "parameter `{param}`: a {} is not a scalar value",
                    kernelize_core::payload::json_type_name(other)
                ),
            ));
        }
    })
}

impl QueryParameter {
    /// A parameter whose type is inferred from `value` ([`ParamType::infer`]).
    pub fn infer(name: &str, value: Value) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            param_type: ParamType::infer(name, &value)?,
            value,
        })
    }

    /// The `QueryParameter` JSON: `{name, parameterType{type[, arrayType]},
    /// parameterValue{value | arrayValues}}`, values as text.
    pub fn to_json(&self) -> Result<Value> {
        let name = &self.name;
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`{name}` is not a valid query parameter name (letters, digits, `_`)"),
            ));
        }
        let (parameter_type, parameter_value) = match &self.param_type {
            ParamType::Scalar(t) => (
                json!({"type": t}),
                json!({"value": scalar_text(name, &self.value)?}),
            ),
            ParamType::Array(t) => {
                let items = match &self.value {
                    Value::Array(items) => items
                        .iter()
                        .map(|v| Ok(json!({"value": scalar_text(name, v)?})))
                        .collect::<Result<Vec<_>>>()?,
                    Value::Null => Vec::new(),
                    other => {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!(
                                "parameter `{name}` is an ARRAY<{t}> but its value is a {}",
                                kernelize_core::payload::json_type_name(other)
                            ),
                        ));
                    }
                };
                (
                    json!({"type": "ARRAY", "arrayType": {"type": t}}),
                    json!({"arrayValues": items}),
                )
            }
        };
        Ok(json!({
            "name": name,
            "parameterType": parameter_type,
            "parameterValue": parameter_value,
        }))
    }
}

/// A dataset named as the default for unqualified table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRef {
    /// The project (the client's when `None`).
    pub project_id: Option<String>,
    /// The dataset.
    pub dataset_id: String,
}

impl DatasetRef {
    /// Reads `dataset` or `project.dataset`.
    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split('.').collect();
        let bad = || {
            Error::new(
                ErrorKind::InvalidInput,
                format!("`{text}` is not a dataset (`dataset` or `project.dataset`)"),
            )
        };
        match parts.as_slice() {
            [d] if !d.is_empty() => Ok(Self {
                project_id: None,
                dataset_id: (*d).into(),
            }),
            [p, d] if !p.is_empty() && !d.is_empty() => Ok(Self {
                project_id: Some((*p).into()),
                dataset_id: (*d).into(),
            }),
            _ => Err(bad()),
        }
    }
}

/// One query, as jobs.query takes it. GoogleSQL only: `useLegacySql` is always `false`.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    /// The SQL.
    pub query: String,
    /// Named parameters.
    pub params: Vec<QueryParameter>,
    /// Rows per result page (`maxResults`); BigQuery's default (up to 10 MB a page) when
    /// absent.
    pub max_results: Option<u32>,
    /// How long BigQuery holds each request waiting for the job (`timeoutMs`, default
    /// 10,000) before answering `jobComplete: false`.
    pub timeout_ms: Option<u32>,
    /// The dataset of unqualified table names.
    pub default_dataset: Option<DatasetRef>,
    /// Where to run; the client's location when absent.
    pub location: Option<String>,
    /// Job labels.
    pub labels: BTreeMap<String, String>,
    /// Fail the query rather than bill more than this many bytes.
    pub maximum_bytes_billed: Option<u64>,
    /// Whether cached results may answer (BigQuery's default: yes).
    pub use_query_cache: Option<bool>,
    /// The project to run in; the client's when absent.
    pub project_id: Option<String>,
}

/// The answer of a query: its columns, rows and what BigQuery said about it.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The result's columns, as BigQuery typed them.
    pub schema: Vec<TableFieldSchema>,
    /// The rows, cells converted for [`records_from_rows`] (see [`QueryResult::records`]).
    pub rows: Vec<Vec<Value>>,
    /// The job, when BigQuery made one.
    pub job: Option<JobReference>,
    /// Rows changed by a DML statement (`numDmlAffectedRows`).
    pub num_dml_affected_rows: Option<i64>,
    /// Whether the answer came from the cache.
    pub cache_hit: bool,
    /// Pages read.
    pub pages: usize,
    /// Polls made while the job was not complete.
    pub polls: usize,
}

impl QueryResult {
    /// The result as records: one column per schema field, typed as
    /// [`TableFieldSchema::column_type`] says; a DML statement's answer is one row with
    /// `num_dml_affected_rows`.
    pub fn records(&self) -> Result<Records> {
        if self.schema.is_empty()
            && let Some(n) = self.num_dml_affected_rows
        {
            let columns = [Column::new("num_dml_affected_rows", ColumnType::Integer)];
            return records_from_rows(&columns, &[vec![Value::from(n)]]);
        }
        let columns: Vec<Column> = self
            .schema
            .iter()
            .map(|f| Column::new(&f.name, f.column_type()))
            .collect();
        records_from_rows(&columns, &self.rows)
    }
}

/// What a dry run says a query would cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DryRun {
    /// Bytes the query would scan (`totalBytesProcessed`).
    pub total_bytes_processed: u64,
    /// The on-demand cost of that many bytes at the configured price per TiB, in USD
    /// (before any free tier or minimum per table).
    pub estimated_cost: f64,
    /// The currency of `estimated_cost` (`USD`).
    pub currency: String,
    /// Whether the answer would come from the cache (then nothing is billed).
    pub cache_hit: bool,
    /// The result's columns.
    pub schema: Vec<TableFieldSchema>,
}

/// One row to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertRow {
    /// BigQuery's de-duplication id (`insertId`): a row sent twice with the same id within
    /// about a minute is stored once. `None` sends none (the request is then not retried).
    pub insert_id: Option<String>,
    /// The row, column name to value.
    pub json: Map<String, Value>,
}

/// How to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertOptions {
    /// Rows per request (1 to 50,000).
    pub batch_size: usize,
    /// Insert the valid rows of a request that has invalid ones (`skipInvalidRows`);
    /// otherwise the whole request is refused when one row is invalid.
    pub skip_invalid_rows: bool,
    /// Drop values of unknown columns instead of refusing the row (`ignoreUnknownValues`).
    pub ignore_unknown_values: bool,
    /// Insert into `{table}{suffix}`, created from the table's schema (`templateSuffix`).
    pub template_suffix: Option<String>,
}

impl Default for InsertOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            skip_invalid_rows: false,
            ignore_unknown_values: false,
            template_suffix: None,
        }
    }
}

/// A row BigQuery refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RowError {
    /// The row's index in the call's input (0-based).
    pub index: usize,
    /// BigQuery's reason: `invalid` for the bad row, `stopped` for a good row not inserted
    /// because another row of its request was bad.
    pub reason: String,
    /// The column at fault, when BigQuery names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InsertReport {
    /// Rows stored.
    pub inserted: usize,
    /// Rows not stored (invalid, or stopped by an invalid row of the same request).
    pub failed: usize,
    /// Requests sent.
    pub batches: usize,
    /// Each refused row's first error, by input index.
    pub row_errors: Vec<RowError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InsertAllResponse {
    #[serde(default)]
    insert_errors: Vec<InsertError>,
}

#[derive(Debug, Deserialize)]
struct InsertError {
    index: usize,
    #[serde(default)]
    errors: Vec<ErrorProto>,
}

/// A table as tables.get gives it: its schema, etag and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableInfo {
    /// The table.
    pub table: TableRef,
    /// Its columns.
    pub fields: Vec<TableFieldSchema>,
    /// Its version tag: a change made since this was read fails with `invalid state`.
    pub etag: Option<String>,
    /// Rows in managed storage (streamed rows not yet counted).
    pub num_rows: Option<u64>,
    /// `TABLE`, `VIEW`, `EXTERNAL`, `MATERIALIZED_VIEW`, `SNAPSHOT`.
    pub table_type: Option<String>,
}

/// The BigQuery REST v2 API for one project, over an [`HttpClient`] that authenticates
/// and retries (see the module docs).
#[derive(Debug, Clone)]
pub struct BigQueryClient {
    http: HttpClient,
    project_id: String,
    location: Option<String>,
    poll: PollSettings,
    max_rows: usize,
    max_pages: usize,
    price_per_tib: f64,
}

impl BigQueryClient {
    /// A client for `project_id` over `http` (whose base URL is the API root and whose
    /// layers authenticate; see [`classify`] for its retry classifier).
    pub fn new(http: HttpClient, project_id: &str) -> Self {
        Self {
            http,
            project_id: project_id.into(),
            location: None,
            poll: PollSettings::default(),
            max_rows: super::config::DEFAULT_MAX_ROWS,
            max_pages: super::config::DEFAULT_MAX_PAGES,
            price_per_tib: super::config::DEFAULT_PRICE_PER_TIB,
        }
    }

    /// Runs jobs in `location` unless a request names one.
    pub fn with_location(mut self, location: Option<String>) -> Self {
        self.location = location;
        self
    }

    /// Polls unfinished queries as `poll` says.
    pub fn with_poll(mut self, poll: PollSettings) -> Self {
        self.poll = poll;
        self
    }

    /// Caps the rows and pages of one query's result.
    pub fn with_limits(mut self, max_rows: usize, max_pages: usize) -> Self {
        self.max_rows = max_rows.max(1);
        self.max_pages = max_pages.max(1);
        self
    }

    /// Prices dry runs at `usd` per TiB.
    pub fn with_price_per_tib(mut self, usd: f64) -> Self {
        self.price_per_tib = usd;
        self
    }

    /// The default project.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sends `request`; a non-2xx answer becomes [`api_error`].
    async fn call(&self, request: Request) -> Result<Response> {
        let describe = request.describe();
        send_checked(&self.http, request, &describe, api_error).await
    }

    /// The jobs.query POST of `request` (a dry run or not) in its project, replayable: its
    /// `requestId` (or, for a dry run, having no effect) makes a repeat harmless.
    fn jobs_query(&self, request: &QueryRequest, dry_run: bool) -> Result<Request> {
        let project = request.project_id.as_deref().unwrap_or(&self.project_id);
        let body = self.query_body(request, dry_run)?;
        Ok(self
            .http
            .request(
                Method::POST,
                &format!("projects/{}/queries", segment("project", project)?),
            )?
            .path_template("projects/{project}/queries")
            .json(&body)?
            .replayable())
    }

    fn query_body(&self, request: &QueryRequest, dry_run: bool) -> Result<Value> {
        if request.query.trim().is_empty() {
            return Err(Error::new(ErrorKind::InvalidInput, "the query is empty"));
        }
        let mut body = json!({
            "query": request.query,
            "useLegacySql": false,
            "requestId": uuid_v4(),
        });
        let map = body
            .as_object_mut()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "the query body is not an object"))?;
        if dry_run {
            map.insert("dryRun".into(), Value::Bool(true));
        }
        if let Some(n) = request.max_results {
            map.insert("maxResults".into(), n.into());
        }
        if let Some(ms) = request.timeout_ms {
            map.insert("timeoutMs".into(), ms.into());
        }
        if let Some(dataset) = &request.default_dataset {
            map.insert(
                "defaultDataset".into(),
                json!({
                    "projectId": dataset.project_id.as_deref().unwrap_or(&self.project_id),
                    "datasetId": dataset.dataset_id,
                }),
            );
        }
        if let Some(location) = request.location.as_ref().or(self.location.as_ref()) {
            map.insert("location".into(), location.clone().into());
        }
        if !request.params.is_empty() {
            map.insert("parameterMode".into(), "NAMED".into());
            let params = request
                .params
                .iter()
                .map(QueryParameter::to_json)
                .collect::<Result<Vec<_>>>()?;
            map.insert("queryParameters".into(), Value::Array(params));
        }
        if !request.labels.is_empty() {
            map.insert("labels".into(), serde_json::to_value(&request.labels)?);
        }
        if let Some(bytes) = request.maximum_bytes_billed {
            // int64 fields travel as JSON strings in Google's APIs.
            map.insert("maximumBytesBilled".into(), bytes.to_string().into());
        }
        if let Some(cache) = request.use_query_cache {
            map.insert("useQueryCache".into(), cache.into());
        }
        Ok(body)
    }

    /// Runs a query (jobs.query), polls getQueryResults while `jobComplete` is false
    /// (bounded by the poll settings and the call's deadline), then reads every page by
    /// `pageToken`. More rows than `max_rows`, or pages than `max_pages`, is an
    /// `invalid input` error that says to add a `LIMIT`; never a silent cut.
    pub async fn query(&self, ctx: &ActionContext, request: &QueryRequest) -> Result<QueryResult> {
        // requestId makes jobs.query idempotent: BigQuery answers a repeat with the same
        // job, so a retry after a 403 rateLimitExceeded or a 5xx runs the query once.
        let post = self.jobs_query(request, false)?;
        let first: QueryResponse = self.call(post).await?.json()?;
        let mut polls = 0usize;
        let location = first
            .job_reference
            .as_ref()
            .and_then(|j| j.location.clone())
            .or_else(|| request.location.clone())
            .or_else(|| self.location.clone());
        let job = first.job_reference.clone();
        let project = request.project_id.as_deref().unwrap_or(&self.project_id);
        let job_path = |job: &Option<JobReference>| -> Result<String> {
            let job_id = job.as_ref().and_then(|j| j.job_id.as_deref()).ok_or_else(|| {
                Error::new(
                    ErrorKind::Remote,
                    "BigQuery answered without a jobReference, so the rest of the result cannot be read",
                )
            })?;
            let job_project = job
                .as_ref()
                .and_then(|j| j.project_id.as_deref())
                .unwrap_or(project);
            Ok(format!(
                "projects/{}/queries/{}",
                segment("project", job_project)?,
                segment("job", job_id)?
            ))
        };
        let results = |page_token: Option<&str>| -> Result<Request> {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(location) = &location {
                query.push(("location", location.clone()));
            }
            if let Some(token) = page_token {
                query.push(("pageToken", token.to_string()));
            }
            if let Some(n) = request.max_results {
                query.push(("maxResults", n.to_string()));
            }
            query.push((
                "timeoutMs",
                request.timeout_ms.unwrap_or(10_000).to_string(),
            ));
            self.http
                .request(Method::GET, &job_path(&job)?)?
                .path_template("projects/{project}/queries/{job}")
                .query(&query)
        };
        let mut page = if first.job_complete == Some(false) {
            let what = format!(
                "BigQuery job {}",
                job.as_ref()
                    .and_then(|j| j.job_id.as_deref())
                    .unwrap_or("?")
            );
            poll_until(ctx, &self.poll, &what, || {
                polls += 1;
                let request = results(None);
                async move {
                    let answer: QueryResponse = self.call(request?).await?.json()?;
                    Ok(if answer.job_complete == Some(false) {
                        Poll::Pending("jobComplete: false".into())
                    } else {
                        Poll::Ready(answer)
                    })
                }
            })
            .await?
        } else {
            first
        };
        let schema = page.schema.take().map(|s| s.fields).unwrap_or_default();
        if let Some(total) = page
            .total_rows
            .as_deref()
            .and_then(|t| t.parse::<u64>().ok())
            && total > self.max_rows as u64
        {
            return Err(too_many_rows(self.max_rows, total));
        }
        let num_dml_affected_rows = page
            .num_dml_affected_rows
            .as_deref()
            .and_then(|n| n.parse().ok());
        let cache_hit = page.cache_hit.unwrap_or(false);
        let mut rows = Vec::new();
        let mut pages = 1usize;
        append_rows(
            &schema,
            std::mem::take(&mut page.rows),
            &mut rows,
            self.max_rows,
        )?;
        let mut seen_tokens = HashSet::new();
        while let Some(token) = page.page_token.take() {
            if !seen_tokens.insert(token.clone()) {
                return Err(Error::new(
                    ErrorKind::Remote,
                    "BigQuery gave the same pageToken twice; stopping rather than looping",
                ));
            }
            if pages >= self.max_pages {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the result has more than {} pages (`max_pages`); add a LIMIT, raise `max_results` or `max_pages`",
                        self.max_pages
                    ),
                ));
            }
            ctx.check_alive()?;
            page = self.call(results(Some(&token))?).await?.json()?;
            pages += 1;
            append_rows(
                &schema,
                std::mem::take(&mut page.rows),
                &mut rows,
                self.max_rows,
            )?;
        }
        Ok(QueryResult {
            schema,
            rows,
            job,
            num_dml_affected_rows,
            cache_hit,
            pages,
            polls,
        })
    }

    /// Validates a query and estimates its cost without running it (jobs.query with
    /// `dryRun: true`).
    pub async fn dry_run(&self, request: &QueryRequest) -> Result<DryRun> {
        // A dry run changes nothing; it is safe to send again.
        let post = self.jobs_query(request, true)?;
        let answer: QueryResponse = self.call(post).await?.json()?;
        let bytes = answer
            .total_bytes_processed
            .as_deref()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Remote,
                    "BigQuery's dry run answer has no totalBytesProcessed",
                )
            })?
            .parse::<u64>()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Remote,
                    format!("BigQuery's totalBytesProcessed is not a number: {e}"),
                )
            })?;
        const TIB: f64 = 1024.0 * 1024.0 * 1024.0 * 1024.0;
        Ok(DryRun {
            total_bytes_processed: bytes,
            estimated_cost: bytes as f64 / TIB * self.price_per_tib,
            currency: "USD".into(),
            cache_hit: answer.cache_hit.unwrap_or(false),
            schema: answer.schema.map(|s| s.fields).unwrap_or_default(),
        })
    }

    /// Streams `rows` into `table` (tabledata.insertAll), `options.batch_size` rows (and at
    /// most [`MAX_INSERT_BYTES`]) a request. Rows BigQuery refuses are reported by input
    /// index; they do not fail the call (the caller decides). A request whose rows all have
    /// an insert id is retried after a rate limit or a 5xx: BigQuery drops the repeats.
    pub async fn insert_all(
        &self,
        table: &TableRef,
        rows: &[InsertRow],
        options: &InsertOptions,
    ) -> Result<InsertReport> {
        if options.batch_size == 0 || options.batch_size > MAX_BATCH_ROWS {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`batch_size` must be 1 to {MAX_BATCH_ROWS}"),
            ));
        }
        let path = format!("{}/insertAll", table.path()?);
        let mut report = InsertReport {
            inserted: 0,
            failed: 0,
            batches: 0,
            row_errors: Vec::new(),
        };
        let mut start = 0usize;
        while start < rows.len() {
            // Cut the batch at batch_size rows or MAX_INSERT_BYTES, whichever comes first.
            let mut end = start;
            let mut bytes = 0usize;
            let mut encoded = Vec::new();
            while end < rows.len() && end - start < options.batch_size {
                let row = &rows[end];
                let mut item = json!({"json": row.json});
                if let Some(id) = &row.insert_id {
                    item["insertId"] = Value::String(id.clone());
                }
                let size = serde_json::to_vec(&item)?.len();
                if end > start && bytes + size > MAX_INSERT_BYTES {
                    break;
                }
                bytes += size;
                encoded.push(item);
                end += 1;
            }
            let mut body = json!({
                "kind": "bigquery#tableDataInsertAllRequest",
                "skipInvalidRows": options.skip_invalid_rows,
                "ignoreUnknownValues": options.ignore_unknown_values,
                "rows": encoded,
            });
            if let Some(suffix) = &options.template_suffix {
                body["templateSuffix"] = Value::String(suffix.clone());
            }
            let mut request = self
                .http
                .request(Method::POST, &path)?
                .path_template("projects/{project}/datasets/{dataset}/tables/{table}/insertAll")
                .json(&body)?;
            if rows[start..end].iter().all(|r| r.insert_id.is_some()) {
                request = request.replayable();
            }
            let answer: InsertAllResponse = self.call(request).await?.json()?;
            report.batches += 1;
            let mut refused = HashSet::new();
            for error in answer.insert_errors {
                let Some(index) = start.checked_add(error.index).filter(|i| *i < end) else {
                    return Err(Error::new(
                        ErrorKind::Remote,
                        format!(
                            "BigQuery reported an error for row {} of a batch of {}",
                            error.index,
                            end - start
                        ),
                    ));
                };
                if !refused.insert(index) {
                    continue;
                }
                let first = error.errors.into_iter().next().unwrap_or_default();
                report.row_errors.push(RowError {
                    index,
                    reason: first.reason.unwrap_or_else(|| "invalid".into()),
                    location: first.location.filter(|l| !l.is_empty()),
                    message: first.message.unwrap_or_default(),
                });
            }
            report.failed += refused.len();
            report.inserted += (end - start) - refused.len();
            start = end;
        }
        report.row_errors.sort_by_key(|e| e.index);
        Ok(report)
    }

    /// Reads a table's schema, etag and size (tables.get).
    pub async fn get_table(&self, table: &TableRef) -> Result<TableInfo> {
        let request = self
            .http
            .request(Method::GET, &table.path()?)?
            .path_template("projects/{project}/datasets/{dataset}/tables/{table}");
        let answer: Value = self.call(request).await?.json()?;
        table_info(table, &answer)
    }

    /// Adds nullable (or repeated) columns to a table: reads it, then patches its schema
    /// with every existing column unchanged and the new ones after them, sending the etag
    /// read in `If-Match`, so that a schema changed meanwhile fails with `invalid state`
    /// instead of being overwritten. `REQUIRED` columns are refused (BigQuery cannot add
    /// them to a table with rows). A column that already exists with the same type is left
    /// alone, so running the same evolution twice is harmless; with another type it is an
    /// error. Returns the table after the change and the names added.
    pub async fn add_columns(
        &self,
        table: &TableRef,
        columns: &[TableFieldSchema],
    ) -> Result<(TableInfo, Vec<String>)> {
        for column in columns {
            check_new_column(column)?;
        }
        let request = self
            .http
            .request(Method::GET, &table.path()?)?
            .path_template("projects/{project}/datasets/{dataset}/tables/{table}");
        let current: Value = self.call(request).await?.json()?;
        let info = table_info(table, &current)?;
        let mut fields: Vec<Value> = current
            .pointer("/schema/fields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut added = Vec::new();
        for column in columns {
            match info
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&column.name))
            {
                Some(existing) => {
                    let same = canonical_type(&existing.field_type)
                        == canonical_type(&column.field_type)
                        && existing.mode().eq_ignore_ascii_case(column.mode());
                    if !same {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!(
                                "column `{}` already exists as {} {}, not {} {}",
                                existing.name,
                                existing.mode(),
                                existing.field_type,
                                column.mode(),
                                column.field_type
                            ),
                        ));
                    }
                }
                None => {
                    fields.push(serde_json::to_value(column)?);
                    added.push(column.name.clone());
                }
            }
        }
        if added.is_empty() {
            return Ok((info, added));
        }
        let etag = info.etag.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                "BigQuery gave the table without an etag, so it cannot be changed safely",
            )
        })?;
        // Not replayable: after a lost answer the etag has moved on and a replay would fail
        // with 412 although the change was made. A 403 rate limit is therefore not retried
        // here; the error says so.
        let request = self
            .http
            .request(Method::PATCH, &table.path()?)?
            .path_template("projects/{project}/datasets/{dataset}/tables/{table}")
            .header("if-match", &etag)?
            .json(&json!({"schema": {"fields": fields}, "etag": etag}))?;
        let answer: Value = self.call(request).await?.json()?;
        Ok((table_info(table, &answer)?, added))
    }
}

/// A column type's standard SQL name (`INTEGER` and `INT64` are the same type).
fn canonical_type(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.as_str() {
        "STRUCT" => "RECORD".into(),
        other => scalar_type(other).unwrap_or(upper),
    }
}

fn check_new_column(column: &TableFieldSchema) -> Result<()> {
    if column.name.is_empty()
        || !column
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        || !column
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`{}` is not a column name BigQuery accepts (letters, digits, `_`, not starting with a digit)",
                column.name
            ),
        ));
    }
    let mode = column.mode().to_ascii_uppercase();
    match mode.as_str() {
        "NULLABLE" | "REPEATED" => {}
        "REQUIRED" => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "column `{}` is REQUIRED: a new column must be NULLABLE or REPEATED (existing rows have no value for it)",
                    column.name
                ),
            ));
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "column `{}`: mode `{other}` is not NULLABLE, REQUIRED or REPEATED",
                    column.name
                ),
            ));
        }
    }
    if column.is_record() {
        for field in column.fields.iter().flatten() {
            check_new_column(field)?;
        }
        if column.fields.as_ref().is_none_or(Vec::is_empty) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("column `{}` is a RECORD without fields", column.name),
            ));
        }
    } else if ParamType::parse(&column.name, &column.field_type).is_err() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "column `{}`: `{}` is not a BigQuery column type",
                column.name, column.field_type
            ),
        ));
    }
    Ok(())
}

fn table_info(table: &TableRef, answer: &Value) -> Result<TableInfo> {
    let fields = match answer.pointer("/schema/fields") {
        Some(fields) => serde_json::from_value(fields.clone()).map_err(|e| {
            Error::new(
                ErrorKind::Remote,
                format!("BigQuery's table schema is not the expected shape: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    Ok(TableInfo {
        table: table.clone(),
        fields,
        etag: answer
            .get("etag")
            .and_then(Value::as_str)
            .map(str::to_string),
        num_rows: answer
            .get("numRows")
            .and_then(|n| n.as_str().and_then(|s| s.parse().ok()).or(n.as_u64())),
        table_type: answer
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn too_many_rows(max: usize, total: u64) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "the result has {total} rows, more than the {max} of `max_rows`; add a LIMIT or raise `max_rows`"
        ),
    )
}

/// Converts a page's rows for [`records_from_rows`] and appends them.
fn append_rows(
    schema: &[TableFieldSchema],
    page: Vec<Row>,
    rows: &mut Vec<Vec<Value>>,
    max_rows: usize,
) -> Result<()> {
    if rows.len().saturating_add(page.len()) > max_rows {
        return Err(too_many_rows(max_rows, (rows.len() + page.len()) as u64));
    }
    for (r, row) in page.into_iter().enumerate() {
        if row.f.len() != schema.len() {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!(
                    "row {} has {} cells, the schema {} columns",
                    rows.len() + r,
                    row.f.len(),
                    schema.len()
                ),
            ));
        }
        let cells = row
            .f
            .into_iter()
            .zip(schema)
            .map(|(cell, field)| {
                record_cell(field, cell.v).map_err(|e| {
                    e.with_context("row", rows.len() + r)
                        .with_context("column", &field.name)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        rows.push(cells);
    }
    Ok(())
}

/// One cell as the records column of its field wants it: timestamps as microseconds,
/// RECORD and REPEATED cells as JSON text, everything else as BigQuery sent it.
fn record_cell(field: &TableFieldSchema, v: Value) -> Result<Value> {
    if v.is_null() {
        return Ok(v);
    }
    if field.is_repeated() || field.is_record() {
        return Ok(Value::String(plain_value(field, &v)?.to_string()));
    }
    if field.field_type.eq_ignore_ascii_case("TIMESTAMP") {
        return timestamp_micros(&field.name, &v).map(Value::from);
    }
    Ok(v)
}

fn timestamp_micros(column: &str, v: &Value) -> Result<i64> {
    v.as_str().and_then(seconds_to_micros).ok_or_else(|| {
        Error::new(
            ErrorKind::CorruptData,
            format!("column `{column}`: {v} is not a BigQuery timestamp (seconds since the epoch)"),
        )
    })
}

/// A cell as plain JSON (for RECORD and REPEATED cells shown as JSON text): records as
/// objects, arrays as arrays, integers, floats and booleans as JSON numbers and booleans,
/// timestamps as RFC 3339 text, the rest as text.
fn plain_value(field: &TableFieldSchema, v: &Value) -> Result<Value> {
    if field.is_repeated() {
        let items = v.as_array().ok_or_else(|| shape_error(field, "an array"))?;
        return items
            .iter()
            .map(|item| plain_single(field, item.get("v").unwrap_or(&Value::Null)))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array);
    }
    plain_single(field, v)
}

fn plain_single(field: &TableFieldSchema, v: &Value) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if field.is_record() {
        let cells = v
            .get("f")
            .and_then(Value::as_array)
            .ok_or_else(|| shape_error(field, "a record"))?;
        let subfields = field.fields.as_deref().unwrap_or_default();
        let mut object = Map::new();
        for (sub, cell) in subfields.iter().zip(cells) {
            object.insert(
                sub.name.clone(),
                plain_value(sub, cell.get("v").unwrap_or(&Value::Null))?,
            );
        }
        return Ok(Value::Object(object));
    }
    let text = v.as_str().unwrap_or_default();
    Ok(match field.field_type.to_ascii_uppercase().as_str() {
        "INTEGER" | "INT64" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.clone()),
        "FLOAT" | "FLOAT64" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| v.clone()),
        "BOOLEAN" | "BOOL" => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => v.clone(),
        },
        "TIMESTAMP" => {
            let micros = timestamp_micros(&field.name, v)?;
            chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
                .unwrap_or_else(|| v.clone())
        }
        _ => v.clone(),
    })
}

fn shape_error(field: &TableFieldSchema, wanted: &str) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!("column `{}`: the cell is not {wanted}", field.name),
    )
}

/// BigQuery's timestamp cells, seconds since the epoch as decimal text (`1714636800`,
/// `1.7146368E9`, `1714636800.123456`), as whole microseconds (rounded half away from
/// zero). Exact: the digits are never a float.
fn seconds_to_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return None;
    }
    let value: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    // value × 10^(exponent + 6 − fraction digits) microseconds.
    let shift = exponent
        .checked_add(6)?
        .checked_sub(i32::try_from(fraction.len()).ok()?)?;
    let micros = if shift >= 0 {
        value.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-shift).ok()?)?;
        (value + divisor / 2) / divisor
    };
    let micros = i64::try_from(micros).ok()?;
    Some(if negative { -micros } else { micros })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_seconds_become_exact_microseconds() {
        assert_eq!(
            seconds_to_micros("1.7146368E9"),
            Some(1_714_636_800_000_000)
        );
        assert_eq!(seconds_to_micros("1714636800"), Some(1_714_636_800_000_000));
        assert_eq!(
            seconds_to_micros("1714636800.123456"),
            Some(1_714_636_800_123_456)
        );
        assert_eq!(
            seconds_to_micros("1.714636800123456E9"),
            Some(1_714_636_800_123_456)
        );
        assert_eq!(seconds_to_micros("-1.5"), Some(-1_500_000));
        assert_eq!(seconds_to_micros("0.0000005"), Some(1));
        assert_eq!(seconds_to_micros("abc"), None);
        assert_eq!(seconds_to_micros("1e999999"), None);
        assert_eq!(seconds_to_micros(""), None);
    }

    #[test]
    fn parameters_are_typed_and_sent_as_text() {
        let p = QueryParameter::infer("n", json!(5)).unwrap();
        assert_eq!(
            p.to_json().unwrap(),
            json!({"name": "n", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "5"}})
        );
        let p = QueryParameter::infer("tags", json!(["a", "b"])).unwrap();
        assert_eq!(
            p.to_json().unwrap()["parameterType"],
            json!({"type": "ARRAY", "arrayType": {"type": "STRING"}})
        );
        assert_eq!(
            ParamType::parse("x", "array<integer>").unwrap(),
            ParamType::Array("INT64".into())
        );
        assert!(ParamType::parse("x", "VARCHAR").is_err());
        assert!(QueryParameter::infer("x", json!(null)).is_err());
        assert!(
            QueryParameter::infer("1x", json!(1))
                .unwrap()
                .to_json()
                .is_err()
        );
    }

    #[test]
    fn record_and_repeated_cells_become_json_text() {
        let mut record = TableFieldSchema::new("meta", "RECORD");
        record.fields = Some(vec![
            TableFieldSchema::new("source", "STRING"),
            TableFieldSchema::new("rank", "INTEGER"),
        ]);
        let cell = json!({"f": [{"v": "web"}, {"v": "3"}]});
        assert_eq!(
            record_cell(&record, cell).unwrap(),
            json!(r#"{"source":"web","rank":3}"#)
        );
        let mut tags = TableFieldSchema::new("tags", "STRING");
        tags.mode = Some("REPEATED".into());
        assert_eq!(
            record_cell(&tags, json!([{"v": "a"}, {"v": "b"}])).unwrap(),
            json!(r#"["a","b"]"#)
        );
        assert!(record_cell(&tags, json!("not an array")).is_err());
    }
}
