//! `postgres-connector`: a PostgreSQL database as a source and a target of records.
//!
//! ## Settings ([`PostgresSettings`])
//!
//! | setting             | default   | meaning |
//! |---------------------|-----------|---------|
//! | `url`               | —         | `postgres://user[:password]@host[:port]/database[?sslmode=..]`; write the password as `${secret:NAME}` (or `${env:NAME}`), which the manager resolves |
//! | `max_connections`   | `4`       | connections in the pool |
//! | `acquire_timeout`   | `"30s"`   | how long a call waits for a free connection (then a temporary `timeout` error) |
//! | `statement_timeout` | none      | PostgreSQL's `statement_timeout` for every connection: a statement running longer is cancelled by the server (`timeout` error) |
//! | `max_rows`          | `1000000` | the most rows `query` and `extract` hold; a call's own `max_rows` may only lower it |
//! | `max_bytes`         | 1 GiB     | the most bytes of values `query` and `extract` hold; a call's own `max_bytes` may only lower it |
//!
//! Unknown settings are refused. The pool connects at activation, so a wrong host, database
//! or password fails there. The password never appears in errors, logs or `Debug` output:
//! messages name the server as `host:port/database`.
//!
//! ## Permissions
//!
//! The host must grant `network` to the URL's host (`{"kind": "network", "host": "db.internal"}`,
//! or a pattern such as `*.internal`); it is checked at activation and again at every call. A
//! Unix-socket URL (`?host=/var/run/postgresql`) needs a grant of `localhost`.
//!
//! ## Actions
//!
//! The shared SQL actions ([`super::actions`]): `query`, `extract`, `load`, `execute`, with the
//! behaviour described there and in the [`super`] module. PostgreSQL specifics:
//!
//! - `:name` placeholders become `$n` slots, one per distinct name. Each value is bound as the
//!   type PostgreSQL infers for its slot: `WHERE updated_at > :last_sync` binds the RFC 3339
//!   text of `last_sync` as a `timestamptz`, `WHERE id = :id` binds `"42"` or `42` as an
//!   integer. Text converts to every readable type below; a value that does not convert is an
//!   error naming the slot and both types (never the value). A slot of another type (arrays,
//!   intervals, ...) takes a cast: `CAST(:x AS text)::interval`.
//! - PostgreSQL's own `$1` markers are refused; `"..."` quotes case-sensitive identifiers;
//!   dollar-quoted strings (`$$ .. $$`, `$tag$ .. $tag$`) and nested comments are skipped.
//! - Rows read become Arrow columns by type:
//!
//!   | PostgreSQL                                   | Arrow                         |
//!   |----------------------------------------------|-------------------------------|
//!   | `int2`, `int4`, `int8`, `oid`                | `Int64`                       |
//!   | `float4`, `float8`                           | `Float64`                     |
//!   | `numeric`                                    | `Utf8`, the exact decimal text (`12.50`, `NaN`) |
//!   | `bool`                                       | `Boolean`                     |
//!   | `text`, `varchar`, `char(n)`, `name`, enums  | `Utf8`                        |
//!   | `bytea`                                      | `Binary`                      |
//!   | `date`                                       | `Date32`                      |
//!   | `timestamp`                                  | `Timestamp(µs)` without time zone |
//!   | `timestamptz`                                | `Timestamp(µs, "UTC")`        |
//!   | `json`, `jsonb`                              | `Utf8`, the JSON text         |
//!   | `uuid`                                       | `Utf8`, hyphenated lower case |
//!
//!   `numeric` is text rather than `Decimal128` because a PostgreSQL `numeric` has no fixed
//!   precision or scale (each value carries its own, up to 16383 fraction digits), so no one
//!   Arrow decimal type holds every column exactly; cast in the query (`amount::float8`) for
//!   a float. Any other type is refused before the statement runs, naming the column and its
//!   type; cast it in the query (`interval_col::text`).
//! - A load creates tables with `BIGINT`, `DOUBLE PRECISION`, `TEXT`, `BOOLEAN`,
//!   `TIMESTAMPTZ` (Arrow timestamps with or without a time zone, read as UTC), `DATE` and
//!   `BYTEA`; into an existing table, values convert to its column types (text into `jsonb`,
//!   `uuid`, `numeric`, ...). Up to 65535 values bind per `INSERT`; the whole load is one
//!   transaction. `add_columns: true` adds missing columns as nullable (schema evolution).
//! - `load` (and the event sink) take `method: copy` for bulk loads: `COPY table (columns)
//!   FROM STDIN` in text format inside the load's transaction, and for upserts a `COPY` into
//!   a temporary table followed by one `INSERT ... SELECT ... ON CONFLICT`; see
//!   [`super::postgres_copy`] for the escaping and the error contract.
//! - `extract` with a watermark sorts with `ORDER BY column NULLS FIRST`, as the other
//!   databases sort NULLs.

use std::str::FromStr;

// Only for its `chrono-tz` feature: `Timestamp(µs, "UTC")` columns convert to JSON.
use arrow_array as _;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::TryStreamExt;
use kernelize_core::arrow_array::RecordBatch;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Permission, PermissionGuard, PluginFactory, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow,
    PgTypeInfo, PgTypeKind, PgValueFormat,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, Either, Executor, Postgres, Row, SqlSafeStr, Statement,
    Transaction, Type, TypeInfo, ValueRef,
};

