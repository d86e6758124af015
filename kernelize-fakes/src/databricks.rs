//! The fake of a Databricks workspace: SQL Statement Execution, the Files API on Unity
//! Catalog volumes, Jobs `run-now`, the MLflow model registry and the workspace's OAuth
//! token endpoint (API facts §2).
//!
//! ## Credentials of the default [`Config`]
//!
//! - Personal access token `dapi-fake-token` (`Authorization: Bearer dapi-fake-token`).
//! - OAuth M2M: client id `fake-client-id`, secret `fake-client-secret` at
//!   `POST /oidc/v1/token` (`grant_type=client_credentials`, `scope=all-apis`; the id and
//!   secret as HTTP Basic, as the official SDK sends them, or in the form body).
//! - SQL warehouse id `fake-warehouse`; volume `/Volumes/main/default/staging`.
//!
//! ## What it serves
//!
//! - `POST /api/2.0/sql/statements` — checks `statement`, `warehouse_id`, `wait_timeout`
//!   (`0s` or `5s`–`50s`), `on_wait_timeout`, `disposition` (INLINE only) and `format`
//!   (JSON_ARRAY only with INLINE), and the shape of `parameters`. The statement is
//!   answered PENDING and reports RUNNING on `GET /api/2.0/sql/statements/{id}` until the
//!   [`Config::polls_before_done`]-th poll, which runs it: SUCCEEDED with the manifest and
//!   chunk 0, or FAILED with `status.error` — both inside HTTP 200, as the real service
//!   does. Rows come [`Config::chunk_rows`] to a chunk, at
//!   `GET .../{id}/result/chunks/{i}`; `POST .../{id}/cancel` cancels.
//! - A tiny SQL dialect over in-memory tables: `SELECT * | cols | count(*) FROM t
//!   [WHERE col op value] [LIMIT n]` (value a `:name` parameter, a number or a 'string'),
//!   `CREATE TABLE [IF NOT EXISTS] t` (a table without columns, as Databricks creates for
//!   `COPY INTO` with schema merging), and `COPY INTO t FROM '/Volumes/...' FILEFORMAT =
//!   JSON | CSV [FORMAT_OPTIONS (...)] [COPY_OPTIONS (...)]`, which appends the uploaded
//!   file's rows to the table and answers `num_affected_rows` and `num_inserted_rows`. A
//!   table without columns takes the file's columns only with `'mergeSchema' = 'true'` in
//!   `COPY_OPTIONS`; CSV has a header line only with `'header' = 'true'` (the service's
//!   default is no header). Table names are resolved by their last part, case-insensitively.
//!   A `:name` marker without a parameter, an unknown table and anything else fail the
//!   statement (FAILED, `BAD_REQUEST`, `[UNBOUND_SQL_PARAMETER]`,
//!   `[TABLE_OR_VIEW_NOT_FOUND]`, `[PARSE_SYNTAX_ERROR]`).
//! - Files API: `PUT /api/2.0/fs/files/Volumes/...?overwrite=` (`Content-Type:
//!   application/octet-stream`, under a known volume; 409 `ALREADY_EXISTS` without
//!   overwrite), `GET` and `DELETE` (204; 404 `NOT_FOUND`).
//! - Jobs (2.2, and 2.1 with the same shape): `POST /api/2.2/jobs/run-now` (a repeated
//!   `idempotency_token` answers the first run) and `GET /api/2.2/jobs/runs/get?run_id=`,
//!   PENDING, then RUNNING, then TERMINATED after [`Config::run_polls`] polls, with the
//!   job's [`JobOutcome`].
//! - MLflow: `registered-models/create|list|get`, `databricks/registered-models/get`,
//!   `model-versions/create|get` (PENDING_REGISTRATION until [`Config::version_polls`]
//!   polls, then READY) and `databricks/model-versions/transition-stage`.
//! - Every `/api/` request needs a known bearer token (401 `UNAUTHENTICATED` otherwise);
//!   the first [`Config::rate_limited`] authenticated API requests answer 429
//!   `REQUEST_LIMIT_EXCEEDED` with `Retry-After` ([`Config::retry_after`]).
//!
//! Errors are `{"error_code": .., "message": ..}` with the status the SDK maps them from.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{Fake, Journal, Times, serve};

/// The personal access token the default config accepts.
pub const TOKEN: &str = "dapi-fake-token";
/// The OAuth client id the default config accepts.
pub const CLIENT_ID: &str = "fake-client-id";
/// The OAuth client secret the default config accepts.
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The SQL warehouse the default config knows.
pub const WAREHOUSE: &str = "fake-warehouse";
/// The Unity Catalog volume the default config knows.
pub const VOLUME: &str = "/Volumes/main/default/staging";

/// A table of the fake's SQL warehouse.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its name (matched case-insensitively against a statement's last name part).
    pub name: String,
    /// Its columns: name and type text (`INT`, `BIGINT`, `DECIMAL(10,2)`, `STRING`...).
    pub columns: Vec<(String, String)>,
    /// Its rows, cells as the JSON_ARRAY format sends them (text or null).
    pub rows: Vec<Vec<Option<String>>>,
}

/// How a fake job's runs end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// TERMINATED with result SUCCESS.
    Success,
    /// TERMINATED with result FAILED and this state message.
    Failed(String),
}

/// A job the fake can run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id.
    pub job_id: i64,
    /// Its name.
    pub name: String,
    /// How its runs end.
    pub outcome: JobOutcome,
}

/// What the fake accepts and how it answers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Personal access tokens accepted as bearer tokens.
    pub tokens: Vec<String>,
    /// The OAuth M2M client id.
    pub client_id: String,
    /// The OAuth M2M client secret.
    pub client_secret: String,
    /// Refuse client credentials sent in the form body (accept HTTP Basic only).
    pub basic_client_auth_only: bool,
    /// Known SQL warehouse ids.
    pub warehouses: Vec<String>,
    /// Polls (`GET` of the statement) before it finishes; 0 answers the submission with
    /// the result.
    pub polls_before_done: u32,
    /// Statements never finish (they stay RUNNING until cancelled).
    pub never_finish: bool,
    /// Rows per result chunk.
    pub chunk_rows: usize,
    /// Give `next_chunk_internal_link` besides `next_chunk_index` (the service gives both;
    /// `false` gives only the index).
    pub chunk_links: bool,
    /// Answer the first N authenticated API requests with 429.
    pub rate_limited: u32,
    /// The `Retry-After` of those answers, in seconds; none when `None`.
    pub retry_after: Option<u64>,
    /// The warehouse's tables.
    pub tables: Vec<Table>,
    /// Unity Catalog volumes files may be written under.
    pub volumes: Vec<String>,
    /// Jobs.
    pub jobs: Vec<Job>,
    /// Polls of a run before it terminates (the first reports PENDING, the others RUNNING).
    pub run_polls: u32,
    /// Registered models there are at the start (`model-0` ...).
    pub models: usize,
    /// Polls of a new model version before it is READY.
    pub version_polls: u32,
    /// New model versions end in FAILED_REGISTRATION instead of READY.
    pub fail_registration: bool,
    /// The key of transition-stage's answer: `model_version_databricks` (current SDK) or
    /// `model_version` (older SDKs) [U].
    pub transition_key: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tokens: vec![TOKEN.into()],
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            basic_client_auth_only: false,
            warehouses: vec![WAREHOUSE.into()],
            polls_before_done: 2,
            never_finish: false,
            chunk_rows: 3,
            chunk_links: true,
            rate_limited: 0,
            retry_after: Some(1),
            tables: vec![orders_table(), Table {
                name: "sales_analytics".into(),
                columns: Vec::new(),
                rows: Vec::new(),
            }],
            volumes: vec![VOLUME.into()],
            jobs: vec![
                Job {
                    job_id: 101,
                    name: "nightly-etl".into(),
                    outcome: JobOutcome::Success,
                },
                Job {
                    job_id: 102,
                    name: "flaky-etl".into(),
                    outcome: JobOutcome::Failed(
                        "Task ingest failed with message: Workload failed, see run output for details.".into(),
                    ),
                },
            ],
            run_polls: 2,
            models: 5,
            version_polls: 1,
            fail_registration: false,
            transition_key: "model_version_databricks".into(),
        }
    }
}

