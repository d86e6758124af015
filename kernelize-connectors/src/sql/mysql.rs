//! `mysql-connector`: a MySQL or MariaDB database as a source and a target of records.
//!
//! ## Settings ([`MySqlSettings`])
//!
//! | setting           | default   | meaning |
//! |-------------------|-----------|---------|
//! | `url`             | —         | `mysql://user[:password]@host[:port]/database` (or `mariadb://`); write the password as `${secret:NAME}` (or `${env:NAME}`), which the manager resolves. The database is required. |
//! | `max_connections` | `4`       | connections in the pool |
//! | `acquire_timeout` | `"30s"`   | how long a call waits for a free connection (then a temporary `timeout` error) |
//! | `max_rows`        | `1000000` | the most rows `query` and `extract` hold; a call's own `max_rows` may only lower it |
//! | `max_bytes`       | 1 GiB     | the most bytes of values `query` and `extract` hold; a call's own `max_bytes` may only lower it |
//!
//! Unknown settings are refused. The pool connects at activation, so a wrong host, database
//! or password fails there. The password never appears in errors, logs or `Debug` output:
//! messages name the server as `host:port/database`. Every connection uses `utf8mb4` and
//! the time zone `+00:00` (a `timezone` in the URL is overridden), so `TIMESTAMP` values
//! read and bind as UTC instants. TLS is not compiled in (the pool connects in plain TCP,
//! or over a Unix socket with `?socket=/path`).
//!
//! ## Permissions
//!
//! The host must grant `network` to the URL's host (`{"kind": "network", "host":
//! "db.internal"}`); it is checked at activation, before connecting, and again at every
//! call. A Unix-socket URL needs a grant of `localhost`.
//!
//! ## Actions
//!
//! The shared SQL actions ([`super::actions`]): `query`, `extract`, `load`, `execute`, with the
//! behaviour described there and in the [`super`] module, and the shared event sink
//! ([`super::sink`]). MySQL specifics:
//!
//! - `:name` placeholders become `?` markers, one per occurrence (a name used twice is
//!   bound twice); MySQL's own `?` markers are refused. Backticks quote identifiers,
//!   backslashes escape inside strings, and `#` starts a comment, as MySQL reads them.
//! - MySQL does not say what type a marker takes, so values bind as themselves (text as
//!   text, which MySQL converts where a column needs another type), except that a text value
//!   in RFC 3339 form with an offset (`2026-11-27T03:25:00Z`, `...+01:00`) binds as a UTC
//!   `DATETIME`: MySQL would read the text and drop the offset with only a warning. So
//!   `WHERE updated_at > :last_sync` compares instants for `DATETIME` (holding UTC) and
//!   `TIMESTAMP` columns.
//! - Rows read become Arrow columns by type:
//!
//!   | MySQL                                             | Arrow                       |
//!   |---------------------------------------------------|-----------------------------|
//!   | `TINYINT` .. `BIGINT`, `YEAR`, unsigned ones, `BIT` | `Int64` (an unsigned value beyond `i64` is an error naming the column) |
//!   | `TINYINT(1)` (`BOOL`)                             | `Boolean` when every value read is 0 or 1, else `Int64` |
//!   | `FLOAT`, `DOUBLE`                                 | `Float64`                   |
//!   | `DECIMAL`                                         | `Utf8`, the exact decimal text (`12.50`), as PostgreSQL's `numeric` |
//!   | `CHAR`, `VARCHAR`, `TEXT`s, `ENUM`, `SET`, `JSON` | `Utf8`                      |
//!   | `BINARY`, `VARBINARY`, `BLOB`s                     | `Binary`                    |
//!   | `DATE`                                            | `Date32`                    |
//!   | `DATETIME`                                        | `Timestamp(µs)` without time zone |
//!   | `TIMESTAMP`                                       | `Timestamp(µs, "UTC")`      |
//!   | `TIME`                                            | `Utf8` (`-838:59:59` .. `838:59:59`) |
//!
//!   `DECIMAL` is text rather than `Decimal128` so that every column reads the same way on
//!   every database (cast in the query, `CAST(amount AS DOUBLE)`, for a float). Spatial
//!   types are refused, naming the column; cast them (`ST_AsText(geo)`). A zero date
//!   (`0000-00-00`) does not decode (`corrupt data`): select it as text.
//! - A load creates tables with `BIGINT`, `DOUBLE`, `LONGTEXT`, `BOOLEAN` (`TINYINT(1)`),
//!   `DATETIME(6)` (Arrow timestamps, written as UTC), `DATE` and `LONGBLOB` columns; key
//!   columns are `VARCHAR(255)` and `VARBINARY(255)` where they hold text or bytes, since
//!   MySQL cannot index a whole `TEXT`. Tables are InnoDB, `utf8mb4` with the `utf8mb4_bin`
//!   collation, so keys compare exactly as the other databases compare them. An upsert is
//!   `INSERT ... ON DUPLICATE KEY UPDATE column = VALUES(column)`; MySQL counts an updated
//!   row twice, so `rows_written` counts every row sent (inserted or matched). Up to 65,535
//!   values bind per `INSERT`, and fewer once they pass 8 MiB (under the server's
//!   `max_allowed_packet`, 16 MiB by default).
//! - **DDL commits at once.** MySQL ends any transaction before and after `CREATE TABLE` and
//!   `ALTER TABLE`, so a load runs them first, on their own, and then writes every row in
//!   one transaction: a load that fails leaves no row of its input behind, but a table it
//!   created (or columns it added with `add_columns`) stay, empty of its rows. `replace`
//!   deletes with `DELETE` inside the transaction (`TRUNCATE` would commit).
//! - A statement MySQL cannot prepare (some administrative ones) runs through the text
//!   protocol when it has no placeholders.
//!
//! ## Client
//!
//! sqlx's MySQL driver, pure Rust, already the crate behind the SQLite and PostgreSQL
//! connectors, so all three share pools, prepared statements, transactions and the code in
//! [`super`]; it speaks the binary protocol to MySQL 5.7+, 8 and MariaDB 10.3+. The
//! alternative weighed was **mysql_async** (the `mysql` crate family): mature and complete
//! (it has `LOCAL INFILE` for bulk loads), but a second async API with its own pool, row
//! and error types beside sqlx's, so the shared actions would need another adapter layer
//! for one database.

