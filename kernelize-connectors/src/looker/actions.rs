//! The `looker-connector`'s typed actions: `login`, `run_inline_query`, `run_look`,
//! `list_models`, `get_model` and `create_embed_url`, their configs, outputs and handlers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, Handler};
use kernelize_core::{Action, Error, ErrorKind, Payload, Permission, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::LookerConnector;
use super::client::{
    DEFAULT_MAX_MODELS, EmbedParams, InlineQuery, LoginInfo, ResultFormat, RunOptions,
    result_payload,
};
use crate::saas::network;

fn default_page_size() -> usize {
    100
}

fn default_max_models() -> usize {
    DEFAULT_MAX_MODELS
}

/// Config of `login` (none).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {}

/// Config of `run_inline_query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInlineQueryConfig {
    /// The LookML model.
    pub model: String,
    /// The explore (Looker's API calls it `view`).
    pub view: String,
    /// Fields, `view.field`; they are also the first columns of `json` records, in order.
    pub fields: Vec<String>,
    /// Filters: field to Looker filter expression (`"orders.created_date": "7 days"`).
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    /// A custom filter expression.
    #[serde(default)]
    pub filter_expression: Option<String>,
    /// Sorts: `orders.created_date desc`.
    #[serde(default)]
    pub sorts: Vec<String>,
    /// Pivoted fields (their values come as JSON text columns in `json` records).
    #[serde(default)]
    pub pivots: Vec<String>,
    /// Dimensions whose missing values are filled in.
    #[serde(default)]
    pub fill_fields: Vec<String>,
    /// Row limit (Looker's default 500; -1 for none).
    #[serde(default)]
    pub limit: Option<i64>,
    /// The time zone the query runs in.
    #[serde(default)]
    pub query_timezone: Option<String>,
    /// Compute column totals.
    #[serde(default)]
    pub total: Option<bool>,
    /// Custom fields and table calculations, as Looker's JSON text.
    #[serde(default)]
    pub dynamic_fields: Option<String>,
    /// `json` (the default; records), `csv` (records), `json_bi`, `json_detail` (JSON),
    /// `txt`, `html`, `md`, `xlsx`, `sql`, `png`, `jpg` (bytes).
    #[serde(default)]
    pub result_format: ResultFormat,
    /// Format values as Looker shows them instead of raw.
    #[serde(default)]
    pub apply_formatting: Option<bool>,
    /// Apply the visualization's settings.
    #[serde(default)]
    pub apply_vis: Option<bool>,
    /// Answer from Looker's cache when it can.
    #[serde(default)]
    pub cache: Option<bool>,
    /// Run against production LookML.
    #[serde(default)]
    pub force_production: Option<bool>,
    /// Image size for `png` and `jpg`.
    #[serde(default)]
    pub image_width: Option<u32>,
    /// Image size for `png` and `jpg`.
    #[serde(default)]
    pub image_height: Option<u32>,
    /// Run as an async query task (save the query, start a task, poll it, read its results)
    /// instead of in one request: for queries that run longer than a request may last.
    #[serde(default)]
    pub async_task: bool,
}

impl RunInlineQueryConfig {
    fn query(&self) -> InlineQuery {
        InlineQuery {
            model: self.model.clone(),
            view: self.view.clone(),
            fields: self.fields.clone(),
            filters: self.filters.clone(),
            filter_expression: self.filter_expression.clone(),
            sorts: self.sorts.clone(),
            pivots: self.pivots.clone(),
            fill_fields: self.fill_fields.clone(),
            limit: self.limit.map(|l| l.to_string()),
            query_timezone: self.query_timezone.clone(),
            total: self.total,
            row_total: None,
            dynamic_fields: self.dynamic_fields.clone(),
        }
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            limit: None,
            apply_formatting: self.apply_formatting,
            apply_vis: self.apply_vis,
            cache: self.cache,
            force_production: self.force_production,
            image_width: self.image_width,
            image_height: self.image_height,
        }
    }
}

/// Config of `run_look`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLookConfig {
    /// The Look's id (a number or text).
    pub look_id: Value,
    /// As for `run_inline_query` (`json` by default).
    #[serde(default)]
    pub result_format: ResultFormat,
    /// Row limit, overriding the Look's.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Format values as Looker shows them instead of raw.
    #[serde(default)]
    pub apply_formatting: Option<bool>,
    /// Apply the visualization's settings.
    #[serde(default)]
    pub apply_vis: Option<bool>,
    /// Answer from Looker's cache when it can.
    #[serde(default)]
    pub cache: Option<bool>,
    /// Run against production LookML.
    #[serde(default)]
    pub force_production: Option<bool>,
    /// Image size for `png` and `jpg`.
    #[serde(default)]
    pub image_width: Option<u32>,
    /// Image size for `png` and `jpg`.
    #[serde(default)]
    pub image_height: Option<u32>,
}

/// Config of `list_models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListModelsConfig {
    /// Models per request (`limit`; 100).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// The most models read (10,000); more is an error.
    #[serde(default = "default_max_models")]
    pub max_models: usize,
    /// Only these fields of each model (`name,project_name,explores`).
    #[serde(default)]
    pub fields: Option<String>,
    /// Leave out models without explores.
    #[serde(default)]
    pub exclude_empty: Option<bool>,
    /// Leave out hidden explores.
    #[serde(default)]
    pub exclude_hidden: Option<bool>,
    /// Include built-in models (System Activity).
    #[serde(default)]
    pub include_internal: Option<bool>,
}