use super::backend::{
    LoadTransaction, RowConsumer, RunOptions, SqlBackend, StatementOutcome, not_a_read,
};
use super::bind::BoundQuery;
use super::connector::{SqlConnector, SqlDatabase};
use super::dialect::{Dialect, ErrorClass, LexicalRules, PlaceholderStyle, StoredAs, UpsertSyntax};
use super::error::database_error;
use super::load::{LoadPlan, TableName};
use super::result_set::{ColumnInfo, DeclaredType, ReadLimits};
use super::server::{Server, redacted_url};
use super::value::SqlValue;

/// The plugin's id.
pub const ID: &str = "postgres-connector";

/// PostgreSQL's bound-value limit: the protocol counts parameters in 16 bits.
pub const MAX_BIND_VALUES: usize = 65535;

/// How often, in rows, a running query checks whether its call was cancelled.
const ALIVE_CHECK_ROWS: usize = 1024;

/// PostgreSQL's dialect.
pub const DIALECT: Dialect = Dialect {
    name: "PostgreSQL",
    lexical: LexicalRules {
        backtick_identifiers: false,
        bracket_identifiers: false,
        backslash_escapes: false,
        dollar_quoted_strings: true,
        nested_block_comments: true,
        hash_comments: false,
        foreign_markers: &['$'],
    },
    placeholder: PlaceholderStyle::Numbered('$'),
    bulk_placeholder: PlaceholderStyle::Numbered('$'),
    identifier_quote: '"',
    max_identifier_len: 63,
    case_insensitive_identifiers: false,
    max_bind_values: MAX_BIND_VALUES,
    column_type,
    key_column_type: column_type,
    create_table_options: "",
    upsert: UpsertSyntax::OnConflict,
    transactional_ddl: true,
    max_statement_bytes: MAX_STATEMENT_BYTES,
    nulls_first: " NULLS FIRST",
    classify_error,
};

/// Most bytes of values one `INSERT` of a load carries (a bound on its memory; PostgreSQL's
/// own limit is 1 GiB per message).
const MAX_STATEMENT_BYTES: usize = 64 << 20;

fn column_type(stored: StoredAs) -> &'static str {
    match stored {
        StoredAs::Boolean => "BOOLEAN",
        StoredAs::Integer => "BIGINT",
        StoredAs::Real => "DOUBLE PRECISION",
        StoredAs::Text => "TEXT",
        StoredAs::Timestamp => "TIMESTAMPTZ",
        StoredAs::Date => "DATE",
        StoredAs::Blob => "BYTEA",
    }
}

/// Reads a SQLSTATE.
fn classify_error(code: &str) -> Option<ErrorClass> {
    let class = |kind, temporary, hint| {
        Some(ErrorClass {
            kind,
            temporary,
            hint,
        })
    };
    match code {
        "40001" | "40P01" => class(
            ErrorKind::Unexpected,
            true,
            Some("another transaction conflicted with this one; trying again may succeed"),
        ),
        "55P03" => class(ErrorKind::Timeout, true, Some("a lock was not available")),
        "57014" => class(
            ErrorKind::Timeout,
            false,
            Some("the statement ran longer than `statement_timeout`, or was cancelled"),
        ),
        "42501" => class(ErrorKind::PermissionDenied, false, None),
        "3D000" => class(
            ErrorKind::NotFound,
            false,
            Some("check the database name in `url`"),
        ),
        "57P01" | "57P02" | "57P03" => class(ErrorKind::Unexpected, true, None),
        _ if code.starts_with("28") => class(
            ErrorKind::PermissionDenied,
            false,
            Some("check the user and password in `url`"),
        ),
        _ if code.starts_with("08") || code.starts_with("53") => {
            class(ErrorKind::Unexpected, true, None)
        }
        _ => None,
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

/// Settings of the `postgres-connector` plugin.
///
/// `Debug` shows the URL with its password replaced by `***`; the settings are not
/// serializable, so the password is never written back out.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user[:password]@host[:port]/database`.
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
    /// PostgreSQL's `statement_timeout` (`"30s"`); none when absent.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub statement_timeout: Option<Duration>,
    /// The most rows `query` and `extract` may hold in memory.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = 1))]
    pub max_rows: usize,
    /// The most bytes of values `query` and `extract` may hold in memory (1 GiB).
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: usize,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &redacted_url(self.url.expose_secret()))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("max_rows", &self.max_rows)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl PostgresSettings {
    /// Settings for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresSettings {
            url: SecretString::from(url.into()),
            max_connections: default_max_connections(),
            acquire_timeout: default_acquire_timeout(),
            statement_timeout: None,
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
        if self.statement_timeout.is_some_and(|t| t.as_millis() == 0) {
            return invalid("`statement_timeout` must be at least 1ms (leave it out for none)");
        }
        self.connect_options().map(|_| ())
    }

    /// The driver's options and the server they name; errors never quote the URL.
    fn connect_options(&self) -> Result<(PgConnectOptions, Server)> {
        let url = self.url.expose_secret();
        let bad = |why: String| {
            Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`url` is not a PostgreSQL URL (postgres://user@host:port/database): {why}"
                ),
            ))
        };
        let parsed = match url::Url::parse(url) {
            Ok(p) => p,
            Err(e) => return bad(e.to_string()),
        };
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return bad(format!(
                "the scheme is `{}`, not `postgres`",
                parsed.scheme()
            ));
        }
        let mut options = match PgConnectOptions::from_str(url) {
            Ok(o) => o,
            // The driver's words may quote parts of the URL: keep them out.
            Err(_) => return bad("the driver cannot read its options".into()),
        };
        if let Some(timeout) = self.statement_timeout {
            options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
        }
        options = options.application_name("kernelize");
        let host = options.get_host().to_string();
        let label = format!(
            "{host}:{}/{}",
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        let host = if host.starts_with('/') {
            "localhost".to_string()
        } else {
            host
        };
        Ok((options, Server { host, label }))
    }
}