use std::str::FromStr;
use std::time::Duration;

// Only for its `chrono-tz` feature: `Timestamp(µs, "UTC")` columns convert to JSON.
use arrow_array as _;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::TryStreamExt;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Permission, PermissionGuard, PluginFactory, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::mysql::{
    MySql, MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool,
    MySqlPoolOptions, MySqlRow, MySqlTypeInfo,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, Executor, Row, SqlSafeStr, Statement, Transaction, Type,
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
use super::server::{Server, redacted_url};
use super::value::SqlValue;

/// The plugin's id.
pub const ID: &str = "mysql-connector";

/// MySQL's bound-value limit: the protocol counts parameters in 16 bits.
pub const MAX_BIND_VALUES: usize = 65535;

/// How often, in rows, a running query checks whether its call was cancelled.
const ALIVE_CHECK_ROWS: usize = 1024;

/// Most bytes of values one `INSERT` of a load carries: half of MariaDB's default
/// `max_allowed_packet` (16 MiB), leaving room for the statement and the protocol.
const MAX_STATEMENT_BYTES: usize = 8 << 20;

/// MySQL's error number for "this command is not supported in the prepared statement
/// protocol yet".
const ER_UNSUPPORTED_PS: u16 = 1295;

/// MySQL's (and MariaDB's) dialect.
pub const DIALECT: Dialect = Dialect {
    name: "MySQL",
    lexical: LexicalRules {
        backtick_identifiers: true,
        bracket_identifiers: false,
        backslash_escapes: true,
        dollar_quoted_strings: false,
        nested_block_comments: false,
        hash_comments: true,
        foreign_markers: &['?'],
    },
    placeholder: PlaceholderStyle::Positional,
    bulk_placeholder: PlaceholderStyle::Positional,
    identifier_quote: '`',
    max_identifier_len: 64,
    case_insensitive_identifiers: true,
    max_bind_values: MAX_BIND_VALUES,
    column_type,
    key_column_type,
    create_table_options: " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    upsert: UpsertSyntax::OnDuplicateKeyUpdate,
    transactional_ddl: false,
    max_statement_bytes: MAX_STATEMENT_BYTES,
    nulls_first: "",
    classify_error,
};

fn column_type(stored: StoredAs) -> &'static str {
    match stored {
        StoredAs::Boolean => "BOOLEAN",
        StoredAs::Integer => "BIGINT",
        StoredAs::Real => "DOUBLE",
        StoredAs::Text => "LONGTEXT",
        StoredAs::Timestamp => "DATETIME(6)",
        StoredAs::Date => "DATE",
        StoredAs::Blob => "LONGBLOB",
    }
}

