//! The `bigquery-connector`'s typed actions: `query`, `insert`, `schema` and `dry_run`,
//! their per-call configs, outputs and handlers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, Handler};
use kernelize_core::{Action, Error, ErrorKind, Payload, Permission, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::BigQueryConnector;
use super::client::{
    DatasetRef, DryRun, InsertOptions, InsertReport, InsertRow, ParamType, QueryParameter,
    QueryRequest, TableFieldSchema, TableInfo, TableRef,
};
use crate::saas::{input_objects, network, uuid_v4};

fn default_batch_size() -> usize {
    500
}

fn yes() -> bool {
    true
}

/// A query parameter's value: a plain JSON value whose type is inferred (`5` is `INT64`,
/// `1.5` `FLOAT64`, `true` `BOOL`, `"x"` `STRING`, `[..]` an `ARRAY` of its first element's
/// type), or `{"type": "TIMESTAMP", "value": "2024-05-01T00:00:00Z"}` with the type given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamSpec {
    /// A value with its BigQuery type.
    Typed(TypedParam),
    /// A value whose type is inferred.
    Plain(Value),
}

/// A query parameter with its type written out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypedParam {
    /// `INT64`, `FLOAT64`, `NUMERIC`, `BIGNUMERIC`, `BOOL`, `STRING`, `BYTES` (base64),
    /// `DATE`, `DATETIME`, `TIME`, `TIMESTAMP`, `JSON`, `GEOGRAPHY`, `INTERVAL`, or
    /// `ARRAY<type>`.
    #[serde(rename = "type")]
    pub param_type: String,
    /// The value (text or a number; an array for `ARRAY` types; null for SQL NULL).
    pub value: Value,
}

/// Config of `query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// The GoogleSQL statement (a query or DML). Legacy SQL is not supported.
    pub query: String,
    /// Named parameters, `@name` in the SQL. A workflow's variables (`last_sync`, `run_id`,
    /// parameters) the SQL names as `@name` are bound too, unless given here; `last_sync`
    /// as a `TIMESTAMP`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Rows per result page (`maxResults`); BigQuery's default (pages of up to 10 MB) when
    /// absent.
    #[serde(default)]
    pub max_results: Option<u32>,
    /// How long BigQuery holds each request waiting for the job, in milliseconds
    /// (`timeoutMs`, 10,000 by default); polling goes on after that.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    /// The dataset of unqualified table names: `dataset` or `project.dataset`.
    #[serde(default)]
    pub default_dataset: Option<String>,
    /// Where to run (`US`, `EU`, `europe-west2`); the plugin's `location` when absent.
    #[serde(default)]
    pub location: Option<String>,
    /// Job labels (cost attribution).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Fail the query rather than bill more bytes than this.
    #[serde(default)]
    pub maximum_bytes_billed: Option<u64>,
    /// Whether cached results may answer (BigQuery's default: yes).
    #[serde(default)]
    pub use_query_cache: Option<bool>,
    /// The project to run in; the plugin's `project_id` when absent.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// Config of `dry_run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunConfig {
    /// The GoogleSQL statement.
    pub query: String,
    /// Named parameters, as for `query`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// The dataset of unqualified table names: `dataset` or `project.dataset`.
    #[serde(default)]
    pub default_dataset: Option<String>,
    /// Where to run; the plugin's `location` when absent.
    #[serde(default)]
    pub location: Option<String>,
    /// The project; the plugin's `project_id` when absent.
    #[serde(default)]
    pub project_id: Option<String>,
    /// USD per TiB for the estimate; the plugin's `price_per_tib` (6.25) when absent.
    #[serde(default)]
    pub price_per_tib: Option<f64>,
}