/// PostgreSQL, for [`SqlConnector`].
#[derive(Debug)]
pub struct PostgresDatabase;

/// The `postgres-connector` plugin. Made by [`factory`] and opened by the manager's
/// `initialize`, or opened directly with [`SqlConnector::open`].
pub type PostgresConnector = SqlConnector<PostgresDatabase>;

/// The `postgres-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(PostgresConnector::new()))
}

#[async_trait]
impl SqlDatabase for PostgresDatabase {
    const ID: &'static str = ID;
    const NAME: &'static str = "PostgreSQL";
    const DESCRIPTION: &'static str = "Reads (query, incremental extract), writes (load: append, upsert, replace) and changes (execute) a PostgreSQL database as records.";
    type Settings = PostgresSettings;
    type Backend = PostgresBackend;

    fn declared_permissions() -> Vec<Permission> {
        vec![Permission::Network { host: "*".into() }]
    }

    /// Checks the settings and the network grant before any connection is made.
    async fn open(
        settings: &PostgresSettings,
        grants: &PermissionGuard,
    ) -> Result<PostgresBackend> {
        settings.check()?;
        let (options, server) = settings.connect_options()?;
        server.check(grants)?;
        PostgresBackend::connect(settings, options, server).await
    }

    fn check_call(
        _: &PostgresSettings,
        backend: &PostgresBackend,
        grants: &PermissionGuard,
    ) -> Result<()> {
        backend.server.check(grants)
    }

    fn read_limits(settings: &PostgresSettings) -> ReadLimits {
        ReadLimits {
            max_rows: settings.max_rows,
            max_bytes: settings.max_bytes,
        }
    }

    async fn close(backend: &PostgresBackend) {
        backend.pool.close().await;
    }

    fn is_closed(backend: &PostgresBackend) -> bool {
        backend.pool.is_closed()
    }
}

/// A pool of connections to one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
    server: Server,
}

impl PostgresBackend {
    /// Opens the pool and one connection, so that a wrong server, database or password
    /// fails here.
    async fn connect(
        settings: &PostgresSettings,
        options: PgConnectOptions,
        server: Server,
    ) -> Result<Self> {
        let doing = format!("connect to {}", server.label);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| {
                let err = database_error(&DIALECT, &doing, e).with_context("server", &server.label);
                scrub(err, settings)
            })?;
        Ok(PostgresBackend { pool, server })
    }
}

/// `err` without the URL's password, should a driver message ever quote it.
fn scrub(err: Error, settings: &PostgresSettings) -> Error {
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
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Jsonb,
    Uuid,
    Void,
}

impl ColumnKind {
    /// The kind of a PostgreSQL type, looking through domains; `None` when unreadable.
    fn of(ty: &PgTypeInfo) -> Option<Self> {
        match ty.kind() {
            PgTypeKind::Domain(base) => return Self::of(base),
            PgTypeKind::Enum(_) => return Some(ColumnKind::Text),
            _ => {}
        }
        Some(match ty.name() {
            "BOOL" => ColumnKind::Bool,
            "INT2" => ColumnKind::Int2,
            "INT4" => ColumnKind::Int4,
            "INT8" => ColumnKind::Int8,
            "OID" => ColumnKind::Oid,
            "FLOAT4" => ColumnKind::Float4,
            "FLOAT8" => ColumnKind::Float8,
            "NUMERIC" => ColumnKind::Numeric,
            "TEXT" | "VARCHAR" | "CHAR" | "BPCHAR" | "NAME" | "UNKNOWN" | "citext" | "CITEXT" => {
                ColumnKind::Text
            }
            "BYTEA" => ColumnKind::Bytea,
            "DATE" => ColumnKind::Date,
            "TIMESTAMP" => ColumnKind::Timestamp,
            "TIMESTAMPTZ" => ColumnKind::TimestampTz,
            "JSON" => ColumnKind::Json,
            "JSONB" => ColumnKind::Jsonb,
            "UUID" => ColumnKind::Uuid,
            "VOID" => ColumnKind::Void,
            _ => return None,
        })
    }