fn key_column_type(stored: StoredAs) -> &'static str {
    match stored {
        StoredAs::Text => "VARCHAR(255)",
        StoredAs::Blob => "VARBINARY(255)",
        other => column_type(other),
    }
}

fn class(kind: ErrorKind, temporary: bool, hint: Option<&'static str>) -> Option<ErrorClass> {
    Some(ErrorClass {
        kind,
        temporary,
        hint,
    })
}

/// Reads a SQLSTATE; the error number, which says more, is read by [`mysql_error`].
fn classify_error(code: &str) -> Option<ErrorClass> {
    match code {
        "40001" => class(
            ErrorKind::Unexpected,
            true,
            Some("a deadlock with another transaction; trying again may succeed"),
        ),
        "28000" => class(
            ErrorKind::PermissionDenied,
            false,
            Some("check the user and password in `url`"),
        ),
        _ if code.starts_with("08") => class(ErrorKind::Unexpected, true, None),
        _ => None,
    }
}

/// Reads a MySQL error number, where the SQLSTATE is too coarse (`HY000`).
fn classify_number(number: u16) -> Option<ErrorClass> {
    match number {
        // ER_LOCK_WAIT_TIMEOUT
        1205 => class(
            ErrorKind::Timeout,
            true,
            Some("a lock was not available within `innodb_lock_wait_timeout`"),
        ),
        // ER_LOCK_DEADLOCK
        1213 => class(
            ErrorKind::Unexpected,
            true,
            Some("a deadlock with another transaction; trying again may succeed"),
        ),
        // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS
        1040 | 1203 => class(
            ErrorKind::Unexpected,
            true,
            Some("the server has no free connection"),
        ),
        // ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR, ER_TABLEACCESS_DENIED_ERROR
        1044 | 1045 | 1142 | 1143 => class(ErrorKind::PermissionDenied, false, None),
        // ER_BAD_DB_ERROR
        1049 => class(
            ErrorKind::NotFound,
            false,
            Some("check the database name in `url`"),
        ),
        // ER_QUERY_INTERRUPTED
        1317 => class(ErrorKind::Cancelled, false, None),
        // ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_TIMEOUT (MySQL)
        1969 | 3024 => class(
            ErrorKind::Timeout,
            false,
            Some("the statement ran longer than the server's statement time limit"),
        ),
        // ER_SERVER_SHUTDOWN
        1053 => class(ErrorKind::Unexpected, true, None),
        _ => None,
    }
}

/// The Kernelize error for `err` while doing `doing`: the shared mapping, refined by the
/// MySQL error number (kept as the `number` context).
fn mysql_error(doing: &str, err: sqlx::Error) -> Error {
    let number = err
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number);
    let base = database_error(&DIALECT, doing, err);
    let Some(number) = number else {
        return base;
    };
    let Some(class) = classify_number(number) else {
        return base.with_context("number", number);
    };
    let mut message = base.message().to_string();
    if let Some(hint) = class.hint {
        message.push_str(" (");
        message.push_str(hint);
        message.push(')');
    }
    let mut out = Error::new(class.kind, message);
    for (key, value) in base.context() {
        out = out.with_context(key, value);
    }
    out = out.with_context("number", number);
    if class.temporary {
        out.set_temporary()
    } else {
        out.set_permanent()
    }
}

fn default_max_connections() -> u32 {
    4
}

fn default_acquire_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_rows() -> usize {
    1_000_000
}

fn default_max_bytes() -> usize {
    1 << 30
}

/// Settings of the `mysql-connector` plugin.
///
/// `Debug` shows the URL with its password replaced by `***`; the settings are not
/// serializable, so the password is never written back out.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MySqlSettings {
    /// `mysql://user[:password]@host[:port]/database`.
    #[schemars(with = "String")]
    pub url: SecretString,
    /// Connections in the pool.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// How long a call waits for a free connection (`"30s"`).
    #[serde(
        default = "default_acquire_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub acquire_timeout: Duration,
    /// The most rows `query` and `extract` may hold in memory.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = 1))]
    pub max_rows: usize,
    /// The most bytes of values `query` and `extract` may hold in memory (1 GiB).
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: usize,
}

