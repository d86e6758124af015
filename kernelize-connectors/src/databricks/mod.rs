#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{Error, ErrorKind, Payload, PluginFactory, Records, Result};
use serde_json::Value;
use url::Url;

pub use actions::{
    Load, LoadConfig, Mlflow, MlflowConfig, ParamValue, Query, QueryConfig, RunJob, RunJobConfig,
    RunJobOutput,
};
pub use client::{
    ColumnInfo, CreateModelVersion, DEFAULT_MAX_PAGES, DatabricksClient, LoadOutcome, LoadRequest,
    MAX_CHUNKS, Manifest, ModelTag, ModelVersion, ModelsPage, RegisteredModel, ResultData,
    ResultSchema, Run, RunNow, RunNowResponse, RunState, ServiceError, StageFormat,
    StatementParameter, StatementRequest, StatementResponse, StatementResult, StatementStatus,
    TransitionStage, check_table_name, column_type, named_markers, run_outcome,
};
pub use config::{
    Credentials, DEFAULT_MAX_LOAD_ROWS, DEFAULT_MAX_ROWS, DatabricksSettings, check_volume_path,
    check_wait_timeout,
};

use crate::saas::{Column, ColumnType, Connector, PollSettings, records_from_rows};

/// The plugin's id.
pub const ID: &str = "databricks-connector";

/// The `databricks-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<DatabricksConnector>()
}

static ROUTER: LazyLock<ActionRouter<DatabricksConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Query>()
        .action::<Load>()
        .action::<RunJob>()
        .action::<Mlflow>()
});

/// The Databricks connector: a [`DatabricksClient`] and the plugin's defaults. Made a
/// registry plugin by [`factory`] (through [`crate::saas::Hosted`]).
#[derive(Debug)]
pub struct DatabricksConnector {
    client: DatabricksClient,
    hosts: Vec<Url>,
    warehouse_id: Option<String>,
    catalog: Option<String>,
    schema: Option<String>,
    staging_path: Option<String>,
    max_load_rows: usize,
    poll: PollSettings,
}

impl DatabricksConnector {
    /// The client, for calls the actions do not cover.
    pub fn client(&self) -> &DatabricksClient {
        &self.client
    }

    fn warehouse(&self, given: &Option<String>) -> Result<String> {
        given
            .clone()
            .or_else(|| self.warehouse_id.clone())
            .filter(|w| !w.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    "no SQL warehouse: set `warehouse_id` in the plugin settings or the action's config",
                )
            })
    }
}

#[async_trait]
impl Connector for DatabricksConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Databricks";
    const DESCRIPTION: &'static str = "Runs SQL on Databricks SQL warehouses (typed records), loads rows through a Unity Catalog volume with COPY INTO, runs jobs and manages MLflow registered models; PAT or OAuth M2M.";
    type Settings = DatabricksSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: DatabricksSettings) -> Result<Self> {
        let client = DatabricksClient::new(&settings)?;
        let mut hosts = vec![settings.host_url()?];
        if let Credentials::OAuth { token_url, .. } = settings.credentials()? {
            hosts.push(token_url);
        }
        Ok(Self {
            client,
            hosts,
            warehouse_id: settings.warehouse_id,
            catalog: settings.catalog,
            schema: settings.schema,
            staging_path: settings.staging_path,
            max_load_rows: settings.max_load_rows,
            poll: settings.poll,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        self.hosts.clone()
    }
}

/// A parameter of `query` as the API takes it.
fn parameter(name: &str, value: &ParamValue) -> Result<StatementParameter> {
    let (value, kind) = match value {
        ParamValue::Typed { value, kind } => (value, Some(kind.clone())),
        ParamValue::Plain(value) => {
            let kind = match value {
                Value::Number(n) if n.is_i64() || n.is_u64() => Some("BIGINT".to_string()),
                Value::Number(_) => Some("DOUBLE".to_string()),
                Value::Bool(_) => Some("BOOLEAN".to_string()),
                _ => None,
            };
            (value, kind)
        }
    };
    let text = match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("parameter `{name}` must be a text, number, boolean or null, not {other}"),
            ));
        }
    };
    Ok(StatementParameter {
        name: name.to_string(),
        value: text,
        kind,
    })
}