/// Config of `get_model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetModelConfig {
    /// The model's name.
    pub name: String,
    /// Only these fields (`name,explores`).
    #[serde(default)]
    pub fields: Option<String>,
}

/// What `create_embed_url` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EmbedUrl {
    /// The signed URL: single use, to load in an iframe. Treat it as a credential.
    pub url: String,
}

/// `login`: logs in with the API key now.
#[derive(Debug)]
pub struct Login;

impl Action for Login {
    const NAME: &'static str = "login";
    const DESCRIPTION: &'static str = "Logs in to the Looker API with the API key (other actions do it when needed) and says how long the session lasts; never returns the token.";
    type Config = LoginConfig;
    type Input = Payload;
    type Output = LoginInfo;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `run_inline_query`: runs a query without saving it.
#[derive(Debug)]
pub struct RunInlineQuery;

impl Action for RunInlineQuery {
    const NAME: &'static str = "run_inline_query";
    const DESCRIPTION: &'static str = "Runs a Looker query (model, explore, fields, filters, sorts, pivots) and returns records (json, csv), JSON (json_bi, json_detail) or bytes (other formats); optionally as an async query task.";
    type Config = RunInlineQueryConfig;
    type Input = Payload;
    type Output = Payload;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `run_look`: runs a saved Look.
#[derive(Debug)]
pub struct RunLook;

impl Action for RunLook {
    const NAME: &'static str = "run_look";
    const DESCRIPTION: &'static str =
        "Runs a saved Look and returns its results as records, JSON or bytes, by result format.";
    type Config = RunLookConfig;
    type Input = Payload;
    type Output = Payload;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `list_models`: every LookML model.
#[derive(Debug)]
pub struct ListModels;

impl Action for ListModels {
    const NAME: &'static str = "list_models";
    const DESCRIPTION: &'static str =
        "Lists the LookML models (with their explores) the API user can see, page by page.";
    type Config = ListModelsConfig;
    type Input = Payload;
    type Output = Vec<Value>;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `get_model`: one LookML model.
#[derive(Debug)]
pub struct GetModel;

impl Action for GetModel {
    const NAME: &'static str = "get_model";
    const DESCRIPTION: &'static str =
        "Reads one LookML model: its project, connections and explores.";
    type Config = GetModelConfig;
    type Input = Payload;
    type Output = Value;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// `create_embed_url`: a signed embed URL for a Looker page.
#[derive(Debug)]
pub struct CreateEmbedUrl;

impl Action for CreateEmbedUrl {
    const NAME: &'static str = "create_embed_url";
    const DESCRIPTION: &'static str = "Creates a signed, single-use embed URL for a Looker dashboard, Look or explore, for an external user with the given permissions, models, groups and user attributes.";
    type Config = EmbedParams;
    type Input = Payload;
    type Output = EmbedUrl;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

#[async_trait]
impl Handler<Login> for LookerConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        _config: LoginConfig,
        _input: Payload,
    ) -> Result<LoginInfo> {
        self.client().login().await
    }
}

#[async_trait]
impl Handler<RunInlineQuery> for LookerConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: RunInlineQueryConfig,
        _input: Payload,
    ) -> Result<Payload> {
        let query = config.query();
        let options = config.options();
        let body = if config.async_task {
            self.client()
                .run_query_task(&ctx, &query, config.result_format, &options)
                .await?
        } else {
            self.client()
                .run_inline_query(&query, config.result_format, &options)
                .await?
        };
        result_payload(config.result_format, body, &config.fields)
    }
}

#[async_trait]
impl Handler<RunLook> for LookerConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: RunLookConfig,
        _input: Payload,
    ) -> Result<Payload> {
        let look_id = match &config.look_id {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("`look_id` must be a number or text, not {other}"),
                ));
            }
        };
        let options = RunOptions {
            limit: config.limit,
            apply_formatting: config.apply_formatting,
            apply_vis: config.apply_vis,
            cache: config.cache,
            force_production: config.force_production,
            image_width: config.image_width,
            image_height: config.image_height,
        };
        let body = self
            .client()
            .run_look(&look_id, config.result_format, &options)
            .await?;
        result_payload(config.result_format, body, &[])
    }
}

#[async_trait]
impl Handler<ListModels> for LookerConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: ListModelsConfig,
        _input: Payload,
    ) -> Result<Vec<Value>> {
        let mut extra = BTreeMap::new();
        if let Some(fields) = &config.fields {
            extra.insert("fields".to_string(), fields.clone());
        }
        for (name, value) in [
            ("exclude_empty", config.exclude_empty),
            ("exclude_hidden", config.exclude_hidden),
            ("include_internal", config.include_internal),
        ] {
            if let Some(v) = value {
                extra.insert(name.to_string(), v.to_string());
            }
        }
        self.client()
            .lookml_models(config.page_size, config.max_models, &extra)
            .await
    }
}

#[async_trait]
impl Handler<GetModel> for LookerConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: GetModelConfig,
        _input: Payload,
    ) -> Result<Value> {
        self.client()
            .lookml_model(&config.name, config.fields.as_deref())
            .await
    }
}

#[async_trait]
impl Handler<CreateEmbedUrl> for LookerConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: EmbedParams,
        _input: Payload,
    ) -> Result<EmbedUrl> {
        let url = self.client().create_embed_url(&config).await?;
        Ok(EmbedUrl { url })
    }
}
