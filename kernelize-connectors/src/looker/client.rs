//! [`LookerClient`]: Looker API 4.0 calls — login, inline queries, Looks, LookML models,
//! signed embed URLs, async query tasks — and the conversion of their answers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use kernelize_core::payload::CsvOptions;
use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Payload, Records, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::auth::{LookerAuth, looker_message};
use crate::http::{HttpClient, Method, Request, Response};
use crate::saas::{
    Column, ColumnType, Poll, PollSettings, poll_until, records_from_rows, send_checked,
};

/// The most LookML models `list_models` reads by default.
pub const DEFAULT_MAX_MODELS: usize = 10_000;

/// The error for a non-2xx Looker answer: its kind from the status, Looker's `message`
/// (and, for a 422, each `errors[]` entry's field and message), the status, and the
/// `documentation_url` as context.
pub fn api_error(response: &Response, request: &str) -> Error {
    let code = response.status.as_u16();
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let mut message = looker_message(response);
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        let details: Vec<String> = errors
            .iter()
            .map(|e| {
                let field = e.get("field").and_then(Value::as_str).unwrap_or("?");
                let text = e
                    .get("message")
                    .and_then(Value::as_str)
                    .or_else(|| e.get("code").and_then(Value::as_str))
                    .unwrap_or("invalid");
                format!("{field}: {text}")
            })
            .collect();
        if !details.is_empty() {
            message.push_str(&format!(" ({})", details.join("; ")));
        }
    }
    let kind = match code {
        400 | 422 => ErrorKind::InvalidInput,
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::InvalidState,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Remote,
    };
    let mut error = Error::new(
        kind,
        format!("Looker: {request} answered {}: {message}", response.status),
    )
    .with_status(code);
    if let Some(url) = body.get("documentation_url").and_then(Value::as_str) {
        error = error.with_context("documentation_url", url);
    }
    if let Some(after) = response.retry_after() {
        error = error.with_retry_after(after);
    }
    if code == 408 || code == 429 || response.status.is_server_error() {
        error.set_temporary()
    } else {
        error.set_permanent()
    }
}

/// A result format of Looker's run endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultFormat {
    /// Rows as JSON objects keyed `view.field` → records.
    #[default]
    Json,
    /// JSON for BI tools (rows plus metadata) → JSON.
    JsonBi,
    /// JSON with field metadata and rendered values → JSON.
    JsonDetail,
    /// CSV with a header of field labels → records.
    Csv,
    /// Tab-separated text → bytes (`text/tab-separated-values`).
    Txt,
    /// An HTML table → bytes (`text/html`).
    Html,
    /// A Markdown table → bytes (`text/markdown`).
    Md,
    /// An Excel workbook → bytes.
    Xlsx,
    /// The SQL Looker would run → bytes (`application/sql`).
    Sql,
    /// The visualization as a PNG → bytes.
    Png,
    /// The visualization as a JPEG → bytes.
    Jpg,
}

impl ResultFormat {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultFormat::Json => "json",
            ResultFormat::JsonBi => "json_bi",
            ResultFormat::JsonDetail => "json_detail",
            ResultFormat::Csv => "csv",
            ResultFormat::Txt => "txt",
            ResultFormat::Html => "html",
            ResultFormat::Md => "md",
            ResultFormat::Xlsx => "xlsx",
            ResultFormat::Sql => "sql",
            ResultFormat::Png => "png",
            ResultFormat::Jpg => "jpg",
        }
    }

    /// The media type of its bytes.
    pub fn media_type(self) -> &'static str {
        match self {
            ResultFormat::Json | ResultFormat::JsonBi | ResultFormat::JsonDetail => {
                "application/json"
            }
            ResultFormat::Csv => "text/csv",
            ResultFormat::Txt => "text/tab-separated-values",
            ResultFormat::Html => "text/html",
            ResultFormat::Md => "text/markdown",
            ResultFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            ResultFormat::Sql => "application/sql",
            ResultFormat::Png => "image/png",
            ResultFormat::Jpg => "image/jpeg",
        }
    }
}

