//! The fake of BigQuery's REST v2 API and of Google's OAuth2 token endpoint.
//!
//! Written from the documented API (see the project's API facts, section 3): the
//! service-account JWT-bearer token exchange, jobs.query with `jobComplete: false` and
//! getQueryResults polling and paging by `pageToken`, tabledata.insertAll with per-row
//! `insertErrors` in a 200 answer, tables.get and tables.patch guarded by `If-Match`, dry
//! runs, and Google's `{"error": {"code", "message", "errors": [{reason, message,
//! location}], "status"}}` error body, including the 403 `rateLimitExceeded` and
//! `quotaExceeded` answers.
//!
//! ## Valid credentials and data (the default [`Config`])
//!
//! | what | value |
//! |------|-------|
//! | API root | `{url}/bigquery/v2` |
//! | token endpoint | `{url}/token` (the assertion's `aud` must be exactly this URL) |
//! | a ready access token | `fake-token` ([`ACCESS_TOKEN`]) |
//! | the service account (`iss`) | [`CLIENT_EMAIL`] |
//! | project | `fake-project` ([`PROJECT_ID`]) |
//! | table | `fake_dataset.events` ([`DATASET`], [`TABLE`]): see [`events_schema`] and [`EVENTS`] |
//!
//! Tokens from the token endpoint are `ya29.fake-1`, `ya29.fake-2`, ... valid for
//! [`Config::token_lifetime_secs`].
//!
//! ## What it answers
//!
//! - A query whose text starts with `INSERT`, `UPDATE`, `DELETE` or `MERGE` is DML and
//!   answers `numDmlAffectedRows: "3"`; a query containing [`Config::invalid_query_marker`]
//!   (`SYNTAX_ERROR`) answers 400 `invalidQuery`; any other query answers the rows of
//!   [`EVENTS`] with the table's schema, [`Config::page_size`] rows a page.
//! - A job answers `jobComplete: false` [`Config::incomplete_answers`] times (jobs.query's
//!   answer included) before it is complete.
//! - insertAll stores valid rows (shown by the table's `numRows` and kept in
//!   [`Config::inserted`]), drops rows whose `insertId` it has seen, and refuses rows that
//!   miss a `REQUIRED` column, name an unknown column (unless `ignoreUnknownValues`) or
//!   give a non-integer to an `INTEGER` column: `invalid` errors for them and, without
//!   `skipInvalidRows`, `stopped` errors for the rest of the request, none stored.
//!
//! ## What it checks
//!
//! - Token requests: form-encoded, `grant_type` the JWT-bearer grant, an RS256 assertion
//!   (its signature too when [`Config::public_key_pem`] is set) whose `iss` is the service
//!   account, whose `scope` includes the BigQuery or cloud-platform scope, whose `aud` is
//!   the token endpoint, and whose `exp` is after `iat` and at most an hour after it
//!   (400 `invalid_grant` / `invalid_scope` otherwise).
//! - `Authorization: Bearer` with a known, unexpired token on every API call (401
//!   `authError`); the project (404).
//! - jobs.query: `query` present; `useLegacySql: false` (BigQuery's default is legacy SQL,
//!   which fails on GoogleSQL: 400 `invalidQuery`); every `@name` the SQL uses declared in
//!   `queryParameters` with `parameterMode: NAMED`, each with a known `parameterType.type`
//!   and a text `parameterValue.value` (or `arrayValues`). A repeated `requestId` answers
//!   the job it first created.
//! - getQueryResults: the job exists and `location` matches the job's (404 otherwise, as
//!   BigQuery answers for a job looked up in another location).
//! - tables.patch: `If-Match` equal to the table's etag (412 `conditionNotMet`), every
//!   existing column kept with its type and mode, no `REQUIRED` column added (400
//!   `invalid`).
//!
//! ## Knobs
//!
//! Rate limits and failures: [`Config::rate_limit_times`] (403 `rateLimitExceeded`),
//! [`Config::quota_exceeded`] (403 `quotaExceeded`), [`Config::backend_error_times`] (500
//! `backendError` after the job was created, so a retry with the same `requestId` finds
//! it), [`Config::etag_race_once`] (the table's schema changes just before the next patch).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{Fake, Journal, MAX_BODY, Times, json, serve};