/// Config of `insert`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertConfig {
    /// The dataset.
    pub dataset: String,
    /// The table.
    pub table: String,
    /// The project; the plugin's `project_id` when absent.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The rows; the input (records, a JSON array of objects or one object) when absent.
    #[serde(default)]
    pub rows: Option<Vec<Map<String, Value>>>,
    /// A column whose value is each row's `insertId` (a key that identifies the row), so
    /// that the same row sent again is stored once. Without it, ids are derived from the
    /// call's idempotency key and the row's position (a repeated call is de-duplicated),
    /// else random (only the retries within this call are de-duplicated).
    #[serde(default)]
    pub insert_id_column: Option<String>,
    /// Rows per request (500; at most 50,000). Requests are also cut at 9 MB.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Insert the valid rows of a request that has invalid ones; otherwise BigQuery stores
    /// none of that request's rows (the valid ones are reported `stopped`).
    #[serde(default)]
    pub skip_invalid_rows: bool,
    /// Drop values of columns the table does not have instead of refusing the row.
    #[serde(default)]
    pub ignore_unknown_values: bool,
    /// Insert into `{table}{suffix}`, created from the table's schema when missing.
    #[serde(default)]
    pub template_suffix: Option<String>,
    /// Fail the call when BigQuery refuses any row (the default); `false` returns the
    /// refused rows in `row_errors` and succeeds.
    #[serde(default = "yes")]
    pub fail_on_row_errors: bool,
}

/// What `schema` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaOperation {
    /// Read the table's columns.
    #[default]
    Get,
    /// Add `columns` (schema evolution).
    AddColumns,
}

/// Config of `schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// The dataset.
    pub dataset: String,
    /// The table.
    pub table: String,
    /// The project; the plugin's `project_id` when absent.
    #[serde(default)]
    pub project_id: Option<String>,
    /// `get` (the default) or `add_columns`.
    #[serde(default)]
    pub operation: SchemaOperation,
    /// The columns to add (`{name, type, mode?, description?, fields?}`); mode `NULLABLE`
    /// (the default) or `REPEATED`, never `REQUIRED`.
    #[serde(default)]
    pub columns: Vec<TableFieldSchema>,
}

/// What `schema` found or did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SchemaOutcome {
    /// The table, after any change.
    #[serde(flatten)]
    pub table: TableInfo,
    /// The columns added (empty for `get`, and for columns that already existed).
    pub added: Vec<String>,
}

/// `query`: runs GoogleSQL and returns the rows as records.
#[derive(Debug)]
pub struct Query;

impl Action for Query {
    const NAME: &'static str = "query";
    const DESCRIPTION: &'static str = "Runs a GoogleSQL query or DML statement (jobs.query), waits for it, reads every page and returns the rows as typed records.";
    type Config = QueryConfig;
    type Input = Payload;
    type Output = Records;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `insert`: streams rows into a table.
#[derive(Debug)]
pub struct Insert;

impl Action for Insert {
    const NAME: &'static str = "insert";
    const DESCRIPTION: &'static str = "Streams rows into a table (tabledata.insertAll) in batches, with de-duplicating insert ids, and reports refused rows.";
    type Config = InsertConfig;
    type Input = Payload;
    type Output = InsertReport;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `schema`: reads a table's schema or adds columns to it.
#[derive(Debug)]
pub struct Schema;

impl Action for Schema {
    const NAME: &'static str = "schema";
    const DESCRIPTION: &'static str = "Reads a table's columns, or adds nullable columns to it guarded by its etag (schema evolution).";
    type Config = SchemaConfig;
    type Input = Payload;
    type Output = SchemaOutcome;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `dry_run`: what a query would scan and cost, without running it.
#[derive(Debug)]
pub struct DryRunAction;

impl Action for DryRunAction {
    const NAME: &'static str = "dry_run";
    const DESCRIPTION: &'static str = "Validates a query and estimates the bytes it would scan and their on-demand cost, without running it.";
    type Config = DryRunConfig;
    type Input = Payload;
    type Output = DryRun;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// The call's parameters: the config's, then the workflow's variables that the SQL names.
fn parameters(
    query: &str,
    params: &BTreeMap<String, ParamSpec>,
    vars: &BTreeMap<String, Value>,
) -> Result<Vec<QueryParameter>> {
    let mut out = Vec::new();
    for (name, spec) in params {
        out.push(match spec {
            ParamSpec::Typed(typed) => QueryParameter {
                name: name.clone(),
                param_type: ParamType::parse(name, &typed.param_type)?,
                value: typed.value.clone(),
            },
            ParamSpec::Plain(value) => QueryParameter::infer(name, value.clone())?,
        });
    }
    for (name, value) in vars {
        if params.contains_key(name) || !names_parameter(query, name) || value.is_null() {
            continue;
        }
        out.push(if name == "last_sync" {
            QueryParameter {
                name: name.clone(),
                param_type: ParamType::Scalar("TIMESTAMP".into()),
                value: value.clone(),
            }
        } else {
            QueryParameter::infer(name, value.clone())?
        });
    }
    Ok(out)
}

/// Whether `sql` has `@name` as a whole parameter name.
fn names_parameter(sql: &str, name: &str) -> bool {
    let needle = format!("@{name}");
    sql.match_indices(&needle).any(|(at, _)| {
        let after = sql[at + needle.len()..].chars().next();
        let before = sql[..at].chars().next_back();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && before != Some('@')
    })
}

fn dataset(text: &Option<String>) -> Result<Option<DatasetRef>> {
    text.as_deref().map(DatasetRef::parse).transpose()
}

#[async_trait]
impl Handler<Query> for BigQueryConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: QueryConfig,
        _input: Payload,
    ) -> Result<Records> {
        let request = QueryRequest {
            params: parameters(&config.query, &config.params, &ctx.vars)?,
            query: config.query,
            max_results: config.max_results,
            timeout_ms: config.timeout_ms,
            default_dataset: dataset(&config.default_dataset)?,
            location: config.location,
            labels: config.labels,
            maximum_bytes_billed: config.maximum_bytes_billed,
            use_query_cache: config.use_query_cache,
            project_id: config.project_id,
        };
        self.client().query(&ctx, &request).await?.records()
    }
}

#[async_trait]
impl Handler<DryRunAction> for BigQueryConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DryRunConfig,
        _input: Payload,
    ) -> Result<DryRun> {
        if let Some(price) = config.price_per_tib
            && !(price.is_finite() && price >= 0.0)
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`price_per_tib` must be a number of at least 0",
            ));
        }
        let request = QueryRequest {
            params: parameters(&config.query, &config.params, &ctx.vars)?,
            query: config.query,
            default_dataset: dataset(&config.default_dataset)?,
            location: config.location,
            project_id: config.project_id,
            ..QueryRequest::default()
        };
        let mut answer = self.client().dry_run(&request).await?;
        if let Some(price) = config.price_per_tib {
            answer.estimated_cost =
                answer.total_bytes_processed as f64 / (1u64 << 40) as f64 * price;
        }
        Ok(answer)
    }
}

