//! `sqlite-connector`: a SQLite database file as a source and a target of records.
//!
//! ## Settings ([`SqliteSettings`])
//!
//! | setting             | default  | meaning |
//! |---------------------|----------|---------|
//! | `path`              | —        | the database file, relative to the current directory; `:memory:` for a database that lives as long as the plugin |
//! | `create_if_missing` | `false`  | create the file (and its missing parent directories); otherwise a missing file is a `not found` error at activation |
//! | `read_only`         | `false`  | open read-only: writes fail, `load` is refused, and only a file-read grant is needed |
//! | `busy_timeout`      | `"5s"`   | how long a statement waits for another connection's lock before failing (temporary error) |
//! | `max_connections`   | `4`      | connections in the pool (always 1 for `:memory:`, whose data lives in its one connection) |
//! | `max_rows`          | `1000000`| the most rows `query` and `extract` hold; a call's own `max_rows` may only lower it |
//! | `max_bytes`         | 1 GiB    | the most bytes of values `query` and `extract` hold; a call's own `max_bytes` may only lower it |
//!
//! Unknown settings are refused. `path` must be a file path: SQLite's `file:` URIs, which
//! could reopen the file with other modes than the settings say, are refused.
//!
//! ## Permissions
//!
//! The host must grant `file_read` of the file (or a directory above it), and `file_write`
//! unless `read_only`. Both are checked at activation and again at every call; a missing
//! grant is a `permission denied` error naming it. `:memory:` needs none. SQLite's journal
//! files beside the database (`-journal`, `-wal`) come with the grant of the file.
//!
//! ## Actions
//!
//! The shared SQL actions ([`super::actions`]): `query`, `extract`, `load`, `execute`, with the
//! behaviour described there and in the [`super`] module. SQLite specifics:
//!
//! - placeholders become numbered `?N` slots (a load's `INSERT`s use anonymous `?`, which
//!   SQLite binds in constant time where `?N` costs a scan of all names); SQLite's own markers (`?`, `@x`, `$x`) are
//!   refused; quoted identifiers may be `"x"`, `` `x` `` or `[x]`;
//! - timestamps are stored as RFC 3339 UTC text (`2026-11-27T03:25:00Z`), dates as
//!   `YYYY-MM-DD`, booleans in `BOOLEAN` columns as 0/1 (read back as booleans);
//! - compare RFC 3339 text as instants, not as text (`'...:00Z'` sorts after
//!   `'...:00.5Z'`): `WHERE julianday(updated_at) > julianday(:last_sync)`;
//! - a load runs in `BEGIN IMMEDIATE`, so it takes the write lock up front (waiting up to
//!   `busy_timeout`) instead of failing half-way;
//! - a statement runs to its next row even after the call is cancelled; the connection is
//!   then reset before it serves another call.
//! - a column's declared type is read by SQLite's affinity rules (`BIGINT` is an integer,
//!   `VARCHAR(20)` text, `DOUBLE` real), which types it when its values cannot (no rows, or
//!   only NULLs in the first batch); SQLite lets one column hold values of different types
//!   from row to row, so a later batch whose values do not fit the type the first batch
//!   fixed is an error naming both rows (`CAST` the column in the query);
//! - `method: copy` (PostgreSQL's bulk path) is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Permission, PermissionGuard, PluginFactory, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, Executor, Row, SqlSafeStr, Sqlite, Statement, Transaction,
    TypeInfo, ValueRef,
};

use super::backend::{
    LoadTransaction, RowConsumer, RunOptions, SqlBackend, StatementOutcome, not_a_read,
};
use super::bind::BoundQuery;
use super::connector::{SqlConnector, SqlDatabase};
use super::dialect::{Dialect, ErrorClass, LexicalRules, PlaceholderStyle, StoredAs, UpsertSyntax};
use super::error::database_error;
use super::load::TableName;
use super::result_set::{ColumnInfo, DeclaredType, ReadLimits};
use super::value::{SqlValue, local_timestamp_text, rfc3339};

/// The plugin's id.
pub const ID: &str = "sqlite-connector";

/// The path that names an in-memory database.
pub const MEMORY: &str = ":memory:";

/// SQLite's bound-value limit (`SQLITE_MAX_VARIABLE_NUMBER`, 32766 since SQLite 3.32; the
/// bundled SQLite is newer).
pub const MAX_BIND_VALUES: usize = 32766;