/// The project.
pub const PROJECT_ID: &str = "fake-project";
/// The dataset of the fake's table.
pub const DATASET: &str = "fake_dataset";
/// The fake's table.
pub const TABLE: &str = "events";
/// The access token always accepted.
pub const ACCESS_TOKEN: &str = "fake-token";
/// The service account whose assertions the token endpoint accepts.
pub const CLIENT_EMAIL: &str = "kernelize-test@fake-project.iam.gserviceaccount.com";
/// The BigQuery scope.
pub const SCOPE_BIGQUERY: &str = "https://www.googleapis.com/auth/bigquery";
/// The cloud-platform scope (also grants BigQuery).
pub const SCOPE_CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The rows every query answers, as BigQuery encodes cells (all text; timestamps as
/// seconds since the epoch in floating-point notation; `tags` repeated; `meta` a record).
/// Columns as [`events_schema`]: id, name, amount, score, active, day, created, tags, meta.
pub const EVENTS: &[&str] = &[
    r#"[{"v":"1"},{"v":"alpha"},{"v":"12.5"},{"v":"1.5"},{"v":"true"},{"v":"2024-05-01"},{"v":"1.7145216E9"},{"v":[{"v":"a"},{"v":"b"}]},{"v":{"f":[{"v":"web"},{"v":"1"}]}}]"#,
    r#"[{"v":"2"},{"v":"beta"},{"v":"0.25"},{"v":"2.25"},{"v":"false"},{"v":"2024-05-02"},{"v":"1.7146368E9"},{"v":[]},{"v":{"f":[{"v":"app"},{"v":"2"}]}}]"#,
    r#"[{"v":"3"},{"v":null},{"v":null},{"v":null},{"v":null},{"v":null},{"v":null},{"v":[]},{"v":null}]"#,
    r#"[{"v":"4"},{"v":"delta"},{"v":"100"},{"v":"-0.35"},{"v":"true"},{"v":"2024-05-04"},{"v":"1714809600.5"},{"v":[{"v":"c"}]},{"v":{"f":[{"v":"web"},{"v":"4"}]}}]"#,
    r#"[{"v":"5"},{"v":"epsilon"},{"v":"7.000000001"},{"v":"1E3"},{"v":"false"},{"v":"2024-05-05"},{"v":"1.7148672E9"},{"v":[{"v":"d"},{"v":"e"}]},{"v":{"f":[{"v":"api"},{"v":"5"}]}}]"#,
];

/// The schema of `fake_dataset.events` and of every query's answer.
pub fn events_schema() -> Vec<Value> {
    vec![
        json!({"name": "id", "type": "INTEGER", "mode": "REQUIRED"}),
        json!({"name": "name", "type": "STRING", "mode": "NULLABLE", "description": "display name"}),
        json!({"name": "amount", "type": "NUMERIC", "mode": "NULLABLE"}),
        json!({"name": "score", "type": "FLOAT", "mode": "NULLABLE"}),
        json!({"name": "active", "type": "BOOLEAN", "mode": "NULLABLE"}),
        json!({"name": "day", "type": "DATE", "mode": "NULLABLE"}),
        json!({"name": "created", "type": "TIMESTAMP", "mode": "NULLABLE"}),
        json!({"name": "tags", "type": "STRING", "mode": "REPEATED"}),
        json!({"name": "meta", "type": "RECORD", "mode": "NULLABLE", "fields": [
            {"name": "source", "type": "STRING", "mode": "NULLABLE"},
            {"name": "rank", "type": "INTEGER", "mode": "NULLABLE"}
        ]}),
    ]
}

/// Rows the fake stored through insertAll, shared with the test that holds a clone.
#[derive(Debug, Clone, Default)]
pub struct Inserted(Arc<Mutex<Vec<Value>>>);

impl Inserted {
    /// Every stored row (`{"insertId", "json"}`), in order.
    pub fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn push(&self, row: Value) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(row);
    }
}

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project.
    pub project_id: String,
    /// An access token accepted without the token endpoint.
    pub access_token: String,
    /// The service account (`iss`) the token endpoint accepts.
    pub client_email: String,
    /// The service account's public key in PEM; when set, assertion signatures are
    /// verified, otherwise only their claims are checked.
    pub public_key_pem: Option<String>,
    /// `expires_in` of issued tokens, in seconds; they stop working after it.
    pub token_lifetime_secs: u64,
    /// How many answers of a job say `jobComplete: false` (jobs.query's first) before it
    /// completes.
    pub incomplete_answers: u32,
    /// Rows per result page (less when `maxResults` asks for less).
    pub page_size: usize,
    /// How many jobs.query calls answer 403 `rateLimitExceeded` first.
    pub rate_limit_times: u32,
    /// Answer every jobs.query with 403 `quotaExceeded`.
    pub quota_exceeded: bool,
    /// How many jobs.query calls answer 500 `backendError` (after creating the job).
    pub backend_error_times: u32,
    /// `totalBytesProcessed` of dry runs.
    pub dry_run_bytes: u64,
    /// Queries containing this text answer 400 `invalidQuery`.
    pub invalid_query_marker: String,
    /// Change the table's etag just before the next tables.patch, as a concurrent writer
    /// would.
    pub etag_race_once: bool,
    /// Rows stored by insertAll (a test keeps a clone to look).
    pub inserted: Inserted,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            project_id: PROJECT_ID.into(),
            access_token: ACCESS_TOKEN.into(),
            client_email: CLIENT_EMAIL.into(),
            public_key_pem: None,
            token_lifetime_secs: 3600,
            incomplete_answers: 1,
            page_size: 2,
            rate_limit_times: 0,
            quota_exceeded: false,
            backend_error_times: 0,
            dry_run_bytes: 5 * 1024 * 1024 * 1024,
            invalid_query_marker: "SYNTAX_ERROR".into(),
            etag_race_once: false,
            inserted: Inserted::default(),
        }
    }
}

