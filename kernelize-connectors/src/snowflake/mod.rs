#![doc = include_str!("docs.md")]

pub mod actions;
pub mod auth;
pub mod bind;
pub mod client;
pub mod config;
pub mod migrate;

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::Permission;
use kernelize_core::arrow_schema::DataType;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{Error, ErrorKind, Payload, Records, Result};
use serde_json::{Map, Value, json};
use url::Url;

pub use actions::{
    AppliedMigration, Cancel, Extract, ExtractConfig, FetchResult, HandleConfig, Load, LoadBinding,
    LoadConfig, LoadSummary, Migrate, MigrateConfig, MigrateSummary, Migration, Query, QueryConfig,
};
pub use client::{
    CancelStatus, Execution, QueryResult, QueryStatus, ResultSet, RowType, SnowflakeClient,
    Statement,
};
pub use config::{SnowflakeAuth, SnowflakeSettings};

use crate::saas::Connector;
use bind::{Binding, bind_names, column_name, rewrite, sql_name, uuid_from_seed};

/// The plugin id.
pub const ID: &str = "snowflake-connector";

/// The factory of the `snowflake-connector` plugin.
pub fn factory() -> kernelize_core::PluginFactory {
    crate::saas::factory::<SnowflakeConnector>()
}

static ROUTER: LazyLock<ActionRouter<SnowflakeConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Query>()
        .action::<Extract>()
        .action::<Load>()
        .action::<Migrate>()
        .action::<Cancel>()
        .action::<FetchResult>()
});

/// The Snowflake connector: a [`SnowflakeClient`] and the actions over it.
#[derive(Debug)]
pub struct SnowflakeConnector {
    client: SnowflakeClient,
    base_url: Url,
}

impl SnowflakeConnector {
    /// The client, for Rust code that calls the API directly.
    pub fn client(&self) -> &SnowflakeClient {
        &self.client
    }
}

#[async_trait]
impl Connector for SnowflakeConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Snowflake";
    const DESCRIPTION: &'static str = "Snowflake through the SQL API v2: queries (202 polling, every partition, typed records), incremental extracts, batched loads, versioned migrations, cancel; key-pair JWT, OAuth or programmatic access token.";
    type Settings = SnowflakeSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    /// Network access, and reading migration directories (`migrate` with `directory`).
    fn permissions() -> Vec<Permission> {
        crate::saas::network_and_file_read()
    }

    async fn connect(settings: SnowflakeSettings) -> Result<Self> {
        let base_url = settings.base_url()?;
        let client = SnowflakeClient::new(&settings)?;
        Ok(Self { client, base_url })
    }

    fn hosts(&self) -> Vec<Url> {
        vec![self.base_url.clone()]
    }
}

/// The statement of a call, with the call's context overrides.
fn statement(
    sql: String,
    bindings: Vec<Binding>,
    timeout: Option<Duration>,
    context: [&Option<String>; 4],
) -> Statement {
    let [warehouse, database, schema, role] = context;
    Statement {
        sql,
        bindings,
        timeout: timeout.map(|t| t.as_secs()),
        warehouse: warehouse.clone(),
        database: database.clone(),
        schema: schema.clone(),
        role: role.clone(),
        ..Statement::default()
    }
}

fn one_statement(count: usize, action: &str) -> Result<()> {
    if count > 1 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`{action}` runs one statement, and this SQL holds {count}; use `query` with `multi_statement_count: {count}`"
            ),
        ));
    }
    Ok(())
}