impl std::fmt::Debug for MySqlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSettings")
            .field("url", &redacted_url(self.url.expose_secret()))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("max_rows", &self.max_rows)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl MySqlSettings {
    /// Settings for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        MySqlSettings {
            url: SecretString::from(url.into()),
            max_connections: default_max_connections(),
            acquire_timeout: default_acquire_timeout(),
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
        }
    }

    /// The permission these settings need: `network` to the URL's host.
    pub fn permissions(&self) -> Result<Vec<Permission>> {
        let (_, server) = self.connect_options()?;
        Ok(vec![Permission::Network { host: server.host }])
    }

    fn check(&self) -> Result<()> {
        let invalid = |message: &str| Err(Error::new(ErrorKind::ConfigInvalid, message));
        if self.max_connections == 0 {
            return invalid("`max_connections` must be at least 1");
        }
        if self.max_rows == 0 {
            return invalid("`max_rows` must be at least 1");
        }
        if self.max_bytes == 0 {
            return invalid("`max_bytes` must be at least 1");
        }
        if self.acquire_timeout.is_zero() {
            return invalid("`acquire_timeout` must be more than 0");
        }
        self.connect_options().map(|_| ())
    }

    /// The driver's options and the server they name; errors never quote the URL.
    fn connect_options(&self) -> Result<(MySqlConnectOptions, Server)> {
        let url = self.url.expose_secret();
        let bad = |why: String| {
            Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("`url` is not a MySQL URL (mysql://user@host:port/database): {why}"),
            ))
        };
        let mut parsed = match url::Url::parse(url) {
            Ok(p) => p,
            Err(e) => return bad(e.to_string()),
        };
        match parsed.scheme() {
            "mysql" => {}
            "mariadb" => {
                if parsed.set_scheme("mysql").is_err() {
                    return bad("the scheme cannot be read".into());
                }
            }
            other => return bad(format!("the scheme is `{other}`, not `mysql`")),
        }
        if parsed.path().trim_start_matches('/').is_empty() {
            return bad("it names no database; add one, as in mysql://user@host/sales".into());
        }
        let options = match MySqlConnectOptions::from_str(parsed.as_str()) {
            Ok(o) => o,
            // The driver's words may quote parts of the URL: keep them out.
            Err(_) => return bad("the driver cannot read its options".into()),
        };
        let options = options
            .timezone(Some("+00:00".to_string()))
            .charset("utf8mb4");
        let (host, port) = if options.get_socket().is_some() {
            ("localhost".to_string(), options.get_port())
        } else {
            (options.get_host().to_string(), options.get_port())
        };
        let label = format!(
            "{}:{port}/{}",
            options.get_host(),
            options.get_database().unwrap_or_default()
        );
        Ok((options, Server { host, label }))
    }
}

/// MySQL, for [`SqlConnector`].
#[derive(Debug)]
pub struct MySqlDatabase;

/// The `mysql-connector` plugin. Made by [`factory`] and opened by the manager's
/// `initialize`, or opened directly with [`SqlConnector::open`].
pub type MySqlConnector = SqlConnector<MySqlDatabase>;

/// The `mysql-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(MySqlConnector::new()))
}

#[async_trait]
impl SqlDatabase for MySqlDatabase {
    const ID: &'static str = ID;
    const NAME: &'static str = "MySQL";
    const DESCRIPTION: &'static str = "Reads (query, incremental extract), writes (load: append, upsert, replace) and changes (execute) a MySQL or MariaDB database as records.";
    type Settings = MySqlSettings;
    type Backend = MySqlBackend;

    fn declared_permissions() -> Vec<Permission> {
        vec![Permission::Network { host: "*".into() }]
    }

    /// Checks the settings and the network grant before any connection is made.
    async fn open(settings: &MySqlSettings, grants: &PermissionGuard) -> Result<MySqlBackend> {
        settings.check()?;
        let (options, server) = settings.connect_options()?;
        server.check(grants)?;
        MySqlBackend::connect(settings, options, server).await
    }

    fn check_call(
        _: &MySqlSettings,
        backend: &MySqlBackend,
        grants: &PermissionGuard,
    ) -> Result<()> {
        backend.server.check(grants)
    }

