//! The fake of the Looker API 4.0.
//!
//! Written from the documented API (see the project's API facts, section 6, and Looker's
//! API reference for `all_lookml_models` and `create_sso_embed_url`): API-key login with a
//! form-encoded body, `Authorization: token …` on every later call, inline queries and
//! Looks in every result format, LookML models paged by `limit`/`offset`, signed embed
//! URLs, async query tasks (`204` while running), `DELETE /logout`, and the
//! `{message, documentation_url}` error body (with `errors[]` for 422).
//!
//! ## Valid credentials and data (the default [`Config`])
//!
//! | what | value |
//! |------|-------|
//! | API root | `{url}/api/4.0` |
//! | API key | client id `fake-client-id`, secret `fake-client-secret` |
//! | tokens | `fake-token` for the first login, then `fake-token-2`, `-3` ... |
//! | model / explore | `thelook` / `orders`, fields [`FIELDS`], rows [`ORDERS`] |
//! | a Look | id `42` ([`LOOK_ID`]): all of [`FIELDS`] |
//! | LookML models | [`Config::models`] of them: `thelook`, `model_2`, `model_3` ... |
//!
//! ## What it checks
//!
//! - Login: `POST /api/4.0/login`, `Content-Type: application/x-www-form-urlencoded`,
//!   `client_id` and `client_secret` in the body (credentials in the query string, which
//!   Looker deprecates, are refused here); wrong ones answer 404 `Not found` [U: Looker's
//!   status for a bad API key].
//! - `Authorization: token <access_token>` (the literal word `token`; `Bearer` is refused
//!   [U: whether Looker accepts it]) with a token issued, not logged out and not expired
//!   (401 `Requires authentication.`).
//! - Queries: `Content-Type: application/json`; `model`, `view` and `fields` present (422
//!   with `errors[]` otherwise); the model (404), explore (404) and fields (422) known.
//!   Filters on a field keep the rows whose value equals the filter text; the first sort
//!   (`field` or `field desc`) orders them; `limit` (body text, or the query parameter)
//!   cuts them.
//! - Embed URLs: a whole `target_url`, `session_length` up to 30 days, and `group_ids` or
//!   both `models` and `permissions` (422).
//!
//! ## Knobs
//!
//! [`Config::expires_in`] (the token lifetime it reports and enforces),
//! [`Config::session_valid_for`] (sessions end sooner than reported, as when an admin ends
//! them: the next call answers 401), [`Config::rate_limit_times`] (429 on API calls),
//! [`Config::login_rate_limit_times`] (429 on logins), [`Config::task_polls`] and
//! [`Config::task_complete_status`] (async query tasks; the status text's case is [U]),
//! [`Config::ignore_model_paging`] (older releases without `limit`/`offset`).

// Checks return the error answer itself; its size does not matter in a test server.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{Fake, Journal, MAX_BODY, Times, json, serve};

/// The API key's client id.
pub const CLIENT_ID: &str = "fake-client-id";
/// The API key's client secret.
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The model.
pub const MODEL: &str = "thelook";
/// The explore.
pub const EXPLORE: &str = "orders";
/// The saved Look.
pub const LOOK_ID: &str = "42";
/// Where Looker's error bodies point.
pub const DOCS_URL: &str = "https://cloud.google.com/looker/docs/r/api/support";

/// The explore's fields: name, label, type (`number`, `string`, `date`, `yesno`), and
/// whether it is a measure.
pub const FIELDS: &[(&str, &str, &str, bool)] = &[
    ("orders.id", "Orders ID", "number", false),
    ("orders.status", "Orders Status", "string", false),
    ("orders.created_date", "Orders Created Date", "date", false),
    (
        "orders.total_amount",
        "Orders Total Amount",
        "number",
        false,
    ),
    ("orders.is_paid", "Orders Is Paid", "yesno", false),
    ("users.count", "Users Count", "number", true),
];