#[async_trait]
impl Handler<Query> for SnowflakeConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: QueryConfig,
        _input: Payload,
    ) -> Result<Payload> {
        let rewritten = rewrite(&config.statement)?;
        let bindings = match &config.params {
            Value::Null => bind_names(&rewritten, &Map::new(), &ctx.vars)?,
            Value::Object(params) => bind_names(&rewritten, params, &ctx.vars)?,
            Value::Array(items) => {
                if !rewritten.names.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "`params` is an array, for `?` markers, but the statement uses `:name` placeholders; give `params` as an object",
                    ));
                }
                if items.len() != rewritten.positional {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the statement has {} `?` marker(s) and `params` has {} value(s)",
                            rewritten.positional,
                            items.len()
                        ),
                    ));
                }
                items
                    .iter()
                    .map(Binding::from_json)
                    .collect::<Result<_>>()?
            }
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "`params` must be an object (for `:name`) or an array (for `?`), not {other}"
                    ),
                ));
            }
        };
        if rewritten.positional > 0 && !config.params.is_array() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the statement has {} `?` marker(s); give their values as `params: [...]`",
                    rewritten.positional
                ),
            ));
        }
        if config.multi_statement_count.is_none() {
            one_statement(rewritten.statements, "query").map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "the SQL holds {n} statements; set `multi_statement_count: {n}` (or 0 for any number) to run them in one request",
                        n = rewritten.statements
                    ),
                )
            })?;
        }
        let mut statement = statement(
            rewritten.sql,
            bindings,
            config.timeout,
            [
                &config.warehouse,
                &config.database,
                &config.schema,
                &config.role,
            ],
        );
        statement.parameters = config.parameters.clone();
        statement.multi_statement_count = config.multi_statement_count;
        if config.run_async {
            let handle = match self.client.submit(&statement, true).await? {
                Execution::Running(status) => status.statement_handle,
                Execution::Done(rs) => rs.statement_handle,
            };
            let handle = handle.ok_or_else(|| {
                Error::new(
                    ErrorKind::Remote,
                    "Snowflake answered without a statementHandle",
                )
            })?;
            return Ok(Payload::Json(json!({ "statement_handle": handle })));
        }
        let result = self
            .client
            .execute(&ctx, &statement, config.max_rows)
            .await?;
        if config.multi_statement_count.is_none() {
            return Ok(Payload::Records(result.to_records()?));
        }
        let mut statements = Vec::with_capacity(result.statements.len());
        for s in &result.statements {
            statements.push(json!({
                "statement_handle": s.statement_handle,
                "columns": s.columns.iter().map(|c| json!({"name": c.name, "type": c.kind})).collect::<Vec<_>>(),
                "rows": s.to_records()?.to_json_rows()?,
                "rows_affected": s.rows_affected(),
            }));
        }
        Ok(Payload::Json(json!({
            "statement_handle": result.statement_handle,
            "statements": statements,
        })))
    }
}

#[async_trait]
impl Handler<Extract> for SnowflakeConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ExtractConfig,
        _input: Payload,
    ) -> Result<Records> {
        let rewritten = rewrite(&config.query)?;
        if rewritten.positional > 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`extract` binds `:name` placeholders; the query has `?` markers",
            ));
        }
        one_statement(rewritten.statements, "extract")?;
        let bindings = bind_names(&rewritten, &config.params, &ctx.vars)?;
        let statement = statement(
            rewritten.sql,
            bindings,
            config.timeout,
            [
                &config.warehouse,
                &config.database,
                &config.schema,
                &config.role,
            ],
        );
        self.client
            .execute(&ctx, &statement, config.max_rows)
            .await?
            .to_records()
    }
}

/// The Snowflake binding type of a records column.
fn binding_type(data_type: &DataType) -> &'static str {
    match data_type {
        t if t.is_integer() => "FIXED",
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => "FIXED",
        t if t.is_floating() => "REAL",
        DataType::Boolean => "BOOLEAN",
        _ => "TEXT",
    }
}

