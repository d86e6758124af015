//! The actions every SQL connector offers — `query`, `extract`, `load`, `execute` — and their
//! shared implementation over a [`SqlBackend`].
//!
//! A connector plugin lists these [`Action`]s in its router and implements each
//! [`kernelize_core::Handler`] in one line, forwarding to [`query`], [`extract`], [`load`]
//! and [`execute`].
//!
//! [`extract_batches`] runs an extract as a [`RecordBatchStream`] for results larger than
//! memory. [`query`] and [`extract`] stream rows into bounded Arrow batches too, but return
//! them whole, within `max_rows` and `max_bytes`.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use kernelize_core::arrow_array::RecordBatch;
use kernelize_core::arrow_schema::SchemaRef;
use kernelize_core::{Action, ActionContext, Error, ErrorKind, Payload, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::backend::{RowConsumer, RunOptions, SqlBackend, StatementOutcome, not_a_read};
use super::bind::{BoundQuery, ParamSources, bind};
use super::load::{LoadMethod, LoadMode, LoadPlan, TableName};
use super::placeholders::NamedQuery;
use super::result_set::{
    ColumnInfo, DEFAULT_BATCH_ROWS, ReadLimits, RowBatcher, check_watermark, value_bytes,
};
use super::value::SqlValue;

/// Per-call config of `query`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// One SQL statement. `:name` placeholders are bound from `params`, then from the run's
    /// variables (`:last_sync`, `:run_id`, `:workflow`, the workflow's parameters).
    pub sql: String,
    /// Values of placeholders; they win over run variables of the same name.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The most rows to return; the plugin's `max_rows` when absent, and never more.
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// The most bytes of values to return; the plugin's `max_bytes` when absent, and never
    /// more.
    #[serde(default)]
    pub max_bytes: Option<usize>,
    /// Most rows per Arrow record batch of the result (default 10,000).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_rows: Option<usize>,
}

/// Per-call config of `extract`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// A statement that returns rows, such as
    /// `SELECT * FROM sales WHERE julianday(updated_at) > julianday(:last_sync)`.
    pub query: String,
    /// Values of placeholders; they win over run variables of the same name.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// A result column: the rows come sorted by it (the database sorts them, NULLs first),
    /// and its greatest value is reported in the records' schema metadata
    /// (`kernelize.watermark.max`).
    #[serde(default)]
    pub watermark: Option<String>,
    /// The most rows to return; the plugin's `max_rows` when absent, and never more.
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// The most bytes of values to return; the plugin's `max_bytes` when absent, and never
    /// more.
    #[serde(default)]
    pub max_bytes: Option<usize>,
    /// Most rows per Arrow record batch of the result (default 10,000).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub batch_rows: Option<usize>,
}

fn default_true() -> bool {
    true
}

/// Per-call config of `load`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// The table, `name` or `schema.name`.
    pub table: String,
    /// `append` (default), `upsert` or `replace`.
    #[serde(default)]
    pub mode: LoadMode,
    /// The columns that identify a row: needed by `upsert`; when the load creates the
    /// table, they are `NOT NULL` and `UNIQUE`.
    #[serde(default)]
    pub key: Vec<String>,
    /// Create the table from the input's columns when it does not exist (default true).
    #[serde(default = "default_true")]
    pub create: bool,
    /// Schema evolution: when the table exists but lacks some of the input's columns, add
    /// them as nullable columns (`ALTER TABLE .. ADD COLUMN`, in the load's transaction
    /// where the database's DDL is transactional) instead of failing (default false).
    #[serde(default)]
    pub add_columns: bool,
    /// `insert` (default): multi-row `INSERT`s; `copy`: PostgreSQL's `COPY ... FROM STDIN`
    /// (other databases refuse it).
    #[serde(default)]
    pub method: LoadMethod,
}

/// Per-call config of `execute`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteConfig {
    /// One SQL statement (DDL or DML). `:name` placeholders are bound as for `query`.
    pub sql: String,
    /// Values of placeholders; they win over run variables of the same name.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// What `query` returns for a statement without result columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RowsAffected {
    /// Rows the statement inserted, updated or deleted.
    pub rows_affected: u64,
}

/// What `load` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoadSummary {
    /// Rows inserted or updated, as the database counts them (an upsert's `DO NOTHING` on
    /// an existing key writes none).
    pub rows_written: u64,
    /// The table, as given.
    pub table: String,
    /// Whether the load created the table.
    pub created: bool,
}