    fn declared(self) -> DeclaredType {
        match self {
            ColumnKind::Bool => DeclaredType::Boolean,
            ColumnKind::Int2 | ColumnKind::Int4 | ColumnKind::Int8 | ColumnKind::Oid => {
                DeclaredType::Integer
            }
            ColumnKind::Float4 | ColumnKind::Float8 => DeclaredType::Real,
            ColumnKind::Bytea => DeclaredType::Blob,
            ColumnKind::Date => DeclaredType::Date,
            ColumnKind::Timestamp => DeclaredType::LocalTimestamp,
            ColumnKind::TimestampTz => DeclaredType::Timestamp,
            ColumnKind::Numeric
            | ColumnKind::Text
            | ColumnKind::Json
            | ColumnKind::Jsonb
            | ColumnKind::Uuid
            | ColumnKind::Void => DeclaredType::Text,
        }
    }
}

/// The columns of a prepared statement, refusing the types this connector cannot read.
fn result_columns(
    columns: &[sqlx::postgres::PgColumn],
) -> Result<(Vec<ColumnInfo>, Vec<ColumnKind>)> {
    let mut infos = Vec::with_capacity(columns.len());
    let mut kinds = Vec::with_capacity(columns.len());
    for c in columns {
        let ty = c.type_info();
        let kind = ColumnKind::of(ty).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "column `{}` has PostgreSQL type {}, which the connector cannot read; cast it in the query, such as `{}::text`",
                    c.name(),
                    ty.name(),
                    c.name()
                ),
            )
            .with_context("column", c.name())
            .with_context("type", ty.name())
        })?;
        infos.push(ColumnInfo {
            name: c.name().to_string(),
            declared: kind.declared(),
        });
        kinds.push(kind);
    }
    Ok((infos, kinds))
}

fn decode_row(
    row: &PgRow,
    columns: &[ColumnInfo],
    kinds: &[ColumnKind],
    row_number: usize,
) -> Result<Vec<SqlValue>> {
    let mut values = Vec::with_capacity(kinds.len());
    for (i, (kind, column)) in kinds.iter().zip(columns).enumerate() {
        let decode_error = |e: sqlx::Error| {
            database_error(&DIALECT, "read a value", e)
                .with_context("column", &column.name)
                .with_context("row", row_number)
        };
        let corrupt = |what: String| {
            Error::new(
                ErrorKind::CorruptData,
                format!("a PostgreSQL {what} value does not decode"),
            )
            .with_context("column", &column.name)
            .with_context("row", row_number)
        };
        let raw = row.try_get_raw(i).map_err(decode_error)?;
        if raw.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        let text_format = raw.format() == PgValueFormat::Text;
        let bytes = raw
            .as_bytes()
            .map_err(|e| corrupt(format!("{kind:?} ({e})")))?;
        let text = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|_| corrupt(format!("{kind:?} (not UTF-8)")))
        };
        let value = match kind {
            ColumnKind::Bool => {
                SqlValue::Bool(row.try_get_unchecked::<bool, _>(i).map_err(decode_error)?)
            }
            ColumnKind::Int2 => SqlValue::Int(i64::from(
                row.try_get_unchecked::<i16, _>(i).map_err(decode_error)?,
            )),
            ColumnKind::Int4 => SqlValue::Int(i64::from(
                row.try_get_unchecked::<i32, _>(i).map_err(decode_error)?,
            )),
            ColumnKind::Int8 => {
                SqlValue::Int(row.try_get_unchecked::<i64, _>(i).map_err(decode_error)?)
            }
            ColumnKind::Oid => SqlValue::Int(i64::from(
                row.try_get_unchecked::<sqlx::postgres::types::Oid, _>(i)
                    .map_err(decode_error)?
                    .0,
            )),
            ColumnKind::Float4 => SqlValue::Float(f64::from(
                row.try_get_unchecked::<f32, _>(i).map_err(decode_error)?,
            )),
            ColumnKind::Float8 => {
                SqlValue::Float(row.try_get_unchecked::<f64, _>(i).map_err(decode_error)?)
            }
            ColumnKind::Numeric if text_format => SqlValue::Text(text(bytes)?),
            ColumnKind::Numeric => {
                SqlValue::Text(numeric::decode(bytes).ok_or_else(|| corrupt("numeric".into()))?)
            }
            ColumnKind::Text | ColumnKind::Json => SqlValue::Text(text(bytes)?),
            ColumnKind::Jsonb if text_format => SqlValue::Text(text(bytes)?),
            ColumnKind::Jsonb => match bytes.split_first() {
                Some((1, json)) => SqlValue::Text(text(json)?),
                _ => return Err(corrupt("jsonb".into())),
            },
            ColumnKind::Uuid if text_format => SqlValue::Text(text(bytes)?),
            ColumnKind::Uuid => {
                SqlValue::Text(uuid_text(bytes).ok_or_else(|| corrupt("uuid".into()))?)
            }
            ColumnKind::Bytea => SqlValue::Bytes(
                row.try_get_unchecked::<Vec<u8>, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::Date => SqlValue::Date(
                row.try_get_unchecked::<NaiveDate, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::Timestamp => SqlValue::LocalTimestamp(
                row.try_get_unchecked::<NaiveDateTime, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::TimestampTz => SqlValue::Timestamp(
                row.try_get_unchecked::<DateTime<Utc>, _>(i)
                    .map_err(decode_error)?,
            ),
            ColumnKind::Void => SqlValue::Null,
        };
        values.push(value);
    }
    Ok(values)
}

fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    Some(out)
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// binding values

/// One value, converted to the type PostgreSQL inferred for its slot.
#[derive(Debug, Clone)]
enum PgBind {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Oid(u32),
    Float4(f32),
    Float8(f64),
    /// Text, `json` text, enum labels: the bytes as they are.
    Text(String),
    /// `jsonb`: a version byte, then the text.
    Jsonb(String),
    Bytes(Vec<u8>),
    /// `numeric`, already in PostgreSQL's binary form.
    Numeric(Vec<u8>),
    Uuid([u8; 16]),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
}

/// A bound value with the slot's own type, so the statement PostgreSQL prepared is run as is.
#[derive(Debug, Clone)]
struct PgParam {
    ty: PgTypeInfo,
    value: PgBind,
}

impl Type<Postgres> for PgParam {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }

    fn compatible(_ty: &PgTypeInfo) -> bool {
        true
    }
}