#[derive(Debug)]
struct Job {
    id: String,
    location: Option<String>,
    incomplete_left: u32,
    rows: Vec<Value>,
    dml: bool,
}

#[derive(Debug)]
struct Table {
    fields: Vec<Value>,
    etag: u64,
    num_rows: u64,
}

#[derive(Debug, Default)]
struct World {
    tokens: HashMap<String, Instant>,
    jobs: HashMap<String, Job>,
    request_ids: HashMap<String, String>,
    tables: BTreeMap<(String, String), Table>,
    insert_ids: HashSet<String>,
    counter: u64,
    etag_raced: bool,
}

#[derive(Clone)]
struct Shared {
    config: Arc<Config>,
    world: Arc<Mutex<World>>,
    rate_limited: Times,
    backend_errors: Times,
}

/// The fake's routes, with `config`; `journal` is the one the server records into.
pub fn router(config: Config, journal: Journal) -> Router {
    let _ = journal;
    let mut world = World::default();
    world.tables.insert(
        (DATASET.into(), TABLE.into()),
        Table {
            fields: events_schema(),
            etag: 1,
            num_rows: EVENTS.len() as u64,
        },
    );
    let shared = Shared {
        rate_limited: Times::new(config.rate_limit_times),
        backend_errors: Times::new(config.backend_error_times),
        config: Arc::new(config),
        world: Arc::new(Mutex::new(world)),
    };
    Router::new().fallback(handle).with_state(shared)
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

/// Google's error body.
fn error(code: u16, status: &str, reason: &str, message: &str, location: Option<&str>) -> Response {
    let mut item = json!({"message": message, "domain": "global", "reason": reason});
    if let Some(location) = location {
        item["location"] = json!(location);
    }
    json(
        code,
        json!({"error": {"code": code, "message": message, "errors": [item], "status": status}}),
    )
}

fn invalid(message: &str) -> Response {
    error(400, "INVALID_ARGUMENT", "invalid", message, None)
}

fn invalid_query(message: &str) -> Response {
    error(
        400,
        "INVALID_ARGUMENT",
        "invalidQuery",
        message,
        Some("query"),
    )
}

fn not_found(what: &str) -> Response {
    error(
        404,
        "NOT_FOUND",
        "notFound",
        &format!("Not found: {what}"),
        None,
    )
}

fn oauth_error(error: &str, description: &str) -> Response {
    json(
        400,
        json!({"error": error, "error_description": description}),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return invalid(&format!("cannot read the body: {e}")),
    };
    let path = parts.uri.path().to_string();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if path == "/token" && parts.method == Method::POST {
        return token(&shared, &parts.headers, &body);
    }
    let Some(rest) = path.strip_prefix("/bigquery/v2/") else {
        return not_found(&format!("URL {path} (the API is under /bigquery/v2/)"));
    };
    if let Some(answer) = check_bearer(&shared, &parts.headers) {
        return answer;
    }
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let method = parts.method.clone();
    let Some(project) = segments.get(1).filter(|_| segments[0] == "projects") else {
        return not_found(&format!("URL {path}"));
    };
    if *project != shared.config.project_id {
        return not_found(&format!("Project {project}"));
    }
    let is_json = header(&parts.headers, "content-type").starts_with("application/json");
    if (method == Method::POST || method == Method::PATCH) && !is_json {
        return invalid("Content-Type must be application/json");
    }
    let body_json: Value = if method == Method::POST || method == Method::PATCH {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return invalid(&format!("Invalid JSON payload received. {e}")),
        }
    } else {
        Value::Null
    };
    match (method.clone(), &segments[2..]) {
        (Method::POST, ["queries"]) => jobs_query(&shared, &body_json),
        (Method::GET, ["queries", job]) => get_query_results(&shared, job, &query),
        (Method::GET, ["datasets", d, "tables", t]) => get_table(&shared, d, t),
        (Method::PATCH, ["datasets", d, "tables", t]) => {
            patch_table(&shared, d, t, &parts.headers, &body_json)
        }
        (Method::POST, ["datasets", d, "tables", t, "insertAll"]) => {
            insert_all(&shared, d, t, &body_json)
        }
        _ => not_found(&format!("{method} {path}")),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    if !header(headers, "content-type").starts_with("application/x-www-form-urlencoded") {
        return oauth_error("invalid_request", "the token request must be form-encoded");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return oauth_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant}"),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let header_ok = jsonwebtoken::decode_header(assertion)
        .map(|h| h.alg == jsonwebtoken::Algorithm::RS256)
        .unwrap_or(false);
    if !header_ok {
        return oauth_error("invalid_grant", "Invalid JWT: the algorithm must be RS256");
    }
    let claims: Value = match &shared.config.public_key_pem {
        Some(pem) => {
            let key = match jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()) {
                Ok(k) => k,
                Err(e) => return oauth_error("server_error", &format!("bad public key: {e}")),
            };
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.validate_aud = false;
            validation.validate_exp = false;
            validation.required_spec_claims = HashSet::new();
            match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
                Ok(data) => data.claims,
                Err(_) => return oauth_error("invalid_grant", "Invalid JWT Signature."),
            }
        }
        None => match jsonwebtoken::dangerous::insecure_decode::<Value>(assertion) {
            Ok(data) => data.claims,
            Err(_) => return oauth_error("invalid_grant", "Invalid JWT: not a JWT"),
        },
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    if text("iss") != shared.config.client_email {
        return oauth_error("invalid_grant", "Invalid email or User ID");
    }
    let scopes: Vec<&str> = text("scope").split(' ').collect();
    if !scopes.contains(&SCOPE_BIGQUERY) && !scopes.contains(&SCOPE_CLOUD_PLATFORM) {
        return oauth_error("invalid_scope", "the scope claim grants no BigQuery access");
    }
    let audience = format!("http://{}/token", header(headers, "host"));
    if text("aud") != audience {
        return oauth_error("invalid_grant", "Invalid JWT: Failed audience check.");
    }
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_u64),
        claims.get("exp").and_then(Value::as_u64),
    ) else {
        return oauth_error("invalid_grant", "Invalid JWT: iat and exp are required.");
    };
    let now = now_secs();
    if exp <= iat || exp - iat > 3600 || iat > now + 300 || exp + 300 < now {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    world.counter += 1;
    let token = format!("ya29.fake-{}", world.counter);
    let lifetime = shared.config.token_lifetime_secs;
    world.tokens.insert(
        token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    json(
        200,
        json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}),
    )
}