/// How often, in rows, a running query checks whether its call was cancelled.
const ALIVE_CHECK_ROWS: usize = 1024;

/// SQLite's dialect.
pub const DIALECT: Dialect = Dialect {
    name: "SQLite",
    lexical: LexicalRules {
        backtick_identifiers: true,
        bracket_identifiers: true,
        backslash_escapes: false,
        dollar_quoted_strings: false,
        nested_block_comments: false,
        hash_comments: false,
        foreign_markers: &['?', '@', '$'],
    },
    placeholder: PlaceholderStyle::Numbered('?'),
    bulk_placeholder: PlaceholderStyle::Positional,
    identifier_quote: '"',
    max_identifier_len: 255,
    case_insensitive_identifiers: true,
    max_bind_values: MAX_BIND_VALUES,
    column_type,
    key_column_type: column_type,
    create_table_options: "",
    upsert: UpsertSyntax::OnConflict,
    transactional_ddl: true,
    max_statement_bytes: MAX_STATEMENT_BYTES,
    nulls_first: "",
    classify_error,
};

/// Most bytes of values one `INSERT` of a load carries (a bound on its memory, not a
/// limit of SQLite's).
const MAX_STATEMENT_BYTES: usize = 64 << 20;

fn column_type(stored: StoredAs) -> &'static str {
    match stored {
        StoredAs::Boolean => "BOOLEAN",
        StoredAs::Integer => "INTEGER",
        StoredAs::Real => "REAL",
        StoredAs::Blob => "BLOB",
        StoredAs::Text | StoredAs::Timestamp | StoredAs::Date => "TEXT",
    }
}

/// Reads SQLite's extended result codes (the primary code is the low byte).
fn classify_error(code: &str) -> Option<ErrorClass> {
    let primary = code.parse::<i32>().ok()? & 0xff;
    let class = |kind, temporary, hint| {
        Some(ErrorClass {
            kind,
            temporary,
            hint,
        })
    };
    match primary {
        // SQLITE_BUSY, SQLITE_LOCKED
        5 | 6 => class(
            ErrorKind::Timeout,
            true,
            Some("another connection held the lock for longer than `busy_timeout`"),
        ),
        // SQLITE_READONLY
        8 => class(
            ErrorKind::InvalidInput,
            false,
            Some(
                "the database is read-only: opened with `read_only: true`, or its file is not writable",
            ),
        ),
        // SQLITE_INTERRUPT
        9 => class(ErrorKind::Cancelled, false, None),
        // SQLITE_IOERR
        10 => class(ErrorKind::Unexpected, true, None),
        // SQLITE_CORRUPT, SQLITE_NOTADB
        11 | 26 => class(
            ErrorKind::CorruptData,
            false,
            Some("the file is not a healthy SQLite database"),
        ),
        // SQLITE_FULL
        13 => class(ErrorKind::Unexpected, false, Some("the disk is full")),
        // SQLITE_CANTOPEN
        14 => class(
            ErrorKind::NotFound,
            false,
            Some("check that the file's directory exists and can be written"),
        ),
        // SQLITE_PERM, SQLITE_AUTH
        3 | 23 => class(ErrorKind::PermissionDenied, false, None),
        // SQLITE_NOMEM
        7 => class(ErrorKind::Unexpected, true, None),
        _ => None,
    }
}

fn default_busy_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_connections() -> u32 {
    4
}

fn default_max_rows() -> usize {
    1_000_000
}

fn default_max_bytes() -> usize {
    1 << 30
}

/// Settings of the `sqlite-connector` plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteSettings {
    /// The database file, relative to the current directory, or `:memory:`.
    pub path: String,
    /// Create the file (and its missing parent directories) when it does not exist.
    #[serde(default)]
    pub create_if_missing: bool,
    /// Open the database read-only.
    #[serde(default)]
    pub read_only: bool,
    /// How long to wait for another connection's lock (`"5s"`, `"250ms"`).
    #[serde(
        default = "default_busy_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub busy_timeout: Duration,
    /// Connections in the pool (1 for `:memory:` whatever is set).
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// The most rows `query` and `extract` may hold in memory.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = 1))]
    pub max_rows: usize,
    /// The most bytes of values `query` and `extract` may hold in memory (1 GiB).
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: usize,
}

