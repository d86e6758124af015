//! The fake of the Apache Airflow stable REST API: Airflow 2's `/api/v1` (HTTP Basic) or
//! Airflow 3's `/api/v2` (a JWT from `POST /auth/token`), one of the two per fake
//! ([`Config::version`]).
//!
//! Written from the published specs (`apache/airflow-client-python` `spec/v1.yaml` 2.10 and
//! `spec/v2.yaml`), not from a client:
//!
//! - **Auth.** v1 checks `Authorization: Basic` against [`Config::username`] /
//!   [`Config::password`] (`admin` / `fake-password` by default) and answers 401 with a
//!   problem document. v2 serves `POST /auth/token` (JSON `{username, password}` → **201**
//!   `{"access_token"}`, a JWT-shaped token) and checks `Authorization: Bearer` on every API
//!   call; tokens expire after [`Config::token_ttl`] (the `exp` claim says when, unless
//!   [`Config::exp_claim`] is off, so a client only learns it from the 401).
//! - **DAGs.** `GET /api/{v}/dags?limit&offset&tags&paused&dag_id_pattern` →
//!   `{dags, total_entries}` over [`Config::dag_count`] fixed DAGs (ids in
//!   [`dag_ids`]), `limit` capped at [`Config::max_page_limit`] (defaults: 100 in v1, 50
//!   in v2). `PATCH /api/{v}/dags/{dag_id}?update_mask=is_paused` `{"is_paused"}` → the DAG.
//! - **DAG runs.** `POST /api/{v}/dags/{dag_id}/dagRuns`: v1 takes
//!   `{dag_run_id?, logical_date?, execution_date?, data_interval_*?, conf?, note?}` (400 for
//!   anything else); v2 takes `{dag_run_id?, logical_date, data_interval_*?, run_after?,
//!   conf?, note?}` and answers **422** for an unknown field (`extra_forbidden`) and, when
//!   [`Config::require_logical_date`] is on (Airflow 3.0), for a missing `logical_date` key.
//!   A second run with the same `dag_run_id` is **409**. A new run is `queued`; each
//!   `GET …/dagRuns/{id}` is a poll: `running` until the [`Config::polls_to_finish`]-th
//!   poll, then [`Config::final_state`]; [`Config::lost_trigger_answers`] makes a trigger
//!   create its run yet answer 503. One finished run, [`SEEDED_RUN`] of the first DAG,
//!   exists from the start.
//! - **Task instances.** `GET …/dagRuns/{id}/taskInstances?limit&offset` →
//!   `{task_instances, total_entries}`, [`Config::task_count`] tasks whose states follow
//!   the run's.
//! - **Errors.** v1: `{type, title, status, detail, instance}`; v2: `{"detail": "…"}` or
//!   `{"detail": [{type, loc, msg, input}]}` for validation. Airflow documents no rate
//!   limit; a proxy in front may answer 429, which [`Config::rate_limited`] simulates on
//!   `GET …/dags` (with `Retry-After`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{Fake, Journal, Times, serve};

/// The run that exists from the start, of the first DAG, finished with `success`.
pub const SEEDED_RUN: &str = "scheduled__2024-05-01T00:00:00+00:00";

/// Which API the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Airflow 2: `/api/v1`, HTTP Basic.
    V1,
    /// Airflow 3: `/api/v2`, bearer JWT from `/auth/token`.
    V2,
}