/// The `orders` table of the default config: seven rows, one column of each common type.
pub fn orders_table() -> Table {
    let row = |cells: [&str; 7]| cells.iter().map(|c| Some((*c).to_string())).collect();
    let mut rows: Vec<Vec<Option<String>>> = vec![
        row([
            "1",
            "alice",
            "12.50",
            "1.5",
            "true",
            "2024-05-01",
            "2024-05-01T10:00:00.000Z",
        ]),
        row([
            "2",
            "bob",
            "7.25",
            "2.25",
            "false",
            "2024-05-02",
            "2024-05-02T11:30:00.000Z",
        ]),
        row([
            "3",
            "carol",
            "100.00",
            "0.5",
            "true",
            "2024-05-03",
            "2024-05-03T09:15:00.000Z",
        ]),
        row([
            "4",
            "dave",
            "3.10",
            "4.0",
            "true",
            "2024-05-04",
            "2024-05-04T08:00:00.000Z",
        ]),
        row([
            "5",
            "erin",
            "55.55",
            "3.75",
            "false",
            "2024-05-05",
            "2024-05-05T12:45:00.000Z",
        ]),
        row([
            "6",
            "frank",
            "0.99",
            "1.0",
            "true",
            "2024-05-06",
            "2024-05-06T16:20:00.000Z",
        ]),
        row([
            "7",
            "grace",
            "42.00",
            "2.0",
            "false",
            "2024-05-07",
            "2024-05-07T07:05:00.000Z",
        ]),
    ];
    rows[5][1] = None;
    Table {
        name: "orders".into(),
        columns: vec![
            ("id".into(), "INT".into()),
            ("customer".into(), "STRING".into()),
            ("amount".into(), "DECIMAL(10,2)".into()),
            ("weight".into(), "DOUBLE".into()),
            ("paid".into(), "BOOLEAN".into()),
            ("order_date".into(), "DATE".into()),
            ("created_at".into(), "TIMESTAMP".into()),
        ],
        rows,
    }
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

/// The fake's routes, with its state inside.
pub fn router(config: Config, _journal: Journal) -> Router {
    let shared = Shared(Arc::new(Mutex::new(Workspace::new(config))));
    Router::new().fallback(handle).with_state(shared)
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Workspace>>);

const BASE_MILLIS: i64 = 1_714_550_400_000;

struct Statement {
    state: &'static str,
    polls_left: u32,
    sql: String,
    params: BTreeMap<String, Option<String>>,
    outcome: Option<std::result::Result<ResultSet, SqlError>>,
}

#[derive(Clone)]
struct ResultSet {
    columns: Vec<(String, String)>,
    rows: Vec<Vec<Option<String>>>,
}

struct SqlError {
    code: &'static str,
    message: String,
    sql_state: &'static str,
}

struct Run {
    job_id: i64,
    number_in_job: u64,
    polls: u32,
}

struct Model {
    name: String,
    description: String,
    created: i64,
    tags: Vec<Value>,
    versions: Vec<Version>,
}

struct Version {
    version: u64,
    source: String,
    run_id: String,
    stage: String,
    polls_left: u32,
    created: i64,
}

struct Workspace {
    config: Config,
    limited: Times,
    tokens: HashSet<String>,
    issued: u64,
    statements: BTreeMap<String, Statement>,
    next_statement: u64,
    tables: BTreeMap<String, Table>,
    files: BTreeMap<String, Bytes>,
    runs: BTreeMap<i64, Run>,
    idempotency: BTreeMap<String, i64>,
    next_run: i64,
    models: Vec<Model>,
    clock: i64,
}

impl Workspace {
    fn new(config: Config) -> Self {
        let tables = config
            .tables
            .iter()
            .map(|t| (t.name.to_ascii_lowercase(), t.clone()))
            .collect();
        let models = (0..config.models)
            .map(|i| Model {
                name: format!("model-{i}"),
                description: format!("seeded model {i}"),
                created: BASE_MILLIS + i as i64 * 1000,
                tags: Vec::new(),
                versions: Vec::new(),
            })
            .collect();
        Self {
            limited: Times::new(config.rate_limited),
            tokens: config.tokens.iter().cloned().collect(),
            issued: 0,
            statements: BTreeMap::new(),
            next_statement: 0,
            tables,
            files: BTreeMap::new(),
            runs: BTreeMap::new(),
            idempotency: BTreeMap::new(),
            next_run: 9001,
            models,
            clock: BASE_MILLIS + 1_000_000,
            config,
        }
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1000;
        self.clock
    }
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    crate::json(
        status,
        json!({"error_code": code, "message": message.into()}),
    )
}

fn bad_param(message: impl Into<String>) -> Response {
    error(400, "INVALID_PARAMETER_VALUE", message)
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, crate::MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(413, "INVALID_PARAMETER_VALUE", e.to_string()),
    };
    let path = parts.uri.path().to_string();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let mut ws = shared.0.lock().unwrap_or_else(|p| p.into_inner());
    if path == "/oidc/v1/token" && parts.method == Method::POST {
        return ws.token(&parts.headers, &body);
    }
    if !path.starts_with("/api/") {
        return error(
            404,
            "ENDPOINT_NOT_FOUND",
            format!("No API found for '{} {path}'", parts.method),
        );
    }
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        None => {
            return error(
                401,
                "UNAUTHENTICATED",
                "Credential was not sent or was of an unsupported type for this API.",
            );
        }
        Some(token) if !ws.tokens.contains(token) => {
            return error(401, "UNAUTHENTICATED", "Invalid access token.");
        }
        Some(_) => {}
    }
    if ws.limited.take() {
        let mut response = error(
            429,
            "REQUEST_LIMIT_EXCEEDED",
            "Workspace request limit exceeded, retry later.",
        );
        if let Some(after) = ws.config.retry_after
            && let Ok(value) = after.to_string().parse()
        {
            response.headers_mut().insert("retry-after", value);
        }
        return response;
    }
    ws.route(&parts.method, &path, &query, &parts.headers, body)
}

