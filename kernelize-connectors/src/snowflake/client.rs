//! [`SnowflakeClient`]: the SQL API v2 calls — submit, poll, fetch partitions, cancel —
//! typed, and usable from Rust without the plugin.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Records, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::{TOKEN_TYPE_HEADER, auth_plan};
use super::bind::{Binding, positional, uuid_v4};
use super::config::SnowflakeSettings;
use crate::http::{
    Classifier, HttpClient, Layer, Method, Next, Request, Response, Verdict, default_verdict,
};
use crate::saas::{
    Column, ColumnType, Poll, PollSettings, build_client, poll_until, records_from_rows,
};

/// The `User-Agent` every request carries (the SQL API requires one).
pub const USER_AGENT: &str = concat!("kernelize-snowflake-connector/", env!("CARGO_PKG_VERSION"));

/// The path statements are submitted to.
pub const STATEMENTS_PATH: &str = "api/v2/statements";

/// The most partitions one result may have before the client refuses it (a partition is
/// at most ~10 MB or 10,000 rows, so this is far beyond `max_rows`).
pub const MAX_PARTITIONS: usize = 100_000;

/// A statement to submit, with its context and bindings.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    /// The SQL; `?` markers are filled from `bindings` in order.
    pub sql: String,
    /// One binding per `?`.
    pub bindings: Vec<Binding>,
    /// Seconds Snowflake may run it (0 is the maximum, 7 days); the settings'
    /// `statement_timeout` when absent.
    pub timeout: Option<u64>,
    /// The warehouse; the settings' when absent.
    pub warehouse: Option<String>,
    /// The database; the settings' when absent.
    pub database: Option<String>,
    /// The schema; the settings' when absent.
    pub schema: Option<String>,
    /// The role; the settings' when absent.
    pub role: Option<String>,
    /// Session parameters (`timezone`, `query_tag`, ...).
    pub parameters: Map<String, Value>,
    /// How many `;`-separated statements `sql` holds (0: any number); one when absent.
    pub multi_statement_count: Option<u32>,
    /// The `requestId`; a new random UUID when absent.
    pub request_id: Option<String>,
    /// Send `retry=true` on the first submit too (for a `requestId` that an earlier run may
    /// have sent already), so that Snowflake answers the earlier execution instead of
    /// running the statement again.
    pub resubmission: bool,
}

impl Statement {
    /// A statement with no bindings and the settings' context.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            ..Self::default()
        }
    }

    /// With these bindings.
    pub fn bindings(mut self, bindings: Vec<Binding>) -> Self {
        self.bindings = bindings;
        self
    }
}

/// `resultSetMetaData.rowType[]`: one result column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowType {
    /// The column name.
    pub name: String,
    /// Snowflake's type name (`fixed`, `text`, `timestamp_ntz`, ...; any case).
    #[serde(rename = "type")]
    pub kind: String,
    /// Length of text and binary columns.
    #[serde(default)]
    pub length: Option<u64>,
    /// Precision of `fixed` columns.
    #[serde(default)]
    pub precision: Option<u64>,
    /// Scale of `fixed` (digits after the point) and time columns.
    #[serde(default)]
    pub scale: Option<i64>,
    /// Whether the column may hold NULL.
    #[serde(default)]
    pub nullable: Option<bool>,
}

impl RowType {
    /// The column type records carry for this Snowflake type (see the module docs).
    pub fn column_type(&self) -> ColumnType {
        match self.kind.to_ascii_lowercase().as_str() {
            "fixed" | "number" | "decimal" => match self.scale.unwrap_or(0) {
                s if s <= 0 => ColumnType::Integer,
                s => ColumnType::Decimal {
                    precision: self.precision.unwrap_or(38).clamp(1, 38) as u8,
                    scale: s.min(37) as i8,
                },
            },
            "real" | "float" | "double" => ColumnType::Float,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" | "timestamp" => {
                ColumnType::Timestamp
            }
            _ => ColumnType::Text,
        }
    }
}