/// `query`: runs one statement.
#[derive(Debug)]
pub struct Query;

impl Action for Query {
    const NAME: &'static str = "query";
    const DESCRIPTION: &'static str = "Run one SQL statement with :name placeholders bound; records for a statement with result columns, {\"rows_affected\": N} otherwise.";
    type Config = QueryConfig;
    type Input = Payload;
    type Output = Payload;
}

/// `extract`: reads rows incrementally, ordered by a watermark column.
#[derive(Debug)]
pub struct Extract;

impl Action for Extract {
    const NAME: &'static str = "extract";
    const DESCRIPTION: &'static str = "Read rows as records (use :last_sync for incremental reads); with `watermark`, sorted by that column, its maximum in the schema metadata `kernelize.watermark.max`.";
    type Config = ExtractConfig;
    type Input = Payload;
    type Output = Records;
}

/// `load`: writes records into a table in one transaction.
#[derive(Debug)]
pub struct Load;

impl Action for Load {
    const NAME: &'static str = "load";
    const DESCRIPTION: &'static str = "Write the input records into a table (append, upsert by key, or replace) in one transaction, creating the table when missing.";
    type Config = LoadConfig;
    type Input = Records;
    type Output = LoadSummary;
}

/// `execute`: runs one statement for its effect.
#[derive(Debug)]
pub struct Execute;

impl Action for Execute {
    const NAME: &'static str = "execute";
    const DESCRIPTION: &'static str = "Run one SQL statement (DDL or DML) with :name placeholders bound; returns {\"rows_affected\": N}.";
    type Config = ExecuteConfig;
    type Input = Payload;
    type Output = RowsAffected;
}

/// The bounds of a call: the config's, but never more than the plugin's.
fn effective_limits(
    max_rows: Option<usize>,
    max_bytes: Option<usize>,
    plugin: ReadLimits,
) -> ReadLimits {
    ReadLimits {
        max_rows: max_rows.map_or(plugin.max_rows, |m| m.min(plugin.max_rows)),
        max_bytes: max_bytes.map_or(plugin.max_bytes, |m| m.min(plugin.max_bytes)),
    }
}

/// `sql` parsed under the backend's dialect.
fn named_query(backend: &dyn SqlBackend, sql: &str) -> Result<NamedQuery> {
    NamedQuery::parse(sql, &backend.dialect().lexical)
}

fn bound_query(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    query: &NamedQuery,
    params: &Map<String, Value>,
) -> Result<BoundQuery> {
    bind(
        query,
        backend.dialect(),
        ParamSources {
            params,
            vars: &ctx.vars,
        },
    )
}

/// Rows to bounded batches: a [`RowBatcher`] made when the statement's columns are known.
struct Batching {
    /// The columns as the unsorted statement declared them, when the statement that runs
    /// wraps it (a watermark's `ORDER BY`), so that their declarations are the original's.
    declared: Option<Vec<ColumnInfo>>,
    watermark: Option<String>,
    batch_rows: usize,
    limits: ReadLimits,
    batcher: Option<RowBatcher>,
}

impl Batching {
    fn new(
        declared: Option<Vec<ColumnInfo>>,
        watermark: Option<String>,
        batch_rows: Option<usize>,
        limits: ReadLimits,
    ) -> Self {
        Batching {
            declared,
            watermark,
            batch_rows: batch_rows.unwrap_or(DEFAULT_BATCH_ROWS),
            limits,
            batcher: None,
        }
    }

    fn start(&mut self, columns: Vec<ColumnInfo>) -> Result<()> {
        let columns = match self.declared.take() {
            Some(declared) if declared.len() == columns.len() => declared,
            _ => columns,
        };
        self.batcher = Some(RowBatcher::new(
            columns,
            self.watermark.as_deref(),
            self.batch_rows,
            self.limits,
        )?);
        Ok(())
    }

    fn push(&mut self, row: Vec<SqlValue>) -> Result<Option<RecordBatch>> {
        match &mut self.batcher {
            Some(batcher) => batcher.push(row),
            None => Err(Error::new(
                ErrorKind::Unexpected,
                "the database sent a row before its columns",
            )),
        }
    }

    fn finish(self) -> Result<(Option<RecordBatch>, SchemaRef)> {
        match self.batcher {
            Some(batcher) => batcher.finish(),
            None => Err(Error::new(
                ErrorKind::Unexpected,
                "the statement returned rows without columns",
            )),
        }
    }
}