#[async_trait]
impl Handler<Query> for DatabricksConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: QueryConfig,
        _input: Payload,
    ) -> Result<Records> {
        let mut request =
            StatementRequest::new(&config.statement, self.warehouse(&config.warehouse_id)?);
        request.catalog = config.catalog.or_else(|| self.catalog.clone());
        request.schema = config.schema.or_else(|| self.schema.clone());
        request.row_limit = config.row_limit;
        if let Some(wait) = config.wait_timeout {
            check_wait_timeout(&wait)?;
            request.wait_timeout = wait;
        }
        for (name, value) in &config.params {
            request.parameters.push(parameter(name, value)?);
        }
        for marker in named_markers(&config.statement) {
            if config.params.contains_key(&marker) {
                continue;
            }
            if let Some(value) = ctx.vars.get(&marker) {
                request
                    .parameters
                    .push(parameter(&marker, &ParamValue::Plain(value.clone()))?);
            }
        }
        let result = self.client.execute(&ctx, &request, &self.poll).await?;
        result.to_records()
    }
}

#[async_trait]
impl Handler<Load> for DatabricksConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: LoadConfig,
        input: Payload,
    ) -> Result<LoadOutcome> {
        let staging_path = config
            .staging_path
            .clone()
            .or_else(|| self.staging_path.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    "no staging volume: set `staging_path` (`/Volumes/<catalog>/<schema>/<volume>`) in the plugin settings or the action's config",
                )
            })?;
        let records = input.into_records().map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`load` takes records or JSON rows as its input: {}",
                    e.message()
                ),
            )
        })?;
        if records.num_rows() > self.max_load_rows {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`load` got {} rows, more than `max_load_rows` ({}); split the input or raise the setting",
                    records.num_rows(),
                    self.max_load_rows
                ),
            ));
        }
        let request = LoadRequest {
            table: config.table,
            records,
            format: config.format,
            staging_path,
            warehouse_id: self.warehouse(&config.warehouse_id)?,
            catalog: config.catalog.or_else(|| self.catalog.clone()),
            schema: config.schema.or_else(|| self.schema.clone()),
            merge_schema: config.merge_schema,
            format_options: config.format_options,
            copy_options: config.copy_options,
            keep_staged_file: config.keep_staged_file,
        };
        self.client.load(&ctx, &request, &self.poll).await
    }
}

/// Parameter values as the Jobs API takes them: text as is, anything else as JSON text.
fn texts(values: Option<BTreeMap<String, Value>>) -> Option<BTreeMap<String, String>> {
    values.map(|m| m.into_iter().map(|(k, v)| (k, text_of(v))).collect())
}

fn text_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A Jobs idempotency token from a call's key: the key itself when it fits in 64
/// characters, else `k-` and two FNV-1a hashes of it in hex (34 characters).
fn idempotency_token(key: &str) -> String {
    if key.len() <= 64 && key.is_ascii() {
        return key.to_string();
    }
    let fnv = |seed: u64| {
        key.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    format!(
        "k-{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x8422_2325_cbf2_9ce4)
    )
}

#[async_trait]
impl Handler<RunJob> for DatabricksConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: RunJobConfig,
        _input: Payload,
    ) -> Result<RunJobOutput> {
        let token = config
            .idempotency_token
            .clone()
            .or_else(|| ctx.idempotency_key.clone())
            .map(|k| idempotency_token(&k));
        let body = RunNow {
            job_id: config.job_id,
            job_parameters: texts(config.job_parameters),
            notebook_params: texts(config.notebook_params),
            python_params: config
                .python_params
                .map(|p| p.into_iter().map(text_of).collect()),
            idempotency_token: token,
        };
        let started = self.client.run_now(&body).await?;
        if !config.wait {
            return Ok(RunJobOutput {
                run_id: started.run_id,
                number_in_job: started.number_in_job,
                state: None,
                result_state: None,
                state_message: None,
                run_page_url: None,
                start_time: None,
                end_time: None,
            });
        }
        let run = self
            .client
            .wait_for_run(&ctx, started.run_id, &self.poll)
            .await?;
        let run = run_outcome(run)?;
        Ok(RunJobOutput {
            run_id: run.run_id,
            number_in_job: run.number_in_job.or(started.number_in_job),
            state: run.state.life_cycle_state,
            result_state: run.state.result_state,
            state_message: run.state.state_message,
            run_page_url: run.run_page_url,
            start_time: run.start_time,
            end_time: run.end_time,
        })
    }
}

fn tags(map: BTreeMap<String, String>) -> Vec<ModelTag> {
    map.into_iter()
        .map(|(key, value)| ModelTag {
            key,
            value: Some(value),
        })
        .collect()
}

fn stage_name(stage: &str) -> Result<String> {
    match stage.to_ascii_lowercase().as_str() {
        "none" => Ok("None".into()),
        "staging" => Ok("Staging".into()),
        "production" => Ok("Production".into()),
        "archived" => Ok("Archived".into()),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`stage` must be None, Staging, Production or Archived, not `{stage}`"),
        )),
    }
}

fn json_payload<T: serde::Serialize>(value: &T) -> Result<Payload> {
    Ok(Payload::Json(serde_json::to_value(value)?))
}