/// The rows of an `insert`: its `rows`, else its input.
fn insert_rows(config: &InsertConfig, input: Payload) -> Result<Vec<Map<String, Value>>> {
    if let Some(rows) = &config.rows {
        return Ok(rows.clone());
    }
    if matches!(input, Payload::Empty) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "`insert` takes `rows`, or an input of records or JSON objects; got nothing",
        ));
    }
    input_objects(Insert::NAME, input)
}

/// BigQuery keeps insert ids of up to 128 characters; longer derived ids are shortened to
/// a stable hash of the idempotency key.
const MAX_INSERT_ID: usize = 128;

/// Each row's insert id: the key column's value, else `{idempotency key}-{index}`, else a
/// random UUID.
fn insert_ids(
    config: &InsertConfig,
    ctx: &ActionContext,
    rows: &[Map<String, Value>],
) -> Result<Vec<String>> {
    if let Some(column) = &config.insert_id_column {
        return rows
            .iter()
            .enumerate()
            .map(|(i, row)| match row.get(column) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("row {i} has no text or number in `{column}`, the insert id column"),
                )),
            })
            .map(|id| {
                id.and_then(|id| {
                    if id.len() > MAX_INSERT_ID {
                        Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!("an insert id in `{column}` is longer than {MAX_INSERT_ID} characters"),
                        ))
                    } else {
                        Ok(id)
                    }
                })
            })
            .collect();
    }
    Ok(match &ctx.idempotency_key {
        Some(key) => {
            let stem = if key.len() + 12 > MAX_INSERT_ID {
                format!("{:016x}", fnv1a(key.as_bytes()))
            } else {
                key.clone()
            };
            (0..rows.len()).map(|i| format!("{stem}-{i}")).collect()
        }
        None => rows.iter().map(|_| uuid_v4()).collect(),
    })
}