/// The explore's rows, values as Looker's `json` format gives them (in [`FIELDS`] order).
pub const ORDERS: &[&str] = &[
    r#"[1, "complete", "2024-05-01", 19.99, "Yes", 1]"#,
    r#"[2, "pending", "2024-05-02", 5, "No", 1]"#,
    r#"[3, "complete", "2024-05-02", 120.5, "Yes", 2]"#,
    r#"[4, "cancelled", null, null, "No", 1]"#,
];

/// The image the `png` format renders: a 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// The result formats Looker documents.
pub const FORMATS: &[&str] = &[
    "json",
    "json_bi",
    "json_detail",
    "csv",
    "txt",
    "html",
    "md",
    "xlsx",
    "sql",
    "png",
    "jpg",
];

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API key's client id.
    pub client_id: String,
    /// The API key's client secret.
    pub client_secret: String,
    /// `expires_in` of issued tokens, in seconds; they stop working after it.
    pub expires_in: u64,
    /// When set, sessions end this long after login whatever `expires_in` said.
    pub session_valid_for: Option<Duration>,
    /// How many API calls (logins excluded) answer 429 first.
    pub rate_limit_times: u32,
    /// How many logins answer 429 first.
    pub login_rate_limit_times: u32,
    /// How many status polls of a query task answer `running` before it completes.
    pub task_polls: u32,
    /// The status of a finished query task (`complete`).
    pub task_complete_status: String,
    /// How many LookML models the instance has.
    pub models: usize,
    /// Answer every model at once whatever `limit` and `offset` say.
    pub ignore_model_paging: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            expires_in: 3600,
            session_valid_for: None,
            rate_limit_times: 0,
            login_rate_limit_times: 0,
            task_polls: 2,
            task_complete_status: "complete".into(),
            models: 3,
            ignore_model_paging: false,
        }
    }
}