impl Workspace {
    fn route(
        &mut self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        if let Some(file) = path.strip_prefix("/api/2.0/fs/files") {
            return self.files(method, &percent_decode(file), query, headers, body);
        }
        if let Some(rest) = path.strip_prefix("/api/2.0/sql/statements") {
            return self.statements(method, rest, &body);
        }
        let jobs = path
            .strip_prefix("/api/2.2/jobs/")
            .or_else(|| path.strip_prefix("/api/2.1/jobs/"));
        if let Some(rest) = jobs {
            return match (method.as_str(), rest) {
                ("POST", "run-now") => self.run_now(&body),
                ("GET", "runs/get") => self.get_run(query),
                _ => not_found_endpoint(method, path),
            };
        }
        if let Some(rest) = path.strip_prefix("/api/2.0/mlflow/") {
            return match (method.as_str(), rest) {
                ("POST", "registered-models/create") => self.create_model(&body),
                ("GET", "registered-models/list") => self.list_models(query),
                ("GET", "registered-models/get") => self.get_model(query, "registered_model"),
                ("GET", "databricks/registered-models/get") => {
                    self.get_model(query, "registered_model_databricks")
                }
                ("POST", "model-versions/create") => self.create_version(&body),
                ("GET", "model-versions/get") => self.get_version(query),
                ("POST", "databricks/model-versions/transition-stage") => {
                    self.transition_stage(&body)
                }
                _ => not_found_endpoint(method, path),
            };
        }
        not_found_endpoint(method, path)
    }

    // --- OAuth ------------------------------------------------------------------------------

