//! SQL databases as connectors: what every SQL connector shares, and SQLite, PostgreSQL and
//! MySQL (MariaDB) on it.
//!
//! Four actions, the same for every database ([`actions`]):
//!
//! - `query` — `{sql, params?, max_rows?, max_bytes?, batch_rows?}`: one statement. A
//!   statement with result columns (`SELECT`, `PRAGMA ...`, `INSERT ... RETURNING`) returns
//!   its rows as records (Arrow); any other returns `{"rows_affected": N}` as JSON. The rule
//!   is decided from the prepared statement, before it runs.
//! - `extract` — `{query, params?, watermark?, max_rows?, max_bytes?, batch_rows?}`:
//!   incremental reads. The query usually filters on the run variable `:last_sync`. It must
//!   return rows (a statement without result columns is refused before it runs). With
//!   `watermark`, the database sorts the rows by that column (`ORDER BY`, NULLs first) and
//!   the schema metadata holds `kernelize.watermark.column` and `kernelize.watermark.max`,
//!   the column's greatest value as text (absent when there are no rows or only NULLs); see
//!   [`result_set`].
//! - `load` — records in; `{table, mode: append|upsert|replace, key?, create?,
//!   add_columns?, method: insert|copy}`: one transaction of batched multi-row `INSERT`s (or
//!   PostgreSQL's `COPY`; with `add_columns`, columns the table lacks are added as nullable
//!   first); returns `{"rows_written", "table", "created"}`; see [`load`].
//! - `execute` — `{sql, params?}`: one statement for its effect (DDL, DML); returns
//!   `{"rows_affected": N}`.
//!
//! `:name` placeholders are bound as values, never spliced: the value comes from the call
//! config's `params`, then from the call's variables ([`kernelize_core::Call::vars`]: a
//! workflow run gives `last_sync`, `run_id`, `workflow` and its parameters). An unbound name
//! is an error naming it. JSON null, booleans, numbers and strings bind as themselves;
//! arrays and objects as their JSON text. See [`placeholders`] for what the scanner skips.
//!
//! ## Reading: streamed, bounded
//!
//! Rows are read with the driver's row stream and turned into Arrow record batches of at
//! most `batch_rows` rows (10,000 unless a call says otherwise) as they arrive
//! ([`result_set::RowBatcher`]); no more than one batch of rows exists as decoded values.
//! What a call returns whole is bounded: more than `max_rows` rows or `max_bytes` bytes of
//! values (the plugin settings, which a call may lower) is an error saying how to narrow
//! the query, never an unbounded allocation.
//!
//! For results larger than memory, [`connector::SqlConnector::extract_batches`] (Rust)
//! runs an `extract` as a stream of record batches with backpressure: the caller handles a
//! batch, then the next is read, and with a watermark each batch says how far it got. It is
//! the Rust API rather than an event source: an extract is finite and has nothing to
//! acknowledge, so pipelines use the `extract` action (with `batch_rows`) in a workflow step,
//! and Rust code that must not hold a whole table uses the stream.
//!
//! ## Writing events: the SQL event sink
//!
//! Every SQL connector is an event sink for pipelines ([`sink`]; the options are
//! [`sink::SqlSinkOptions`]): each event's JSON object becomes a row, a batch is written in
//! one transaction, and when the database refuses some rows the batch is split until only
//! those are reported failed.
//!
//! ## Layout
//!
//! | module           | database-neutral part                                          |
//! |------------------|----------------------------------------------------------------|
//! | [`dialect`]      | what differs between databases, as one constant per database   |
//! | [`placeholders`] | finding `:name` in SQL under the dialect's quoting rules       |
//! | [`bind`]         | giving each placeholder its value from `params` and variables  |
//! | [`value`]        | [`value::SqlValue`], the one value type between Arrow and a driver |
//! | [`result_set`]   | rows → bounded Arrow batches; column types; watermark          |
//! | [`load`]         | planning a load: `CREATE TABLE`, batched `INSERT`, upsert      |
//! | [`error`]        | sqlx errors → Kernelize errors (kind, temporary, code)         |
//! | [`backend`]      | the traits a database implements                               |
//! | [`actions`]      | `query`, `extract`, `load`, `execute`: configs, outputs, implementation; the batch stream |
//! | [`connector`]    | the generic plugin ([`connector::SqlConnector`]) over a [`connector::SqlDatabase`] |
//! | [`sink`]         | the event sink: events → rows, failing rows found by halving    |
//! | [`sqlite`]       | SQLite: dialect, settings, pool, row decoding, the plugin      |
//! | [`postgres`]     | PostgreSQL: dialect, settings, pool, typed binding, row decoding, the plugin |
//! | [`postgres_copy`]| PostgreSQL: `COPY ... FROM STDIN` in text format for loads      |
//! | [`mysql`]        | MySQL and MariaDB: dialect, settings, pool, row decoding, DDL outside the load's transaction, the plugin |
//!
//! ## How a database plugs in
//!
//! Each is one more file beside `sqlite.rs`, `postgres.rs` and `mysql.rs`, and one cargo
//! feature:
//!
//! 1. `Cargo.toml`: `name = ["_sql", "sqlx/<driver>"]`; `_sql` already brings sqlx, chrono,
//!    arrow-cast and tokio-util.
//! 2. `src/sql/<name>.rs`, shaped as `mysql.rs`:
//!    - a `DIALECT` constant ([`dialect::Dialect`]): placeholder style, quoting and
//!      comments, its foreign markers, column types for created tables (and for key
//!      columns), how it upserts ([`dialect::UpsertSyntax`]), whether its DDL is
//!      transactional, its bound-value and statement-size limits, error codes;
//!    - a [`backend::SqlBackend`] over its pool: describe and run a statement (decoding each
//!      column into a [`value::SqlValue`] and handing rows to the
//!      [`backend::RowConsumer`]), begin a [`backend::LoadTransaction`] that lists a
//!      table's columns;
//!    - settings (`url`, pool limits, `max_rows`, `max_bytes`) and a
//!      [`connector::SqlDatabase`] that opens them after checking the grants.
//! 3. `lib.rs` `factories()` and the facade register its factory under its feature.
//!
//! `tests/sqlite.rs`, `tests/postgres.rs` and `tests/mysql.rs` are written against the
//! actions' behaviour; the next connector runs the same cases against its service.

pub mod actions;
pub mod backend;
pub mod bind;
pub mod connector;
pub mod dialect;
pub mod error;
pub mod load;
#[cfg(feature = "mysql")]
pub mod mysql;
pub mod placeholders;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub mod postgres_copy;
pub mod result_set;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server;
pub mod sink;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod value;