impl Version {
    fn segment(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// What the fake does; the default serves v2 with `admin` / `fake-password`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API served; the other version's paths answer 404.
    pub version: Version,
    /// The user name (Basic in v1, `/auth/token` in v2).
    pub username: String,
    /// The password.
    pub password: String,
    /// How long a v2 token is accepted.
    pub token_ttl: Duration,
    /// Whether a v2 token carries its `exp` claim (off: the client learns of the expiry
    /// from the 401 only).
    pub exp_claim: bool,
    /// v2 only: refuse (422) a trigger body without the `logical_date` key, as Airflow 3.0
    /// did (PR #46390); 3.2 accepts its absence.
    pub require_logical_date: bool,
    /// GETs of a run before it is finished (the first polls answer `running`).
    pub polls_to_finish: u32,
    /// The state a run ends in: `success` or `failed`.
    pub final_state: String,
    /// How many DAGs exist (see [`dag_ids`]).
    pub dag_count: usize,
    /// How many task instances each run has.
    pub task_count: usize,
    /// The largest page served (`[api] maximum_page_limit`).
    pub max_page_limit: usize,
    /// How many times `GET …/dags` answers 429 before serving.
    pub rate_limited: u32,
    /// The `Retry-After` of those 429s, in seconds.
    pub retry_after_secs: u64,
    /// How many triggers create their run but answer 503 (an answer lost on the way back,
    /// as from a proxy timing out), so that a client's retry meets the run it created.
    pub lost_trigger_answers: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: Version::V2,
            username: "admin".into(),
            password: "fake-password".into(),
            token_ttl: Duration::from_secs(3600),
            exp_claim: true,
            require_logical_date: true,
            polls_to_finish: 2,
            final_state: "success".into(),
            dag_count: 5,
            task_count: 3,
            max_page_limit: 100,
            rate_limited: 0,
            retry_after_secs: 1,
            lost_trigger_answers: 0,
        }
    }
}

/// The ids of the first `count` DAGs, in the order the API lists them (by `dag_id`).
pub fn dag_ids(count: usize) -> Vec<String> {
    const NAMED: [&str; 5] = [
        "customer_sync",
        "daily_report",
        "etl_orders",
        "ml_training",
        "weekly_cleanup",
    ];
    let mut ids: Vec<String> = (0..count)
        .map(|i| match NAMED.get(i) {
            Some(name) => (*name).to_string(),
            None => format!("zz_dag_{i:03}"),
        })
        .collect();
    ids.sort();
    ids
}

const TASKS: [&str; 3] = ["extract", "transform", "load"];