/// `resultSetMetaData.partitionInfo[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionInfo {
    /// Rows in the partition.
    pub row_count: u64,
    /// Its size uncompressed, in bytes.
    #[serde(default)]
    pub uncompressed_size: Option<u64>,
    /// Its size compressed, when Snowflake gives it.
    #[serde(default)]
    pub compressed_size: Option<u64>,
}

/// `resultSetMetaData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSetMetaData {
    /// Rows in all partitions.
    #[serde(default)]
    pub num_rows: Option<u64>,
    /// `jsonv2`.
    #[serde(default)]
    pub format: Option<String>,
    /// The columns.
    #[serde(default)]
    pub row_type: Vec<RowType>,
    /// The partitions, in order.
    #[serde(default)]
    pub partition_info: Vec<PartitionInfo>,
}

/// `stats` of a DML statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Rows inserted.
    #[serde(default)]
    pub num_rows_inserted: Option<u64>,
    /// Rows updated.
    #[serde(default)]
    pub num_rows_updated: Option<u64>,
    /// Rows deleted.
    #[serde(default)]
    pub num_rows_deleted: Option<u64>,
    /// Duplicate rows updated.
    #[serde(default)]
    pub num_duplicate_rows_updated: Option<u64>,
}

/// A `ResultSet` answer (200): metadata and the first partition, or (a partition fetched
/// by number) its `data` alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSet {
    /// Snowflake's code (`090001`).
    #[serde(default)]
    pub code: Option<String>,
    /// The SQL state.
    #[serde(default)]
    pub sql_state: Option<String>,
    /// The message.
    #[serde(default)]
    pub message: Option<String>,
    /// The statement's handle.
    #[serde(default)]
    pub statement_handle: Option<String>,
    /// The handles of each statement of a multi-statement request.
    #[serde(default)]
    pub statement_handles: Option<Vec<String>>,
    /// When it started, in milliseconds since the epoch.
    #[serde(default)]
    pub created_on: Option<i64>,
    /// The columns and partitions.
    #[serde(default)]
    pub result_set_meta_data: Option<ResultSetMetaData>,
    /// Rows of cells as text (or null).
    #[serde(default)]
    pub data: Option<Vec<Vec<Value>>>,
    /// Rows inserted, updated, deleted.
    #[serde(default)]
    pub stats: Option<Stats>,
}

/// A `QueryStatus` answer (202: still running; 408: timed out), or a
/// `QueryFailureStatus` (422).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryStatus {
    /// Snowflake's code (`333334` while running).
    #[serde(default)]
    pub code: Option<String>,
    /// The SQL state.
    #[serde(default)]
    pub sql_state: Option<String>,
    /// The message.
    #[serde(default)]
    pub message: Option<String>,
    /// The statement's handle.
    #[serde(default)]
    pub statement_handle: Option<String>,
    /// When it started, in milliseconds since the epoch.
    #[serde(default)]
    pub created_on: Option<i64>,
    /// The URL to poll.
    #[serde(default)]
    pub statement_status_url: Option<String>,
}

/// What a submit or a status check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    /// Done: the first partition and the metadata.
    Done(Box<ResultSet>),
    /// Still running (202).
    Running(QueryStatus),
}

/// A whole result: every partition's rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The statement's handle.
    pub statement_handle: String,
    /// The columns.
    pub columns: Vec<RowType>,
    /// Every row, cells as Snowflake sent them (text or null).
    pub rows: Vec<Vec<Value>>,
    /// Rows inserted, updated, deleted, when Snowflake gives them.
    pub stats: Option<Stats>,
    /// For a multi-statement request, each statement's result, in order.
    pub statements: Vec<QueryResult>,
}