fn check_bearer(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = header(headers, "authorization")
        .strip_prefix("Bearer ")
        .unwrap_or("");
    let valid = !token.is_empty()
        && (token == shared.config.access_token || {
            let world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
            world
                .tokens
                .get(token)
                .is_some_and(|until| Instant::now() < *until)
        });
    if valid {
        return None;
    }
    Some(error(
        401,
        "UNAUTHENTICATED",
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        Some("Authorization"),
    ))
}

/// The `@name`s a query uses (not `@@system` variables).
fn parameter_names(sql: &str) -> HashSet<String> {
    let bytes: Vec<char> = sql.chars().collect();
    let mut names = HashSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '@' {
            if bytes.get(i + 1) == Some(&'@') {
                i += 2;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                    i += 1;
                }
                continue;
            }
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == '_') {
                end += 1;
            }
            if end > start {
                names.insert(bytes[start..end].iter().collect());
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    names
}

const PARAMETER_TYPES: &[&str] = &[
    "INT64",
    "FLOAT64",
    "NUMERIC",
    "BIGNUMERIC",
    "BOOL",
    "STRING",
    "BYTES",
    "DATE",
    "DATETIME",
    "TIME",
    "TIMESTAMP",
    "JSON",
    "GEOGRAPHY",
    "INTERVAL",
];