impl SqliteSettings {
    /// Settings for `path` with every default.
    pub fn new(path: impl Into<String>) -> Self {
        SqliteSettings {
            path: path.into(),
            create_if_missing: false,
            read_only: false,
            busy_timeout: default_busy_timeout(),
            max_connections: default_max_connections(),
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
        }
    }

    /// Whether the database is in memory.
    pub fn is_memory(&self) -> bool {
        self.path == MEMORY
    }

    /// The file permissions these settings need: none for `:memory:`, `file_read` of the
    /// file, and `file_write` unless `read_only`.
    pub fn permissions(&self) -> Vec<Permission> {
        if self.is_memory() {
            return Vec::new();
        }
        let path = PathBuf::from(&self.path);
        let mut needed = vec![Permission::FileRead { path: path.clone() }];
        if !self.read_only {
            needed.push(Permission::FileWrite { path });
        }
        needed
    }

    fn check(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::new(ErrorKind::ConfigInvalid, message));
        if self.path.trim().is_empty() {
            return invalid("`path` is empty; name the database file, or `:memory:`".into());
        }
        if self
            .path
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("file:"))
        {
            return invalid(format!(
                "`path` {:?} is a SQLite URI; give a file path (modes come from `read_only` and `create_if_missing`)",
                self.path
            ));
        }
        if self.read_only && self.create_if_missing {
            return invalid(
                "`create_if_missing` needs a writable database, but `read_only` is true".into(),
            );
        }
        if self.max_connections == 0 {
            return invalid("`max_connections` must be at least 1".into());
        }
        if self.max_rows == 0 {
            return invalid("`max_rows` must be at least 1".into());
        }
        if self.max_bytes == 0 {
            return invalid("`max_bytes` must be at least 1".into());
        }
        Ok(())
    }

    /// Checks every permission the settings need ([`SqliteSettings::permissions`]) against
    /// `guard`, resolving the path as the file system will open it.
    fn check_permissions(&self, guard: &PermissionGuard) -> Result<()> {
        for needed in self.permissions() {
            let checked = match &needed {
                Permission::FileRead { path } => guard.check_read(path),
                Permission::FileWrite { path } => guard.check_write(path),
                other => guard.check(other),
            };
            checked.map_err(|e| {
                let message = format!(
                    "{}; grant file_read of the database file{}",
                    e.message(),
                    if self.read_only {
                        ""
                    } else {
                        " and file_write (or set `read_only: true`)"
                    }
                );
                Error::new(ErrorKind::PermissionDenied, message)
                    .with_context("path", &self.path)
                    .set_permanent()
            })?;
        }
        Ok(())
    }
}

/// SQLite, for [`SqlConnector`].
#[derive(Debug)]
pub struct SqliteDatabase;

/// The `sqlite-connector` plugin. Made by [`factory`] and opened by the manager's
/// `initialize`, or opened directly with [`SqlConnector::open`].
pub type SqliteConnector = SqlConnector<SqliteDatabase>;

/// The `sqlite-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(SqliteConnector::new()))
}

#[async_trait]
impl SqlDatabase for SqliteDatabase {
    const ID: &'static str = ID;
    const NAME: &'static str = "SQLite";
    const DESCRIPTION: &'static str = "Reads (query, incremental extract) and writes (load: append, upsert, replace; execute) a SQLite database file as records.";
    type Settings = SqliteSettings;
    type Backend = SqliteBackend;

    fn declared_permissions() -> Vec<Permission> {
        vec![
            Permission::FileRead { path: "/".into() },
            Permission::FileWrite { path: "/".into() },
        ]
    }

    async fn open(settings: &SqliteSettings, grants: &PermissionGuard) -> Result<SqliteBackend> {
        settings.check()?;
        settings.check_permissions(grants)?;
        SqliteBackend::connect(settings).await
    }

    fn check_call(
        settings: &SqliteSettings,
        _backend: &SqliteBackend,
        grants: &PermissionGuard,
    ) -> Result<()> {
        settings.check_permissions(grants)
    }

    fn check_writable(settings: &SqliteSettings) -> Result<()> {
        if settings.read_only {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`load` needs a writable database, but this one is opened with `read_only: true`",
            )
            .with_context("path", &settings.path));
        }
        Ok(())
    }

    fn read_limits(settings: &SqliteSettings) -> ReadLimits {
        ReadLimits {
            max_rows: settings.max_rows,
            max_bytes: settings.max_bytes,
        }
    }

    async fn close(backend: &SqliteBackend) {
        backend.pool.close().await;
    }

    fn is_closed(backend: &SqliteBackend) -> bool {
        backend.pool.is_closed()
    }
}