    fn read_limits(settings: &MySqlSettings) -> ReadLimits {
        ReadLimits {
            max_rows: settings.max_rows,
            max_bytes: settings.max_bytes,
        }
    }

    async fn close(backend: &MySqlBackend) {
        backend.pool.close().await;
    }

    fn is_closed(backend: &MySqlBackend) -> bool {
        backend.pool.is_closed()
    }
}

/// A pool of connections to one MySQL database.
#[derive(Debug, Clone)]
pub struct MySqlBackend {
    pool: MySqlPool,
    server: Server,
}

impl MySqlBackend {
    /// Opens the pool and one connection, so that a wrong server, database or password
    /// fails here.
    async fn connect(
        settings: &MySqlSettings,
        options: MySqlConnectOptions,
        server: Server,
    ) -> Result<Self> {
        let doing = format!("connect to {}", server.label);
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| {
                let err = mysql_error(&doing, e).with_context("server", &server.label);
                scrub(err, settings)
            })?;
        Ok(MySqlBackend { pool, server })
    }
}

/// `err` without the URL's password, should a driver message ever quote it.
fn scrub(err: Error, settings: &MySqlSettings) -> Error {
    let password = url::Url::parse(settings.url.expose_secret())
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    match password {
        Some(p) if !p.is_empty() => {
            kernelize_core::config::Redactor::new(vec![SecretString::from(p)]).redact_error(err)
        }
        _ => err,
    }
}

// ---------------------------------------------------------------------------------------
// reading rows

/// How a result column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    Int,
    Unsigned,
    /// `TINYINT(1)`: read as an integer, declared boolean.
    Bool,
    Float,
    Decimal,
    Text,
    Bytes,
    Date,
    DateTime,
    Timestamp,
    Time,
    Null,
}

impl ColumnKind {
    /// The kind of a MySQL type; `None` when unreadable.
    fn of(ty: &MySqlTypeInfo) -> Option<Self> {
        let name = ty.name();
        Some(match name {
            "BOOLEAN" => ColumnKind::Bool,
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => ColumnKind::Int,
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED" | "BIT" => ColumnKind::Unsigned,
            "FLOAT" | "DOUBLE" => ColumnKind::Float,
            "DECIMAL" => ColumnKind::Decimal,
            "ENUM" | "SET" | "JSON" => ColumnKind::Text,
            "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "BINARY"
            | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                // A `_bin` collation marks text columns binary too; only the `binary`
                // character set makes bytes.
                if <str as Type<MySql>>::compatible(ty) {
                    ColumnKind::Text
                } else {
                    ColumnKind::Bytes
                }
            }
            "DATE" => ColumnKind::Date,
            "DATETIME" => ColumnKind::DateTime,
            "TIMESTAMP" => ColumnKind::Timestamp,
            "TIME" => ColumnKind::Time,
            "NULL" => ColumnKind::Null,
            _ => return None,
        })
    }

    fn declared(self) -> DeclaredType {
        match self {
            ColumnKind::Int | ColumnKind::Unsigned => DeclaredType::Integer,
            ColumnKind::Bool => DeclaredType::Boolean,
            ColumnKind::Float => DeclaredType::Real,
            ColumnKind::Bytes => DeclaredType::Blob,
            ColumnKind::Date => DeclaredType::Date,
            ColumnKind::DateTime => DeclaredType::LocalTimestamp,
            ColumnKind::Timestamp => DeclaredType::Timestamp,
            ColumnKind::Decimal | ColumnKind::Text | ColumnKind::Time => DeclaredType::Text,
            ColumnKind::Null => DeclaredType::Unknown,
        }
    }
}

/// The kinds of `columns`, refusing the types this connector cannot read.
fn column_kinds<'a>(
    columns: impl Iterator<Item = (&'a str, &'a MySqlTypeInfo)>,
) -> Result<(Vec<ColumnInfo>, Vec<ColumnKind>)> {
    let mut infos = Vec::new();
    let mut kinds = Vec::new();
    for (name, ty) in columns {
        let kind = ColumnKind::of(ty).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "column `{name}` has MySQL type {}, which the connector cannot read; convert it in the query, such as `ST_AsText({name})` or `CAST({name} AS CHAR)`",
                    ty.name()
                ),
            )
            .with_context("column", name)
            .with_context("type", ty.name())
        })?;
        infos.push(ColumnInfo {
            name: name.to_string(),
            declared: kind.declared(),
        });
        kinds.push(kind);
    }
    Ok((infos, kinds))
}