fn task_ids(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match TASKS.get(i) {
            Some(t) => (*t).to_string(),
            None => format!("task_{i}"),
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Run {
    conf: Value,
    logical_date: Option<String>,
    data_interval_start: Option<String>,
    data_interval_end: Option<String>,
    run_after: Option<String>,
    note: Option<String>,
    run_type: &'static str,
    polls: u32,
    /// Finished from the start (the seeded run).
    done: bool,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    tokens: HashMap<String, Instant>,
    token_seq: u64,
    paused: BTreeMap<String, bool>,
    runs: BTreeMap<(String, String), Run>,
    rate: Times,
    lost: Times,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fake's routes over `config`.
pub fn router(config: Config, _journal: Journal) -> Router {
    let ids = dag_ids(config.dag_count);
    let paused = ids
        .iter()
        .map(|id| (id.clone(), id == "weekly_cleanup"))
        .collect();
    let mut runs = BTreeMap::new();
    if let Some(first) = ids.first() {
        runs.insert(
            (first.clone(), SEEDED_RUN.to_string()),
            Run {
                conf: json!({}),
                logical_date: Some("2024-05-01T00:00:00+00:00".into()),
                data_interval_start: Some("2024-04-30T00:00:00+00:00".into()),
                data_interval_end: Some("2024-05-01T00:00:00+00:00".into()),
                run_after: Some("2024-05-01T00:00:00+00:00".into()),
                note: None,
                run_type: "scheduled",
                polls: 0,
                done: true,
            },
        );
    }
    let rate = Times::new(config.rate_limited);
    let lost = Times::new(config.lost_trigger_answers);
    let shared: Shared = Arc::new(Mutex::new(Inner {
        config,
        tokens: HashMap::new(),
        token_seq: 0,
        paused,
        runs,
        rate,
        lost,
    }));
    Router::new()
        .route("/auth/token", post(token))
        .route("/api/{ver}/dags", get(list_dags))
        .route("/api/{ver}/dags/{dag_id}", get(get_dag).patch(patch_dag))
        .route("/api/{ver}/dags/{dag_id}/dagRuns", post(trigger))
        .route("/api/{ver}/dags/{dag_id}/dagRuns/{run_id}", get(get_run))
        .route(
            "/api/{ver}/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            get(task_instances),
        )
        .with_state(shared)
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

// ---- errors -------------------------------------------------------------------------------

fn problem_type(title: &str) -> String {
    let section = match title {
        "Unauthorized" => "Unauthenticated",
        "Forbidden" => "PermissionDenied",
        "Conflict" => "AlreadyExists",
        "Bad Request" => "BadRequest",
        "Too Many Requests" => "TooManyRequests",
        _ => "NotFound",
    };
    format!(
        "https://airflow.apache.org/docs/apache-airflow/2.10.0/stable-rest-api-ref.html#section/Errors/{section}"
    )
}

/// The error document of `version`: a problem (v1) or `{"detail"}` (v2).
fn error(version: Version, status: u16, title: &str, detail: Value, instance: &str) -> Response {
    match version {
        Version::V1 => {
            let body = json!({
                "type": problem_type(title),
                "title": title,
                "status": status,
                "detail": detail,
                "instance": instance,
            });
            let mut response = crate::json(status, body);
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/problem+json"),
            );
            response
        }
        Version::V2 => crate::json(status, json!({ "detail": detail })),
    }
}

/// A v2 validation error (422) for one field.
fn invalid(kind: &str, loc: &[&str], msg: &str, input: Value) -> Response {
    crate::json(
        422,
        json!({"detail": [{"type": kind, "loc": loc, "msg": msg, "input": input}]}),
    )
}

fn not_found_path() -> Response {
    crate::json(404, json!({"detail": "Not Found"}))
}

// ---- auth ---------------------------------------------------------------------------------

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn token(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = lock(&shared);
    if inner.config.version != Version::V2 {
        return not_found_path();
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !is_json || !parsed.is_object() {
        return invalid(
            "model_attributes_type",
            &["body"],
            "Input should be a valid dictionary or object to extract fields from",
            Value::String(String::from_utf8_lossy(&body).into_owned()),
        );
    }
    for field in ["username", "password"] {
        if !parsed.get(field).is_some_and(Value::is_string) {
            return invalid(
                "missing",
                &["body", field],
                "Field required",
                parsed.clone(),
            );
        }
    }
    if parsed["username"] != inner.config.username.as_str()
        || parsed["password"] != inner.config.password.as_str()
    {
        return crate::json(401, json!({"detail": "Invalid credentials"}));
    }
    inner.token_seq += 1;
    let seq = inner.token_seq;
    let ttl = inner.config.token_ttl;
    let issued = now_secs();
    let mut claims = json!({
        "sub": inner.config.username,
        "jti": format!("fake-{seq}"),
        "iss": [],
        "aud": "apache-airflow",
        "iat": issued,
        "nbf": issued,
    });
    if inner.config.exp_claim {
        claims["exp"] = json!(issued + ttl.as_secs());
    }
    let jwt = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(format!("fake-signature-{seq}")),
    );
    inner.tokens.insert(jwt.clone(), Instant::now() + ttl);
    crate::json(201, json!({ "access_token": jwt }))
}

/// Checks the version in the path and the credentials; `Err` is the answer to give.
fn authorize(
    inner: &Inner,
    ver: &str,
    headers: &HeaderMap,
    instance: &str,
) -> Result<(), Box<Response>> {
    let version = inner.config.version;
    if ver != version.segment() {
        return Err(Box::new(not_found_path()));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match version {
        Version::V1 => {
            let expected = STANDARD.encode(format!(
                "{}:{}",
                inner.config.username, inner.config.password
            ));
            if auth.strip_prefix("Basic ") == Some(expected.as_str()) {
                Ok(())
            } else {
                let mut response = error(version, 401, "Unauthorized", Value::Null, instance);
                response
                    .headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static("Basic"));
                Err(Box::new(response))
            }
        }
        Version::V2 => {
            let Some(token) = auth.strip_prefix("Bearer ") else {
                return Err(Box::new(crate::json(
                    401,
                    json!({"detail": "Not authenticated"}),
                )));
            };
            match inner.tokens.get(token) {
                Some(expires) if Instant::now() < *expires => Ok(()),
                Some(_) => Err(Box::new(crate::json(
                    401,
                    json!({"detail": "Token has expired"}),
                ))),
                None => Err(Box::new(crate::json(
                    401,
                    json!({"detail": "Invalid JWT token"}),
                ))),
            }
        }
    }
}

// ---- DAGs ---------------------------------------------------------------------------------

fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `limit` and `offset`, or the error answer for a value that is not a count.
fn page(
    inner: &Inner,
    pairs: &[(String, String)],
    instance: &str,
) -> Result<(usize, usize), Box<Response>> {
    let version = inner.config.version;
    let default_limit = match version {
        Version::V1 => 100,
        Version::V2 => 50,
    };
    let mut out = [default_limit, 0];
    for (i, name) in ["limit", "offset"].iter().enumerate() {
        if let Some(text) = first(pairs, name) {
            match text.parse::<usize>() {
                Ok(n) => out[i] = n,
                Err(_) => {
                    return Err(Box::new(match version {
                        Version::V1 => error(
                            version,
                            400,
                            "Bad Request",
                            json!(format!("'{text}' is not of type 'integer'")),
                            instance,
                        ),
                        Version::V2 => invalid(
                            "int_parsing",
                            &["query", name],
                            "Input should be a valid integer, unable to parse string as an integer",
                            json!(text),
                        ),
                    }));
                }
            }
        }
    }
    Ok((out[0].min(inner.config.max_page_limit), out[1]))
}

fn dag_json(inner: &Inner, index: usize, dag_id: &str) -> Value {
    let paused = inner.paused.get(dag_id).copied().unwrap_or(false);
    let tags: Vec<&str> = if index.is_multiple_of(2) {
        vec!["team-a", "daily"]
    } else {
        vec!["team-b"]
    };
    let schedule = if index.is_multiple_of(2) {
        "0 6 * * *"
    } else {
        "@hourly"
    };
    let fileloc = format!("/opt/airflow/dags/{dag_id}.py");
    let display = dag_id.replace('_', " ");
    match inner.config.version {
        Version::V1 => json!({
            "dag_id": dag_id,
            "dag_display_name": display,
            "root_dag_id": null,
            "is_paused": paused,
            "is_active": true,
            "is_subdag": false,
            "last_parsed_time": "2024-05-01T09:59:00+00:00",
            "last_pickled": null,
            "last_expired": null,
            "scheduler_lock": null,
            "pickle_id": null,
            "default_view": "grid",
            "fileloc": fileloc,
            "file_token": format!("token-{index}"),
            "owners": ["airflow", "data-team"],
            "description": format!("The {display} pipeline"),
            "schedule_interval": {"__type": "CronExpression", "value": schedule},
            "timetable_description": schedule,
            "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
            "max_active_tasks": 16,
            "max_active_runs": 16,
            "has_task_concurrency_limits": false,
            "has_import_errors": false,
            "next_dagrun": "2024-05-02T06:00:00+00:00",
            "next_dagrun_data_interval_start": "2024-05-02T06:00:00+00:00",
            "next_dagrun_data_interval_end": "2024-05-03T06:00:00+00:00",
            "next_dagrun_create_after": "2024-05-03T06:00:00+00:00",
        }),
        Version::V2 => json!({
            "dag_id": dag_id,
            "dag_display_name": display,
            "is_paused": paused,
            "is_stale": false,
            "last_parsed_time": "2024-05-01T09:59:00+00:00",
            "last_parse_duration": 0.25,
            "last_expired": null,
            "bundle_name": "dags-folder",
            "bundle_version": null,
            "relative_fileloc": format!("{dag_id}.py"),
            "fileloc": fileloc,
            "description": format!("The {display} pipeline"),
            "timetable_summary": schedule,
            "timetable_description": schedule,
            "tags": tags.iter().map(|t| json!({"name": t, "dag_id": dag_id, "dag_display_name": display})).collect::<Vec<_>>(),
            "max_active_tasks": 16,
            "max_active_runs": 16,
            "max_consecutive_failed_dag_runs": 0,
            "has_task_concurrency_limits": false,
            "has_import_errors": false,
            "next_dagrun_logical_date": "2024-05-02T06:00:00+00:00",
            "next_dagrun_data_interval_start": "2024-05-02T06:00:00+00:00",
            "next_dagrun_data_interval_end": "2024-05-03T06:00:00+00:00",
            "next_dagrun_run_after": "2024-05-03T06:00:00+00:00",
            "owners": ["airflow", "data-team"],
            "file_token": format!("token-{index}"),
        }),
    }
}

async fn list_dags(
    State(shared): State<Shared>,
    Path(ver): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let inner = lock(&shared);
    let instance = format!("/api/{ver}/dags");
    if let Err(answer) = authorize(&inner, &ver, &headers, &instance) {
        return *answer;
    }
    if inner.rate.take() {
        let mut response = error(
            inner.config.version,
            429,
            "Too Many Requests",
            json!("Rate limit exceeded"),
            &instance,
        );
        if let Ok(v) = HeaderValue::from_str(&inner.config.retry_after_secs.to_string()) {
            response.headers_mut().insert("retry-after", v);
        }
        return response;
    }
    let pairs = query_pairs(&query);
    let (limit, offset) = match page(&inner, &pairs, &instance) {
        Ok(p) => p,
        Err(answer) => return *answer,
    };
    let tags: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "tags")
        .map(|(_, v)| v.as_str())
        .collect();
    let paused = first(&pairs, "paused").map(|p| p == "true");
    let pattern = first(&pairs, "dag_id_pattern").map(|p| p.trim_matches('%').to_string());
    let ids = dag_ids(inner.config.dag_count);
    let matching: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| dag_json(&inner, i, id))
        .filter(|dag| {
            let tag_ok = tags.is_empty()
                || dag["tags"].as_array().is_some_and(|ts| {
                    ts.iter()
                        .any(|t| tags.contains(&t["name"].as_str().unwrap_or("")))
                });
            let paused_ok = paused.is_none_or(|p| dag["is_paused"] == p);
            let pattern_ok = pattern
                .as_deref()
                .is_none_or(|p| dag["dag_id"].as_str().unwrap_or("").contains(p));
            tag_ok && paused_ok && pattern_ok
        })
        .collect();
    let total = matching.len();
    let dags: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    crate::json(200, json!({"dags": dags, "total_entries": total}))
}

fn find_dag(inner: &Inner, dag_id: &str) -> Option<usize> {
    dag_ids(inner.config.dag_count)
        .iter()
        .position(|d| d == dag_id)
}

fn dag_not_found(version: Version, dag_id: &str, instance: &str) -> Response {
    match version {
        Version::V1 => error(
            version,
            404,
            "DAG not found",
            json!(format!("DAG with dag_id: '{dag_id}' not found")),
            instance,
        ),
        Version::V2 => error(
            version,
            404,
            "",
            json!(format!("Dag with id {dag_id} was not found")),
            instance,
        ),
    }
}

async fn get_dag(
    State(shared): State<Shared>,
    Path((ver, dag_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let inner = lock(&shared);
    let instance = format!("/api/{ver}/dags/{dag_id}");
    if let Err(answer) = authorize(&inner, &ver, &headers, &instance) {
        return *answer;
    }
    match find_dag(&inner, &dag_id) {
        Some(i) => crate::json(200, dag_json(&inner, i, &dag_id)),
        None => dag_not_found(inner.config.version, &dag_id, &instance),
    }
}

async fn patch_dag(
    State(shared): State<Shared>,
    Path((ver, dag_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    let instance = format!("/api/{ver}/dags/{dag_id}");
    if let Err(answer) = authorize(&inner, &ver, &headers, &instance) {
        return *answer;
    }
    let version = inner.config.version;
    let Some(index) = find_dag(&inner, &dag_id) else {
        return dag_not_found(version, &dag_id, &instance);
    };
    let pairs = query_pairs(&query);
    let masks: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "update_mask")
        .flat_map(|(_, v)| v.split(','))
        .collect();
    if masks.iter().any(|m| m.trim() != "is_paused") {
        return error(
            version,
            400,
            "Bad Request",
            json!("Only `is_paused` field can be updated through the REST API"),
            &instance,
        );
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(object) = parsed.as_object() else {
        return match version {
            Version::V1 => error(
                version,
                400,
                "Bad Request",
                json!("Request body must be a JSON object"),
                &instance,
            ),
            Version::V2 => invalid(
                "model_attributes_type",
                &["body"],
                "Input should be a valid dictionary",
                parsed.clone(),
            ),
        };
    };
    if let Some(extra) = object.keys().find(|k| *k != "is_paused") {
        return match version {
            Version::V1 => error(
                version,
                400,
                "Bad Request",
                json!(format!(
                    "Additional properties are not allowed ('{extra}' was unexpected)"
                )),
                &instance,
            ),
            Version::V2 => invalid(
                "extra_forbidden",
                &["body", extra],
                "Extra inputs are not permitted",
                object[extra].clone(),
            ),
        };
    }
    let Some(paused) = object.get("is_paused").and_then(Value::as_bool) else {
        return match version {
            Version::V1 => error(
                version,
                400,
                "Bad Request",
                json!("'is_paused' is a required boolean"),
                &instance,
            ),
            Version::V2 => invalid(
                "missing",
                &["body", "is_paused"],
                "Field required",
                parsed.clone(),
            ),
        };
    };
    inner.paused.insert(dag_id.clone(), paused);
    crate::json(200, dag_json(&inner, index, &dag_id))
}

// ---- DAG runs -----------------------------------------------------------------------------

const V1_TRIGGER_FIELDS: [&str; 7] = [
    "dag_run_id",
    "logical_date",
    "execution_date",
    "data_interval_start",
    "data_interval_end",
    "conf",
    "note",
];

const V2_TRIGGER_FIELDS: [&str; 7] = [
    "dag_run_id",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "run_after",
    "conf",
    "note",
];

/// RFC 3339 date-time shape: `YYYY-MM-DDTHH:MM:SS` then fraction and offset or `Z`.
fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (text.ends_with('Z') || text[19..].contains(['+', '-']))
}

fn text_field(object: &Map<String, Value>, name: &str) -> Option<String> {
    object.get(name).and_then(Value::as_str).map(str::to_string)
}

async fn trigger(
    State(shared): State<Shared>,
    Path((ver, dag_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    let instance = format!("/api/{ver}/dags/{dag_id}/dagRuns");
    if let Err(answer) = authorize(&inner, &ver, &headers, &instance) {
        return *answer;
    }
    let version = inner.config.version;
    if find_dag(&inner, &dag_id).is_none() {
        return dag_not_found(version, &dag_id, &instance);
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(object) = parsed.as_object() else {
        return match version {
            Version::V1 => error(
                version,
                400,
                "Bad Request",
                json!("Request body must be a JSON object"),
                &instance,
            ),
            Version::V2 => invalid(
                "model_attributes_type",
                &["body"],
                "Input should be a valid dictionary or object to extract fields from",
                parsed.clone(),
            ),
        };
    };
    let allowed: &[&str] = match version {
        Version::V1 => &V1_TRIGGER_FIELDS,
        Version::V2 => &V2_TRIGGER_FIELDS,
    };
    if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return match version {
            Version::V1 => error(
                version,
                400,
                "Bad Request",
                json!(format!(
                    "Additional properties are not allowed ('{extra}' was unexpected)"
                )),
                &instance,
            ),
            Version::V2 => invalid(
                "extra_forbidden",
                &["body", extra],
                "Extra inputs are not permitted",
                object[extra].clone(),
            ),
        };
    }
    if version == Version::V2
        && inner.config.require_logical_date
        && !object.contains_key("logical_date")
    {
        return invalid(
            "missing",
            &["body", "logical_date"],
            "Field required",
            parsed.clone(),
        );
    }
    if version == Version::V1
        && object.contains_key("logical_date")
        && object.contains_key("execution_date")
    {
        return error(
            version,
            400,
            "Bad Request",
            json!("logical_date conflicts with execution_date"),
            &instance,
        );
    }
    let conf = object.get("conf").cloned().unwrap_or(json!({}));
    if !(conf.is_object() || conf.is_null()) {
        return match version {
            Version::V1 => error(
                version,
                400,
                "Bad Request",
                json!(format!("{conf} is not of type 'object'")),
                &instance,
            ),
            Version::V2 => invalid(
                "dict_type",
                &["body", "conf"],
                "Input should be a valid dictionary",
                conf,
            ),
        };
    }
    for field in [
        "dag_run_id",
        "logical_date",
        "execution_date",
        "data_interval_start",
        "data_interval_end",
        "run_after",
        "note",
    ] {
        if let Some(v) = object.get(field)
            && !(v.is_string() || v.is_null())
        {
            return match version {
                Version::V1 => error(
                    version,
                    400,
                    "Bad Request",
                    json!(format!("{v} is not of type 'string'")),
                    &instance,
                ),
                Version::V2 => invalid(
                    "string_type",
                    &["body", field],
                    "Input should be a valid string",
                    v.clone(),
                ),
            };
        }
    }
    for field in [
        "logical_date",
        "execution_date",
        "data_interval_start",
        "data_interval_end",
        "run_after",
    ] {
        if let Some(text) = object.get(field).and_then(Value::as_str)
            && !is_date_time(text)
        {
            return match version {
                Version::V1 => error(
                    version,
                    400,
                    "Bad Request",
                    json!(format!("'{text}' is not a 'date-time'")),
                    &instance,
                ),
                Version::V2 => invalid(
                    "datetime_from_date_parsing",
                    &["body", field],
                    "Input should be a valid datetime or date, invalid character in year",
                    json!(text),
                ),
            };
        }
    }
    let logical_date = text_field(object, "logical_date")
        .or_else(|| text_field(object, "execution_date"))
        .or_else(|| (version == Version::V1).then(|| "2024-05-01T10:00:00+00:00".to_string()));
    let run_id = text_field(object, "dag_run_id").unwrap_or_else(|| {
        format!(
            "manual__{}",
            logical_date
                .as_deref()
                .unwrap_or("2024-05-01T10:00:00+00:00")
        )
    });
    let key = (dag_id.clone(), run_id.clone());
    if inner.runs.contains_key(&key) {
        return match version {
            Version::V1 => error(
                version,
                409,
                "Conflict",
                json!(format!(
                    "DAGRun with DAG ID: '{dag_id}' and DAGRun ID: '{run_id}' already exists"
                )),
                &instance,
            ),
            Version::V2 => crate::json(
                409,
                json!({"detail": {
                    "reason": "Unique constraint violation",
                    "statement": "INSERT INTO dag_run (dag_id, queued_at, logical_date, ..., run_id, ...) VALUES (...)",
                    "orig_error": "duplicate key value violates unique constraint \"dag_run_dag_id_run_id_key\"",
                }}),
            ),
        };
    }
    let run = Run {
        conf: if conf.is_null() { json!({}) } else { conf },
        logical_date,
        data_interval_start: text_field(object, "data_interval_start"),
        data_interval_end: text_field(object, "data_interval_end"),
        run_after: text_field(object, "run_after"),
        note: text_field(object, "note"),
        run_type: "manual",
        polls: 0,
        done: false,
    };
    let answer = run_json(&inner, &dag_id, &run_id, &run);
    inner.runs.insert(key, run);
    if inner.lost.take() {
        return crate::text(503, "upstream request timeout");
    }
    crate::json(200, answer)
}

fn run_state<'a>(inner: &'a Inner, run: &Run) -> &'a str {
    if run.done {
        return "success";
    }
    if run.polls == 0 {
        return "queued";
    }
    if run.polls >= inner.config.polls_to_finish {
        inner.config.final_state.as_str()
    } else {
        "running"
    }
}

fn run_json(inner: &Inner, dag_id: &str, run_id: &str, run: &Run) -> Value {
    let state = run_state(inner, run);
    let started = state != "queued";
    let finished = matches!(state, "success" | "failed");
    let start_date = started.then_some("2024-05-01T10:00:05+00:00");
    let end_date = finished.then_some("2024-05-01T10:01:05+00:00");
    match inner.config.version {
        Version::V1 => json!({
            "dag_run_id": run_id,
            "dag_id": dag_id,
            "logical_date": run.logical_date,
            "execution_date": run.logical_date,
            "start_date": start_date,
            "end_date": end_date,
            "data_interval_start": run.data_interval_start.as_ref().or(run.logical_date.as_ref()),
            "data_interval_end": run.data_interval_end.as_ref().or(run.logical_date.as_ref()),
            "last_scheduling_decision": start_date,
            "run_type": run.run_type,
            "state": state,
            "external_trigger": run.run_type == "manual",
            "conf": run.conf,
            "note": run.note,
        }),
        Version::V2 => json!({
            "dag_run_id": run_id,
            "dag_id": dag_id,
            "logical_date": run.logical_date,
            "queued_at": "2024-05-01T10:00:00+00:00",
            "start_date": start_date,
            "end_date": end_date,
            "duration": finished.then_some(60.0),
            "data_interval_start": run.data_interval_start,
            "data_interval_end": run.data_interval_end,
            "run_after": run.run_after.clone().unwrap_or_else(|| "2024-05-01T10:00:00+00:00".into()),
            "last_scheduling_decision": start_date,
            "run_type": run.run_type,
            "state": state,
            "triggered_by": if run.run_type == "manual" { "rest_api" } else { "timetable" },
            "triggering_user_name": inner.config.username,
            "conf": run.conf,
            "note": run.note,
            "dag_versions": [],
            "bundle_version": null,
            "dag_display_name": dag_id.replace('_', " "),
        }),
    }
}

fn run_not_found(version: Version, dag_id: &str, run_id: &str, instance: &str) -> Response {
    error(
        version,
        404,
        "DAGRun not found",
        json!(format!(
            "DAGRun with DAG ID: '{dag_id}' and DagRun ID: '{run_id}' not found"
        )),
        instance,
    )
}

async fn get_run(
    State(shared): State<Shared>,
    Path((ver, dag_id, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = lock(&shared);
    let instance = format!("/api/{ver}/dags/{dag_id}/dagRuns/{run_id}");
    if let Err(answer) = authorize(&inner, &ver, &headers, &instance) {
        return *answer;
    }
    let version = inner.config.version;
    let key = (dag_id.clone(), run_id.clone());
    let Some(run) = inner.runs.get_mut(&key) else {
        return run_not_found(version, &dag_id, &run_id, &instance);
    };
    run.polls = run.polls.saturating_add(1);
    let run = run.clone();
    crate::json(200, run_json(&inner, &dag_id, &run_id, &run))
}

fn task_states(run_state: &str, count: usize) -> Vec<Option<&'static str>> {
    (0..count)
        .map(|i| match run_state {
            "success" => Some("success"),
            "failed" => Some(match i {
                0 => "success",
                1 => "failed",
                _ => "upstream_failed",
            }),
            "running" => Some(if i == 0 { "running" } else { "scheduled" }),
            _ => None,
        })
        .collect()
}

async fn task_instances(
    State(shared): State<Shared>,
    Path((ver, dag_id, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let inner = lock(&shared);
    let instance = format!("/api/{ver}/dags/{dag_id}/dagRuns/{run_id}/taskInstances");
    if let Err(answer) = authorize(&inner, &ver, &headers, &instance) {
        return *answer;
    }
    let version = inner.config.version;
    let Some(run) = inner.runs.get(&(dag_id.clone(), run_id.clone())) else {
        return run_not_found(version, &dag_id, &run_id, &instance);
    };
    let pairs = query_pairs(&query);
    let (limit, offset) = match page(&inner, &pairs, &instance) {
        Ok(p) => p,
        Err(answer) => return *answer,
    };
    let state = run_state(&inner, run);
    let tasks = task_ids(inner.config.task_count);
    let states = task_states(state, tasks.len());
    let all: Vec<Value> = tasks
        .iter()
        .zip(states)
        .enumerate()
        .map(|(i, (task_id, state))| {
            let done = matches!(state, Some("success" | "failed"));
            let started = done || state == Some("running");
            let mut ti = json!({
                "task_id": task_id,
                "dag_id": dag_id,
                "dag_run_id": run_id,
                "map_index": -1,
                "try_number": if started { 1 } else { 0 },
                "max_tries": 1,
                "state": state,
                "start_date": started.then(|| format!("2024-05-01T10:0{i}:10+00:00")),
                "end_date": done.then(|| format!("2024-05-01T10:0{i}:40+00:00")),
                "duration": done.then_some(30.5),
                "hostname": if started { "worker-1" } else { "" },
                "unixname": "airflow",
                "pool": "default_pool",
                "pool_slots": 1,
                "queue": "default",
                "priority_weight": 3 - i.min(2),
                "executor_config": "{}",
                "note": null,
            });
            match version {
                Version::V1 => {
                    ti["execution_date"] = json!(run.logical_date);
                    ti["operator"] = json!("PythonOperator");
                }
                Version::V2 => {
                    ti["id"] = json!(format!("0190a8b2-0000-7000-8000-00000000000{i}"));
                    ti["logical_date"] = json!(run.logical_date);
                    ti["run_after"] = json!("2024-05-01T10:00:00+00:00");
                    ti["operator"] = json!("PythonOperator");
                    ti["operator_name"] = json!("@task");
                    ti["task_display_name"] = json!(task_id);
                    ti["dag_display_name"] = json!(dag_id.replace('_', " "));
                    ti["rendered_fields"] = json!({});
                    ti["dag_version"] = Value::Null;
                }
            }
            ti
        })
        .collect();
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    crate::json(200, json!({"task_instances": page, "total_entries": total}))
}
