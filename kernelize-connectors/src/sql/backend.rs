//! The traits a database implements to get the shared SQL actions: a pool that runs
//! statements ([`SqlBackend`]), the transaction a load writes in ([`LoadTransaction`]), and
//! where a running statement's rows go ([`RowConsumer`], implemented by the shared code).

use async_trait::async_trait;
use kernelize_core::arrow_array::RecordBatch;
use kernelize_core::{ActionContext, Error, ErrorKind, Result};

use super::bind::BoundQuery;
use super::dialect::Dialect;
use super::load::{LoadPlan, TableName};
use super::result_set::ColumnInfo;
use super::value::SqlValue;

/// What one statement produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementOutcome {
    /// The statement has result columns (a `SELECT`, a `... RETURNING`): its rows went to
    /// the [`RowConsumer`].
    Rows,
    /// The statement has no result columns (`INSERT`, `UPDATE`, DDL): how many rows it
    /// changed.
    Changed(u64),
}

/// How to run a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Refuse, before running it, a statement without result columns (`extract` reads; it
    /// must never run a `DELETE` by mistake).
    pub rows_only: bool,
}

/// The error of `extract` given a statement without result columns: refused before it
/// runs, so an extract never changes data. Every backend returns this one.
pub fn not_a_read() -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "the statement returns no rows; `extract` reads (use `execute` or `query` to change data)",
    )
}

/// Where the rows of a running statement go, one at a time as the database sends them.
///
/// The shared code implements it (rows to bounded Arrow batches, batches to a `Records` or
/// to a stream); a backend calls [`RowConsumer::start`] once, before the statement runs,
/// then [`RowConsumer::row`] per row, and stops at the first error either returns.
#[async_trait]
pub trait RowConsumer: Send {
    /// The statement's result columns (never empty), before it runs. An error stops the
    /// statement before it runs.
    fn start(&mut self, columns: Vec<ColumnInfo>) -> Result<()>;

    /// One decoded row. An error (a bound passed, the reader gone) stops the statement.
    async fn row(&mut self, row: Vec<SqlValue>) -> Result<()>;
}

/// A database connection pool, as the shared actions use it.
///
/// Implementations decode every value into a [`SqlValue`] and describe every column with a
/// [`ColumnInfo`]; the shared code does the rest (types, bounds, watermarks, Arrow).
#[async_trait]
pub trait SqlBackend: Send + Sync {
    /// The database's dialect.
    fn dialect(&self) -> &'static Dialect;

    /// The result columns of a bound statement (none for a statement without), from
    /// preparing it; it does not run.
    async fn describe(&self, ctx: &ActionContext, query: &BoundQuery) -> Result<Vec<ColumnInfo>>;

    /// Runs one bound statement.
    ///
    /// A statement with result columns calls `rows.start` with them, then streams its rows,
    /// decoded, into `rows.row` (never holding more than the driver's own buffer of them),
    /// and gives [`StatementOutcome::Rows`]; one without gives
    /// [`StatementOutcome::Changed`], unless `rows_only` refuses it before it runs
    /// ([`not_a_read`]). Implementations check `ctx.check_alive()` between rows.
    async fn run(
        &self,
        ctx: &ActionContext,
        query: &BoundQuery,
        options: RunOptions,
        rows: &mut dyn RowConsumer,
    ) -> Result<StatementOutcome>;

    /// Runs one bound statement for its effect (DDL, DML) and returns the rows it changed,
    /// as the database counts them; any rows it returns are read and dropped.
    async fn execute(&self, ctx: &ActionContext, query: &BoundQuery) -> Result<u64>;

    /// Starts the write transaction of a load.
    async fn begin_load(&self) -> Result<Box<dyn LoadTransaction>>;

    /// Whether loads may use `method: copy` (PostgreSQL's `COPY ... FROM STDIN`).
    fn supports_copy(&self) -> bool {
        false
    }
}

/// The transaction a load runs in.
///
/// Dropping it without [`LoadTransaction::commit`] rolls it back: an error anywhere in a
/// load leaves the table's rows as they were.
#[async_trait]
pub trait LoadTransaction: Send {
    /// The column names of `table`, or `None` when it does not exist.
    async fn table_columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>>;

    /// Runs one statement with these values in its slots; returns the rows it changed.
    async fn execute(&mut self, sql: &str, values: Vec<SqlValue>) -> Result<u64>;

    /// Runs DDL (`CREATE TABLE`, `ALTER TABLE`): in the transaction where the database's
    /// DDL is transactional (the default); where it is not
    /// ([`Dialect::transactional_ddl`]), at once and for good, before any row is written.
    async fn execute_ddl(&mut self, sql: &str) -> Result<()> {
        self.execute(sql, Vec::new()).await.map(|_| ())
    }

    /// Writes `batches` with the database's bulk path (PostgreSQL's `COPY`), following
    /// `plan` (its table, columns and mode); returns the rows written. `first_row` is the
    /// 1-based number of the batches' first row in the load, for messages. The default
    /// refuses: only databases whose [`SqlBackend::supports_copy`] says so implement it.
    async fn copy_rows(
        &mut self,
        ctx: &ActionContext,
        plan: &LoadPlan,
        batches: &[RecordBatch],
        first_row: usize,
    ) -> Result<u64> {
        let _ = (ctx, batches, first_row);
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} has no bulk COPY; load with `method: insert`",
                plan.dialect().name
            ),
        ))
    }

    /// Commits.
    async fn commit(self: Box<Self>) -> Result<()>;
}