/// Collects a result's batches into one [`Records`].
struct Collect {
    batching: Batching,
    batches: Vec<RecordBatch>,
}

#[async_trait]
impl RowConsumer for Collect {
    fn start(&mut self, columns: Vec<ColumnInfo>) -> Result<()> {
        self.batching.start(columns)
    }

    async fn row(&mut self, row: Vec<SqlValue>) -> Result<()> {
        if let Some(batch) = self.batching.push(row)? {
            self.batches.push(batch);
        }
        Ok(())
    }
}

impl Collect {
    /// The records, every batch with the final schema (its watermark metadata).
    fn into_records(self) -> Result<Records> {
        let (last, schema) = self.batching.finish()?;
        let batches = self
            .batches
            .into_iter()
            .chain(last)
            .map(|b| {
                RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("cannot assemble a record batch: {e}"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Records::new(schema, batches)
    }
}

/// Runs `query`: records when the statement has result columns, else `{"rows_affected": N}`.
pub async fn query(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: QueryConfig,
    limits: ReadLimits,
) -> Result<Payload> {
    let named = named_query(backend, &config.sql)?;
    let bound = bound_query(backend, ctx, &named, &config.params)?;
    let mut collect = Collect {
        batching: Batching::new(
            None,
            None,
            config.batch_rows,
            effective_limits(config.max_rows, config.max_bytes, limits),
        ),
        batches: Vec::new(),
    };
    let options = RunOptions { rows_only: false };
    match backend.run(ctx, &bound, options, &mut collect).await? {
        StatementOutcome::Rows => Ok(Payload::Records(collect.into_records()?)),
        StatementOutcome::Changed(n) => Ok(Payload::Json(serde_json::to_value(RowsAffected {
            rows_affected: n,
        })?)),
    }
}

/// Runs `execute`: the statement's effect, as `{"rows_affected": N}`.
pub async fn execute(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: ExecuteConfig,
) -> Result<RowsAffected> {
    let named = named_query(backend, &config.sql)?;
    let bound = bound_query(backend, ctx, &named, &config.params)?;
    let rows_affected = backend.execute(ctx, &bound).await?;
    Ok(RowsAffected { rows_affected })
}

/// The statement an extract runs, and the columns it declares when that statement wraps the
/// given one: with a watermark, the query is described first (refusing one without result
/// columns, or without the watermark column) and then wrapped in the database's
/// `ORDER BY`.
async fn extract_statement(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: &ExtractConfig,
) -> Result<(BoundQuery, Option<Vec<ColumnInfo>>)> {
    let named = named_query(backend, &config.query)?;
    let bound = bound_query(backend, ctx, &named, &config.params)?;
    let Some(watermark) = &config.watermark else {
        return Ok((bound, None));
    };
    let columns = backend.describe(ctx, &bound).await?;
    if columns.is_empty() {
        return Err(not_a_read());
    }
    check_watermark(&columns, watermark)?;
    let inner = bound_query(backend, ctx, &named.without_terminator(), &config.params)?;
    let sorted = BoundQuery {
        sql: backend.dialect().order_by(&inner.sql, watermark),
        values: inner.values,
    };
    Ok((sorted, Some(columns)))
}

/// Runs `extract`: the rows as records, sorted by the watermark column when one is named.
pub async fn extract(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: ExtractConfig,
    limits: ReadLimits,
) -> Result<Records> {
    let (statement, declared) = extract_statement(backend, ctx, &config).await?;
    let mut collect = Collect {
        batching: Batching::new(
            declared,
            config.watermark.clone(),
            config.batch_rows,
            effective_limits(config.max_rows, config.max_bytes, limits),
        ),
        batches: Vec::new(),
    };
    let options = RunOptions { rows_only: true };
    match backend.run(ctx, &statement, options, &mut collect).await? {
        StatementOutcome::Rows => {}
        StatementOutcome::Changed(_) => {
            return Err(Error::new(
                ErrorKind::Unexpected,
                "the database ran a statement without result columns for `extract`",
            ));
        }
    }
    let records = collect.into_records()?;
    if let Some(max) = records
        .schema()
        .metadata()
        .get(super::result_set::WATERMARK_MAX_KEY)
    {
        tracing::debug!(rows = records.num_rows(), watermark_max = %max, "extracted rows");
    }
    Ok(records)
}

/// An extract's record batches, read as the database sends its rows; see [`extract_batches`].
///
/// Dropping it stops the statement. It implements [`futures::Stream`].
#[derive(Debug)]
pub struct RecordBatchStream {
    batches: mpsc::Receiver<Result<RecordBatch>>,
    reader: tokio::task::JoinHandle<()>,
}

impl futures::Stream for RecordBatchStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.batches.poll_recv(cx)
    }
}

impl Drop for RecordBatchStream {
    fn drop(&mut self) {
        // The reader may be waiting on the database rather than on the channel.
        self.reader.abort();
    }
}

/// Hands each batch to a [`RecordBatchStream`], waiting while the reader has not taken the
/// previous one.
struct Forward {
    batching: Batching,
    batches: mpsc::Sender<Result<RecordBatch>>,
}

impl Forward {
    async fn send(&self, batch: RecordBatch) -> Result<()> {
        self.batches.send(Ok(batch)).await.map_err(|_| {
            Error::new(
                ErrorKind::Cancelled,
                "the reader of the extract's batches is gone",
            )
        })
    }
}

#[async_trait]
impl RowConsumer for Forward {
    fn start(&mut self, columns: Vec<ColumnInfo>) -> Result<()> {
        self.batching.start(columns)
    }