/// A pool of connections to one SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

impl SqliteBackend {
    /// Opens the pool of `settings` (checked already): for a file, checks that it exists
    /// unless it may be created, creating its parent directories when it may.
    pub async fn connect(settings: &SqliteSettings) -> Result<Self> {
        let mut options = SqliteConnectOptions::new()
            .busy_timeout(settings.busy_timeout)
            .read_only(settings.read_only)
            .create_if_missing(settings.create_if_missing);
        let mut pool = SqlitePoolOptions::new().max_connections(settings.max_connections);
        if settings.is_memory() {
            // The data lives in the connection: keep exactly one, for the plugin's life.
            options = options.in_memory(true).filename(MEMORY);
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            // Absolute, so that SQLite never reads it as a `file:` URI.
            let path = kernelize_core::permissions::absolute(Path::new(&settings.path));
            prepare_file(&path, settings).await?;
            options = options.filename(&path);
        }
        let doing = format!("open {}", settings.path);
        let pool = pool.connect_with(options).await.map_err(|e| {
            database_error(&DIALECT, &doing, e).with_context("path", &settings.path)
        })?;
        Ok(SqliteBackend { pool })
    }
}

async fn prepare_file(path: &Path, settings: &SqliteSettings) -> Result<()> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_dir() => Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "`path` {} is a directory, not a database file",
                settings.path
            ),
        )
        .with_context("path", &settings.path)),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !settings.create_if_missing {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "database file {} does not exist; set `create_if_missing: true` to create it",
                        settings.path
                    ),
                )
                .with_context("path", &settings.path)
                .set_permanent());
            }
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| {
                    Error::from(e)
                        .with_context("path", &settings.path)
                        .with_context("directory", parent.display())
                })?;
            }
            Ok(())
        }
        Err(e) => Err(Error::from(e).with_context("path", &settings.path)),
    }
}

fn arguments(values: &[SqlValue]) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    for value in values {
        let added = match value {
            SqlValue::Null => args.add(Option::<i64>::None),
            SqlValue::Bool(b) => args.add(*b),
            SqlValue::Int(i) => args.add(*i),
            SqlValue::Float(f) => args.add(*f),
            SqlValue::Text(s) => args.add(s.clone()),
            SqlValue::Bytes(b) => args.add(b.clone()),
            SqlValue::Timestamp(t) => args.add(rfc3339(t)),
            SqlValue::Date(d) => args.add(d.format("%Y-%m-%d").to_string()),
            SqlValue::LocalTimestamp(t) => args.add(local_timestamp_text(t)),
        };
        added.map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot bind a {} value: {e}", value.type_name()),
            )
        })?;
    }
    Ok(args)
}

/// What a column's declared type says, by SQLite's type affinity rules (`BIGINT` and
/// `INT8` are integers, `VARCHAR(10)` text, `DOUBLE` real), with `BOOLEAN` on its own.
/// `NUMERIC`, `DECIMAL`, `DATE` and `DATETIME` columns may hold any kind of value, so they
/// declare nothing.
fn declared_type(name: &str) -> DeclaredType {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("BOOL") {
        DeclaredType::Boolean
    } else if upper.contains("INT") {
        DeclaredType::Integer
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        DeclaredType::Text
    } else if upper.contains("BLOB") {
        DeclaredType::Blob
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        DeclaredType::Real
    } else {
        DeclaredType::Unknown
    }
}

fn decode_row(row: &SqliteRow, columns: &[ColumnInfo], row_number: usize) -> Result<Vec<SqlValue>> {
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let decode_error = |e: sqlx::Error| {
            database_error(&DIALECT, "read a value", e)
                .with_context("column", &column.name)
                .with_context("row", row_number)
        };
        let raw = row.try_get_raw(i).map_err(decode_error)?;
        if raw.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        let storage = raw.type_info().name().to_string();
        let value = match storage.as_str() {
            "INTEGER" => SqlValue::Int(row.try_get_unchecked::<i64, _>(i).map_err(decode_error)?),
            "REAL" => SqlValue::Float(row.try_get_unchecked::<f64, _>(i).map_err(decode_error)?),
            "BLOB" => SqlValue::Bytes(
                row.try_get_unchecked::<Vec<u8>, _>(i)
                    .map_err(decode_error)?,
            ),
            _ => SqlValue::Text(
                row.try_get_unchecked::<String, _>(i)
                    .map_err(decode_error)?,
            ),
        };
        values.push(value);
    }
    Ok(values)
}