fn decode_row(
    row: &MySqlRow,
    columns: &[ColumnInfo],
    kinds: &[ColumnKind],
    row_number: usize,
) -> Result<Vec<SqlValue>> {
    let mut values = Vec::with_capacity(kinds.len());
    for (i, (kind, column)) in kinds.iter().zip(columns).enumerate() {
        let decode_error = |e: sqlx::Error| {
            mysql_error("read a value", e)
                .with_context("column", &column.name)
                .with_context("row", row_number)
        };
        let raw = row.try_get_raw(i).map_err(decode_error)?;
        if raw.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        let value = match kind {
            ColumnKind::Int | ColumnKind::Bool => {
                SqlValue::Int(row.try_get_unchecked::<i64, _>(i).map_err(decode_error)?)
            }
            ColumnKind::Unsigned => {
                let u = row.try_get_unchecked::<u64, _>(i).map_err(decode_error)?;
                SqlValue::Int(i64::try_from(u).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "column `{}` holds an unsigned value beyond the range of a signed 64-bit integer; select it as text: CAST({} AS CHAR)",
                            column.name, column.name
                        ),
                    )
                    .with_context("column", &column.name)
                    .with_context("row", row_number)
                })?)
            }
            ColumnKind::Float => {
                SqlValue::Float(row.try_get_unchecked::<f64, _>(i).map_err(decode_error)?)
            }
            ColumnKind::Decimal | ColumnKind::Text => SqlValue::Text(
                row.try_get_unchecked::<String, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::Bytes => SqlValue::Bytes(
                row.try_get_unchecked::<Vec<u8>, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::Date => SqlValue::Date(
                row.try_get_unchecked::<NaiveDate, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::DateTime => SqlValue::LocalTimestamp(
                row.try_get_unchecked::<NaiveDateTime, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::Timestamp => SqlValue::Timestamp(
                row.try_get_unchecked::<DateTime<Utc>, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::Time => SqlValue::Text(time_text(
                &row.try_get_unchecked::<sqlx::mysql::types::MySqlTime, _>(i)
                    .map_err(decode_error)?,
            )),
            ColumnKind::Null => SqlValue::Null,
        };
        values.push(value);
    }
    Ok(values)
}

/// A `TIME` as MySQL writes it: `[-]HH:MM:SS[.ffffff]`.
fn time_text(time: &sqlx::mysql::types::MySqlTime) -> String {
    // Not `is_negative()`, which sqlx 0.9 answers with the sign's opposite.
    let sign = if time.sign().is_negative() { "-" } else { "" };
    let mut out = format!(
        "{sign}{:02}:{:02}:{:02}",
        time.hours(),
        time.minutes(),
        time.seconds()
    );
    if time.microseconds() > 0 {
        out.push_str(&format!(".{:06}", time.microseconds()));
    }
    out
}

// ---------------------------------------------------------------------------------------
// binding values

/// An RFC 3339 instant with an offset (`2026-11-27T03:25:00Z`, `... 03:25:00.5+01:00`).
fn rfc3339_instant(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    // Cheap shape check first: most text is not a timestamp.
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    DateTime::parse_from_rfc3339(t)
        .ok()
        .or_else(|| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z").ok())
        .map(|t| t.with_timezone(&Utc))
}

fn arguments(values: &[SqlValue]) -> Result<MySqlArguments> {
    let mut args = MySqlArguments::default();
    for (i, value) in values.iter().enumerate() {
        let added = match value {
            SqlValue::Null => args.add(Option::<String>::None),
            SqlValue::Bool(b) => args.add(*b),
            SqlValue::Int(n) => args.add(*n),
            SqlValue::Float(f) => args.add(*f),
            SqlValue::Text(s) => match rfc3339_instant(s) {
                Some(t) => args.add(t.naive_utc()),
                None => args.add(s.clone()),
            },
            SqlValue::Bytes(b) => args.add(b.clone()),
            SqlValue::Timestamp(t) => args.add(t.naive_utc()),
            SqlValue::Date(d) => args.add(*d),
            SqlValue::LocalTimestamp(t) => args.add(*t),
        };
        added.map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "cannot bind a {} value to slot {}: {e}",
                    value.type_name(),
                    i + 1
                ),
            )
        })?;
    }
    Ok(args)
}