#[derive(Debug)]
struct Task {
    query_id: String,
    format: String,
    polls_left: u32,
    query: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct World {
    tokens: HashMap<String, Instant>,
    logins: u32,
    queries: HashMap<String, Value>,
    tasks: HashMap<String, Task>,
    counter: u32,
}

#[derive(Clone)]
struct Shared {
    config: Arc<Config>,
    world: Arc<Mutex<World>>,
    rate_limited: Times,
    login_rate_limited: Times,
}

/// The fake's routes, with `config`; `journal` is the one the server records into.
pub fn router(config: Config, journal: Journal) -> Router {
    let _ = journal;
    let shared = Shared {
        rate_limited: Times::new(config.rate_limit_times),
        login_rate_limited: Times::new(config.login_rate_limit_times),
        config: Arc::new(config),
        world: Arc::new(Mutex::new(World::default())),
    };
    Router::new().fallback(handle).with_state(shared)
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

/// Looker's error body.
fn error(status: u16, message: &str) -> Response {
    json(
        status,
        json!({"message": message, "documentation_url": DOCS_URL}),
    )
}

/// Looker's 422 body.
fn validation(field: &str, code: &str, message: &str) -> Response {
    json(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{"field": field, "code": code, "message": message, "documentation_url": DOCS_URL}],
            "documentation_url": DOCS_URL,
        }),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, content_type.to_string())],
        body.into(),
    )
        .into_response()
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(400, &format!("cannot read the body: {e}")),
    };
    let path = parts.uri.path().to_string();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let Some(rest) = path.strip_prefix("/api/4.0/") else {
        return error(404, "Not found");
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let method = parts.method.clone();
    if method == Method::POST && segments == ["login"] {
        return login(&shared, &parts.headers, &query, &body);
    }
    let token = match check_token(&shared, &parts.headers) {
        Ok(token) => token,
        Err(answer) => return answer,
    };
    if shared.rate_limited.take() {
        return error(429, "Too Many Requests");
    }
    let body_json = || -> Result<Value, Response> {
        if !header(&parts.headers, "content-type").starts_with("application/json") {
            return Err(error(400, "Content-Type must be application/json"));
        }
        serde_json::from_slice(&body).map_err(|e| error(400, &format!("Bad JSON: {e}")))
    };
    match (method, segments.as_slice()) {
        (Method::DELETE, ["logout"]) => {
            let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
            world.tokens.remove(&token);
            bytes(204, "text/plain", Bytes::new())
        }
        (Method::POST, ["queries", "run", format]) => match body_json() {
            Ok(q) => match check_query(&q) {
                Ok(fields) => render(&q, &fields, format, &query),
                Err(answer) => answer,
            },
            Err(answer) => answer,
        },
        (Method::GET, ["looks", id, "run", format]) => {
            if *id != LOOK_ID {
                return error(404, "Not found");
            }
            let fields: Vec<String> = FIELDS.iter().map(|f| f.0.to_string()).collect();
            let q = json!({"model": MODEL, "view": EXPLORE, "fields": fields});
            render(&q, &fields, format, &query)
        }
        (Method::GET, ["lookml_models"]) => models(&shared, &query),
        (Method::GET, ["lookml_models", name]) => {
            match model_list(&shared).into_iter().find(|m| m["name"] == *name) {
                Some(model) => json(200, model),
                None => error(404, "Not found"),
            }
        }
        (Method::POST, ["embed", "sso_url"]) => match body_json() {
            Ok(params) => embed_url(&params),
            Err(answer) => answer,
        },
        (Method::POST, ["queries"]) => match body_json() {
            Ok(q) => match check_query(&q) {
                Ok(_) => {
                    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
                    world.counter += 1;
                    let id = format!("{}", 1000 + world.counter);
                    let mut saved = q.clone();
                    saved["id"] = json!(id);
                    saved["slug"] = json!(format!("slug{id}"));
                    world.queries.insert(id, saved.clone());
                    json(200, saved)
                }
                Err(answer) => answer,
            },
            Err(answer) => answer,
        },
        (Method::POST, ["query_tasks"]) => match body_json() {
            Ok(b) => create_task(&shared, &b, &query),
            Err(answer) => answer,
        },
        (Method::GET, ["query_tasks", id]) => {
            let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
            let Some(task) = world.tasks.get_mut(*id) else {
                return error(404, "Not found");
            };
            let status = if task.polls_left > 0 {
                task.polls_left -= 1;
                "running".to_string()
            } else {
                shared.config.task_complete_status.clone()
            };
            json(
                200,
                json!({"id": id, "query_id": task.query_id, "status": status, "result_format": task.format}),
            )
        }
        (Method::GET, ["query_tasks", id, "results"]) => {
            let world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
            let Some(task) = world.tasks.get(*id) else {
                return error(404, "Query task not found or results expired");
            };
            if task.polls_left > 0 {
                return bytes(204, "text/plain", Bytes::new());
            }
            let Some(q) = world.queries.get(&task.query_id) else {
                return error(404, "Not found");
            };
            match check_query(q) {
                Ok(fields) => render(q, &fields, &task.format, &task.query),
                Err(answer) => answer,
            }
        }
        _ => error(404, "Not found"),
    }
}

