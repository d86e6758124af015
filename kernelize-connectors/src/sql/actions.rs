//! The actions every SQL connector offers — `query`, `extract`, `load`, `execute` — and their
//! shared implementation over a [`SqlBackend`].
//!
//! A connector plugin lists these [`Action`]s in its router and implements each
//! [`kernelize_core::Handler`] in one line, forwarding to [`query`], [`extract`], [`load`]
//! and [`execute`].

use kernelize_core::{Action, ActionContext, Error, ErrorKind, Payload, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::backend::{RunOptions, SqlBackend, StatementOutcome};
use super::bind::{ParamSources, bind};
use super::load::{LoadMode, LoadPlan, TableName};
use super::placeholders::NamedQuery;

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
    /// A result column: the rows come sorted by it, and its greatest value is reported in
    /// the records' schema metadata (`kernelize.watermark.max`).
    #[serde(default)]
    pub watermark: Option<String>,
    /// The most rows to return; the plugin's `max_rows` when absent, and never more.
    #[serde(default)]
    pub max_rows: Option<usize>,
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
    /// them as nullable columns (`ALTER TABLE .. ADD COLUMN`, in the load's transaction)
    /// instead of failing (default false).
    #[serde(default)]
    pub add_columns: bool,
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

/// The row bound of a call: the config's, but never more than the plugin's.
fn effective_max_rows(config: Option<usize>, plugin: usize) -> usize {
    config.map_or(plugin, |m| m.min(plugin))
}

fn bound_query(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    sql: &str,
    params: &Map<String, Value>,
) -> Result<super::bind::BoundQuery> {
    let dialect = backend.dialect();
    let query = NamedQuery::parse(sql, &dialect.lexical)?;
    bind(
        &query,
        dialect,
        ParamSources {
            params,
            vars: &ctx.vars,
        },
    )
}

/// Runs `query`: records when the statement has result columns, else `{"rows_affected": N}`.
pub async fn query(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: QueryConfig,
    max_rows: usize,
) -> Result<Payload> {
    let bound = bound_query(backend, ctx, &config.sql, &config.params)?;
    let options = RunOptions {
        max_rows: effective_max_rows(config.max_rows, max_rows),
        rows_only: false,
    };
    match backend.run(ctx, &bound, options).await? {
        StatementOutcome::Rows(rows) => Ok(Payload::Records(rows.into_records(None)?)),
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
    let bound = bound_query(backend, ctx, &config.sql, &config.params)?;
    let rows_affected = backend.execute(ctx, &bound).await?;
    Ok(RowsAffected { rows_affected })
}

/// Runs `extract`: the rows as records, sorted by the watermark column when one is named.
pub async fn extract(
    backend: &dyn SqlBackend,
    ctx: &ActionContext,
    config: ExtractConfig,
    max_rows: usize,
) -> Result<Records> {
    let bound = bound_query(backend, ctx, &config.query, &config.params)?;
    let options = RunOptions {
        max_rows: effective_max_rows(config.max_rows, max_rows),
        rows_only: true,
    };
    let rows = match backend.run(ctx, &bound, options).await? {
        StatementOutcome::Rows(rows) => rows,
        StatementOutcome::Changed(_) => {
            return Err(Error::new(
                ErrorKind::Unexpected,
                "the database ran a statement without result columns for `extract`",
            ));
        }
    };
    let records = rows.into_records(config.watermark.as_deref())?;
    if let Some(max) = records
        .schema()
        .metadata()
        .get(super::result_set::WATERMARK_MAX_KEY)
    {
        tracing::debug!(rows = records.num_rows(), watermark_max = %max, "extracted rows");
    }
    Ok(records)
}

/// Runs `load` in one transaction: plan, create the table or check its columns (adding the
/// missing ones with `add_columns`), clear it for `replace`, insert in batches, commit. Any
/// error rolls everything back.
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
                    tx.execute(&plan.add_column_sql(column), Vec::new())
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
            tx.execute(&plan.create_table_sql(), Vec::new())
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
    let per_statement = plan.rows_per_insert();
    let full_insert = plan.insert_sql(per_statement);
    let mut written = 0u64;
    let mut batch_start = 0usize;
    for batch in input.batches() {
        let cells = plan.cells(batch)?;
        let mut start = 0;
        while start < batch.num_rows() {
            ctx.check_alive()?;
            let n = (batch.num_rows() - start).min(per_statement);
            let first = batch_start + start + 1;
            let mut values = Vec::with_capacity(n * cells.len());
            for row in start..start + n {
                for (cell, column) in cells.iter().zip(plan.columns()) {
                    values.push(cell.get(row).map_err(|e| {
                        e.with_context("table", &table)
                            .with_context("column", &column.name)
                            .with_context("row", batch_start + row + 1)
                    })?);
                }
            }
            let partial;
            let sql = if n == per_statement {
                &full_insert
            } else {
                partial = plan.insert_sql(n);
                &partial
            };
            written += tx.execute(sql, values).await.map_err(|e| {
                e.with_context("table", &table)
                    .with_context("rows", format!("{first}-{}", first + n - 1))
            })?;
            start += n;
        }
        batch_start += batch.num_rows();
    }
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