/// A query as Looker's `WriteQuery` takes it (for `run_inline_query` and `POST /queries`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct InlineQuery {
    /// The LookML model.
    pub model: String,
    /// The explore.
    pub view: String,
    /// Fields, `view.field`.
    pub fields: Vec<String>,
    /// Filters: field to Looker filter expression (`"orders.status": "complete"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, String>,
    /// A custom filter expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_expression: Option<String>,
    /// Sorts: `orders.created_date desc`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sorts: Vec<String>,
    /// Pivoted fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pivots: Vec<String>,
    /// Dimensions whose missing values are filled in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fill_fields: Vec<String>,
    /// Row limit, as Looker writes it (text: `"500"`, `"-1"` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The time zone the query runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_timezone: Option<String>,
    /// Compute totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<bool>,
    /// Compute row totals (pivots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_total: Option<String>,
    /// Custom fields and table calculations, as Looker's JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_fields: Option<String>,
}

/// Query-string options of the run endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RunOptions {
    /// Row limit (overrides the query's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Format values as Looker shows them (currency, dates) instead of raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_formatting: Option<bool>,
    /// Apply the visualization's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_vis: Option<bool>,
    /// Answer from Looker's cache when it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// Run against production LookML even in development mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_production: Option<bool>,
    /// Image width in pixels (`png`, `jpg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_width: Option<u32>,
    /// Image height in pixels (`png`, `jpg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_height: Option<u32>,
}

/// What a login gave (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LoginInfo {
    /// Seconds the token stays valid.
    pub expires_in: u64,
    /// The token type Looker names (`Bearer`; calls send it as `token …`).
    pub token_type: String,
}

/// The parameters of a signed embed URL (`EmbedSsoParams`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedParams {
    /// The Looker page to show, whole: `https://mycompany.cloud.looker.com/embed/dashboards/34`.
    pub target_url: String,
    /// Seconds the embed session lasts (Looker's default 300; at most 2,592,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_length: Option<u64>,
    /// Drop any Looker login the browser has before logging in the embed user (Looker's
    /// default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_logout_login: Option<bool>,
    /// Your system's stable id of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_user_id: Option<String>,
    /// First name (Looker's default `Embed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name (Looker's default `User`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// The user's time zone (only when user-specific time zones are on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_timezone: Option<String>,
    /// Looker permissions (`access_data`, `see_looks`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// LookML models the user may query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Looker groups the user joins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_ids: Vec<String>,
    /// An embed-only group users share content in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_group_id: Option<String>,
    /// User attribute values (row-level access: `{"region": "EU"}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_attributes: BTreeMap<String, Value>,
    /// The embed secret to sign with (the newest when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// The domain hosting the iframe, added to the allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_domain: Option<String>,
}

impl EmbedParams {
    /// Checks what Looker documents: a whole `target_url`, a session of at most 30 days,
    /// and `group_ids` or both `models` and `permissions`.
    pub fn check(&self) -> Result<()> {
        let target = url::Url::parse(&self.target_url).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`target_url` must be a whole URL of a Looker page (`https://…/embed/dashboards/34`): {e}"
                ),
            )
        })?;
        if !matches!(target.scheme(), "https" | "http") {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`target_url` must be an https URL",
            ));
        }
        if self.session_length.is_some_and(|s| s == 0 || s > 2_592_000) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`session_length` must be 1 to 2,592,000 seconds (30 days)",
            ));
        }
        if self.group_ids.is_empty() && (self.models.is_empty() || self.permissions.is_empty()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "an embed user needs `group_ids`, or both `models` and `permissions`",
            ));
        }
        Ok(())
    }
}

/// The Looker API 4.0, over an [`HttpClient`] whose [`LookerAuth`] layer logs in.
#[derive(Debug, Clone)]
pub struct LookerClient {
    http: HttpClient,
    auth: Arc<LookerAuth>,
    poll: PollSettings,
}

impl LookerClient {
    /// A client over `http` (whose base URL is the API root, `…/api/4.0/`), with `auth`
    /// the login layer in its stack.
    pub fn new(http: HttpClient, auth: Arc<LookerAuth>) -> Self {
        Self {
            http,
            auth,
            poll: PollSettings::default(),
        }
    }