impl Encode<'_, Postgres> for PgParam {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        match &self.value {
            PgBind::Null => Ok(IsNull::Yes),
            PgBind::Bool(v) => <bool as Encode<Postgres>>::encode_by_ref(v, buf),
            PgBind::Int2(v) => <i16 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgBind::Int4(v) => <i32 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgBind::Int8(v) => <i64 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgBind::Oid(v) => {
                buf.extend_from_slice(&v.to_be_bytes());
                Ok(IsNull::No)
            }
            PgBind::Float4(v) => <f32 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgBind::Float8(v) => <f64 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgBind::Text(s) => {
                buf.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            PgBind::Jsonb(s) => {
                buf.push(1);
                buf.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            PgBind::Bytes(b) | PgBind::Numeric(b) => {
                buf.extend_from_slice(b);
                Ok(IsNull::No)
            }
            PgBind::Uuid(b) => {
                buf.extend_from_slice(b);
                Ok(IsNull::No)
            }
            PgBind::Date(d) => <NaiveDate as Encode<Postgres>>::encode_by_ref(d, buf),
            PgBind::Timestamp(t) => <NaiveDateTime as Encode<Postgres>>::encode_by_ref(t, buf),
            PgBind::TimestampTz(t) => <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(t, buf),
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.ty.clone())
    }
}

/// The arguments of a statement whose slots PostgreSQL typed as `types`.
fn arguments(
    values: &[SqlValue],
    types: Option<Either<&[PgTypeInfo], usize>>,
) -> Result<PgArguments> {
    let types: &[PgTypeInfo] = match types {
        Some(Either::Left(types)) => types,
        _ => &[],
    };
    if types.len() != values.len() {
        return Err(Error::new(
            ErrorKind::Unexpected,
            format!(
                "PostgreSQL expects {} values for the statement, but {} were bound",
                types.len(),
                values.len()
            ),
        ));
    }
    let mut args = PgArguments::default();
    for (i, (value, ty)) in values.iter().zip(types).enumerate() {
        let slot = i + 1;
        let converted = convert(value, ty).map_err(|why| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "cannot bind a {} value to ${slot}, which PostgreSQL reads as {}: {why}",
                    value.type_name(),
                    ty.name()
                ),
            )
            .with_context("slot", format!("${slot}"))
            .with_context("type", ty.name())
        })?;
        args.add(PgParam {
            ty: ty.clone(),
            value: converted,
        })
        .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("cannot bind ${slot}: {e}")))?;
    }
    Ok(args)
}