impl QueryResult {
    /// The rows as records, with typed columns (see the module docs for the mapping).
    /// A cell that does not fit its column is a `corrupt data` error naming row and column.
    pub fn to_records(&self) -> Result<Records> {
        let columns: Vec<Column> = self
            .columns
            .iter()
            .map(|c| Column::new(&c.name, c.column_type()))
            .collect();
        let kinds: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.kind.to_ascii_lowercase())
            .collect();
        let rows: Vec<Vec<Value>> = self
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(i, cell)| convert_cell(kinds.get(i).map_or("", String::as_str), cell))
                    .collect()
            })
            .collect();
        records_from_rows(&columns, &rows)
    }

    /// Rows inserted, updated and deleted, from `stats` (0 when Snowflake gave none).
    pub fn rows_affected(&self) -> u64 {
        self.stats.as_ref().map_or(0, |s| {
            s.num_rows_inserted.unwrap_or(0)
                + s.num_rows_updated.unwrap_or(0)
                + s.num_rows_deleted.unwrap_or(0)
        })
    }

    /// The rows as JSON objects keyed by column name (cells as text, as Snowflake sent
    /// them).
    pub fn to_json_rows(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| (c.name.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }
}

/// A `jsonv2` cell in the form [`records_from_rows`] reads for its column: timestamps
/// (`seconds.nanoseconds`, with ` offset` for `timestamp_tz`) become microseconds since
/// the epoch, times (`seconds.nanoseconds` since midnight) `HH:MM:SS.nnnnnnnnn`; other
/// cells stay as they are (dates are days since the epoch, which it reads).
fn convert_cell(kind: &str, cell: &Value) -> Value {
    let Value::String(text) = cell else {
        return cell.clone();
    };
    match kind {
        "timestamp_ntz" | "timestamp_ltz" | "timestamp_tz" | "timestamp" => {
            let seconds = text.split(' ').next().unwrap_or(text);
            match epoch_micros(seconds) {
                Some(micros) => Value::from(micros),
                None => cell.clone(),
            }
        }
        "time" => match epoch_micros(text) {
            Some(micros) if micros >= 0 => {
                let nanos_text = text.split_once('.').map_or("", |(_, f)| f);
                let secs = micros / 1_000_000;
                Value::String(format!(
                    "{:02}:{:02}:{:02}{}{}",
                    secs / 3600,
                    (secs / 60) % 60,
                    secs % 60,
                    if nanos_text.is_empty() { "" } else { "." },
                    nanos_text
                ))
            }
            _ => cell.clone(),
        },
        _ => cell.clone(),
    }
}

/// `seconds[.fraction]` (possibly negative) as microseconds, truncating below them.
fn epoch_micros(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let micros_text: String = fraction.chars().chain("000000".chars()).take(6).collect();
    let micros: i64 = micros_text.parse().ok()?;
    let total = seconds.checked_mul(1_000_000)?.checked_add(micros)?;
    Some(if negative { -total } else { total })
}

/// `CancelStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelStatus {
    /// Snowflake's code.
    #[serde(default)]
    pub code: Option<String>,
    /// The SQL state.
    #[serde(default)]
    pub sql_state: Option<String>,
    /// The message (`successfully canceled`).
    #[serde(default)]
    pub message: Option<String>,
    /// The statement's handle.
    #[serde(default)]
    pub statement_handle: Option<String>,
}

/// Marks a resubmitted statement with `retry=true`: the first time a `requestId` goes
/// out it is remembered; when the same `requestId` goes out again (the retry layer
/// resending after a 429, a 503 or a lost connection), `retry=true` tells Snowflake not to
/// run the statement a second time if the first submit did run it. Keeps the last
/// [`ResubmitMarker::REMEMBERED`] ids.
#[derive(Debug, Default)]
pub struct ResubmitMarker {
    seen: Mutex<VecDeque<String>>,
}

impl ResubmitMarker {
    /// How many recent `requestId`s are remembered.
    pub const REMEMBERED: usize = 4096;
}