    fn token(&mut self, headers: &HeaderMap, body: &Bytes) -> Response {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/x-www-form-urlencoded") {
            return crate::json(
                400,
                json!({"error": "invalid_request", "error_description": "the body must be application/x-www-form-urlencoded"}),
            );
        }
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            });
        let credentials = match basic {
            Some(pair) => Some(pair),
            None if self.config.basic_client_auth_only => None,
            None => match (form.get("client_id"), form.get("client_secret")) {
                (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
                _ => None,
            },
        };
        let valid = credentials.is_some_and(|(id, secret)| {
            id == self.config.client_id && secret == self.config.client_secret
        });
        if !valid {
            return crate::json(
                401,
                json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
            );
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return crate::json(
                400,
                json!({"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}),
            );
        }
        let scopes: Vec<&str> = form
            .get("scope")
            .map(|s| s.split(' ').collect())
            .unwrap_or_default();
        if !scopes.contains(&"all-apis") {
            return crate::json(
                400,
                json!({"error": "invalid_scope", "error_description": "scope must include all-apis"}),
            );
        }
        self.issued += 1;
        let token = format!("fake-oauth-token-{}", self.issued);
        self.tokens.insert(token.clone());
        crate::json(
            200,
            json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"}),
        )
    }

    // --- Files API ----------------------------------------------------------------------------

    fn files(
        &mut self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        if !path.starts_with('/') || path.contains("/../") || path.ends_with('/') {
            return bad_param(format!("Invalid file path: '{path}'"));
        }
        let in_volume = self
            .config
            .volumes
            .iter()
            .any(|v| path.starts_with(&format!("{}/", v.trim_end_matches('/'))));
        match method.as_str() {
            "PUT" => {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if content_type != "application/octet-stream" {
                    return bad_param(format!(
                        "Content-Type must be application/octet-stream, not '{content_type}'"
                    ));
                }
                if !in_volume {
                    return error(
                        404,
                        "NOT_FOUND",
                        format!("The parent volume of '{path}' does not exist."),
                    );
                }
                let overwrite = match query.get("overwrite").map(String::as_str) {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => {
                        return bad_param(format!(
                            "overwrite must be true or false, not '{other}'"
                        ));
                    }
                };
                if !overwrite && self.files.contains_key(path) {
                    return error(
                        409,
                        "ALREADY_EXISTS",
                        format!("The file being created already exists: '{path}'"),
                    );
                }
                self.files.insert(path.to_string(), body);
                StatusCode::NO_CONTENT.into_response()
            }
            "GET" => match self.files.get(path) {
                Some(data) => (
                    StatusCode::OK,
                    [("content-type", "application/octet-stream")],
                    data.clone(),
                )
                    .into_response(),
                None => error(
                    404,
                    "NOT_FOUND",
                    format!("The file '{path}' does not exist."),
                ),
            },
            "DELETE" => match self.files.remove(path) {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => error(
                    404,
                    "NOT_FOUND",
                    format!("The file '{path}' does not exist."),
                ),
            },
            _ => error(
                405,
                "ENDPOINT_NOT_FOUND",
                format!("{method} is not served on the Files API"),
            ),
        }
    }

    // --- SQL statements -------------------------------------------------------------------------

    fn statements(&mut self, method: &Method, rest: &str, body: &Bytes) -> Response {
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("POST", [""]) => self.submit(body),
            ("GET", [id]) => self.poll_statement(id),
            ("POST", [id, "cancel"]) => match self.statements.get_mut(*id) {
                Some(st) => {
                    if matches!(st.state, "PENDING" | "RUNNING") {
                        st.state = "CANCELED";
                    }
                    crate::json(200, json!({}))
                }
                None => statement_missing(id),
            },
            ("GET", [id, "result", "chunks", index]) => self.chunk(id, index),
            _ => not_found_endpoint(method, &format!("/api/2.0/sql/statements{rest}")),
        }
    }

    fn submit(&mut self, body: &Bytes) -> Response {
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
            return error(
                400,
                "MALFORMED_REQUEST",
                "The request body is not a JSON object.",
            );
        };
        let Some(sql) = req.get("statement").and_then(Value::as_str) else {
            return bad_param("statement is required and must be a string");
        };
        let Some(warehouse) = req.get("warehouse_id").and_then(Value::as_str) else {
            return bad_param("warehouse_id is required and must be a string");
        };
        if !self.config.warehouses.iter().any(|w| w == warehouse) {
            return error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Warehouse {warehouse} does not exist."),
            );
        }
        if let Some(wait) = req.get("wait_timeout") {
            let ok = wait
                .as_str()
                .and_then(|w| w.strip_suffix('s'))
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n == 0 || (5..=50).contains(&n));
            if !ok {
                return bad_param(format!(
                    "wait_timeout must be 0s or between 5s and 50s, not {wait}"
                ));
            }
        }
        if let Some(v) = req.get("on_wait_timeout")
            && !matches!(v.as_str(), Some("CONTINUE" | "CANCEL"))
        {
            return bad_param(format!(
                "on_wait_timeout must be CONTINUE or CANCEL, not {v}"
            ));
        }
        match req.get("disposition").map(|v| v.as_str()) {
            None | Some(Some("INLINE")) => {}
            Some(Some("EXTERNAL_LINKS")) => {
                return bad_param("this fake serves only the INLINE disposition");
            }
            Some(other) => return bad_param(format!("unknown disposition {other:?}")),
        }
        match req.get("format").map(|v| v.as_str()) {
            None | Some(Some("JSON_ARRAY")) => {}
            Some(Some("ARROW_STREAM" | "CSV")) => {
                return bad_param("ARROW_STREAM and CSV need the EXTERNAL_LINKS disposition");
            }
            Some(other) => return bad_param(format!("unknown format {other:?}")),
        }
        let mut params = BTreeMap::new();
        if let Some(list) = req.get("parameters") {
            let Some(list) = list.as_array() else {
                return bad_param("parameters must be a list of {name, value, type}");
            };
            for p in list {
                let Some(name) = p.get("name").and_then(Value::as_str) else {
                    return bad_param(format!("a parameter needs a string name: {p}"));
                };
                let value = match p.get("value") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => {
                        return bad_param(format!(
                            "parameter `{name}`: value must be a string, not {other}"
                        ));
                    }
                };
                if let Some(t) = p.get("type")
                    && !t.is_string()
                {
                    return bad_param(format!("parameter `{name}`: type must be a string"));
                }
                params.insert(name.to_string(), value);
            }
        }
        self.next_statement += 1;
        let id = format!("01ef0000-0000-1000-8000-{:012x}", self.next_statement);
        let mut statement = Statement {
            state: "PENDING",
            polls_left: self.config.polls_before_done,
            sql: sql.to_string(),
            params,
            outcome: None,
        };
        if statement.polls_left == 0 && !self.config.never_finish {
            self.finish(&mut statement);
        }
        let answer = self.statement_json(&id, &statement);
        self.statements.insert(id, statement);
        crate::json(200, answer)
    }

    fn poll_statement(&mut self, id: &str) -> Response {
        let Some(mut statement) = self.statements.remove(id) else {
            return statement_missing(id);
        };
        if matches!(statement.state, "PENDING" | "RUNNING") {
            if self.config.never_finish || statement.polls_left > 1 {
                statement.polls_left = statement.polls_left.saturating_sub(1);
                statement.state = "RUNNING";
            } else {
                self.finish(&mut statement);
            }
        }
        let answer = self.statement_json(id, &statement);
        self.statements.insert(id.to_string(), statement);
        crate::json(200, answer)
    }

    fn finish(&mut self, statement: &mut Statement) {
        let outcome = self.execute(&statement.sql, &statement.params);
        statement.state = if outcome.is_ok() {
            "SUCCEEDED"
        } else {
            "FAILED"
        };
        statement.outcome = Some(outcome);
    }

    fn statement_json(&self, id: &str, statement: &Statement) -> Value {
        match &statement.outcome {
            Some(Ok(result)) => {
                let (manifest, chunk0) = self.manifest(id, result);
                json!({
                    "statement_id": id,
                    "status": {"state": statement.state},
                    "manifest": manifest,
                    "result": chunk0,
                })
            }
            Some(Err(e)) => json!({
                "statement_id": id,
                "status": {
                    "state": "FAILED",
                    "error": {"error_code": e.code, "message": e.message},
                    "sql_state": e.sql_state,
                },
            }),
            None => json!({"statement_id": id, "status": {"state": statement.state}}),
        }
    }

    fn manifest(&self, id: &str, result: &ResultSet) -> (Value, Value) {
        let columns: Vec<Value> = result
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, text))| column_json(i, name, text))
            .collect();
        let size = self.config.chunk_rows.max(1);
        let count = result.rows.len().div_ceil(size);
        let chunks: Vec<Value> = (0..count)
            .map(|i| {
                let rows = size.min(result.rows.len() - i * size);
                json!({"chunk_index": i, "row_offset": i * size, "row_count": rows, "byte_count": rows * 64})
            })
            .collect();
        let manifest = json!({
            "format": "JSON_ARRAY",
            "schema": {"column_count": columns.len(), "columns": columns},
            "total_chunk_count": count,
            "total_row_count": result.rows.len(),
            "total_byte_count": result.rows.len() * 64,
            "chunks": chunks,
            "truncated": false,
        });
        let first = if count == 0 {
            json!({"chunk_index": 0, "row_offset": 0, "row_count": 0})
        } else {
            self.chunk_json(id, result, 0)
        };
        (manifest, first)
    }

    fn chunk_json(&self, id: &str, result: &ResultSet, index: usize) -> Value {
        let size = self.config.chunk_rows.max(1);
        let start = index * size;
        let end = (start + size).min(result.rows.len());
        let data: Vec<Value> = result.rows[start..end]
            .iter()
            .map(|row| {
                Value::Array(
                    row.iter()
                        .map(|c| c.clone().map_or(Value::Null, Value::String))
                        .collect(),
                )
            })
            .collect();
        let mut chunk = json!({
            "chunk_index": index,
            "row_offset": start,
            "row_count": end - start,
            "data_array": data,
        });
        if end < result.rows.len() {
            chunk["next_chunk_index"] = json!(index + 1);
            if self.config.chunk_links {
                chunk["next_chunk_internal_link"] = json!(format!(
                    "/api/2.0/sql/statements/{id}/result/chunks/{}?row_offset={end}",
                    index + 1
                ));
            }
        }
        chunk
    }

    fn chunk(&self, id: &str, index: &str) -> Response {
        let Some(statement) = self.statements.get(id) else {
            return statement_missing(id);
        };
        let Some(Ok(result)) = &statement.outcome else {
            return error(
                400,
                "BAD_REQUEST",
                format!("Statement {id} has no result (state {}).", statement.state),
            );
        };
        let count = result.rows.len().div_ceil(self.config.chunk_rows.max(1));
        match index.parse::<usize>() {
            Ok(i) if i < count => crate::json(200, self.chunk_json(id, result, i)),
            _ => bad_param(format!("chunk_index {index} is out of range (0..{count})")),
        }
    }

    // --- the SQL dialect ---------------------------------------------------------------------------

    fn execute(
        &mut self,
        sql: &str,
        params: &BTreeMap<String, Option<String>>,
    ) -> std::result::Result<ResultSet, SqlError> {
        let tokens = tokenize(sql)?;
        for t in &tokens {
            if let Tok::Param(name) = t
                && !params.contains_key(name)
            {
                return Err(SqlError {
                    code: "BAD_REQUEST",
                    message: format!(
                        "[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {name}. Please, fix `args` and provide a mapping of the parameter to a SQL literal."
                    ),
                    sql_state: "42P02",
                });
            }
        }
        let mut p = Parser { tokens, at: 0 };
        if p.keyword("SELECT") {
            self.select(&mut p, params)
        } else if p.keyword("COPY") {
            self.copy_into(&mut p)
        } else if p.keyword("CREATE") {
            p.expect("TABLE")?;
            if p.keyword("IF") {
                p.expect("NOT")?;
                p.expect("EXISTS")?;
            }
            let name = p.name()?;
            p.end()?;
            self.tables.entry(table_key(&name)).or_insert(Table {
                name: table_key(&name),
                columns: Vec::new(),
                rows: Vec::new(),
            });
            Ok(ResultSet {
                columns: Vec::new(),
                rows: Vec::new(),
            })
        } else {
            Err(syntax(sql))
        }
    }

    fn table(&self, name: &str) -> std::result::Result<&Table, SqlError> {
        self.tables.get(&table_key(name)).ok_or_else(|| SqlError {
            code: "BAD_REQUEST",
            message: format!(
                "[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found. Verify the spelling and correctness of the schema and catalog."
            ),
            sql_state: "42P01",
        })
    }

    fn select(
        &self,
        p: &mut Parser,
        params: &BTreeMap<String, Option<String>>,
    ) -> std::result::Result<ResultSet, SqlError> {
        enum Projection {
            All,
            Count,
            Columns(Vec<String>),
        }
        let projection = if p.symbol("*") {
            Projection::All
        } else if p
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("count"))
        {
            p.at += 1;
            p.expect_symbol("(")?;
            if !(p.symbol("*") || matches!(p.next(), Some(Tok::Num(n)) if n == "1")) {
                return Err(syntax("count takes * or 1"));
            }
            p.expect_symbol(")")?;
            Projection::Count
        } else {
            let mut columns = vec![p.name()?];
            while p.symbol(",") {
                columns.push(p.name()?);
            }
            Projection::Columns(columns)
        };
        p.expect("FROM")?;
        let name = p.name()?;
        let table = self.table(&name)?;
        let mut rows: Vec<&Vec<Option<String>>> = table.rows.iter().collect();
        if p.keyword("WHERE") {
            let column = p.name()?;
            let index = column_index(table, &column)?;
            let op = match p.next() {
                Some(Tok::Sym(s))
                    if matches!(s.as_str(), "=" | "<" | ">" | "<=" | ">=" | "<>" | "!=") =>
                {
                    s
                }
                _ => return Err(syntax("a comparison operator after WHERE column")),
            };
            let value = match p.next() {
                Some(Tok::Param(name)) => params.get(&name).cloned().flatten(),
                Some(Tok::Num(n)) => Some(n),
                Some(Tok::Str(s)) => Some(s),
                _ => return Err(syntax("a value after the comparison")),
            };
            let numeric = is_numeric(&table.columns[index].1);
            rows.retain(|row| match (&row[index], &value) {
                (Some(cell), Some(v)) => compare(cell, &op, v, numeric),
                _ => false,
            });
        }
        if p.keyword("LIMIT") {
            match p.next() {
                Some(Tok::Num(n)) => {
                    let n: usize = n.parse().map_err(|_| syntax("LIMIT takes a number"))?;
                    rows.truncate(n);
                }
                _ => return Err(syntax("LIMIT takes a number")),
            }
        }
        p.end()?;
        Ok(match projection {
            Projection::All => ResultSet {
                columns: table.columns.clone(),
                rows: rows.into_iter().cloned().collect(),
            },
            Projection::Count => ResultSet {
                columns: vec![("count(1)".into(), "BIGINT".into())],
                rows: vec![vec![Some(rows.len().to_string())]],
            },
            Projection::Columns(names) => {
                let indexes = names
                    .iter()
                    .map(|n| column_index(table, n))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                ResultSet {
                    columns: indexes.iter().map(|i| table.columns[*i].clone()).collect(),
                    rows: rows
                        .into_iter()
                        .map(|r| indexes.iter().map(|i| r[*i].clone()).collect())
                        .collect(),
                }
            }
        })
    }

    fn copy_into(&mut self, p: &mut Parser) -> std::result::Result<ResultSet, SqlError> {
        p.expect("INTO")?;
        let name = p.name()?;
        p.expect("FROM")?;
        let Some(Tok::Str(path)) = p.next() else {
            return Err(syntax("COPY INTO ... FROM takes a quoted path"));
        };
        p.expect("FILEFORMAT")?;
        p.expect_symbol("=")?;
        let format = p.name()?.to_ascii_uppercase();
        let mut format_options = BTreeMap::new();
        let mut copy_options = BTreeMap::new();
        loop {
            if p.keyword("FORMAT_OPTIONS") {
                p.options(&mut format_options)?;
            } else if p.keyword("COPY_OPTIONS") {
                p.options(&mut copy_options)?;
            } else {
                break;
            }
        }
        p.end()?;
        self.table(&name)?;
        let Some(data) = self.files.get(&path).cloned() else {
            return Err(SqlError {
                code: "BAD_REQUEST",
                message: format!("[PATH_NOT_FOUND] Path does not exist: {path}."),
                sql_state: "42K03",
            });
        };
        let is_true = |map: &BTreeMap<String, String>, key: &str| {
            map.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(key) && v.eq_ignore_ascii_case("true"))
        };
        let merge = is_true(&copy_options, "mergeSchema");
        let rows: Vec<Map<String, Value>> = match format.as_str() {
            "JSON" => parse_json_lines(&data)?,
            "CSV" => parse_csv(&data, is_true(&format_options, "header"))?,
            other => {
                return Err(SqlError {
                    code: "BAD_REQUEST",
                    message: format!("this fake reads FILEFORMAT JSON or CSV, not {other}"),
                    sql_state: "0A000",
                });
            }
        };
        let key = table_key(&name);
        let Some(table) = self.tables.get_mut(&key) else {
            return Err(syntax("table vanished"));
        };
        for row in &rows {
            for (column, value) in row {
                if !table
                    .columns
                    .iter()
                    .any(|(c, _)| c.eq_ignore_ascii_case(column))
                {
                    if !merge {
                        if table.columns.is_empty() {
                            return Err(SqlError {
                                code: "BAD_REQUEST",
                                message: format!(
                                    "[COPY_INTO_SCHEMA_MISMATCH] The table `{name}` has no columns yet; set 'mergeSchema' = 'true' in COPY_OPTIONS to take the file's columns."
                                ),
                                sql_state: "42KD9",
                            });
                        }
                        continue;
                    }
                    table
                        .columns
                        .push((column.clone(), infer_type(value).into()));
                }
            }
        }
        let loaded = rows.len();
        for row in rows {
            let cells = table
                .columns
                .iter()
                .map(|(c, _)| {
                    row.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(c))
                        .and_then(|(_, v)| cell_text(v))
                })
                .collect();
            table.rows.push(cells);
        }
        let width = table.columns.len();
        for row in &mut table.rows {
            row.resize(width, None);
        }
        Ok(ResultSet {
            columns: vec![
                ("num_affected_rows".into(), "BIGINT".into()),
                ("num_inserted_rows".into(), "BIGINT".into()),
            ],
            rows: vec![vec![Some(loaded.to_string()), Some(loaded.to_string())]],
        })
    }

    // --- Jobs ---------------------------------------------------------------------------------------

    fn run_now(&mut self, body: &Bytes) -> Response {
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
            return error(
                400,
                "MALFORMED_REQUEST",
                "The request body is not a JSON object.",
            );
        };
        let Some(job_id) = req.get("job_id").and_then(Value::as_i64) else {
            return bad_param("job_id is required and must be an integer");
        };
        for field in ["job_parameters", "notebook_params"] {
            if let Some(v) = req.get(field) {
                let ok = v
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string));
                if !ok {
                    return bad_param(format!("{field} must be an object of strings"));
                }
            }
        }
        if let Some(v) = req.get("python_params") {
            let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return bad_param("python_params must be a list of strings");
            }
        }
        let Some(job) = self.config.jobs.iter().find(|j| j.job_id == job_id) else {
            return bad_param(format!("Job {job_id} does not exist."));
        };
        let token = match req.get("idempotency_token") {
            None => None,
            Some(Value::String(t)) if t.len() <= 64 => Some(t.clone()),
            Some(_) => {
                return bad_param("idempotency_token must be a string of at most 64 characters");
            }
        };
        if let Some(t) = &token
            && let Some(run_id) = self.idempotency.get(t)
        {
            let number = self.runs.get(run_id).map_or(0, |r| r.number_in_job);
            return crate::json(200, json!({"run_id": run_id, "number_in_job": number}));
        }
        let job_id = job.job_id;
        let run_id = self.next_run;
        self.next_run += 1;
        let number_in_job = self.runs.values().filter(|r| r.job_id == job_id).count() as u64 + 1;
        self.runs.insert(
            run_id,
            Run {
                job_id,
                number_in_job,
                polls: 0,
            },
        );
        if let Some(t) = token {
            self.idempotency.insert(t, run_id);
        }
        crate::json(
            200,
            json!({"run_id": run_id, "number_in_job": number_in_job}),
        )
    }

    fn get_run(&mut self, query: &BTreeMap<String, String>) -> Response {
        let Some(run_id) = query.get("run_id").and_then(|r| r.parse::<i64>().ok()) else {
            return bad_param("run_id is required and must be an integer");
        };
        let limit = self.config.run_polls;
        let Some(run) = self.runs.get_mut(&run_id) else {
            return bad_param(format!("Run {run_id} does not exist."));
        };
        run.polls += 1;
        let (job_id, number, polls) = (run.job_id, run.number_in_job, run.polls);
        let Some(job) = self.config.jobs.iter().find(|j| j.job_id == job_id) else {
            return bad_param(format!("Job {job_id} does not exist."));
        };
        let mut answer = json!({
            "job_id": job_id,
            "run_id": run_id,
            "number_in_job": number,
            "run_name": job.name,
            "run_page_url": format!("https://fake.cloud.databricks.com/?o=0#job/{job_id}/run/{run_id}"),
            "start_time": BASE_MILLIS,
        });
        if polls <= limit {
            let state = if polls == 1 { "PENDING" } else { "RUNNING" };
            answer["state"] = json!({"life_cycle_state": state, "state_message": ""});
            answer["status"] = json!({"state": state});
        } else {
            let (result, message, code, kind) = match &job.outcome {
                JobOutcome::Success => ("SUCCESS", String::new(), "SUCCESS", "SUCCESS"),
                JobOutcome::Failed(m) => {
                    ("FAILED", m.clone(), "RUN_EXECUTION_ERROR", "CLIENT_ERROR")
                }
            };
            answer["state"] = json!({
                "life_cycle_state": "TERMINATED",
                "result_state": result,
                "state_message": message,
                "user_cancelled_or_timedout": false,
            });
            answer["status"] = json!({
                "state": "TERMINATED",
                "termination_details": {"code": code, "type": kind, "message": message},
            });
            answer["end_time"] = json!(BASE_MILLIS + 60_000);
        }
        crate::json(200, answer)
    }

    // --- MLflow -------------------------------------------------------------------------------------

    fn model_json(&self, model: &Model) -> Value {
        let mut latest: BTreeMap<&str, &Version> = BTreeMap::new();
        for v in &model.versions {
            latest.insert(v.stage.as_str(), v);
        }
        json!({
            "name": model.name,
            "creation_timestamp": model.created,
            "last_updated_timestamp": model.versions.last().map_or(model.created, |v| v.created),
            "user_id": "fake-user@example.com",
            "description": model.description,
            "tags": model.tags,
            "latest_versions": latest.values().map(|v| version_json(&model.name, v, self.config.fail_registration)).collect::<Vec<_>>(),
        })
    }

    fn create_model(&mut self, body: &Bytes) -> Response {
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
            return error(
                400,
                "MALFORMED_REQUEST",
                "The request body is not a JSON object.",
            );
        };
        let Some(name) = req
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            return bad_param("name is required");
        };
        if self.models.iter().any(|m| m.name == name) {
            return error(
                400,
                "RESOURCE_ALREADY_EXISTS",
                format!("Registered Model (name={name}) already exists."),
            );
        }
        let tags = match req.get("tags") {
            None => Vec::new(),
            Some(Value::Array(tags))
                if tags
                    .iter()
                    .all(|t| t.get("key").is_some_and(Value::is_string)) =>
            {
                tags.clone()
            }
            Some(_) => return bad_param("tags must be a list of {key, value}"),
        };
        let created = self.tick();
        let model = Model {
            name: name.to_string(),
            description: req
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            created,
            tags,
            versions: Vec::new(),
        };
        let answer = json!({"registered_model": self.model_json(&model)});
        self.models.push(model);
        crate::json(200, answer)
    }

    fn list_models(&self, query: &BTreeMap<String, String>) -> Response {
        let max = match query.get("max_results").map(|m| m.parse::<usize>()) {
            None => 100,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => return bad_param("max_results must be between 1 and 1000"),
        };
        let start = match query.get("page_token") {
            None => 0,
            Some(t) => match t
                .strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n <= self.models.len() => n,
                _ => return bad_param(format!("Invalid page token: {t}")),
            },
        };
        let end = (start + max).min(self.models.len());
        let page: Vec<Value> = self.models[start..end]
            .iter()
            .map(|m| self.model_json(m))
            .collect();
        let mut answer = json!({"registered_models": page});
        if end < self.models.len() {
            answer["next_page_token"] = json!(format!("page-{end}"));
        }
        crate::json(200, answer)
    }

    fn find_model(&self, name: Option<&String>) -> std::result::Result<&Model, Box<Response>> {
        let Some(name) = name else {
            return Err(Box::new(bad_param("name is required")));
        };
        self.models.iter().find(|m| &m.name == name).ok_or_else(|| {
            Box::new(error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Registered Model with name={name} not found"),
            ))
        })
    }

    fn get_model(&self, query: &BTreeMap<String, String>, key: &str) -> Response {
        match self.find_model(query.get("name")) {
            Ok(model) => {
                let mut body = self.model_json(model);
                if key == "registered_model_databricks" {
                    body["id"] = json!(format!("{:032x}", model.created));
                    body["permission_level"] = json!("CAN_MANAGE");
                }
                crate::json(200, json!({ key: body }))
            }
            Err(response) => *response,
        }
    }

    fn create_version(&mut self, body: &Bytes) -> Response {
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
            return error(
                400,
                "MALFORMED_REQUEST",
                "The request body is not a JSON object.",
            );
        };
        let name = req.get("name").and_then(Value::as_str).map(String::from);
        let Some(source) = req.get("source").and_then(Value::as_str).map(String::from) else {
            return bad_param("source is required");
        };
        if let Err(response) = self.find_model(name.as_ref()) {
            return *response;
        }
        let created = self.tick();
        let polls = self.config.version_polls;
        let fail = self.config.fail_registration;
        let Some(model) = self
            .models
            .iter_mut()
            .find(|m| Some(&m.name) == name.as_ref())
        else {
            return bad_param("name is required");
        };
        let version = Version {
            version: model.versions.len() as u64 + 1,
            source,
            run_id: req
                .get("run_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            stage: "None".into(),
            polls_left: polls,
            created,
        };
        let answer = json!({"model_version": version_json(&model.name, &version, fail)});
        model.versions.push(version);
        crate::json(200, answer)
    }

    fn find_version(
        &mut self,
        name: Option<&String>,
        version: Option<&String>,
    ) -> std::result::Result<(&String, &mut Version), Box<Response>> {
        let Some(name) = name else {
            return Err(Box::new(bad_param("name is required")));
        };
        let Some(number) = version.and_then(|v| v.parse::<u64>().ok()) else {
            return Err(Box::new(bad_param(
                "version is required and must be a number",
            )));
        };
        let Some(model) = self.models.iter_mut().find(|m| &m.name == name) else {
            return Err(Box::new(error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Registered Model with name={name} not found"),
            )));
        };
        match model.versions.iter_mut().find(|v| v.version == number) {
            Some(v) => Ok((&model.name, v)),
            None => Err(Box::new(error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Model Version (name={name}, version={number}) not found"),
            ))),
        }
    }

    fn get_version(&mut self, query: &BTreeMap<String, String>) -> Response {
        let fail = self.config.fail_registration;
        match self.find_version(query.get("name"), query.get("version")) {
            Ok((name, version)) => {
                let answer = json!({"model_version": version_json(name, version, fail)});
                version.polls_left = version.polls_left.saturating_sub(1);
                crate::json(200, answer)
            }
            Err(response) => *response,
        }
    }

    fn transition_stage(&mut self, body: &Bytes) -> Response {
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
            return error(
                400,
                "MALFORMED_REQUEST",
                "The request body is not a JSON object.",
            );
        };
        let name = req.get("name").and_then(Value::as_str).map(String::from);
        let version = match req.get("version") {
            Some(Value::String(v)) => Some(v.clone()),
            _ => return bad_param("version is required and must be a string"),
        };
        let stage = match req.get("stage").and_then(Value::as_str) {
            Some(s @ ("None" | "Staging" | "Production" | "Archived")) => s.to_string(),
            other => {
                return bad_param(format!(
                    "stage must be None, Staging, Production or Archived, not {other:?}"
                ));
            }
        };
        let Some(archive) = req
            .get("archive_existing_versions")
            .and_then(Value::as_bool)
        else {
            return bad_param("archive_existing_versions is required and must be a boolean");
        };
        let fail = self.config.fail_registration;
        let key = self.config.transition_key.clone();
        let number = match self.find_version(name.as_ref(), version.as_ref()) {
            Ok((_, v)) => v.version,
            Err(response) => return *response,
        };
        let updated = self.tick();
        let Some(model) = self
            .models
            .iter_mut()
            .find(|m| Some(&m.name) == name.as_ref())
        else {
            return bad_param("name is required");
        };
        for v in &mut model.versions {
            if v.version == number {
                v.stage = stage.clone();
                v.created = v.created.max(updated);
            } else if archive && v.stage == stage && stage != "None" && stage != "Archived" {
                v.stage = "Archived".into();
            }
        }
        let Some(v) = model.versions.iter().find(|v| v.version == number) else {
            return bad_param("version vanished");
        };
        let mut body = version_json(&model.name, v, fail);
        if let Some(comment) = req.get("comment") {
            body["comment"] = comment.clone();
        }
        crate::json(200, json!({ key: body }))
    }
}

