//! The fake of Zapier's inbound webhooks: "Catch Hook" URLs that start Zaps, and the
//! per-Zap target URLs a REST Hook trigger subscribes with.
//!
//! Written from zapier.com/help/webhooks, help.zapier.com article 8496288690317 and
//! docs.zapier.com (hook triggers), not from a client:
//!
//! - **Catch hooks.** `POST`, `PUT` or `GET` on `/hooks/catch/{account}/{hook}/` (the URL
//!   is the credential; [`ACCOUNT`] / [`HOOK`] by default, [`Config::hooks`] for more). Zapier
//!   always answers **200** with a debugging payload `{"attempt", "id", "request_id",
//!   "status": "success"}` (the field names are unconfirmed; [`Config::answer`] switches to
//!   an empty body), and the `/silent/` suffix always answers with an empty body. Any body
//!   (JSON, form, XML) is accepted. Other methods answer 405. A hook that does not exist
//!   answers 404 (unconfirmed). Zapier never redirects.
//! - **REST Hook targets.** `POST /hooks/standard/{account}/{id}/` with a JSON body answers
//!   200 `{"status": "success", ...}`; a target whose Zap is off ([`Config::gone_targets`],
//!   or one that received a `DELETE`, which pauses the Zap) answers **410 Gone**, which tells
//!   the sender to drop the subscription. A body that is not JSON answers 400.
//! - **Rate limit.** [`Config::rate_limited`] answers that many catch-hook requests with 429
//!   and `Retry-After` first (Zapier's hook throttling; its body is unconfirmed).
//!
//! Every request, body and headers included (`X-Recurse-Parse` among them), is in the
//! journal.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::routing::{any, post};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{Fake, Journal, Times, serve};

/// The account id of the default catch hook.
pub const ACCOUNT: &str = "123456";
/// The hook id of the default catch hook: `/hooks/catch/123456/abcdef/`.
pub const HOOK: &str = "abcdef";

/// What a (non-silent) catch hook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with `{"attempt", "id", "request_id", "status": "success"}`.
    Debug,
    /// 200 with an empty body (Silent Mode).
    Empty,
}

/// What the fake does; the default has one catch hook, [`ACCOUNT`] / [`HOOK`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Catch hooks that exist, as `(account, hook)`.
    pub hooks: Vec<(String, String)>,
    /// What a catch hook without `/silent/` answers.
    pub answer: Answer,
    /// REST Hook target ids (`/hooks/standard/{account}/{id}/`) whose Zap is off: 410.
    pub gone_targets: Vec<String>,
    /// Catch-hook requests answered 429 before serving.
    pub rate_limited: u32,
    /// The `Retry-After` of those 429s, in seconds.
    pub retry_after_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hooks: vec![(ACCOUNT.into(), HOOK.into())],
            answer: Answer::Debug,
            gone_targets: Vec::new(),
            rate_limited: 0,
            retry_after_secs: 1,
        }
    }
}

#[derive(Debug)]
struct Inner {
    config: Config,
    seq: u64,
    /// Targets paused by a `DELETE`.
    paused: BTreeSet<String>,
    rate: Times,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fake's routes over `config`.
pub fn router(config: Config, _journal: Journal) -> Router {
    let rate = Times::new(config.rate_limited);
    let shared: Shared = Arc::new(Mutex::new(Inner {
        config,
        seq: 0,
        paused: BTreeSet::new(),
        rate,
    }));
    Router::new()
        .route("/hooks/catch/{account}/{hook}", any(catch))
        .route("/hooks/catch/{account}/{hook}/", any(catch))
        .route("/hooks/catch/{account}/{hook}/silent", any(catch_silent))
        .route("/hooks/catch/{account}/{hook}/silent/", any(catch_silent))
        .route(
            "/hooks/standard/{account}/{id}/",
            post(target).delete(pause_target),
        )
        .route(
            "/hooks/standard/{account}/{id}",
            post(target).delete(pause_target),
        )
        .with_state(shared)
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

/// A uuid-shaped id, deterministic per fake.
fn uuid(n: u64, kind: u8) -> String {
    format!("0190a8b2-{kind:04x}-7000-8000-{n:012x}")
}

async fn catch(
    State(shared): State<Shared>,
    method: Method,
    Path((account, hook)): Path<(String, String)>,
) -> Response {
    answer(&shared, &method, &account, &hook, false)
}

async fn catch_silent(
    State(shared): State<Shared>,
    method: Method,
    Path((account, hook)): Path<(String, String)>,
) -> Response {
    answer(&shared, &method, &account, &hook, true)
}

fn answer(shared: &Shared, method: &Method, account: &str, hook: &str, silent: bool) -> Response {
    let mut inner = lock(shared);
    if !matches!(*method, Method::POST | Method::PUT | Method::GET) {
        let mut response = crate::json(
            405,
            json!({"status": "error", "message": "Method not allowed; use POST, PUT or GET"}),
        );
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static("GET, POST, PUT"));
        return response;
    }
    let known = inner
        .config
        .hooks
        .iter()
        .any(|(a, h)| a == account && h == hook);
    if !known {
        return crate::json(
            404,
            json!({"status": "error", "message": "No hook found at this URL"}),
        );
    }
    if inner.rate.take() {
        let mut response = crate::json(
            429,
            json!({"status": "throttled", "message": "Too many requests to this hook"}),
        );
        if let Ok(v) = HeaderValue::from_str(&inner.config.retry_after_secs.to_string()) {
            response.headers_mut().insert("retry-after", v);
        }
        return response;
    }
    inner.seq += 1;
    let n = inner.seq;
    if silent || inner.config.answer == Answer::Empty {
        return crate::text(200, "");
    }
    crate::json(
        200,
        json!({
            "attempt": uuid(n, 1),
            "id": uuid(n, 2),
            "request_id": uuid(n, 3),
            "status": "success",
        }),
    )
}

async fn target(
    State(shared): State<Shared>,
    Path((_account, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    if inner.config.gone_targets.contains(&id) || inner.paused.contains(&id) {
        return crate::json(
            410,
            json!({"status": "error", "message": "This hook is no longer active; please unsubscribe."}),
        );
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json || serde_json::from_slice::<Value>(&body).is_err() {
        return crate::json(
            400,
            json!({"status": "error", "message": "REST Hook payloads must be JSON"}),
        );
    }
    inner.seq += 1;
    let n = inner.seq;
    crate::json(
        200,
        json!({
            "attempt": uuid(n, 1),
            "id": uuid(n, 2),
            "request_id": uuid(n, 3),
            "status": "success",
        }),
    )
}

async fn pause_target(
    State(shared): State<Shared>,
    Path((_account, id)): Path<(String, String)>,
) -> Response {
    lock(&shared).paused.insert(id);
    crate::json(200, json!({"status": "success"}))
}