fn login(
    shared: &Shared,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
    body: &Bytes,
) -> Response {
    if query.contains_key("client_id") || query.contains_key("client_secret") {
        return error(
            400,
            "API credentials in the query string are deprecated; send them form-encoded in the body",
        );
    }
    if !header(headers, "content-type").starts_with("application/x-www-form-urlencoded") {
        return error(
            400,
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    if shared.login_rate_limited.take() {
        return error(429, "Too Many Requests");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let config = &shared.config;
    if form.get("client_id") != Some(&config.client_id)
        || form.get("client_secret") != Some(&config.client_secret)
    {
        return error(404, "Not found");
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    world.logins += 1;
    let token = if world.logins == 1 {
        "fake-token".to_string()
    } else {
        format!("fake-token-{}", world.logins)
    };
    let lifetime = Duration::from_secs(config.expires_in);
    let valid = config
        .session_valid_for
        .map_or(lifetime, |v| v.min(lifetime));
    world.tokens.insert(token.clone(), Instant::now() + valid);
    json(
        200,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": config.expires_in}),
    )
}

fn check_token(shared: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let unauthorized = || error(401, "Requires authentication.");
    let Some(token) = header(headers, "authorization").strip_prefix("token ") else {
        return Err(unauthorized());
    };
    let world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    match world.tokens.get(token) {
        Some(until) if Instant::now() < *until => Ok(token.to_string()),
        _ => Err(unauthorized()),
    }
}

/// Checks a query body; its fields when it is one this fake can run.
fn check_query(q: &Value) -> Result<Vec<String>, Response> {
    for name in ["model", "view"] {
        if q.get(name)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(validation(name, "missing_field", "This field is required."));
        }
    }
    let fields: Vec<String> = q
        .get("fields")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(validation(
            "fields",
            "missing_field",
            "This field is required.",
        ));
    }
    if q["model"] != MODEL {
        return Err(error(
            404,
            &format!("model '{}' not found", q["model"].as_str().unwrap_or("")),
        ));
    }
    if q["view"] != EXPLORE {
        return Err(error(
            404,
            &format!("explore '{}' not found", q["view"].as_str().unwrap_or("")),
        ));
    }
    for field in &fields {
        if !FIELDS.iter().any(|f| f.0 == field) {
            return Err(validation(
                "fields",
                "invalid",
                &format!("Unknown field: {field}"),
            ));
        }
    }
    Ok(fields)
}

fn rows() -> Vec<Vec<Value>> {
    ORDERS
        .iter()
        .map(|r| serde_json::from_str::<Vec<Value>>(r).unwrap_or_default())
        .collect()
}

fn index_of(field: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.0 == field)
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The query's rows: filtered, sorted, limited.
fn run(q: &Value, query: &BTreeMap<String, String>) -> Vec<Vec<Value>> {
    let mut rows = rows();
    if let Some(filters) = q.get("filters").and_then(Value::as_object) {
        for (field, expected) in filters {
            if let (Some(i), Some(expected)) = (index_of(field), expected.as_str()) {
                rows.retain(|r| plain(&r[i]) == expected);
            }
        }
    }
    if let Some(sort) = q
        .get("sorts")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .and_then(Value::as_str)
    {
        let mut words = sort.split_whitespace();
        if let Some(i) = words.next().and_then(index_of) {
            let descending = words.next() == Some("desc");
            rows.sort_by(|a, b| {
                let ordering = match (&a[i], &b[i]) {
                    (Value::Number(x), Value::Number(y)) => x
                        .as_f64()
                        .partial_cmp(&y.as_f64())
                        .unwrap_or(std::cmp::Ordering::Equal),
                    (x, y) => plain(x).cmp(&plain(y)),
                };
                if descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
    }
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .or_else(|| {
            q.get("limit")
                .and_then(Value::as_str)
                .and_then(|l| l.parse().ok())
        })
        .unwrap_or(500);
    if limit >= 0 {
        rows.truncate(limit as usize);
    }
    rows
}

fn label(field: &str) -> &'static str {
    FIELDS
        .iter()
        .find(|f| f.0 == field)
        .map(|f| f.1)
        .unwrap_or("")
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A query's result in `format`.
fn render(
    q: &Value,
    fields: &[String],
    format: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    if !FORMATS.contains(&format) {
        return error(400, &format!("Unsupported result format: {format}"));
    }
    let rows = run(q, query);
    let picked: Vec<Vec<(&str, Value)>> = rows
        .iter()
        .map(|r| {
            fields
                .iter()
                .filter_map(|f| index_of(f).map(|i| (f.as_str(), r[i].clone())))
                .collect()
        })
        .collect();
    let objects: Vec<Value> = picked
        .iter()
        .map(|r| Value::Object(r.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()))
        .collect();
    let describe = |measure: bool| -> Vec<Value> {
        fields
            .iter()
            .filter_map(|f| FIELDS.iter().find(|d| d.0 == f))
            .filter(|d| d.3 == measure)
            .map(|d| json!({"name": d.0, "label": d.1, "type": d.2}))
            .collect()
    };
    let table = |sep: &str| -> String {
        let mut out = fields
            .iter()
            .map(|f| label(f))
            .collect::<Vec<_>>()
            .join(sep);
        out.push('\n');
        for r in &picked {
            out.push_str(
                &r.iter()
                    .map(|(_, v)| plain(v))
                    .collect::<Vec<_>>()
                    .join(sep),
            );
            out.push('\n');
        }
        out
    };
    match format {
        "json" => json(200, Value::Array(objects)),
        "json_bi" => json(
            200,
            json!({
                "metadata": {"fields": {"dimensions": describe(false), "measures": describe(true)}},
                "rows": objects,
            }),
        ),
        "json_detail" => {
            let data: Vec<Value> = picked
                .iter()
                .map(|r| {
                    Value::Object(
                        r.iter()
                            .map(|(k, v)| (k.to_string(), json!({"value": v})))
                            .collect(),
                    )
                })
                .collect();
            json(
                200,
                json!({
                    "fields": {"dimensions": describe(false), "measures": describe(true)},
                    "data": data,
                    "sql": "SELECT … FROM orders",
                }),
            )
        }
        "csv" => {
            let mut out = fields
                .iter()
                .map(|f| csv_cell(label(f)))
                .collect::<Vec<_>>()
                .join(",");
            out.push('\n');
            for r in &picked {
                out.push_str(
                    &r.iter()
                        .map(|(_, v)| csv_cell(&plain(v)))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push('\n');
            }
            bytes(200, "text/csv", out)
        }
        "txt" => bytes(200, "text/plain", table("\t")),
        "md" => bytes(200, "text/markdown", table(" | ")),
        "html" => {
            let mut out = String::from("<table><tr>");
            for f in fields {
                out.push_str(&format!("<th>{}</th>", label(f)));
            }
            out.push_str("</tr>");
            for r in &picked {
                out.push_str("<tr>");
                for (_, v) in r {
                    out.push_str(&format!("<td>{}</td>", plain(v)));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
            bytes(200, "text/html", out)
        }
        "sql" => bytes(
            200,
            "text/plain",
            format!(
                "SELECT\n    {}\nFROM public.orders AS orders\nLIMIT 500",
                fields.join(",\n    ")
            ),
        ),
        "png" => bytes(200, "image/png", PNG),
        "jpg" => bytes(200, "image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xD9][..]),
        _ => bytes(
            200,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            &b"PK\x03\x04fake-xlsx"[..],
        ),
    }
}

fn model_list(shared: &Shared) -> Vec<Value> {
    (1..=shared.config.models)
        .map(|i| {
            let name = if i == 1 {
                MODEL.to_string()
            } else {
                format!("model_{i}")
            };
            json!({
                "name": name,
                "project_name": "kernelize_project",
                "label": format!("Model {i}"),
                "has_content": true,
                "allowed_db_connection_names": ["warehouse"],
                "unlimited_db_connections": false,
                "explores": [{"name": EXPLORE, "label": "Orders", "hidden": false,
                              "group_label": "Sales", "description": "Orders and buyers"}],
                "can": {"index": true, "show": true},
            })
        })
        .collect()
}

fn models(shared: &Shared, query: &BTreeMap<String, String>) -> Response {
    let all = model_list(shared);
    if shared.config.ignore_model_paging {
        return json(200, Value::Array(all));
    }
    let number = |name: &str| -> Result<Option<usize>, Response> {
        match query.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| error(400, &format!("`{name}` must be a non-negative integer"))),
        }
    };
    let (limit, offset) = match (number("limit"), number("offset")) {
        (Ok(l), Ok(o)) => (l, o.unwrap_or(0)),
        (Err(answer), _) | (_, Err(answer)) => return answer,
    };
    let page: Vec<Value> = all
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    json(200, Value::Array(page))
}

fn embed_url(params: &Value) -> Response {
    let Some(target) = params.get("target_url").and_then(Value::as_str) else {
        return validation("target_url", "missing_field", "This field is required.");
    };
    let Ok(target) = url::Url::parse(target) else {
        return validation(
            "target_url",
            "invalid",
            "target_url must contain a scheme, domain name and URL path",
        );
    };
    let session_length = params
        .get("session_length")
        .and_then(Value::as_u64)
        .unwrap_or(300);
    if session_length == 0 || session_length > 2_592_000 {
        return validation(
            "session_length",
            "invalid",
            "Maximum session length accepted is 2592000 seconds",
        );
    }
    let list = |name: &str| -> Vec<String> {
        params
            .get(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (models, permissions, groups) = (list("models"), list("permissions"), list("group_ids"));
    if groups.is_empty() && (models.is_empty() || permissions.is_empty()) {
        return validation(
            "permissions",
            "missing_field",
            "Provide group_ids, or both models and permissions",
        );
    }
    let text = |name: &str, default: &str| -> String {
        params
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let embed_path = match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_string(),
    };
    let mut url = target.clone();
    url.set_path(&format!(
        "/login/embed/{}",
        url::form_urlencoded::byte_serialize(embed_path.as_bytes()).collect::<String>()
    ));
    url.set_query(None);
    url.query_pairs_mut()
        .append_pair("nonce", "\"fake-nonce\"")
        .append_pair("time", "1714521600")
        .append_pair("session_length", &session_length.to_string())
        .append_pair(
            "external_user_id",
            &format!("\"{}\"", text("external_user_id", "")),
        )
        .append_pair("permissions", &json!(permissions).to_string())
        .append_pair("models", &json!(models).to_string())
        .append_pair("group_ids", &json!(groups).to_string())
        .append_pair(
            "first_name",
            &format!("\"{}\"", text("first_name", "Embed")),
        )
        .append_pair("last_name", &format!("\"{}\"", text("last_name", "User")))
        .append_pair(
            "user_attributes",
            &params
                .get("user_attributes")
                .cloned()
                .unwrap_or(json!({}))
                .to_string(),
        )
        .append_pair(
            "force_logout_login",
            &params
                .get("force_logout_login")
                .and_then(Value::as_bool)
                .unwrap_or(true)
                .to_string(),
        )
        .append_pair("signature", "fake-signature");
    json(200, json!({"url": url.to_string()}))
}

fn create_task(shared: &Shared, body: &Value, query: &BTreeMap<String, String>) -> Response {
    let Some(query_id) = body.get("query_id").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }) else {
        return validation("query_id", "missing_field", "This field is required.");
    };
    let format = body
        .get("result_format")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !FORMATS.contains(&format) {
        return validation(
            "result_format",
            "invalid",
            &format!("Unsupported result format: {format}"),
        );
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    if !world.queries.contains_key(&query_id) {
        return error(404, "Not found");
    }
    world.counter += 1;
    let id = format!("task{}", world.counter);
    world.tasks.insert(
        id.clone(),
        Task {
            query_id: query_id.clone(),
            format: format.to_string(),
            polls_left: shared.config.task_polls,
            query: query.clone(),
        },
    );
    json(
        200,
        json!({"id": id, "query_id": query_id, "status": "added", "result_format": format}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_parse_and_match_the_fields() {
        for row in rows() {
            assert_eq!(row.len(), FIELDS.len());
        }
    }

    #[test]
    fn filters_sorts_and_limits_apply() {
        let q = json!({"filters": {"orders.status": "complete"}, "sorts": ["orders.total_amount desc"]});
        let out = run(&q, &BTreeMap::new());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0][0], json!(3));
        let mut limit = BTreeMap::new();
        limit.insert("limit".into(), "1".into());
        assert_eq!(run(&json!({}), &limit).len(), 1);
    }
}