/// Checks `queryParameters` against the SQL; an error answer when something is wrong.
fn check_parameters(sql: &str, body: &Value) -> Option<Response> {
    let used = parameter_names(sql);
    let params = body.get("queryParameters").and_then(Value::as_array);
    if params.is_some_and(|p| !p.is_empty())
        && body.get("parameterMode").and_then(Value::as_str) != Some("NAMED")
    {
        return Some(invalid("parameterMode must be NAMED for named parameters"));
    }
    let mut declared = HashSet::new();
    for p in params.into_iter().flatten() {
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            return Some(invalid("Named query parameters need a name"));
        };
        let kind = p
            .pointer("/parameterType/type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ok = if kind == "ARRAY" {
            let inner = p
                .pointer("/parameterType/arrayType/type")
                .and_then(Value::as_str)
                .unwrap_or("");
            PARAMETER_TYPES.contains(&inner)
                && p.pointer("/parameterValue/arrayValues")
                    .and_then(Value::as_array)
                    .is_some_and(|items| {
                        items
                            .iter()
                            .all(|i| i.get("value").is_some_and(|v| v.is_string() || v.is_null()))
                    })
        } else {
            PARAMETER_TYPES.contains(&kind)
                && p.pointer("/parameterValue/value")
                    .is_none_or(|v| v.is_string() || v.is_null())
        };
        if !ok {
            return Some(invalid(&format!(
                "Invalid query parameter {name}: a known parameterType.type and a parameterValue.value as text are required"
            )));
        }
        declared.insert(name.to_string());
    }
    let mut missing: Vec<&String> = used.iter().filter(|n| !declared.contains(*n)).collect();
    missing.sort();
    if let Some(name) = missing.first() {
        return Some(invalid_query(&format!(
            "Query parameter '{name}' not found at [1:1]"
        )));
    }
    None
}

fn is_dml(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE")
}

fn events_rows() -> Vec<Value> {
    EVENTS
        .iter()
        .map(|row| json!({"f": serde_json::from_str::<Value>(row).unwrap_or(Value::Null)}))
        .collect()
}

fn job_reference(shared: &Shared, job: &Job) -> Value {
    let mut reference = json!({"projectId": shared.config.project_id, "jobId": job.id});
    if let Some(location) = &job.location {
        reference["location"] = json!(location);
    }
    reference
}

/// A complete job's answer: the page of rows from `offset`.
fn page(shared: &Shared, job: &Job, offset: usize, max_results: Option<usize>) -> Value {
    let mut answer = json!({
        "kind": "bigquery#queryResponse",
        "jobReference": job_reference(shared, job),
        "jobComplete": true,
        "cacheHit": false,
    });
    if job.dml {
        answer["numDmlAffectedRows"] = json!("3");
        answer["totalRows"] = json!("0");
        return answer;
    }
    let size = shared
        .config
        .page_size
        .max(1)
        .min(max_results.filter(|n| *n > 0).unwrap_or(usize::MAX));
    let end = (offset + size).min(job.rows.len());
    answer["schema"] = json!({"fields": events_schema()});
    answer["totalRows"] = json!(job.rows.len().to_string());
    answer["rows"] = Value::Array(job.rows.get(offset..end).unwrap_or_default().to_vec());
    if end < job.rows.len() {
        answer["pageToken"] = json!(format!("BQ-PAGE-{end}-{}", job.id));
    }
    answer
}