#[async_trait]
impl Layer for ResubmitMarker {
    fn name(&self) -> &'static str {
        "snowflake-resubmit"
    }

    async fn handle(&self, mut request: Request, next: Next<'_>) -> Result<Response> {
        let is_submit =
            request.method == Method::POST && request.url.path().ends_with(STATEMENTS_PATH);
        let id = is_submit
            .then(|| {
                request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "requestId")
                    .map(|(_, v)| v.into_owned())
            })
            .flatten();
        if let Some(id) = id {
            let again = {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.contains(&id) {
                    true
                } else {
                    if seen.len() >= Self::REMEMBERED {
                        seen.pop_front();
                    }
                    seen.push_back(id);
                    false
                }
            };
            let marked = request.url.query_pairs().any(|(k, _)| k == "retry");
            if again && !marked {
                request.url.query_pairs_mut().append_pair("retry", "true");
            }
        }
        next.run(request).await
    }
}

/// Snowflake's retry classification: the default (429 and 503 after `Retry-After` or the
/// backoff; 500, 502 and 504 after the backoff), except that 408 — the statement ran past
/// its timeout and Snowflake cancelled it — is final.
pub fn classifier() -> Classifier {
    Arc::new(|response: &Response| match response.status.as_u16() {
        408 => Verdict::Done,
        _ => default_verdict(response),
    })
}

/// A client of one Snowflake account's SQL API.
#[derive(Debug, Clone)]
pub struct SnowflakeClient {
    http: HttpClient,
    token_type: Option<&'static str>,
    defaults: StatementDefaults,
    poll: PollSettings,
    max_rows: usize,
}

#[derive(Debug, Clone, Default)]
struct StatementDefaults {
    warehouse: Option<String>,
    database: Option<String>,
    schema: Option<String>,
    role: Option<String>,
    timeout: Option<u64>,
    query_tag: Option<String>,
}

impl SnowflakeClient {
    /// A client for `settings` (checked here); no request is sent yet.
    pub fn new(settings: &SnowflakeSettings) -> Result<Self> {
        settings.validate()?;
        let base = settings.base_url()?;
        let plan = auth_plan(settings)?;
        let layers: Vec<Arc<dyn Layer>> = vec![Arc::new(ResubmitMarker::default()), plan.layer];
        let http = build_client(base.as_str(), &settings.http, Some(classifier()), layers)?;
        Ok(Self {
            http,
            token_type: plan.token_type,
            defaults: StatementDefaults {
                warehouse: settings.warehouse.clone(),
                database: settings.database.clone(),
                schema: settings.schema.clone(),
                role: settings.role.clone(),
                timeout: settings.statement_timeout.map(|d| d.as_secs()),
                query_tag: settings.query_tag.clone(),
            },
            poll: settings.poll.clone(),
            max_rows: settings.max_rows,
        })
    }