    async fn row(&mut self, row: Vec<SqlValue>) -> Result<()> {
        match self.batching.push(row)? {
            Some(batch) => self.send(batch).await,
            None => Ok(()),
        }
    }
}

/// Runs `extract` batch by batch, for results larger than memory: a stream of Arrow record
/// batches of at most `batch_rows` rows, read as the database sends them.
///
/// At most three batches exist at a time: the one being filled, one waiting in the stream,
/// and the one the caller holds; a slow caller holds up the database read
/// (backpressure). `config.max_rows` and `config.max_bytes` bound the whole stream when given
/// (the plugin's limits, made for results held whole, do not apply). With a watermark, the
/// rows come in its order and each batch's schema metadata holds the greatest value so far
/// (`kernelize.watermark.max`), so the caller can record progress after each batch. A
/// result with no rows gives no batches. An error ends the stream after being yielded;
/// dropping the stream (or cancelling `ctx.cancel`) stops the statement.
pub fn extract_batches<B>(
    backend: B,
    ctx: ActionContext,
    config: ExtractConfig,
) -> RecordBatchStream
where
    B: SqlBackend + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    let reader = tokio::spawn(async move {
        let errors = tx.clone();
        let limits = ReadLimits {
            max_rows: config.max_rows.unwrap_or(usize::MAX),
            max_bytes: config.max_bytes.unwrap_or(usize::MAX),
        };
        let read = async {
            let (statement, declared) = extract_statement(&backend, &ctx, &config).await?;
            let mut forward = Forward {
                batching: Batching::new(
                    declared,
                    config.watermark.clone(),
                    config.batch_rows,
                    limits,
                ),
                batches: tx,
            };
            let options = RunOptions { rows_only: true };
            backend.run(&ctx, &statement, options, &mut forward).await?;
            let (last, _) = forward.batching.finish()?;
            if let Some(batch) = last {
                forward.batches.send(Ok(batch)).await.map_err(|_| {
                    Error::new(
                        ErrorKind::Cancelled,
                        "the reader of the extract's batches is gone",
                    )
                })?;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = read.await {
            // Nobody to tell when the reader is gone.
            let _ = errors.send(Err(e)).await;
        }
    });
    RecordBatchStream {
        batches: rx,
        reader,
    }
}

/// Runs `load` in one transaction: plan, create the table or check its columns (adding the
/// missing ones with `add_columns`), clear it for `replace`, insert in batches (or `COPY`),
/// commit. Any error rolls the rows back; where DDL is not transactional (MySQL), a table
/// or columns the load created stay.
pub async fn load(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: LoadConfig,
    input: Records,
) -> Result<LoadSummary> {
    let dialect = backend.dialect();
    if input.schema().fields().is_empty() && input.num_rows() == 0 {
        // An empty JSON array carries no columns: nothing to create, nothing to write.
        TableName::parse(&config.table, dialect)?;
        return Ok(LoadSummary {
            rows_written: 0,
            table: config.table,
            created: false,
        });
    }
    if config.method == LoadMethod::Copy && !backend.supports_copy() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} has no bulk COPY; load with `method: insert`",
                dialect.name
            ),
        )
        .with_context("table", &config.table));
    }
    let plan = LoadPlan::new(
        dialect,
        &config.table,
        config.mode,
        &config.key,
        input.schema(),
    )?;
    let table = plan.table().clone();
    let mut tx = backend.begin_load().await?;
    let created = match tx.table_columns(&table).await? {
        Some(existing) => {
            if config.add_columns {
                for column in plan.missing_columns(&existing) {
                    tx.execute_ddl(&plan.add_column_sql(column))
                        .await
                        .map_err(|e| {
                            e.with_context("table", &table)
                                .with_context("column", &column.name)
                        })?;
                }
            } else {
                plan.check_existing_columns(&existing)?;
            }
            false
        }
        None if config.create => {
            tx.execute_ddl(&plan.create_table_sql())
                .await
                .map_err(|e| e.with_context("table", &table))?;
            true
        }
        None => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "table `{table}` does not exist; set `create: true` to create it from the input's columns"
                ),
            )
            .with_context("table", &table));
        }
    };
    if plan.mode() == LoadMode::Replace && !created {
        tx.execute(&plan.clear_sql(), Vec::new())
            .await
            .map_err(|e| e.with_context("table", &table))?;
    }
    let written = match config.method {
        LoadMethod::Copy => tx
            .copy_rows(ctx, &plan, input.batches(), 1)
            .await
            .map_err(|e| e.with_context("table", &table))?,
        LoadMethod::Insert => insert_rows(ctx, &plan, tx.as_mut(), &input).await?,
    };
    ctx.check_alive()?;
    tx.commit()
        .await
        .map_err(|e| e.with_context("table", &table))?;
    Ok(LoadSummary {
        rows_written: written,
        table: config.table,
        created,
    })
}