fn jobs_query(shared: &Shared, body: &Value) -> Response {
    let config = &shared.config;
    if config.quota_exceeded {
        return error(
            403,
            "PERMISSION_DENIED",
            "quotaExceeded",
            "Quota exceeded: Your project exceeded quota for free query bytes scanned. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
            None,
        );
    }
    if shared.rate_limited.take() {
        return error(
            403,
            "PERMISSION_DENIED",
            "rateLimitExceeded",
            "Exceeded rate limits: too many api requests per user per method for this user_method. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
            None,
        );
    }
    let Some(sql) = body
        .get("query")
        .and_then(Value::as_str)
        .filter(|q| !q.trim().is_empty())
    else {
        return invalid("Required parameter is missing: query");
    };
    if body.get("useLegacySql") != Some(&Value::Bool(false)) {
        return invalid_query(
            "Legacy SQL was used (useLegacySql defaults to true) and cannot parse this GoogleSQL statement [Try using standard SQL (https://cloud.google.com/bigquery/docs/reference/standard-sql/enabling-standard-sql)]",
        );
    }
    if sql.contains(&config.invalid_query_marker) {
        return invalid_query("Syntax error: Unexpected identifier \"SYNTAX_ERROR\" at [1:8]");
    }
    if let Some(answer) = check_parameters(sql, body) {
        return answer;
    }
    let max_results = body
        .get("maxResults")
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .map(str::to_string);
    if body.get("dryRun") == Some(&Value::Bool(true)) {
        let mut reference = json!({"projectId": config.project_id});
        if let Some(location) = &location {
            reference["location"] = json!(location);
        }
        return json(
            200,
            json!({
                "kind": "bigquery#queryResponse",
                "jobReference": reference,
                "totalBytesProcessed": config.dry_run_bytes.to_string(),
                "jobComplete": true,
                "cacheHit": false,
                "schema": {"fields": if is_dml(sql) { Vec::new() } else { events_schema() }},
            }),
        );
    }
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let request_id = body
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let existing = request_id
        .as_ref()
        .and_then(|r| world.request_ids.get(r).cloned());
    let job_id = match existing {
        Some(id) => id,
        None => {
            world.counter += 1;
            let id = format!("job_fake_{}", world.counter);
            let dml = is_dml(sql);
            world.jobs.insert(
                id.clone(),
                Job {
                    id: id.clone(),
                    location: location.clone(),
                    incomplete_left: config.incomplete_answers,
                    rows: if dml { Vec::new() } else { events_rows() },
                    dml,
                },
            );
            if let Some(r) = &request_id {
                world.request_ids.insert(r.clone(), id.clone());
            }
            id
        }
    };
    if shared.backend_errors.take() {
        return error(
            500,
            "INTERNAL",
            "backendError",
            "An internal error occurred and the request could not be completed.",
            None,
        );
    }
    let Some(job) = world.jobs.get_mut(&job_id) else {
        return not_found(&format!("Job {job_id}"));
    };
    if job.incomplete_left > 0 {
        job.incomplete_left -= 1;
        let reference = job_reference(shared, job);
        return json(
            200,
            json!({"kind": "bigquery#queryResponse", "jobReference": reference, "jobComplete": false}),
        );
    }
    json(200, page(shared, job, 0, max_results))
}