/// Whether `err` is MySQL's "not supported in the prepared statement protocol".
fn not_preparable(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|db| db.number() == ER_UNSUPPORTED_PS)
}

/// The result columns of `sql`, from preparing it on `conn`; `None` when MySQL cannot
/// prepare it (an administrative statement), which then runs as text.
async fn prepare_columns(
    conn: &mut MySqlConnection,
    sql: &str,
) -> Result<Option<(Vec<ColumnInfo>, Vec<ColumnKind>)>> {
    match conn
        .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
        .await
    {
        Ok(statement) => column_kinds(
            statement
                .columns()
                .iter()
                .map(|c| (c.name(), c.type_info())),
        )
        .map(Some),
        Err(e) if not_preparable(&e) => Ok(None),
        Err(e) => Err(mysql_error("prepare the statement", e)),
    }
}

/// Runs `sql` through the text protocol: only for statements without values that MySQL
/// cannot prepare.
async fn run_unprepared(conn: &mut MySqlConnection, query: &BoundQuery) -> Result<u64> {
    if !query.values.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "MySQL cannot prepare this statement, so it cannot take :name placeholders; write its values in the SQL",
        ));
    }
    let done = conn
        .execute(AssertSqlSafe(query.sql.clone()).into_sql_str())
        .await
        .map_err(|e| mysql_error("run the statement", e))?;
    Ok(done.rows_affected())
}

#[async_trait]
impl SqlBackend for MySqlBackend {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    async fn describe(&self, _ctx: &ActionContext, query: &BoundQuery) -> Result<Vec<ColumnInfo>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| mysql_error("get a connection", e))?;
        Ok(prepare_columns(&mut conn, &query.sql)
            .await?
            .map(|(columns, _)| columns)
            .unwrap_or_default())
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
            .map_err(|e| mysql_error("get a connection", e))?;
        let Some((columns, mut kinds)) = prepare_columns(&mut conn, &query.sql).await? else {
            if options.rows_only {
                return Err(not_a_read());
            }
            return run_unprepared(&mut conn, query)
                .await
                .map(StatementOutcome::Changed);
        };
        let args = arguments(&query.values)?;
        if columns.is_empty() {
            if options.rows_only {
                return Err(not_a_read());
            }
            let done = sqlx::query_with(AssertSqlSafe(query.sql.clone()), args)
                .execute(&mut *conn)
                .await
                .map_err(|e| mysql_error("run the statement", e))?;
            return Ok(StatementOutcome::Changed(done.rows_affected()));
        }
        consumer.start(columns.clone())?;
        let mut rows = sqlx::query_with(AssertSqlSafe(query.sql.clone()), args).fetch(&mut *conn);
        let mut n = 0usize;
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| mysql_error("run the query", e))?
        {
            if n == 0 {
                // What a prepared statement declares may be vaguer than what it sends (the
                // type of `SELECT ?` is only known once bound): read by the row's own types.
                let (_, sent) =
                    column_kinds(row.columns().iter().map(|c| (c.name(), c.type_info())))?;
                if sent.len() == kinds.len() {
                    kinds = sent;
                }
            }
            if n.is_multiple_of(ALIVE_CHECK_ROWS) {
                ctx.check_alive()?;
            }
            n += 1;
            let values = decode_row(&row, &columns, &kinds, n)?;
            consumer.row(values).await?;
        }
        Ok(StatementOutcome::Rows)
    }

    async fn execute(&self, ctx: &ActionContext, query: &BoundQuery) -> Result<u64> {
        ctx.check_alive()?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| mysql_error("get a connection", e))?;
        let result = sqlx::query_with(AssertSqlSafe(query.sql.clone()), arguments(&query.values)?)
            .execute(&mut *conn)
            .await;
        match result {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) if not_preparable(&e) => run_unprepared(&mut conn, query).await,
            Err(e) => Err(mysql_error("run the statement", e)),
        }
    }

    async fn begin_load(&self) -> Result<Box<dyn LoadTransaction>> {
        Ok(Box::new(MySqlLoadTransaction {
            pool: self.pool.clone(),
            tx: None,
        }))
    }
}