fn version_json(name: &str, v: &Version, fail: bool) -> Value {
    let status = match (v.polls_left, fail) {
        (0, false) => "READY",
        (0, true) => "FAILED_REGISTRATION",
        _ => "PENDING_REGISTRATION",
    };
    let mut body = json!({
        "name": name,
        "version": v.version.to_string(),
        "creation_timestamp": v.created,
        "last_updated_timestamp": v.created,
        "user_id": "fake-user@example.com",
        "current_stage": v.stage,
        "source": v.source,
        "run_id": v.run_id,
        "status": status,
    });
    if status == "FAILED_REGISTRATION" {
        body["status_message"] = json!("Failed to copy the model artifacts from the source.");
    }
    body
}

fn not_found_endpoint(method: &Method, path: &str) -> Response {
    error(
        404,
        "ENDPOINT_NOT_FOUND",
        format!("No API found for '{method} {path}'"),
    )
}

fn statement_missing(id: &str) -> Response {
    error(
        404,
        "NOT_FOUND",
        format!("The statement {id} was not found or has expired."),
    )
}

fn column_json(position: usize, name: &str, text: &str) -> Value {
    let upper = text.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    let type_name = match base {
        "INT" | "INTEGER" => "INT",
        "BIGINT" | "LONG" => "LONG",
        "SMALLINT" | "SHORT" => "SHORT",
        "TINYINT" | "BYTE" => "BYTE",
        "DOUBLE" => "DOUBLE",
        "FLOAT" | "REAL" => "FLOAT",
        "DECIMAL" | "NUMERIC" => "DECIMAL",
        "BOOLEAN" => "BOOLEAN",
        "DATE" => "DATE",
        "TIMESTAMP" => "TIMESTAMP",
        "TIMESTAMP_NTZ" => "TIMESTAMP_NTZ",
        "BINARY" => "BINARY",
        _ => "STRING",
    };
    let mut column = json!({
        "name": name,
        "position": position,
        "type_name": type_name,
        "type_text": upper,
    });
    if type_name == "DECIMAL"
        && let Some(args) = upper.split_once('(').and_then(|(_, a)| a.strip_suffix(')'))
    {
        let mut parts = args.split(',').map(|p| p.trim().parse::<u32>().ok());
        if let (Some(Some(p)), Some(Some(s))) = (parts.next(), parts.next()) {
            column["type_precision"] = json!(p);
            column["type_scale"] = json!(s);
        }
    }
    column
}