/// A JSON cell of records as bound text.
fn bound_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[async_trait]
impl Handler<Load> for SnowflakeConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: LoadConfig,
        input: Records,
    ) -> Result<LoadSummary> {
        if config.batch_size == 0 || config.batch_size > actions::MAX_BATCH_SIZE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`batch_size` must be between 1 and {}, not {}",
                    actions::MAX_BATCH_SIZE,
                    config.batch_size
                ),
            ));
        }
        let table = sql_name(&config.table)?;
        let mut summary = LoadSummary {
            table: config.table.clone(),
            rows_inserted: 0,
            batches: 0,
            statement_handles: Vec::new(),
        };
        if input.num_rows() == 0 {
            return Ok(summary);
        }
        let schema = input.schema().clone();
        let fields: Vec<(String, &'static str)> = schema
            .fields()
            .iter()
            .map(|f| (column_name(f.name()), binding_type(f.data_type())))
            .collect();
        if fields.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the input records have no columns",
            ));
        }
        let column_list = fields
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let markers = format!("({})", vec!["?"; fields.len()].join(", "));
        let all = input.concat()?;
        let total = all.num_rows();
        let mut start = 0;
        while start < total {
            ctx.check_alive()?;
            let len = config.batch_size.min(total - start);
            let rows = Records::from_batch(all.slice(start, len)).to_json_rows()?;
            let cells = |row: &Value, name: &str| bound_text(row.get(name).unwrap_or(&Value::Null));
            let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
            let (sql, bindings) = match config.binding {
                LoadBinding::Array => {
                    let bindings = fields
                        .iter()
                        .zip(&names)
                        .map(|((_, kind), name)| Binding {
                            kind: (*kind).to_string(),
                            value: Value::Array(
                                rows.iter()
                                    .map(|r| cells(r, name).map_or(Value::Null, Value::String))
                                    .collect(),
                            ),
                        })
                        .collect::<Vec<_>>();
                    (
                        format!("INSERT INTO {table} ({column_list}) VALUES {markers}"),
                        bindings,
                    )
                }
                LoadBinding::Rows => {
                    let mut bindings = Vec::with_capacity(rows.len() * fields.len());
                    for row in &rows {
                        for ((_, kind), name) in fields.iter().zip(&names) {
                            bindings.push(Binding::new(kind, cells(row, name)));
                        }
                    }
                    (
                        format!(
                            "INSERT INTO {table} ({column_list}) VALUES {}",
                            vec![markers.as_str(); rows.len()].join(", ")
                        ),
                        bindings,
                    )
                }
            };
            let mut statement = statement(
                sql,
                bindings,
                config.timeout,
                [
                    &config.warehouse,
                    &config.database,
                    &config.schema,
                    &config.role,
                ],
            );
            if let Some(key) = &ctx.idempotency_key {
                // A resumed run repeats the same batches with the same ids, and Snowflake
                // answers a batch it already ran instead of inserting it again.
                statement.request_id = Some(uuid_from_seed(&format!(
                    "{key}/load/{}/{start}/{len}",
                    config.table
                )));
                statement.resubmission = true;
            }
            let result = self.client.execute(&ctx, &statement, Some(1)).await?;
            let inserted = result
                .stats
                .as_ref()
                .and_then(|s| s.num_rows_inserted)
                .or_else(|| {
                    result
                        .rows
                        .first()
                        .and_then(|r| r.first())
                        .and_then(|v| v.as_str())
                        .and_then(|s| s.parse().ok())
                })
                .unwrap_or(0);
            summary.rows_inserted += inserted;
            summary.batches += 1;
            summary.statement_handles.push(result.statement_handle);
            start += len;
        }
        Ok(summary)
    }
}

#[async_trait]
impl Handler<Migrate> for SnowflakeConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: MigrateConfig,
        _input: Payload,
    ) -> Result<MigrateSummary> {
        migrate::migrate(&self.client, &ctx, &config).await
    }
}

#[async_trait]
impl Handler<Cancel> for SnowflakeConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: HandleConfig,
        _input: Payload,
    ) -> Result<CancelStatus> {
        self.client.cancel(&config.statement_handle).await
    }
}

#[async_trait]
impl Handler<FetchResult> for SnowflakeConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: HandleConfig,
        _input: Payload,
    ) -> Result<Records> {
        let handle = &config.statement_handle;
        let first = match self.client.status(handle).await? {
            Execution::Done(rs) => *rs,
            Execution::Running(_) => self.client.wait(&ctx, handle).await?,
        };
        let max_rows = config
            .max_rows
            .map_or(self.client.max_rows(), |m| m.min(self.client.max_rows()));
        self.client
            .collect(&ctx, first, max_rows)
            .await?
            .to_records()
    }
}