/// FNV-1a, 64 bits: a stable short name for a long idempotency key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[async_trait]
impl Handler<Insert> for BigQueryConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: InsertConfig,
        input: Payload,
    ) -> Result<InsertReport> {
        let rows = insert_rows(&config, input)?;
        let ids = insert_ids(&config, &ctx, &rows)?;
        let table = TableRef {
            project_id: config
                .project_id
                .clone()
                .unwrap_or_else(|| self.client().project_id().to_string()),
            dataset_id: config.dataset.clone(),
            table_id: config.table.clone(),
        };
        let rows: Vec<InsertRow> = rows
            .into_iter()
            .zip(ids)
            .map(|(json, id)| InsertRow {
                insert_id: Some(id),
                json,
            })
            .collect();
        let options = InsertOptions {
            batch_size: config.batch_size,
            skip_invalid_rows: config.skip_invalid_rows,
            ignore_unknown_values: config.ignore_unknown_values,
            template_suffix: config.template_suffix.clone(),
        };
        let report = self.client().insert_all(&table, &rows, &options).await?;
        if config.fail_on_row_errors && !report.row_errors.is_empty() {
            let listed: Vec<String> = report
                .row_errors
                .iter()
                .filter(|e| e.reason != "stopped")
                .take(5)
                .map(|e| match &e.location {
                    Some(at) => format!("row {}: {} at `{at}`: {}", e.index, e.reason, e.message),
                    None => format!("row {}: {}: {}", e.index, e.reason, e.message),
                })
                .collect();
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "BigQuery refused {} of {} rows ({} inserted) into {}.{}: {}",
                    report.failed,
                    rows.len(),
                    report.inserted,
                    config.dataset,
                    config.table,
                    listed.join("; ")
                ),
            )
            .with_context("inserted", report.inserted)
            .with_context("failed", report.failed)
            .set_permanent());
        }
        Ok(report)
    }
}

#[async_trait]
impl Handler<Schema> for BigQueryConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: SchemaConfig,
        _input: Payload,
    ) -> Result<SchemaOutcome> {
        let table = TableRef {
            project_id: config
                .project_id
                .clone()
                .unwrap_or_else(|| self.client().project_id().to_string()),
            dataset_id: config.dataset.clone(),
            table_id: config.table.clone(),
        };
        match config.operation {
            SchemaOperation::Get => {
                if !config.columns.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "`columns` is for `operation: add_columns`; `get` takes none",
                    ));
                }
                Ok(SchemaOutcome {
                    table: self.client().get_table(&table).await?,
                    added: Vec::new(),
                })
            }
            SchemaOperation::AddColumns => {
                if config.columns.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "`add_columns` needs `columns` to add",
                    ));
                }
                let (table, added) = self.client().add_columns(&table, &config.columns).await?;
                Ok(SchemaOutcome { table, added })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workflow_variables_bind_only_when_the_sql_names_them() {
        let vars: BTreeMap<String, Value> = [
            ("last_sync".to_string(), json!("2024-05-01T00:00:00Z")),
            ("run_id".to_string(), json!("r1")),
            ("workflow".to_string(), json!("w")),
        ]
        .into();
        let params = parameters(
            "SELECT * FROM t WHERE at > @last_sync AND x = @run_idx",
            &BTreeMap::new(),
            &vars,
        )
        .unwrap();
        assert_eq!(params.len(), 1);
        assert_eq!(params[0].param_type, ParamType::Scalar("TIMESTAMP".into()));
        assert!(names_parameter("a = @x", "x"));
        assert!(!names_parameter("a = @@x", "x"));
        assert!(!names_parameter("a = @xy", "x"));
    }

    #[test]
    fn typed_and_plain_parameters_read_from_config() {
        let config: QueryConfig = serde_json::from_value(json!({
            "query": "SELECT @n, @at",
            "params": {"n": 3, "at": {"type": "TIMESTAMP", "value": "2024-05-01 00:00:00"}}
        }))
        .unwrap();
        let params = parameters(&config.query, &config.params, &BTreeMap::new()).unwrap();
        assert_eq!(params[0].param_type, ParamType::Scalar("TIMESTAMP".into()));
        assert_eq!(params[1].param_type, ParamType::Scalar("INT64".into()));
    }

    #[test]
    fn long_idempotency_keys_give_short_stable_insert_ids() {
        assert_eq!(fnv1a(b"a"), fnv1a(b"a"));
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