fn get_query_results(shared: &Shared, job_id: &str, query: &BTreeMap<String, String>) -> Response {
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let Some(job) = world.jobs.get_mut(job_id) else {
        return not_found(&format!("Job {}:{job_id}", shared.config.project_id));
    };
    if job.location.is_some() && query.get("location") != job.location.as_ref() {
        return not_found(&format!(
            "Job {}:{job_id} (in location {})",
            shared.config.project_id,
            query.get("location").map(String::as_str).unwrap_or("US")
        ));
    }
    if job.incomplete_left > 0 {
        job.incomplete_left -= 1;
        let reference = job_reference(shared, job);
        return json(
            200,
            json!({"kind": "bigquery#getQueryResultsResponse", "jobReference": reference, "jobComplete": false}),
        );
    }
    let offset = match query.get("pageToken") {
        None => 0,
        Some(token) => match token
            .strip_prefix("BQ-PAGE-")
            .and_then(|rest| rest.split_once('-'))
            .filter(|(_, job)| *job == job_id)
            .and_then(|(offset, _)| offset.parse::<usize>().ok())
        {
            Some(offset) => offset,
            None => return invalid(&format!("Invalid page token: {token}")),
        },
    };
    let max_results = query.get("maxResults").and_then(|n| n.parse().ok());
    let mut answer = page(shared, job, offset, max_results);
    answer["kind"] = json!("bigquery#getQueryResultsResponse");
    json(200, answer)
}

fn table_json(shared: &Shared, dataset: &str, name: &str, table: &Table) -> Value {
    let project = &shared.config.project_id;
    json!({
        "kind": "bigquery#table",
        "id": format!("{project}:{dataset}.{name}"),
        "etag": format!("etag-{}", table.etag),
        "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
        "schema": {"fields": table.fields},
        "numRows": table.num_rows.to_string(),
        "type": "TABLE",
        "location": "US",
    })
}

fn get_table(shared: &Shared, dataset: &str, name: &str) -> Response {
    let world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    match world.tables.get(&(dataset.to_string(), name.to_string())) {
        Some(table) => json(200, table_json(shared, dataset, name, table)),
        None => not_found(&format!(
            "Table {}:{dataset}.{name}",
            shared.config.project_id
        )),
    }
}

fn text_field<'a>(field: &'a Value, name: &str) -> &'a str {
    field.get(name).and_then(Value::as_str).unwrap_or("")
}

fn mode_of(field: &Value) -> String {
    let mode = text_field(field, "mode");
    if mode.is_empty() {
        "NULLABLE".into()
    } else {
        mode.to_ascii_uppercase()
    }
}