/// A load's transaction. MySQL commits DDL implicitly, so DDL runs on the pool at once, and
/// the transaction for the rows begins with the first row-writing statement. Dropped
/// uncommitted, it rolls back.
struct MySqlLoadTransaction {
    pool: MySqlPool,
    tx: Option<Transaction<'static, MySql>>,
}

impl MySqlLoadTransaction {
    async fn transaction(&mut self) -> Result<&mut Transaction<'static, MySql>> {
        if self.tx.is_none() {
            let tx = self
                .pool
                .begin()
                .await
                .map_err(|e| mysql_error("begin a write transaction", e))?;
            self.tx = Some(tx);
        }
        self.tx
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, "the load's transaction is not open"))
    }
}

#[async_trait]
impl LoadTransaction for MySqlLoadTransaction {
    async fn table_columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>> {
        // BINARY: table names are case-sensitive on most servers, and information_schema
        // compares them without case.
        let sql = "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                   WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND BINARY TABLE_NAME = ? \
                   ORDER BY ORDINAL_POSITION";
        let values = [
            table.schema.clone().map_or(SqlValue::Null, SqlValue::Text),
            SqlValue::Text(table.name.clone()),
        ];
        let names: Vec<String> = sqlx::query_scalar_with(sql, arguments(&values)?)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| mysql_error("read the table's columns", e))?;
        Ok((!names.is_empty()).then_some(names))
    }

    async fn execute(&mut self, sql: &str, values: Vec<SqlValue>) -> Result<u64> {
        let args = arguments(&values)?;
        let tx = self.transaction().await?;
        let done = sqlx::query_with(AssertSqlSafe(sql.to_string()), args)
            .execute(&mut **tx)
            .await
            .map_err(|e| mysql_error("write the table", e))?;
        Ok(done.rows_affected())
    }

    async fn execute_ddl(&mut self, sql: &str) -> Result<()> {
        if self.tx.is_some() {
            // It would commit the rows written so far: the shared load never asks for it.
            return Err(Error::new(
                ErrorKind::Unexpected,
                "MySQL DDL after a load started writing rows would commit them",
            ));
        }
        sqlx::query(AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await
            .map_err(|e| mysql_error("change the table", e))?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        match self.tx {
            Some(tx) => tx
                .commit()
                .await
                .map_err(|e| mysql_error("commit the load", e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let settings = MySqlSettings::new("mysql://app:hunter2@db.internal:3307/sales");
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("app:***@db.internal:3307/sales"), "{text}");
    }

    #[test]
    fn the_server_is_named_without_the_password() {
        let settings = MySqlSettings::new("mariadb://app:hunter2@db.internal:3307/sales");
        let (_, server) = settings.connect_options().unwrap();
        assert_eq!(server.host, "db.internal");
        assert_eq!(server.label, "db.internal:3307/sales");
    }

    #[test]
    fn a_url_without_a_database_is_refused() {
        let err = MySqlSettings::new("mysql://app@db.internal")
            .connect_options()
            .unwrap_err();
        assert!(err.to_string().contains("names no database"), "{err}");
    }

    #[test]
    fn only_rfc3339_text_with_an_offset_binds_as_an_instant() {
        assert!(rfc3339_instant("2026-11-27T03:25:00Z").is_some());
        assert_eq!(
            rfc3339_instant("2026-11-27T03:25:00.5+01:00").map(|t| t.to_rfc3339()),
            Some("2026-11-27T02:25:00.500+00:00".to_string())
        );
        assert!(rfc3339_instant("2026-11-27T03:25:00").is_none());
        assert!(rfc3339_instant("2026-11-27").is_none());
        assert!(rfc3339_instant("hello, world; this is text").is_none());
    }

    #[test]
    fn upserts_use_on_duplicate_key_update() {
        use super::super::load::{LoadMode, LoadPlan};
        use kernelize_core::arrow_schema::{DataType, Field, Schema};
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]);
        let plan = LoadPlan::new(&DIALECT, "t", LoadMode::Upsert, &["id".into()], &schema).unwrap();
        assert_eq!(
            plan.insert_sql(2),
            "INSERT INTO `t` (`id`, `v`) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
        );
        assert_eq!(
            plan.create_table_sql(),
            "CREATE TABLE `t` (`id` VARCHAR(255) NOT NULL, `v` BIGINT, UNIQUE (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        );
        assert_eq!(plan.rows_written(2, 3), 2);
    }
}