fn is_numeric(type_text: &str) -> bool {
    let upper = type_text.to_ascii_uppercase();
    [
        "INT", "BIGINT", "LONG", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "DECIMAL",
    ]
    .iter()
    .any(|t| upper.starts_with(t))
}

fn compare(cell: &str, op: &str, value: &str, numeric: bool) -> bool {
    let ordering = if numeric {
        match (cell.parse::<f64>(), value.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ => None,
        }
    } else {
        Some(cell.cmp(value))
    };
    let Some(ordering) = ordering else {
        return false;
    };
    use std::cmp::Ordering::*;
    match op {
        "=" => ordering == Equal,
        "<" => ordering == Less,
        ">" => ordering == Greater,
        "<=" => ordering != Greater,
        ">=" => ordering != Less,
        _ => ordering != Equal,
    }
}

fn column_index(table: &Table, column: &str) -> std::result::Result<usize, SqlError> {
    let column = column.trim_matches('`');
    table
        .columns
        .iter()
        .position(|(c, _)| c.eq_ignore_ascii_case(column))
        .ok_or_else(|| SqlError {
            code: "BAD_REQUEST",
            message: format!(
                "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name `{column}` cannot be resolved."
            ),
            sql_state: "42703",
        })
}

fn table_key(name: &str) -> String {
    name.rsplit('.')
        .next()
        .unwrap_or(name)
        .trim_matches('`')
        .to_ascii_lowercase()
}

