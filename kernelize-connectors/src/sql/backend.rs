//! The two traits a database implements to get the shared SQL actions.

use async_trait::async_trait;
use kernelize_core::{ActionContext, Error, ErrorKind, Result};

use super::bind::BoundQuery;
use super::dialect::Dialect;
use super::load::TableName;
use super::result_set::ResultSet;
use super::value::SqlValue;

/// What one statement produced.
#[derive(Debug, Clone)]
pub enum StatementOutcome {
    /// The statement has result columns (a `SELECT`, a `... RETURNING`): its rows.
    Rows(ResultSet),
    /// The statement has no result columns (`INSERT`, `UPDATE`, DDL): how many rows it
    /// changed.
    Changed(u64),
}

/// How to run a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// The most rows to hold; one more is an error.
    pub max_rows: usize,
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

/// A database connection pool, as the shared actions use it.
///
/// Implementations decode every value into a [`SqlValue`] and describe every column with a
/// [`super::result_set::ColumnInfo`]; the shared code does the rest (types, bounds,
/// watermarks, Arrow).
#[async_trait]
pub trait SqlBackend: Send + Sync {
    /// The database's dialect.
    fn dialect(&self) -> &'static Dialect;

    /// Runs one bound statement.
    ///
    /// A statement with result columns gives [`StatementOutcome::Rows`], read until the end
    /// or until `max_rows` is passed (an error); one without gives
    /// [`StatementOutcome::Changed`], unless `rows_only` refuses it before it runs.
    /// Implementations check `ctx.check_alive()` between rows.
    async fn run(
        &self,
        ctx: &ActionContext,
        query: &BoundQuery,
        options: RunOptions,
    ) -> Result<StatementOutcome>;

    /// Runs one bound statement for its effect (DDL, DML) and returns the rows it changed,
    /// as the database counts them; any rows it returns are read and dropped.
    async fn execute(&self, ctx: &ActionContext, query: &BoundQuery) -> Result<u64>;

    /// Starts the write transaction of a load.
    async fn begin_load(&self) -> Result<Box<dyn LoadTransaction>>;
}

/// The transaction a load runs in.
///
/// Dropping it without [`LoadTransaction::commit`] rolls it back: an error anywhere in a
/// load leaves the table as it was.
#[async_trait]
pub trait LoadTransaction: Send {
    /// The column names of `table`, or `None` when it does not exist.
    async fn table_columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>>;

    /// Runs one statement with these values in its slots; returns the rows it changed.
    async fn execute(&mut self, sql: &str, values: Vec<SqlValue>) -> Result<u64>;

    /// Commits.
    async fn commit(self: Box<Self>) -> Result<()>;
}