/// The result columns of `sql`, from preparing it on `conn`.
async fn prepare_columns(conn: &mut sqlx::SqliteConnection, sql: &str) -> Result<Vec<ColumnInfo>> {
    let statement = conn
        .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
        .await
        .map_err(|e| database_error(&DIALECT, "prepare the statement", e))?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| ColumnInfo {
            name: c.name().to_string(),
            declared: declared_type(c.type_info().name()),
        })
        .collect())
}

#[async_trait]
impl SqlBackend for SqliteBackend {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    async fn describe(&self, _ctx: &ActionContext, query: &BoundQuery) -> Result<Vec<ColumnInfo>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| database_error(&DIALECT, "get a connection", e))?;
        prepare_columns(&mut conn, &query.sql).await
    }

    async fn run(
        &self,
        ctx: &ActionContext,
        query: &BoundQuery,
        options: RunOptions,
        consumer: &mut dyn RowConsumer,
    ) -> Result<StatementOutcome> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| database_error(&DIALECT, "get a connection", e))?;
        let columns = prepare_columns(&mut conn, &query.sql).await?;
        let args = arguments(&query.values)?;
        if columns.is_empty() {
            if options.rows_only {
                return Err(not_a_read());
            }
            let done = sqlx::query_with(AssertSqlSafe(query.sql.clone()), args)
                .execute(&mut *conn)
                .await
                .map_err(|e| database_error(&DIALECT, "run the statement", e))?;
            return Ok(StatementOutcome::Changed(done.rows_affected()));
        }
        consumer.start(columns.clone())?;
        let mut rows = sqlx::query_with(AssertSqlSafe(query.sql.clone()), args).fetch(&mut *conn);
        let mut n = 0usize;
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| database_error(&DIALECT, "run the query", e))?
        {
            if n.is_multiple_of(ALIVE_CHECK_ROWS) {
                ctx.check_alive()?;
            }
            n += 1;
            let values = decode_row(&row, &columns, n)?;
            consumer.row(values).await?;
        }
        Ok(StatementOutcome::Rows)
    }

    async fn execute(&self, ctx: &ActionContext, query: &BoundQuery) -> Result<u64> {
        ctx.check_alive()?;
        let done = sqlx::query_with(AssertSqlSafe(query.sql.clone()), arguments(&query.values)?)
            .execute(&self.pool)
            .await
            .map_err(|e| database_error(&DIALECT, "run the statement", e))?;
        Ok(done.rows_affected())
    }

    async fn begin_load(&self) -> Result<Box<dyn LoadTransaction>> {
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| database_error(&DIALECT, "begin a write transaction", e))?;
        Ok(Box::new(SqliteLoadTransaction { tx }))
    }
}

/// A load's transaction on one SQLite connection; rolled back when dropped uncommitted.
struct SqliteLoadTransaction {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl LoadTransaction for SqliteLoadTransaction {
    async fn table_columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>> {
        let (sql, values) = match &table.schema {
            Some(schema) => (
                "SELECT name FROM pragma_table_info(?1, ?2)",
                vec![
                    SqlValue::Text(table.name.clone()),
                    SqlValue::Text(schema.clone()),
                ],
            ),
            None => (
                "SELECT name FROM pragma_table_info(?1)",
                vec![SqlValue::Text(table.name.clone())],
            ),
        };
        let names: Vec<String> = sqlx::query_scalar_with(sql, arguments(&values)?)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(|e| database_error(&DIALECT, "read the table's columns", e))?;
        Ok((!names.is_empty()).then_some(names))
    }

    async fn execute(&mut self, sql: &str, values: Vec<SqlValue>) -> Result<u64> {
        let done = sqlx::query_with(AssertSqlSafe(sql.to_string()), arguments(&values)?)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| database_error(&DIALECT, "write the table", e))?;
        Ok(done.rows_affected())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx
            .commit()
            .await
            .map_err(|e| database_error(&DIALECT, "commit the load", e))
    }
}