fn syntax(near: &str) -> SqlError {
    let mut near = near.to_string();
    if near.len() > 80 {
        let cut = (0..=80)
            .rev()
            .find(|i| near.is_char_boundary(*i))
            .unwrap_or(0);
        near.truncate(cut);
    }
    SqlError {
        code: "BAD_REQUEST",
        message: format!(
            "[PARSE_SYNTAX_ERROR] Syntax error at or near '{near}'. This fake understands SELECT, CREATE TABLE and COPY INTO only."
        ),
        sql_state: "42601",
    }
}

fn infer_type(value: &Value) -> &'static str {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => "BIGINT",
        Value::Number(_) => "DOUBLE",
        Value::Bool(_) => "BOOLEAN",
        _ => "STRING",
    }
}

fn cell_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn parse_json_lines(data: &[u8]) -> std::result::Result<Vec<Map<String, Value>>, SqlError> {
    let text = String::from_utf8_lossy(data);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => rows.push(map),
            _ => {
                return Err(SqlError {
                    code: "BAD_REQUEST",
                    message: format!(
                        "[MALFORMED_RECORD_IN_PARSING] Malformed JSON record at line {}.",
                        i + 1
                    ),
                    sql_state: "22023",
                });
            }
        }
    }
    Ok(rows)
}