    /// The HTTP client underneath.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The most rows a result may have.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    fn request(&self, method: Method, path: &str) -> Result<Request> {
        let mut request = self
            .http
            .request(method, path)?
            .header("accept", "application/json")?
            .header("user-agent", USER_AGENT)?;
        if let Some(kind) = self.token_type {
            request = request.header(TOKEN_TYPE_HEADER, kind)?;
        }
        Ok(request)
    }

    /// The request body of `statement`, with the settings' context filled in.
    pub fn body(&self, statement: &Statement) -> Value {
        let d = &self.defaults;
        let mut body = Map::new();
        body.insert("statement".into(), Value::String(statement.sql.clone()));
        if let Some(t) = statement.timeout.or(d.timeout) {
            body.insert("timeout".into(), Value::from(t));
        }
        for (field, value, default) in [
            ("database", &statement.database, &d.database),
            ("schema", &statement.schema, &d.schema),
            ("warehouse", &statement.warehouse, &d.warehouse),
            ("role", &statement.role, &d.role),
        ] {
            if let Some(v) = value.as_ref().or(default.as_ref()) {
                body.insert(field.into(), Value::String(v.clone()));
            }
        }
        if !statement.bindings.is_empty() {
            body.insert(
                "bindings".into(),
                serde_json::to_value(positional(statement.bindings.clone())).unwrap_or(Value::Null),
            );
        }
        let mut parameters = statement.parameters.clone();
        if let Some(tag) = &d.query_tag {
            parameters
                .entry("query_tag")
                .or_insert_with(|| Value::String(tag.clone()));
        }
        if let Some(n) = statement.multi_statement_count {
            parameters.insert("multi_statement_count".into(), Value::from(n));
        }
        if !parameters.is_empty() {
            body.insert("parameters".into(), Value::Object(parameters));
        }
        Value::Object(body)
    }

    /// Submits `statement` once (`POST /api/v2/statements`); with `asynchronous`, Snowflake
    /// answers 202 at once, else it answers 200 when the statement ends within 45 s.
    /// The request is replayable: the retry layer may resend it with the same `requestId`
    /// (and `retry=true`).
    pub async fn submit(&self, statement: &Statement, asynchronous: bool) -> Result<Execution> {
        let request_id = statement.request_id.clone().unwrap_or_else(uuid_v4);
        let mut query: Vec<(&str, String)> = vec![
            ("requestId", request_id),
            ("async", asynchronous.to_string()),
            ("nullable", "true".into()),
        ];
        if statement.resubmission {
            query.push(("retry", "true".into()));
        }
        let request = self
            .request(Method::POST, STATEMENTS_PATH)?
            .query(&query)?
            .json(&self.body(statement))?
            .replayable()
            .path_template("/api/v2/statements");
        let describe = request.describe();
        let response = self.http.send(request).await?;
        read_execution(response, &describe)
    }

    /// The state of a statement (`GET /api/v2/statements/{handle}`): running, or done with
    /// its first partition.
    pub async fn status(&self, handle: &str) -> Result<Execution> {
        let request = self
            .request(
                Method::GET,
                &format!("{STATEMENTS_PATH}/{}", path_segment(handle)?),
            )?
            .path_template("/api/v2/statements/{handle}");
        let describe = request.describe();
        let response = self.http.send(request).await?;
        read_execution(response, &describe).map_err(|e| e.with_context("statement_handle", handle))
    }

    /// Partition `n` of a finished statement's result (`?partition=n`).
    pub async fn partition(&self, handle: &str, n: usize) -> Result<ResultSet> {
        let request = self
            .request(
                Method::GET,
                &format!("{STATEMENTS_PATH}/{}", path_segment(handle)?),
            )?
            .query(&[("partition", n.to_string())])?
            .path_template("/api/v2/statements/{handle}");
        let describe = request.describe();
        let response = self.http.send(request).await?;
        match read_execution(response, &describe)? {
            Execution::Done(rs) => Ok(*rs),
            Execution::Running(_) => Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "Snowflake answered 202 for partition {n} of statement {handle}, which had finished"
                ),
            )),
        }
    }

    /// Cancels a running statement (`POST /api/v2/statements/{handle}/cancel`).
    pub async fn cancel(&self, handle: &str) -> Result<CancelStatus> {
        let request = self
            .request(
                Method::POST,
                &format!("{STATEMENTS_PATH}/{}/cancel", path_segment(handle)?),
            )?
            .replayable()
            .path_template("/api/v2/statements/{handle}/cancel");
        let describe = request.describe();
        let response = self.http.send(request).await?;
        if response.is_success() {
            return response.json();
        }
        Err(failure(&response, &describe).with_context("statement_handle", handle))
    }

    /// Waits for a statement answered 202 (polling as the settings say, within the call's
    /// deadline and cancellation). When the wait ends early (deadline, cancellation,
    /// `poll.max_wait`), a cancel of the statement is sent to Snowflake (best effort, on a
    /// task of its own) and the error returns.
    pub async fn wait(&self, ctx: &ActionContext, handle: &str) -> Result<ResultSet> {
        let what = format!("Snowflake statement {handle}");
        let outcome = poll_until(ctx, &self.poll, &what, || async {
            Ok(match self.status(handle).await? {
                Execution::Done(rs) => Poll::Ready(rs),
                Execution::Running(status) => {
                    Poll::Pending(status.message.unwrap_or_else(|| "running".to_string()))
                }
            })
        })
        .await;
        match outcome {
            Ok(rs) => Ok(*rs),
            Err(e) if matches!(e.kind(), ErrorKind::Cancelled | ErrorKind::Timeout) => {
                // On a task of its own, so that it is sent even when the caller drops this
                // call at its deadline.
                let client = self.clone();
                let abandoned = handle.to_string();
                tokio::spawn(async move {
                    if let Err(cancel) = client.cancel(&abandoned).await {
                        tracing::debug!(statement = %abandoned, error = %cancel, "cancelling an abandoned statement failed");
                    }
                });
                Err(e.with_context("statement_handle", handle))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `statement` to the end and reads its whole result: submit, poll while 202,
    /// then every partition (at most `max_rows` rows in all, checked before fetching). A
    /// multi-statement request gives each statement's result in
    /// [`QueryResult::statements`].
    pub async fn execute(
        &self,
        ctx: &ActionContext,
        statement: &Statement,
        max_rows: Option<usize>,
    ) -> Result<QueryResult> {
        let max_rows = max_rows.map_or(self.max_rows, |m| m.min(self.max_rows));
        ctx.check_alive()?;
        let first = match self.submit(statement, false).await? {
            Execution::Done(rs) => *rs,
            Execution::Running(status) => {
                let handle = status.statement_handle.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Remote,
                        "Snowflake answered 202 without a statementHandle",
                    )
                })?;
                self.wait(ctx, &handle).await?
            }
        };
        self.collect(ctx, first, max_rows).await
    }

    /// The whole result of a finished statement: its first answer and the other
    /// partitions (and, for a multi-statement request, each statement's result).
    pub async fn collect(
        &self,
        ctx: &ActionContext,
        first: ResultSet,
        max_rows: usize,
    ) -> Result<QueryResult> {
        let handle = first.statement_handle.clone().unwrap_or_default();
        if let Some(handles) = &first.statement_handles {
            let mut statements = Vec::with_capacity(handles.len());
            for h in handles {
                ctx.check_alive()?;
                let rs = match self.status(h).await? {
                    Execution::Done(rs) => *rs,
                    Execution::Running(_) => self.wait(ctx, h).await?,
                };
                statements.push(Box::pin(self.collect(ctx, rs, max_rows)).await?);
            }
            let mut result = single_partition(&first, &handle)?;
            result.statements = statements;
            return Ok(result);
        }
        let meta = first.result_set_meta_data.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                format!("Snowflake's answer for statement {handle} has no resultSetMetaData"),
            )
        })?;
        let total: u64 = match meta.num_rows {
            Some(n) => n,
            None => meta.partition_info.iter().map(|p| p.row_count).sum(),
        };
        if total > max_rows as u64 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the result of statement {handle} has {total} rows, more than the {max_rows} allowed (`max_rows`); narrow the query or raise `max_rows`"
                ),
            )
            .with_context("statement_handle", &handle));
        }
        if meta.partition_info.len() > MAX_PARTITIONS {
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "the result of statement {handle} has {} partitions, more than {MAX_PARTITIONS}",
                    meta.partition_info.len()
                ),
            ));
        }
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(total as usize);
        let width = meta.row_type.len();
        for (n, info) in meta.partition_info.iter().enumerate() {
            ctx.check_alive()?;
            let data = match (n, &first.data) {
                (0, Some(data)) if !data.is_empty() || info.row_count == 0 => data.clone(),
                _ => self.partition(&handle, n).await?.data.unwrap_or_default(),
            };
            if data.len() as u64 != info.row_count {
                return Err(Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "partition {n} of statement {handle} has {} rows; partitionInfo says {}",
                        data.len(),
                        info.row_count
                    ),
                ));
            }
            if let Some(bad) = data.iter().position(|r| r.len() != width) {
                return Err(Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "row {bad} of partition {n} of statement {handle} has {} cells; rowType has {width} columns",
                        data[bad].len()
                    ),
                ));
            }
            if rows.len() + data.len() > max_rows {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the result of statement {handle} has more than the {max_rows} rows allowed (`max_rows`)"
                    ),
                ));
            }
            rows.extend(data);
        }
        if meta.partition_info.is_empty() {
            rows = first.data.clone().unwrap_or_default();
        }
        Ok(QueryResult {
            statement_handle: handle,
            columns: meta.row_type,
            rows,
            stats: first.stats,
            statements: Vec::new(),
        })
    }
}

