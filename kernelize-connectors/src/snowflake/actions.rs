//! The `snowflake-connector`'s typed actions: their names, per-call configs and outputs.

use std::path::PathBuf;
use std::time::Duration;

use kernelize_core::{Action, Payload, Permission, Records};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::client::CancelStatus;
use crate::saas::network;

/// The largest `batch_size` of `load`.
pub const MAX_BATCH_SIZE: usize = 16_384;

/// The history table `migrate` keeps when none is named.
pub const DEFAULT_HISTORY_TABLE: &str = "KERNELIZE_SCHEMA_HISTORY";

fn default_batch_size() -> usize {
    1000
}

fn default_history_table() -> String {
    DEFAULT_HISTORY_TABLE.to_string()
}

/// Config of `query`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// The SQL (`sql` is accepted too). `:name` placeholders are bound from `params` (an
    /// object), then from the call's variables; `?` markers from `params` as an array.
    #[serde(alias = "sql")]
    pub statement: String,
    /// Values of the placeholders: an object for `:name`, an array for `?`.
    #[serde(default)]
    pub params: Value,
    /// How many `;`-separated statements `statement` holds (0: any number). Without it,
    /// Snowflake runs exactly one.
    #[serde(default)]
    pub multi_statement_count: Option<u32>,
    /// Submit and return the statement handle at once, without waiting for the result
    /// (read it later with `result`, stop it with `cancel`).
    #[serde(default, rename = "async")]
    pub run_async: bool,
    /// Session parameters for the statement (`timezone`, `query_tag`, ...).
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The most rows to return; the plugin's `max_rows` when absent, and never more.
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// The warehouse, instead of the plugin's.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// The database, instead of the plugin's.
    #[serde(default)]
    pub database: Option<String>,
    /// The schema, instead of the plugin's.
    #[serde(default)]
    pub schema: Option<String>,
    /// The role, instead of the plugin's.
    #[serde(default)]
    pub role: Option<String>,
    /// How long Snowflake may run the statement (`"10m"`), instead of the plugin's.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

/// Config of `extract`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// A query returning rows, such as `SELECT * FROM sales WHERE updated_at > :last_sync`.
    /// `:name` placeholders are bound from `params`, then from the call's variables;
    /// `:last_sync` without a value is `1970-01-01T00:00:00Z`.
    pub query: String,
    /// Values of placeholders; they win over the call's variables of the same name.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The most rows to return; the plugin's `max_rows` when absent, and never more.
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// The warehouse, instead of the plugin's.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// The database, instead of the plugin's.
    #[serde(default)]
    pub database: Option<String>,
    /// The schema, instead of the plugin's.
    #[serde(default)]
    pub schema: Option<String>,
    /// The role, instead of the plugin's.
    #[serde(default)]
    pub role: Option<String>,
    /// How long Snowflake may run the query (`"10m"`), instead of the plugin's.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

/// How `load` binds a batch of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadBinding {
    /// `INSERT INTO t (a, b) VALUES (?, ?)` with one binding per column whose value is the
    /// array of that column's values (array binding: one statement inserts the batch).
    #[default]
    Array,
    /// `INSERT INTO t (a, b) VALUES (?, ?), (?, ?), ...` with one binding per cell.
    Rows,
}

/// Config of `load`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// The table (`name` or `db.schema.name`); it must exist. Plain names are left
    /// unquoted (Snowflake upper-cases them), others are double-quoted.
    pub table: String,
    /// Rows per `INSERT` statement (1,000; at most 16,384).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How rows are bound.
    #[serde(default)]
    pub binding: LoadBinding,
    /// The warehouse, instead of the plugin's.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// The database, instead of the plugin's.
    #[serde(default)]
    pub database: Option<String>,
    /// The schema, instead of the plugin's.
    #[serde(default)]
    pub schema: Option<String>,
    /// The role, instead of the plugin's.
    #[serde(default)]
    pub role: Option<String>,
    /// How long Snowflake may run each `INSERT` (`"10m"`), instead of the plugin's.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

/// What `load` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoadSummary {
    /// The table, as given.
    pub table: String,
    /// Rows inserted, as Snowflake counts them (`stats.numRowsInserted`).
    pub rows_inserted: u64,
    /// `INSERT` statements run.
    pub batches: usize,
    /// Their statement handles, in order.
    pub statement_handles: Vec<String>,
}