/// Writes every row of `input` with multi-row `INSERT`s, each within the dialect's bound
/// value and statement size limits; returns the rows written.
async fn insert_rows(
    ctx: &ActionContext,
    plan: &LoadPlan,
    tx: &mut dyn super::backend::LoadTransaction,
    input: &Records,
) -> Result<u64> {
    let table = plan.table();
    let per_statement = plan.rows_per_insert();
    let max_bytes = plan.dialect().max_statement_bytes;
    let width = plan.columns().len();
    let full_insert = plan.insert_sql(per_statement);
    let mut written = 0u64;
    let mut batch_start = 0usize;
    for batch in input.batches() {
        let cells = plan.cells(batch)?;
        let read_row = |row: usize| -> Result<(Vec<SqlValue>, usize)> {
            let mut values = Vec::with_capacity(width);
            let mut bytes = 0;
            for (cell, column) in cells.iter().zip(plan.columns()) {
                let value = cell.get(row).map_err(|e| {
                    e.with_context("table", table)
                        .with_context("column", &column.name)
                        .with_context("row", batch_start + row + 1)
                })?;
                bytes += value_bytes(&value);
                values.push(value);
            }
            Ok((values, bytes))
        };
        let rows = batch.num_rows();
        let mut next = 0usize;
        // A row read for a statement it would have made too large goes first in the next.
        let mut carried: Option<(Vec<SqlValue>, usize)> = None;
        while next < rows || carried.is_some() {
            ctx.check_alive()?;
            let first = batch_start + next + 1 - usize::from(carried.is_some());
            let mut values = Vec::with_capacity(per_statement.min(rows - next + 1) * width);
            let mut bytes = 0usize;
            let mut n = 0usize;
            if let Some((row, size)) = carried.take() {
                values.extend(row);
                bytes += size;
                n += 1;
            }
            while n < per_statement && next < rows {
                let (row, size) = read_row(next)?;
                next += 1;
                if n > 0 && bytes.saturating_add(size) > max_bytes {
                    carried = Some((row, size));
                    break;
                }
                values.extend(row);
                bytes += size;
                n += 1;
            }
            let partial;
            let sql = if n == per_statement {
                &full_insert
            } else {
                partial = plan.insert_sql(n);
                &partial
            };
            let affected = tx.execute(sql, values).await.map_err(|e| {
                e.with_context("table", table)
                    .with_context("rows", format!("{first}-{}", first + n - 1))
            })?;
            written += plan.rows_written(n, affected);
        }
        batch_start += rows;
    }
    Ok(written)
}