    /// Polls query tasks as `poll` says.
    pub fn with_poll(mut self, poll: PollSettings) -> Self {
        self.poll = poll;
        self
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    async fn call(&self, request: Request) -> Result<Response> {
        let describe = request.describe();
        send_checked(&self.http, request, &describe, api_error).await
    }

    /// Logs in now (the layer otherwise logs in on first use) and says for how long.
    pub async fn login(&self) -> Result<LoginInfo> {
        // The auth layer fills in the credentials and keeps the token; a login may be
        // repeated safely.
        let request = self.http.request(Method::POST, "login")?.replayable();
        let answer: Value = self.call(request).await?.json()?;
        Ok(LoginInfo {
            expires_in: answer
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(3600),
            token_type: answer
                .get("token_type")
                .and_then(Value::as_str)
                .unwrap_or("Bearer")
                .to_string(),
        })
    }

    /// Ends the session (`DELETE /logout`), when there is one.
    pub async fn logout(&self) -> Result<()> {
        if !self.auth.has_session().await {
            return Ok(());
        }
        self.call(self.http.request(Method::DELETE, "logout")?)
            .await?;
        Ok(())
    }

    /// Runs a query without saving it (`POST /queries/run/{format}`) and returns the raw
    /// answer. Running a query changes nothing, so the request is retried like a GET.
    pub async fn run_inline_query(
        &self,
        query: &InlineQuery,
        format: ResultFormat,
        options: &RunOptions,
    ) -> Result<Bytes> {
        check_query(query)?;
        let request = self
            .http
            .request(Method::POST, &format!("queries/run/{}", format.as_str()))?
            .path_template("queries/run/{result_format}")
            .query(options)?
            .json(query)?
            .replayable();
        Ok(self.call(request).await?.body)
    }

    /// Runs a saved Look (`GET /looks/{id}/run/{format}`) and returns the raw answer.
    pub async fn run_look(
        &self,
        look_id: &str,
        format: ResultFormat,
        options: &RunOptions,
    ) -> Result<Bytes> {
        let request = self
            .http
            .request(
                Method::GET,
                &format!(
                    "looks/{}/run/{}",
                    id_segment("look_id", look_id)?,
                    format.as_str()
                ),
            )?
            .path_template("looks/{look_id}/run/{result_format}")
            .query(options)?;
        Ok(self.call(request).await?.body)
    }

    /// Every LookML model (`GET /lookml_models?limit&offset`), `page_size` a page, at most
    /// `max_models` (more is an error). An instance that ignores `limit`/`offset` (older
    /// releases) answers everything at once, which is detected and kept once.
    pub async fn lookml_models(
        &self,
        page_size: usize,
        max_models: usize,
        extra: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>> {
        if page_size == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`page_size` must be at least 1",
            ));
        }
        let mut models: Vec<Value> = Vec::new();
        let mut names = HashSet::new();
        loop {
            let mut query: Vec<(String, String)> = vec![
                ("limit".into(), page_size.to_string()),
                ("offset".into(), models.len().to_string()),
            ];
            query.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            let request = self
                .http
                .request(Method::GET, "lookml_models")?
                .query(&query)?;
            let page: Vec<Value> = self.call(request).await?.json()?;
            let count = page.len();
            let mut fresh = 0;
            for model in page {
                let name = model
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if names.insert(name) {
                    fresh += 1;
                    models.push(model);
                }
            }
            if models.len() > max_models {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("the instance has more than {max_models} LookML models (`max_models`)"),
                ));
            }
            // A short page is the last; a long page or one with nothing new means the
            // instance ignored `limit`/`offset` and answered everything.
            if count != page_size || fresh == 0 {
                return Ok(models);
            }
        }
    }

    /// One LookML model with its explores (`GET /lookml_models/{name}`).
    pub async fn lookml_model(&self, name: &str, fields: Option<&str>) -> Result<Value> {
        let request = self
            .http
            .request(
                Method::GET,
                &format!("lookml_models/{}", id_segment("name", name)?),
            )?
            .path_template("lookml_models/{name}")
            .query(&json!({"fields": fields}))?;
        self.call(request).await?.json()
    }

    /// A signed, single-use embed URL (`POST /embed/sso_url`).
    pub async fn create_embed_url(&self, params: &EmbedParams) -> Result<String> {
        params.check()?;
        let request = self
            .http
            .request(Method::POST, "embed/sso_url")?
            .json(params)?;
        let answer: Value = self.call(request).await?.json()?;
        answer
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::new(ErrorKind::Remote, "Looker's embed answer has no url"))
    }

    /// Runs a query as an async query task: saves it (`POST /queries`), starts a task
    /// (`POST /query_tasks`), polls `GET /query_tasks/{id}` until its status is `complete`
    /// (bounded by the poll settings and the call's deadline), then reads
    /// `GET /query_tasks/{id}/results` (204 while not ready).
    pub async fn run_query_task(
        &self,
        ctx: &ActionContext,
        query: &InlineQuery,
        format: ResultFormat,
        options: &RunOptions,
    ) -> Result<Bytes> {
        check_query(query)?;
        let saved: Value = self
            .call(self.http.request(Method::POST, "queries")?.json(query)?)
            .await?
            .json()?;
        let query_id = id_text(saved.get("id"))
            .ok_or_else(|| Error::new(ErrorKind::Remote, "Looker saved the query without an id"))?;
        let request = self
            .http
            .request(Method::POST, "query_tasks")?
            .query(options)?
            .json(&json!({"query_id": query_id, "result_format": format.as_str()}))?;
        let task: Value = self.call(request).await?.json()?;
        let task_id = id_text(task.get("id")).ok_or_else(|| {
            Error::new(
                ErrorKind::Remote,
                "Looker started a query task without an id",
            )
        })?;
        let segment = id_segment("query task id", &task_id)?.to_string();
        let what = format!("Looker query task {task_id}");
        poll_until(ctx, &self.poll, &what, || {
            let request = self
                .http
                .request(Method::GET, &format!("query_tasks/{segment}"));
            let task_id = task_id.clone();
            async move {
                let task: Value = self.call(request?).await?.json()?;
                let status = task
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                match status.to_ascii_lowercase().as_str() {
                    "complete" => Ok(Poll::Ready(())),
                    "error" | "killed" | "expired" | "failed" => Err(Error::new(
                        ErrorKind::Remote,
                        format!("Looker query task {task_id} ended with status `{status}`"),
                    )),
                    _ => Ok(Poll::Pending(status)),
                }
            }
        })
        .await?;
        poll_until(ctx, &self.poll, &what, || {
            let request = self
                .http
                .request(Method::GET, &format!("query_tasks/{segment}/results"));
            async move {
                let response = self.call(request?).await?;
                Ok(if response.status.as_u16() == 204 {
                    Poll::Pending("results not ready (204)".into())
                } else {
                    Poll::Ready(response.body)
                })
            }
        })
        .await
    }
}

fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An id or name as one path segment; anything that would reach another path is refused.
fn id_segment<'a>(what: &str, id: &'a str) -> Result<&'a str> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c))
        || id.contains("..")
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{id}` is not a valid Looker {what}"),
        ));
    }
    Ok(id)
}

fn check_query(query: &InlineQuery) -> Result<()> {
    if query.model.is_empty() || query.view.is_empty() || query.fields.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a Looker query needs `model`, `view` (the explore) and `fields`",
        ));
    }
    Ok(())
}

/// A run endpoint's answer as a payload: `json` and `csv` as records, `json_bi` and
/// `json_detail` as JSON, the other formats as bytes of their media type. `fields` orders
/// the columns of `json` records (the query's fields first, any others after).
pub fn result_payload(format: ResultFormat, body: Bytes, fields: &[String]) -> Result<Payload> {
    match format {
        ResultFormat::Json => {
            let rows: Value = serde_json::from_slice(&body).map_err(|e| {
                Error::new(
                    ErrorKind::Remote,
                    format!("Looker's json result is not JSON: {e}"),
                )
            })?;
            let Value::Array(rows) = rows else {
                return Err(Error::new(
                    ErrorKind::Remote,
                    "Looker's json result is not an array of rows",
                ));
            };
            json_records(&rows, fields).map(Payload::Records)
        }
        ResultFormat::Csv => {
            Records::from_csv(&body[..], &CsvOptions::default()).map(Payload::Records)
        }
        ResultFormat::JsonBi | ResultFormat::JsonDetail => serde_json::from_slice(&body)
            .map(Payload::Json)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Remote,
                    format!("Looker's {} result is not JSON: {e}", format.as_str()),
                )
            }),
        other => Ok(Payload::bytes(body, other.media_type())),
    }
}

/// Looker `json` rows (objects keyed `view.field`) as records. Each column's type is
/// inferred from its non-null values: all integers → integer; all numbers → float; all
/// booleans → boolean; all `YYYY-MM-DD` text → date; anything else → text (objects and
/// arrays, as pivoted measures are, as JSON text). A row `{"looker_error": …}` is Looker
/// reporting a failed query: a `remote` error with its message.
pub fn json_records(rows: &[Value], fields: &[String]) -> Result<Records> {
    let mut names: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for field in fields {
        if seen.insert(field.clone()) {
            names.push(field.clone());
        }
    }
    let mut objects: Vec<&Map<String, Value>> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let object = row.as_object().ok_or_else(|| {
            Error::new(
                ErrorKind::CorruptData,
                format!("row {i} of Looker's json result is not an object"),
            )
        })?;
        if let Some(message) = object.get("looker_error") {
            return Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "Looker could not run the query: {}",
                    message
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| message.to_string())
                ),
            ));
        }
        for key in object.keys() {
            if seen.insert(key.clone()) {
                names.push(key.clone());
            }
        }
        objects.push(object);
    }
    // Fields asked for but in no row (an empty result) stay, as text.
    let columns: Vec<Column> = names
        .iter()
        .map(|name| Column::new(name, infer_type(objects.iter().filter_map(|o| o.get(name)))))
        .collect();
    let cells: Vec<Vec<Value>> = objects
        .iter()
        .map(|o| {
            columns
                .iter()
                .map(|c| match o.get(&c.name) {
                    None | Some(Value::Null) => Value::Null,
                    Some(v @ (Value::Object(_) | Value::Array(_))) => Value::String(v.to_string()),
                    Some(v) => v.clone(),
                })
                .collect()
        })
        .collect();
    records_from_rows(&columns, &cells)
}

fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

fn infer_type<'a>(values: impl Iterator<Item = &'a Value>) -> ColumnType {
    let mut kind: Option<ColumnType> = None;
    for value in values {
        let this = match value {
            Value::Null => continue,
            Value::Bool(_) => ColumnType::Boolean,
            Value::Number(n) if n.is_i64() => ColumnType::Integer,
            Value::Number(_) => ColumnType::Float,
            Value::String(s) if is_date(s) => ColumnType::Date,
            _ => return ColumnType::Text,
        };
        kind = Some(match (kind, this) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(ColumnType::Integer), ColumnType::Float)
            | (Some(ColumnType::Float), ColumnType::Integer) => ColumnType::Float,
            _ => return ColumnType::Text,
        });
    }
    kind.unwrap_or(ColumnType::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_get_inferred_types_in_field_order() {
        let rows = vec![
            json!({"orders.status": "complete", "orders.id": 1, "orders.total": 10, "orders.day": "2024-05-01", "orders.paid": true}),
            json!({"orders.status": null, "orders.id": 2, "orders.total": 12.5, "orders.day": null, "orders.paid": false}),
        ];
        let fields = vec!["orders.id".to_string(), "orders.status".to_string()];
        let records = json_records(&rows, &fields).unwrap();
        let schema = records.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            vec![
                "orders.id",
                "orders.status",
                "orders.total",
                "orders.day",
                "orders.paid"
            ]
        );
        use kernelize_core::arrow_schema::DataType;
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int64,
                DataType::Utf8,
                DataType::Float64,
                DataType::Date32,
                DataType::Boolean
            ]
        );
    }

    #[test]
    fn mixed_or_nested_values_are_text_and_looker_errors_fail() {
        let rows = vec![
            json!({"a": 1, "b": {"x": 1}}),
            json!({"a": "one", "b": null}),
        ];
        let records = json_records(&rows, &[]).unwrap();
        let out = records.to_json_rows().unwrap();
        assert_eq!(out[0]["a"], "1");
        assert_eq!(out[0]["b"], r#"{"x":1}"#);
        let err = json_records(&[json!({"looker_error": "SQL syntax"})], &[]).unwrap_err();
        assert!(err.message().contains("SQL syntax"));
    }

    #[test]
    fn embed_params_follow_lookers_rules() {
        let mut p = EmbedParams {
            target_url: "https://co.cloud.looker.com/embed/dashboards/1".into(),
            models: vec!["m".into()],
            ..EmbedParams::default()
        };
        assert!(p.check().is_err(), "models without permissions");
        p.permissions = vec!["access_data".into()];
        assert!(p.check().is_ok());
        p.session_length = Some(3_000_000);
        assert!(p.check().is_err());
        p.session_length = None;
        p.target_url = "/embed/dashboards/1".into();
        assert!(p.check().is_err());
    }

    #[test]
    fn ids_cannot_reach_other_paths() {
        assert!(id_segment("look", "42").is_ok());
        assert!(id_segment("model", "the_look").is_ok());
        assert!(id_segment("look", "../users").is_err());
        assert!(id_segment("look", "1/run").is_err());
        assert!(id_segment("look", "").is_err());
    }
}