/// One migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Its version: numbers separated by `.` or `_` (`1`, `1.1`, `2024_05_01`).
    pub version: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Its SQL: one statement, or several separated by `;`.
    pub sql: String,
}

/// Config of `migrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateConfig {
    /// The migrations, in any order (they run by version).
    #[serde(default)]
    pub migrations: Vec<Migration>,
    /// A directory of `V<version>__<description>.sql` files, read besides `migrations`.
    /// It needs a `file-read` grant on it, which the plugin cannot declare yet (see the
    /// module docs): through the plugin, list the migrations instead.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub directory: Option<PathBuf>,
    /// The history table (`KERNELIZE_SCHEMA_HISTORY`), created when missing.
    #[serde(default = "default_history_table")]
    pub history_table: String,
    /// The warehouse, instead of the plugin's.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// The database, instead of the plugin's.
    #[serde(default)]
    pub database: Option<String>,
    /// The schema, instead of the plugin's.
    #[serde(default)]
    pub schema: Option<String>,
    /// The role, instead of the plugin's.
    #[serde(default)]
    pub role: Option<String>,
}

/// One migration `migrate` applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AppliedMigration {
    /// Its version.
    pub version: String,
    /// Its description.
    pub description: String,
    /// The SHA-256 (hex) of its SQL, as recorded.
    pub checksum: String,
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MigrateSummary {
    /// The history table.
    pub history_table: String,
    /// The migrations applied by this call, in order.
    pub applied: Vec<AppliedMigration>,
    /// The versions that were already applied (and unchanged).
    pub already_applied: Vec<String>,
}

/// Config of `cancel` and `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandleConfig {
    /// The statement handle (from `query` with `async: true`, or Snowflake's query history).
    pub statement_handle: String,
    /// (`result` only) the most rows to return; the plugin's `max_rows` when absent.
    #[serde(default)]
    pub max_rows: Option<usize>,
}

/// `query`: runs SQL.
#[derive(Debug)]
pub struct Query;

impl Action for Query {
    const NAME: &'static str = "query";
    const DESCRIPTION: &'static str = "Run SQL through the SQL API (202 polling, every partition) with bound parameters: records for one statement, {statements: [...]} for several, {statement_handle} with async.";
    type Config = QueryConfig;
    type Input = Payload;
    type Output = Payload;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `extract`: an incremental read.
#[derive(Debug)]
pub struct Extract;

impl Action for Extract {
    const NAME: &'static str = "extract";
    const DESCRIPTION: &'static str = "Read rows as records with :name placeholders bound (:last_sync from the run, the epoch on the first run).";
    type Config = ExtractConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `load`: batched inserts.
#[derive(Debug)]
pub struct Load;

impl Action for Load {
    const NAME: &'static str = "load";
    const DESCRIPTION: &'static str = "Insert the input records (or JSON rows) into a table in batches of batch_size rows with array binding; returns rows inserted.";
    type Config = LoadConfig;
    type Input = Records;
    type Output = LoadSummary;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `migrate`: versioned DDL migrations.
#[derive(Debug)]
pub struct Migrate;

impl Action for Migrate {
    const NAME: &'static str = "migrate";
    const DESCRIPTION: &'static str = "Apply pending versioned migrations in order, recorded in a history table; refuses changed or out-of-order migrations.";
    type Config = MigrateConfig;
    type Input = Payload;
    type Output = MigrateSummary;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `cancel`: stops a running statement.
#[derive(Debug)]
pub struct Cancel;

impl Action for Cancel {
    const NAME: &'static str = "cancel";
    const DESCRIPTION: &'static str = "Cancel a running statement by its handle.";
    type Config = HandleConfig;
    type Input = Payload;
    type Output = CancelStatus;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `result`: the result of a statement submitted earlier.
#[derive(Debug)]
pub struct FetchResult;

impl Action for FetchResult {
    const NAME: &'static str = "result";
    const DESCRIPTION: &'static str =
        "Wait for a statement submitted earlier (query with async) and return its rows as records.";
    type Config = HandleConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}