/// CSV with quoted fields (`""` inside quotes is a quote); the first line is the header
/// when `header`, else columns are `_c0`, `_c1`... Every value is text.
fn parse_csv(data: &[u8], header: bool) -> std::result::Result<Vec<Map<String, Value>>, SqlError> {
    let text = String::from_utf8_lossy(data);
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut field = String::new();
    let mut record = Vec::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    let mut records = records.into_iter();
    let names: Vec<String> = if header {
        records.next().unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(records
        .map(|r| {
            r.into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let name = names.get(i).cloned().unwrap_or_else(|| format!("_c{i}"));
                    let value = if v.is_empty() {
                        Value::Null
                    } else {
                        Value::String(v)
                    };
                    (name, value)
                })
                .collect()
        })
        .collect())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Param(String),
    Sym(String),
}

fn tokenize(sql: &str) -> std::result::Result<Vec<Tok>, SqlError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '`';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(syntax("an unterminated string")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        s.push(*c);
                        i += 1;
                    }
                }
            }
            tokens.push(Tok::Str(s));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(Tok::Sym("::".into()));
            i += 2;
        } else if c == ':'
            && chars
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
        {
            let start = i + 1;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                i += 1;
            }
            tokens.push(Tok::Param(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                i += 1;
            }
            tokens.push(Tok::Num(chars[start..i].iter().collect()));
        } else if word(c) {
            let start = i;
            while chars.get(i).is_some_and(|c| word(*c)) {
                i += 1;
            }
            tokens.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if matches!(two.as_str(), "<=" | ">=" | "<>" | "!=") {
                tokens.push(Tok::Sym(two));
                i += 2;
            } else {
                tokens.push(Tok::Sym(c.to_string()));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.at) {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn keyword(&mut self, k: &str) -> bool {
        if self.peek_word().is_some_and(|w| w.eq_ignore_ascii_case(k)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, k: &str) -> std::result::Result<(), SqlError> {
        if self.keyword(k) {
            Ok(())
        } else {
            Err(syntax(&format!("expected {k}")))
        }
    }

    fn symbol(&mut self, s: &str) -> bool {
        if self.tokens.get(self.at) == Some(&Tok::Sym(s.into())) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, s: &str) -> std::result::Result<(), SqlError> {
        if self.symbol(s) {
            Ok(())
        } else {
            Err(syntax(&format!("expected {s}")))
        }
    }

    fn name(&mut self) -> std::result::Result<String, SqlError> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            other => Err(syntax(&format!("expected a name, found {other:?}"))),
        }
    }

    /// `( 'key' = 'value' [, ...] )` into `into`.
    fn options(
        &mut self,
        into: &mut BTreeMap<String, String>,
    ) -> std::result::Result<(), SqlError> {
        self.expect_symbol("(")?;
        loop {
            let Some(Tok::Str(key)) = self.next() else {
                return Err(syntax("options are 'key' = 'value'"));
            };
            self.expect_symbol("=")?;
            let value = match self.next() {
                Some(Tok::Str(v) | Tok::Word(v) | Tok::Num(v)) => v,
                _ => return Err(syntax("options are 'key' = 'value'")),
            };
            into.insert(key, value);
            if self.symbol(")") {
                return Ok(());
            }
            self.expect_symbol(",")?;
        }
    }

    fn end(&mut self) -> std::result::Result<(), SqlError> {
        self.symbol(";");
        match self.tokens.get(self.at) {
            None => Ok(()),
            Some(t) => Err(syntax(&format!("{t:?}"))),
        }
    }
}
