//! SQL databases as connectors: what every SQL connector shares, SQLite and PostgreSQL.
//!
//! Four actions, the same for every database ([`actions`]):
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
//! - `load` — records in; `{table, mode: append|upsert|replace, key?, create?,
//!   add_columns?}`: one transaction of batched multi-row `INSERT`s (with `add_columns`,
//!   columns the table lacks are added as nullable first); returns `{"rows_written",
//!   "table", "created"}`; see [`load`].
//! - `execute` — `{sql, params?}`: one statement for its effect (DDL, DML); returns
//!   `{"rows_affected": N}`.
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
//! | [`actions`]      | `query`, `extract`, `load`, `execute`: configs, outputs, implementation |
//! | [`sqlite`]       | SQLite: dialect, settings, pool, row decoding, the plugin      |
//! | [`postgres`]     | PostgreSQL: dialect, settings, pool, typed binding, row decoding, the plugin |
//!
//! ## How a database plugs in (MySQL next)
//!
//! Each is one more file beside `sqlite.rs` and `postgres.rs` and one cargo feature:
//!
//! 1. `Cargo.toml`: `mysql = ["_sql", "sqlx/mysql"]`; `_sql` already brings sqlx, chrono
//!    and arrow-cast.
//! 2. `src/sql/mysql.rs`, shaped as `postgres.rs`:
//!    - a `DIALECT` constant: positional `?` (`PlaceholderStyle::Positional`), backticks,
//!      backslash escapes and `#` comments, `?` as its marker; its upsert is `ON DUPLICATE
//!      KEY UPDATE`, which needs one more dialect field read by
//!      [`load::LoadPlan::insert_sql`];
//!    - a [`backend::SqlBackend`] over its pool: prepare, decode each column into a
//!      [`value::SqlValue`], list a table's columns for
//!      [`backend::LoadTransaction::table_columns`];
//!    - settings (`url`, pool limits) and a plugin that declares `Permission::Network` for
//!      its host, and whose four `Handler`s forward to [`actions::query`],
//!      [`actions::extract`], [`actions::load`] and [`actions::execute`].
//! 3. `lib.rs` `factories()` and the facade register its factory under its feature.
//!
//! `tests/sqlite.rs` and `tests/postgres.rs` are written against the actions' behaviour;
//! the next connector runs the same cases against its service.

pub mod actions;
pub mod backend;
pub mod bind;
pub mod connector;
pub mod dialect;
pub mod error;
pub mod load;
pub mod placeholders;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod result_set;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod value;