/// `value` as the slot's type `ty`; the reason when it does not convert (never the value).
fn convert(value: &SqlValue, ty: &PgTypeInfo) -> std::result::Result<PgBind, String> {
    if matches!(value, SqlValue::Null) {
        return Ok(PgBind::Null);
    }
    let Some(kind) = ColumnKind::of(ty) else {
        return Err(format!(
            "the connector binds no value of this type; cast the placeholder in the SQL, such as `CAST(:name AS text)::{}`",
            ty.name().to_ascii_lowercase()
        ));
    };
    let out_of_range = |what: &str| format!("out of the range of {what}");
    let not_convertible = || "the value does not convert".to_string();
    Ok(match (kind, value) {
        (_, SqlValue::Null) => PgBind::Null,
        // text-like targets take every value's text
        (ColumnKind::Text | ColumnKind::Json, SqlValue::Bytes(_)) => return Err(not_convertible()),
        (ColumnKind::Text | ColumnKind::Json, v) => PgBind::Text(v.to_text().unwrap_or_default()),
        (ColumnKind::Jsonb, SqlValue::Bytes(_)) => return Err(not_convertible()),
        (ColumnKind::Jsonb, SqlValue::Text(s)) => PgBind::Jsonb(s.clone()),
        (ColumnKind::Jsonb, v @ (SqlValue::Bool(_) | SqlValue::Int(_) | SqlValue::Float(_))) => {
            PgBind::Jsonb(v.to_text().unwrap_or_default())
        }
        (ColumnKind::Jsonb, v) => {
            PgBind::Jsonb(serde_json::Value::String(v.to_text().unwrap_or_default()).to_string())
        }
        (ColumnKind::Bool, SqlValue::Bool(b)) => PgBind::Bool(*b),
        (ColumnKind::Bool, SqlValue::Text(s)) => {
            PgBind::Bool(match s.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "yes" | "y" | "on" | "1" => true,
                "f" | "false" | "no" | "n" | "off" | "0" => false,
                _ => return Err("the text is not a boolean".into()),
            })
        }
        (ColumnKind::Int2 | ColumnKind::Int4 | ColumnKind::Int8 | ColumnKind::Oid, v) => {
            let i = match v {
                SqlValue::Int(i) => *i,
                SqlValue::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => *f as i64,
                SqlValue::Text(s) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| "the text is not an integer".to_string())?,
                _ => return Err(not_convertible()),
            };
            match kind {
                ColumnKind::Int2 => {
                    PgBind::Int2(i16::try_from(i).map_err(|_| out_of_range("int2"))?)
                }
                ColumnKind::Int4 => {
                    PgBind::Int4(i32::try_from(i).map_err(|_| out_of_range("int4"))?)
                }
                ColumnKind::Oid => PgBind::Oid(u32::try_from(i).map_err(|_| out_of_range("oid"))?),
                _ => PgBind::Int8(i),
            }
        }
        (ColumnKind::Float4 | ColumnKind::Float8, v) => {
            let f = match v {
                SqlValue::Int(i) => *i as f64,
                SqlValue::Float(f) => *f,
                SqlValue::Text(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| "the text is not a number".to_string())?,
                _ => return Err(not_convertible()),
            };
            if kind == ColumnKind::Float4 {
                PgBind::Float4(f as f32)
            } else {
                PgBind::Float8(f)
            }
        }
        (ColumnKind::Numeric, v) => {
            let text = match v {
                SqlValue::Int(i) => i.to_string(),
                SqlValue::Float(f) if f.is_nan() => "NaN".to_string(),
                SqlValue::Float(f) if f.is_infinite() => {
                    if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
                }
                SqlValue::Float(f) => f.to_string(),
                SqlValue::Text(s) => s.trim().to_string(),
                _ => return Err(not_convertible()),
            };
            PgBind::Numeric(
                numeric::encode(&text)
                    .ok_or_else(|| "the text is not a decimal number".to_string())?,
            )
        }
        (ColumnKind::Bytea, SqlValue::Bytes(b)) => PgBind::Bytes(b.clone()),
        (ColumnKind::Bytea, SqlValue::Text(s)) => PgBind::Bytes(s.as_bytes().to_vec()),
        (ColumnKind::Uuid, SqlValue::Text(s)) => {
            PgBind::Uuid(uuid_bytes(s.trim()).ok_or_else(|| "the text is not a UUID".to_string())?)
        }
        (ColumnKind::Uuid, SqlValue::Bytes(b)) => PgBind::Uuid(
            <[u8; 16]>::try_from(b.as_slice()).map_err(|_| "a UUID has 16 bytes".to_string())?,
        ),
        (ColumnKind::Date, SqlValue::Date(d)) => PgBind::Date(*d),
        (ColumnKind::Date, SqlValue::Text(s)) => PgBind::Date(
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|_| "the text is not a date (YYYY-MM-DD)".to_string())?,
        ),
        (ColumnKind::Timestamp | ColumnKind::TimestampTz, v) => {
            let instant: Either<NaiveDateTime, DateTime<Utc>> = match v {
                SqlValue::Timestamp(t) => Either::Right(*t),
                SqlValue::LocalTimestamp(t) => Either::Left(*t),
                SqlValue::Date(d) => Either::Left(d.and_hms_opt(0, 0, 0).unwrap_or_default()),
                SqlValue::Text(s) => parse_timestamp(s.trim()).ok_or_else(|| {
                    "the text is not a timestamp (RFC 3339, such as 2026-11-27T03:25:00Z)"
                        .to_string()
                })?,
                _ => return Err(not_convertible()),
            };
            match (kind, instant) {
                (ColumnKind::Timestamp, Either::Left(t)) => PgBind::Timestamp(t),
                (ColumnKind::Timestamp, Either::Right(t)) => PgBind::Timestamp(t.naive_utc()),
                (_, Either::Left(t)) => PgBind::TimestampTz(t.and_utc()),
                (_, Either::Right(t)) => PgBind::TimestampTz(t),
            }
        }
        (ColumnKind::Void, _) => return Err(not_convertible()),
        _ => return Err(not_convertible()),
    })
}

/// An instant with an offset (RFC 3339, `T` or a space between date and time), or a
/// date and time without one.
fn parse_timestamp(text: &str) -> Option<Either<NaiveDateTime, DateTime<Utc>>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(Either::Right(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(Either::Right(t.with_timezone(&Utc)));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Either::Left(t));
        }
    }
    None
}

/// PostgreSQL's binary `numeric`: base-10000 digits with a weight, a sign and a display scale.
mod numeric {
    const POSITIVE: u16 = 0x0000;
    const NEGATIVE: u16 = 0x4000;
    const NAN: u16 = 0xC000;
    const PLUS_INFINITY: u16 = 0xD000;
    const MINUS_INFINITY: u16 = 0xF000;

    fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
    }

    /// The decimal text of a binary `numeric` (`-12.50`, `NaN`, `Infinity`).
    pub(super) fn decode(bytes: &[u8]) -> Option<String> {
        let ndigits = usize::from(read_u16(bytes, 0)?);
        let weight = i32::from(read_u16(bytes, 2)? as i16);
        let sign = read_u16(bytes, 4)?;
        let dscale = usize::from(read_u16(bytes, 6)?);
        match sign {
            NAN => return Some("NaN".into()),
            PLUS_INFINITY => return Some("Infinity".into()),
            MINUS_INFINITY => return Some("-Infinity".into()),
            POSITIVE | NEGATIVE => {}
            _ => return None,
        }
        let digits: Vec<u16> = (0..ndigits)
            .map(|i| read_u16(bytes, 8 + 2 * i))
            .collect::<Option<_>>()?;
        if digits.iter().any(|d| *d >= 10000) {
            return None;
        }
        let digit = |index: i32| -> u16 {
            usize::try_from(index)
                .ok()
                .and_then(|i| digits.get(i).copied())
                .unwrap_or(0)
        };
        let mut out = String::new();
        if sign == NEGATIVE && !digits.is_empty() {
            out.push('-');
        }
        if weight < 0 {
            out.push('0');
        } else {
            out.push_str(&digit(0).to_string());
            for i in 1..=weight {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
        if dscale > 0 {
            out.push('.');
            let mut fraction = String::new();
            let mut index = weight + 1;
            while fraction.len() < dscale {
                fraction.push_str(&format!("{:04}", digit(index)));
                index += 1;
            }
            fraction.truncate(dscale);
            out.push_str(&fraction);
        }
        Some(out)
    }

    /// The binary `numeric` of decimal text (`-12.50`, `1e3`, `NaN`, `Infinity`).
    pub(super) fn encode(text: &str) -> Option<Vec<u8>> {
        let header = |ndigits: u16, weight: i16, sign: u16, dscale: u16| {
            let mut out = Vec::with_capacity(8 + 2 * usize::from(ndigits));
            out.extend_from_slice(&ndigits.to_be_bytes());
            out.extend_from_slice(&weight.to_be_bytes());
            out.extend_from_slice(&sign.to_be_bytes());
            out.extend_from_slice(&dscale.to_be_bytes());
            out
        };
        match text.to_ascii_lowercase().as_str() {
            "nan" => return Some(header(0, 0, NAN, 0)),
            "infinity" | "+infinity" | "inf" => return Some(header(0, 0, PLUS_INFINITY, 0)),
            "-infinity" | "-inf" => return Some(header(0, 0, MINUS_INFINITY, 0)),
            _ => {}
        }
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || exponent.abs() > 1000
        {
            return None;
        }
        // Shift the decimal point by the exponent.
        let mut all: String = format!("{int_part}{frac_part}");
        let mut point = i32::try_from(int_part.len()).ok()? + exponent;
        if point < 0 {
            all = format!("{}{all}", "0".repeat(usize::try_from(-point).ok()?));
            point = 0;
        }
        let point = usize::try_from(point).ok()?;
        if point > all.len() {
            all.push_str(&"0".repeat(point - all.len()));
        }
        let (int_digits, frac_digits) = all.split_at(point);
        let dscale = u16::try_from(frac_digits.len()).ok()?;
        let int_digits = int_digits.trim_start_matches('0');
        // Base-10000 groups, aligned on the decimal point.
        let int_pad = (4 - int_digits.len() % 4) % 4;
        let int_text = format!("{}{int_digits}", "0".repeat(int_pad));
        let frac_pad = (4 - frac_digits.len() % 4) % 4;
        let frac_text = format!("{frac_digits}{}", "0".repeat(frac_pad));
        let group = |s: &str| s.parse::<u16>().ok();
        let mut groups: Vec<u16> = Vec::new();
        for chunk in int_text
            .as_bytes()
            .chunks(4)
            .chain(frac_text.as_bytes().chunks(4))
        {
            groups.push(group(std::str::from_utf8(chunk).ok()?)?);
        }
        let mut weight = i32::try_from(int_text.len() / 4).ok()? - 1;
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= i32::try_from(leading).ok()?;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            return Some(header(0, 0, POSITIVE, dscale));
        }
        let sign = if negative { NEGATIVE } else { POSITIVE };
        let mut out = header(
            u16::try_from(groups.len()).ok()?,
            i16::try_from(weight).ok()?,
            sign,
            dscale,
        );
        for g in groups {
            out.extend_from_slice(&g.to_be_bytes());
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn decimal_text_round_trips() {
            for (input, expected) in [
                ("0", "0"),
                ("12.50", "12.50"),
                ("-0.001", "-0.001"),
                ("123456789.000000001", "123456789.000000001"),
                ("10000", "10000"),
                ("1e3", "1000"),
                ("1.5e-3", "0.0015"),
                ("NaN", "NaN"),
                ("-Infinity", "-Infinity"),
                ("00042.10", "42.10"),
            ] {
                let bytes = encode(input).unwrap();
                assert_eq!(decode(&bytes).unwrap(), expected, "{input}");
            }
        }

        #[test]
        fn bad_text_is_refused() {
            for input in ["", "-", "1.2.3", "12a", "1e", "."] {
                assert!(encode(input).is_none(), "{input}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// the backend

/// Prepares `sql` on `conn` (PostgreSQL infers the type of each slot), then binds `values`
/// as those types.
async fn prepare(
    conn: &mut PgConnection,
    sql: &str,
    values: &[SqlValue],
) -> Result<(sqlx::postgres::PgStatement, PgArguments)> {
    let statement = conn
        .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
        .await
        .map_err(|e| database_error(&DIALECT, "prepare the statement", e))?;
    let args = arguments(values, statement.parameters())?;
    Ok((statement, args))
}

#[async_trait]
impl SqlBackend for PostgresBackend {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    async fn describe(&self, _ctx: &ActionContext, query: &BoundQuery) -> Result<Vec<ColumnInfo>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| database_error(&DIALECT, "get a connection", e))?;
        let (statement, _) = prepare(&mut conn, &query.sql, &query.values).await?;
        let (columns, _) = result_columns(statement.columns())?;
        Ok(columns)
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
        let (statement, args) = prepare(&mut conn, &query.sql, &query.values).await?;
        let (columns, kinds) = result_columns(statement.columns())?;
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
            .map_err(|e| database_error(&DIALECT, "get a connection", e))?;
        let (_, args) = prepare(&mut conn, &query.sql, &query.values).await?;
        let done = sqlx::query_with(AssertSqlSafe(query.sql.clone()), args)
            .execute(&mut *conn)
            .await
            .map_err(|e| database_error(&DIALECT, "run the statement", e))?;
        Ok(done.rows_affected())
    }

    async fn begin_load(&self) -> Result<Box<dyn LoadTransaction>> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(|e| database_error(&DIALECT, "begin a write transaction", e))?;
        Ok(Box::new(PgLoadTransaction { tx }))
    }

    fn supports_copy(&self) -> bool {
        true
    }
}

/// A load's transaction on one PostgreSQL connection; rolled back when dropped uncommitted.
struct PgLoadTransaction {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl LoadTransaction for PgLoadTransaction {
    async fn table_columns(&mut self, table: &TableName) -> Result<Option<Vec<String>>> {
        // `to_regclass` follows the search path (temporary tables included) and reads the
        // quoted name exactly as the load's statements will.
        let name = SqlValue::Text(table.quoted(&DIALECT));
        let sql = "SELECT to_regclass($1)::oid";
        let (_, args) = prepare(&mut self.tx, sql, std::slice::from_ref(&name)).await?;
        let oid: Option<sqlx::postgres::types::Oid> = sqlx::query_scalar_with(sql, args)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| database_error(&DIALECT, "look the table up", e))?;
        let Some(oid) = oid else {
            return Ok(None);
        };
        let sql = "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum";
        let (_, args) = prepare(&mut self.tx, sql, &[SqlValue::Int(i64::from(oid.0))]).await?;
        let names: Vec<String> = sqlx::query_scalar_with(sql, args)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(|e| database_error(&DIALECT, "read the table's columns", e))?;
        Ok(Some(names))
    }

    async fn execute(&mut self, sql: &str, values: Vec<SqlValue>) -> Result<u64> {
        let (_, args) = prepare(&mut self.tx, sql, &values).await?;
        let done = sqlx::query_with(AssertSqlSafe(sql.to_string()), args)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| database_error(&DIALECT, "write the table", e))?;
        Ok(done.rows_affected())
    }

    async fn copy_rows(
        &mut self,
        ctx: &ActionContext,
        plan: &LoadPlan,
        batches: &[RecordBatch],
        first_row: usize,
    ) -> Result<u64> {
        super::postgres_copy::copy_rows(&mut self.tx, ctx, plan, batches, first_row).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx
            .commit()
            .await
            .map_err(|e| database_error(&DIALECT, "commit the load", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_password() {
        let settings = PostgresSettings::new("postgres://app:hunter2@db.internal:5433/sales");
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("app:***@db.internal:5433/sales"), "{text}");
    }

    #[test]
    fn the_server_is_named_without_the_password() {
        let settings = PostgresSettings::new("postgres://app:hunter2@db.internal:5433/sales");
        let (_, server) = settings.connect_options().unwrap();
        assert_eq!(server.host, "db.internal");
        assert_eq!(server.label, "db.internal:5433/sales");
    }

    #[test]
    fn uuids_convert_both_ways() {
        let text = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let bytes = uuid_bytes(text).unwrap();
        assert_eq!(uuid_text(&bytes).unwrap(), text);
        assert!(uuid_bytes("not-a-uuid").is_none());
    }

    #[test]
    fn timestamps_parse_with_and_without_offsets() {
        assert!(matches!(
            parse_timestamp("2026-11-27T03:25:00Z"),
            Some(Either::Right(_))
        ));
        assert!(matches!(
            parse_timestamp("2026-11-27 03:25:00.5+01:00"),
            Some(Either::Right(_))
        ));
        assert!(matches!(
            parse_timestamp("2026-11-27T03:25:00"),
            Some(Either::Left(_))
        ));
        assert!(parse_timestamp("yesterday").is_none());
    }
}