/// Registered models as records.
fn models_records(models: &[RegisteredModel]) -> Result<Records> {
    let columns = [
        Column::new("name", ColumnType::Text),
        Column::new("description", ColumnType::Text),
        Column::new("user_id", ColumnType::Text),
        Column::new("creation_timestamp", ColumnType::Timestamp),
        Column::new("last_updated_timestamp", ColumnType::Timestamp),
        Column::new("latest_versions", ColumnType::Text),
        Column::new("tags", ColumnType::Text),
    ];
    let micros =
        |ms: Option<i64>| ms.map_or(Value::Null, |ms| Value::from(ms.saturating_mul(1000)));
    let rows: Vec<Vec<Value>> = models
        .iter()
        .map(|m| {
            let versions: Vec<Value> = m
                .latest_versions
                .iter()
                .map(|v| serde_json::json!({"version": v.version, "current_stage": v.current_stage, "status": v.status}))
                .collect();
            let tags: serde_json::Map<String, Value> = m
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone().map_or(Value::Null, Value::String)))
                .collect();
            vec![
                Value::String(m.name.clone()),
                m.description.clone().map_or(Value::Null, Value::String),
                m.user_id.clone().map_or(Value::Null, Value::String),
                micros(m.creation_timestamp),
                micros(m.last_updated_timestamp),
                Value::String(Value::Array(versions).to_string()),
                Value::String(Value::Object(tags).to_string()),
            ]
        })
        .collect();
    records_from_rows(&columns, &rows)
}

#[async_trait]
impl Handler<Mlflow> for DatabricksConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: MlflowConfig,
        _input: Payload,
    ) -> Result<Payload> {
        let c = &self.client;
        match config {
            MlflowConfig::CreateModel {
                name,
                description,
                tags: t,
            } => json_payload(
                &c.create_model(&name, description.as_deref(), &tags(t))
                    .await?,
            ),
            MlflowConfig::ListModels {
                max_results,
                max_pages,
            } => {
                if let Some(n) = max_results
                    && !(1..=1000).contains(&n)
                {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("`max_results` must be between 1 and 1000, not {n}"),
                    ));
                }
                let models = c
                    .list_models(&ctx, max_results, max_pages.unwrap_or(DEFAULT_MAX_PAGES))
                    .await?;
                Ok(Payload::Records(models_records(&models)?))
            }
            MlflowConfig::GetModel { name } => json_payload(&c.get_model(&name).await?),
            MlflowConfig::CreateVersion {
                name,
                source,
                run_id,
                run_link,
                description,
                tags: t,
                wait_ready,
            } => {
                let body = CreateModelVersion {
                    name: name.clone(),
                    source,
                    run_id,
                    run_link,
                    description,
                    tags: tags(t),
                };
                let created = c.create_model_version(&body).await?;
                if !wait_ready {
                    return json_payload(&created);
                }
                json_payload(
                    &c.wait_model_version_ready(&ctx, &name, &created.version, &self.poll)
                        .await?,
                )
            }
            MlflowConfig::GetVersion {
                name,
                version,
                wait_ready,
            } => {
                if wait_ready {
                    json_payload(
                        &c.wait_model_version_ready(&ctx, &name, &version, &self.poll)
                            .await?,
                    )
                } else {
                    json_payload(&c.get_model_version(&name, &version).await?)
                }
            }
            MlflowConfig::TransitionStage {
                name,
                version,
                stage,
                archive_existing_versions,
                comment,
            } => {
                let body = TransitionStage {
                    name,
                    version,
                    stage: stage_name(&stage)?,
                    archive_existing_versions,
                    comment,
                };
                json_payload(&c.transition_stage(&body).await?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_idempotency_keys_are_hashed_to_fit() {
        assert_eq!(idempotency_token("run-1/step"), "run-1/step");
        let long = "x".repeat(100);
        let token = idempotency_token(&long);
        assert_eq!(token.len(), 34);
        assert_eq!(token, idempotency_token(&long));
        assert_ne!(token, idempotency_token(&"y".repeat(100)));
    }

    #[test]
    fn parameters_infer_their_sql_types() {
        let p = parameter("n", &ParamValue::Plain(serde_json::json!(5)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.value.as_deref(), p.kind.as_deref()),
            (Some("5"), Some("BIGINT"))
        );
        let p = parameter("s", &ParamValue::Plain(serde_json::json!("a")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.value.as_deref(), p.kind), (Some("a"), None));
        let p = parameter(
            "d",
            &ParamValue::Typed {
                value: serde_json::json!("2024-05-01"),
                kind: "DATE".into(),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.kind.as_deref(), Some("DATE"));
        assert!(parameter("o", &ParamValue::Plain(serde_json::json!({"a": 1}))).is_err());
    }
}