/// The one-partition answer of a multi-statement request (its summary row).
fn single_partition(first: &ResultSet, handle: &str) -> Result<QueryResult> {
    let meta = first
        .result_set_meta_data
        .clone()
        .unwrap_or(ResultSetMetaData {
            num_rows: None,
            format: None,
            row_type: Vec::new(),
            partition_info: Vec::new(),
        });
    Ok(QueryResult {
        statement_handle: handle.to_string(),
        columns: meta.row_type,
        rows: first.data.clone().unwrap_or_default(),
        stats: first.stats.clone(),
        statements: Vec::new(),
    })
}

/// A statement handle as one path segment: letters, digits and `-` only.
fn path_segment(handle: &str) -> Result<&str> {
    if !handle.is_empty()
        && handle.len() <= 128
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(handle)
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{handle}` is not a Snowflake statement handle"),
        ))
    }
}

fn read_execution(response: Response, describe: &str) -> Result<Execution> {
    match response.status.as_u16() {
        200 => Ok(Execution::Done(Box::new(response.json()?))),
        202 => Ok(Execution::Running(response.json()?)),
        _ => Err(failure(&response, describe)),
    }
}

/// The error for a non-success answer: Snowflake's `code`, `sqlState` and `message` when
/// the body has them.
pub fn failure(response: &Response, describe: &str) -> Error {
    let status = response.status.as_u16();
    let body: Option<QueryStatus> = serde_json::from_slice(&response.body).ok();
    let Some(body) = body.filter(|b| b.message.is_some() || b.code.is_some()) else {
        return match response.clone().error_for_status(describe) {
            Err(e) => e,
            Ok(_) => Error::new(ErrorKind::Remote, format!("{describe} answered {status}")),
        };
    };
    let code = body.code.clone().unwrap_or_default();
    let state = body.sql_state.clone().unwrap_or_default();
    let message = body.message.clone().unwrap_or_default();
    let handle = body.statement_handle.clone();
    let detail = format!(
        "{message} (code {code}{}{})",
        if state.is_empty() { "" } else { ", SQL state " },
        state
    );
    let mut error = match status {
        422 if code == "000604" => Error::new(
            ErrorKind::Cancelled,
            format!("the Snowflake statement was cancelled: {detail}"),
        )
        .set_permanent(),
        422 => Error::new(
            ErrorKind::Remote,
            format!("Snowflake could not run the statement: {detail}"),
        )
        .set_permanent(),
        408 => Error::new(
            ErrorKind::Timeout,
            format!("the statement ran past its timeout and Snowflake cancelled it: {detail}"),
        )
        .set_permanent(),
        401 | 403 => Error::new(
            ErrorKind::PermissionDenied,
            format!("Snowflake refused the request ({status}): {detail}"),
        )
        .set_permanent(),
        429 => Error::new(
            ErrorKind::RateLimited,
            format!("Snowflake's rate limit: {detail}"),
        )
        .set_temporary(),
        s if s >= 500 => Error::new(
            ErrorKind::Remote,
            format!("{describe} answered {status}: {detail}"),
        )
        .set_temporary(),
        _ => Error::new(
            ErrorKind::Remote,
            format!("{describe} answered {status}: {detail}"),
        )
        .set_permanent(),
    }
    .with_status(status);
    if !code.is_empty() {
        error = error.with_context("code", code);
    }
    if !state.is_empty() {
        error = error.with_context("sql_state", state);
    }
    if let Some(h) = handle {
        error = error.with_context("statement_handle", h);
    }
    if let Some(after) = response.retry_after() {
        error = error.with_retry_after(after);
    }
    error
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonv2_cells_become_typed_records() {
        let columns = vec![
            RowType {
                name: "ID".into(),
                kind: "fixed".into(),
                length: None,
                precision: Some(38),
                scale: Some(0),
                nullable: None,
            },
            RowType {
                name: "AMOUNT".into(),
                kind: "FIXED".into(),
                length: None,
                precision: Some(12),
                scale: Some(2),
                nullable: None,
            },
            RowType {
                name: "AT".into(),
                kind: "timestamp_ntz".into(),
                length: None,
                precision: None,
                scale: Some(9),
                nullable: None,
            },
            RowType {
                name: "TZ".into(),
                kind: "timestamp_tz".into(),
                length: None,
                precision: None,
                scale: Some(9),
                nullable: None,
            },
            RowType {
                name: "DAY".into(),
                kind: "date".into(),
                length: None,
                precision: None,
                scale: None,
                nullable: None,
            },
            RowType {
                name: "OK".into(),
                kind: "boolean".into(),
                length: None,
                precision: None,
                scale: None,
                nullable: None,
            },
            RowType {
                name: "R".into(),
                kind: "real".into(),
                length: None,
                precision: None,
                scale: None,
                nullable: None,
            },
            RowType {
                name: "V".into(),
                kind: "variant".into(),
                length: None,
                precision: None,
                scale: None,
                nullable: None,
            },
            RowType {
                name: "T".into(),
                kind: "time".into(),
                length: None,
                precision: None,
                scale: Some(9),
                nullable: None,
            },
        ];
        let result = QueryResult {
            statement_handle: "h".into(),
            columns,
            rows: vec![vec![
                json!("7"),
                json!("12.50"),
                json!("1704441600.500000000"),
                json!("1704441600.000000000 1560"),
                json!("19844"),
                json!("true"),
                json!("1.5"),
                json!("{\"a\":1}"),
                json!("3661.250000000"),
            ]],
            ..QueryResult::default()
        };
        let records = result.to_records().unwrap();
        let types: Vec<String> = records
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        assert_eq!(types[0], "Int64");
        assert_eq!(types[1], "Decimal128(12, 2)");
        assert!(types[2].starts_with("Timestamp(µs"), "{}", types[2]);
        assert_eq!(types[4], "Date32");
        let rows = records.to_json_rows().unwrap();
        assert_eq!(rows[0]["ID"], 7);
        assert_eq!(
            rows[0]["AMOUNT"].to_string().trim_matches('"'),
            "12.50".trim_end_matches('0')
        );
        assert_eq!(rows[0]["AT"], "2024-01-05T08:00:00.500Z");
        assert_eq!(rows[0]["TZ"], "2024-01-05T08:00:00Z");
        assert_eq!(rows[0]["DAY"], "2024-05-01");
        assert_eq!(rows[0]["OK"], true);
        assert_eq!(rows[0]["R"], 1.5);
        assert_eq!(rows[0]["V"], "{\"a\":1}");
        assert_eq!(rows[0]["T"], "01:01:01.250000000");
    }

    #[test]
    fn epoch_seconds_read_as_microseconds() {
        assert_eq!(epoch_micros("1.5"), Some(1_500_000));
        assert_eq!(epoch_micros("-1.000001"), Some(-1_000_001));
        assert_eq!(epoch_micros("12"), Some(12_000_000));
        assert_eq!(epoch_micros("x"), None);
        assert_eq!(epoch_micros(""), None);
    }
}
