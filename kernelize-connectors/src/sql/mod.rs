//! SQL databases as connectors: what every SQL connector shares, and SQLite.
//!
//! Three actions, the same for every database ([`actions`]):
//!
//! - `query` — `{sql, params?, max_rows?}`: one statement. A statement with result columns
//!   (`SELECT`, `PRAGMA ...`, `INSERT ... RETURNING`) returns its rows as records (Arrow);
//!   any other returns `{"rows_affected": N}` as JSON. The rule is decided from the prepared
//!   statement, before it runs.
//! - `extract` — `{query, params?, watermark?, max_rows?}`: incremental reads. The query
//!   usually filters on the run variable `:last_sync`. It must return rows (a statement
//!   without result columns is refused before it runs). With `watermark`, the records come
//!   sorted by that column and the schema metadata holds `kernelize.watermark.column` and
//!   `kernelize.watermark.max`, the column's greatest value as text (absent when there are
//!   no rows or only NULLs); see [`result_set`].
//! - `load` — records in; `{table, mode: append|upsert|replace, key?, create?}`: one
//!   transaction of batched multi-row `INSERT`s; returns `{"rows_written", "table",
//!   "created"}`; see [`load`].
//!
//! `:name` placeholders are bound as values, never spliced: the value comes from the call
//! config's `params`, then from the call's variables ([`kernelize_core::Call::vars`]: a
//! workflow run gives `last_sync`, `run_id`, `workflow` and its parameters). An unbound name
//! is an error naming it. JSON null, booleans, numbers and strings bind as themselves;
//! arrays and objects as their JSON text. See [`placeholders`] for what the scanner skips.
//!
//! Rows read are bounded: more than `max_rows` (the plugin setting, which a call may lower)
//! is an error, never an unbounded allocation.
//!
//! ## Layout
//!
//! | module           | database-neutral part                                          |
//! |------------------|----------------------------------------------------------------|
//! | [`dialect`]      | what differs between databases, as one constant per database   |
//! | [`placeholders`] | finding `:name` in SQL under the dialect's quoting rules       |
//! | [`bind`]         | giving each placeholder its value from `params` and variables  |
//! | [`value`]        | [`value::SqlValue`], the one value type between Arrow and a driver |
//! | [`result_set`]   | bounded rows → Arrow records; watermark sort and maximum       |
//! | [`load`]         | planning a load: `CREATE TABLE`, batched `INSERT`, upsert      |
//! | [`error`]        | sqlx errors → Kernelize errors (kind, temporary, code)         |
//! | [`backend`]      | the two traits a database implements                           |
//! | [`actions`]      | `query`, `extract`, `load`: configs, outputs, implementation   |
//! | [`sqlite`]       | SQLite: dialect, settings, pool, row decoding, the plugin      |
//!
//! ## How PostgreSQL and MySQL plug in
//!
//! Each is one more file beside `sqlite.rs` and one cargo feature; nothing above changes:
//!
//! 1. `Cargo.toml`: `postgres = ["_sql", "sqlx/postgres"]` (or `mysql = ["_sql",
//!    "sqlx/mysql"]`); `_sql` already brings sqlx, chrono and arrow-cast.
//! 2. `src/sql/postgres.rs`:
//!    - a `DIALECT` constant: `$1` numbered slots (`PlaceholderStyle::Numbered('$')`),
//!      lexical rules with dollar-quoted strings and nested comments but no `[..]`
//!      identifiers (they are array subscripts there), `$` as its own marker, `"` quoting
//!      case-sensitive identifiers, 65535 bound values, `BIGINT`/`DOUBLE PRECISION`/
//!      `TIMESTAMPTZ`/`DATE`/`BYTEA` column types, and SQLSTATE classes for errors
//!      (`40001`/`40P01` temporary, `28xxx` permission denied). MySQL: positional `?`
//!      (`PlaceholderStyle::Positional`), backticks, backslash escapes and `#` comments,
//!      `?` as its marker; its upsert is `ON DUPLICATE KEY UPDATE`, which needs one more
//!      dialect field read by [`load::LoadPlan::insert_sql`];
//!    - an [`backend::SqlBackend`] over `PgPool`: prepare, decode each column into a
//!      [`value::SqlValue`] (with native timestamps, dates and booleans), read
//!      `information_schema.columns` for [`backend::LoadTransaction::table_columns`];
//!    - settings (`url` as a `${secret:..}`, pool size, TLS) and a plugin that declares
//!      `Permission::Network` for its host instead of file grants, and whose three
//!      `Handler`s forward to [`actions::query`], [`actions::extract`] and
//!      [`actions::load`], as SQLite's do.
//! 3. `lib.rs` `factories()` and the facade register its factory under its feature.
//!
//! The tests of `tests/sqlite.rs` are written against the actions' behaviour; a later
//! connector runs the same cases against its service.

pub mod actions;
pub mod backend;
pub mod bind;
pub mod dialect;
pub mod error;
pub mod load;
pub mod placeholders;
pub mod result_set;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod value;