fn patch_table(
    shared: &Shared,
    dataset: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Response {
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let race = shared.config.etag_race_once && !world.etag_raced;
    world.etag_raced |= race;
    let project = shared.config.project_id.clone();
    let Some(table) = world
        .tables
        .get_mut(&(dataset.to_string(), name.to_string()))
    else {
        return not_found(&format!("Table {project}:{dataset}.{name}"));
    };
    if race {
        // Another writer changed the table meanwhile.
        table.etag += 1;
    }
    let if_match = header(headers, "if-match");
    if !if_match.is_empty() && if_match != format!("etag-{}", table.etag) {
        return error(
            412,
            "FAILED_PRECONDITION",
            "conditionNotMet",
            "Precondition check failed.",
            Some("If-Match"),
        );
    }
    let Some(fields) = body.pointer("/schema/fields").and_then(Value::as_array) else {
        return invalid("The patch has no schema.fields");
    };
    let table_name = format!("{project}:{dataset}.{name}");
    for old in &table.fields {
        let old_name = text_field(old, "name");
        let Some(new) = fields.iter().find(|f| text_field(f, "name") == old_name) else {
            return invalid(&format!(
                "Provided Schema does not match Table {table_name}. Field {old_name} is missing in new schema"
            ));
        };
        if text_field(new, "type") != text_field(old, "type") {
            return invalid(&format!(
                "Provided Schema does not match Table {table_name}. Field {old_name} has changed type from {} to {}",
                text_field(old, "type"),
                text_field(new, "type")
            ));
        }
        if mode_of(new) != mode_of(old) {
            return invalid(&format!(
                "Provided Schema does not match Table {table_name}. Field {old_name} has changed mode from {} to {}",
                mode_of(old),
                mode_of(new)
            ));
        }
    }
    for new in fields {
        let new_name = text_field(new, "name");
        let known = table
            .fields
            .iter()
            .any(|f| text_field(f, "name") == new_name);
        if !known && mode_of(new) == "REQUIRED" {
            return invalid(&format!(
                "Provided Schema does not match Table {table_name}. Cannot add required fields to an existing schema. (field: {new_name})"
            ));
        }
    }
    table.fields = fields.clone();
    table.etag += 1;
    let answer = table_json(shared, dataset, name, table);
    json(200, answer)
}

/// Why a row does not fit the table, as insertAll reports it.
fn row_problem(fields: &[Value], row: &Map<String, Value>, ignore_unknown: bool) -> Option<Value> {
    for field in fields {
        let name = text_field(field, "name");
        let value = row.get(name).unwrap_or(&Value::Null);
        if mode_of(field) == "REQUIRED" && value.is_null() {
            return Some(
                json!({"reason": "invalid", "location": name, "debugInfo": "", "message": format!("Missing required field: {name}.")}),
            );
        }
        let integer = matches!(text_field(field, "type"), "INTEGER" | "INT64");
        let fits = match value {
            Value::Null => true,
            Value::Number(n) => !integer || n.is_i64() || n.is_u64(),
            Value::String(s) => !integer || s.parse::<i64>().is_ok(),
            _ => !integer,
        };
        if !fits {
            return Some(
                json!({"reason": "invalid", "location": name, "debugInfo": "", "message": "Cannot convert value to integer."}),
            );
        }
    }
    if !ignore_unknown {
        for key in row.keys() {
            if !fields.iter().any(|f| text_field(f, "name") == key) {
                return Some(
                    json!({"reason": "invalid", "location": key, "debugInfo": "", "message": format!("no such field: {key}.")}),
                );
            }
        }
    }
    None
}

fn insert_all(shared: &Shared, dataset: &str, name: &str, body: &Value) -> Response {
    let mut world = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    let project = shared.config.project_id.clone();
    let Some(fields) = world
        .tables
        .get(&(dataset.to_string(), name.to_string()))
        .map(|t| t.fields.clone())
    else {
        return not_found(&format!("Table {project}:{dataset}.{name}"));
    };
    let Some(rows) = body
        .get("rows")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return invalid("No rows present in the request.");
    };
    let skip_invalid = body.get("skipInvalidRows") == Some(&Value::Bool(true));
    let ignore_unknown = body.get("ignoreUnknownValues") == Some(&Value::Bool(true));
    let mut problems: Vec<Option<Value>> = Vec::with_capacity(rows.len());
    for row in rows {
        problems.push(match row.get("json").and_then(Value::as_object) {
            Some(object) => row_problem(&fields, object, ignore_unknown),
            None => Some(json!({"reason": "invalid", "location": "", "debugInfo": "", "message": "The row has no json object."})),
        });
    }
    let any_bad = problems.iter().any(Option::is_some);
    let mut insert_errors = Vec::new();
    let mut stored = 0u64;
    for (index, (row, problem)) in rows.iter().zip(&problems).enumerate() {
        match problem {
            Some(problem) => insert_errors.push(json!({"index": index, "errors": [problem]})),
            None if any_bad && !skip_invalid => insert_errors.push(json!({
                "index": index,
                "errors": [{"reason": "stopped", "location": "", "debugInfo": "", "message": ""}]
            })),
            None => {
                let fresh = match row.get("insertId").and_then(Value::as_str) {
                    Some(id) => world.insert_ids.insert(id.to_string()),
                    None => true,
                };
                if fresh {
                    shared.config.inserted.push(row.clone());
                    stored += 1;
                }
            }
        }
    }
    if let Some(table) = world
        .tables
        .get_mut(&(dataset.to_string(), name.to_string()))
    {
        table.num_rows += stored;
    }
    let mut answer = json!({"kind": "bigquery#tableDataInsertAllResponse"});
    if !insert_errors.is_empty() {
        answer["insertErrors"] = Value::Array(insert_errors);
    }
    json(200, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_skip_system_variables() {
        let names = parameter_names("SELECT @a, @@session.x, @b_2 FROM t WHERE x = '@' ");
        assert_eq!(names.len(), 2);
        assert!(names.contains("a") && names.contains("b_2"));
    }

    #[test]
    fn the_events_rows_parse() {
        for row in events_rows() {
            assert_eq!(
                row["f"].as_array().map(Vec::len),
                Some(events_schema().len())
            );
        }
    }
}
