//! The fake of Power Automate's "When an HTTP request is received" trigger (the Logic Apps
//! request trigger), of an approval flow pair built on it, and of the Microsoft Entra token
//! endpoint for tenant-only flows.
//!
//! Written from learn.microsoft.com/azure/connectors/connectors-native-reqres and the
//! published URL shapes, not from a client:
//!
//! - **Trigger URLs.** `POST /workflows/{id}/triggers/manual/paths/invoke` (legacy,
//!   `api-version=2016-06-01` or `2016-10-01`) and
//!   `POST /powerautomate/automations/direct/workflows/{id}/triggers/manual/paths/invoke`
//!   (new style, `api-version=1`). A missing or unknown `api-version` is 400.
//! - **Auth.** Either the SAS signature in the query (`sp=/triggers/manual/run`, `sv=1.0`,
//!   `sig=`[`Config::sig`], `fake-sig` by default) or `Authorization: Bearer` with a token
//!   from the fake's Entra endpoint — never both (401). No credential, a wrong signature or
//!   an unknown token is 401.
//! - **Body.** `Content-Type: application/json` with a JSON body; anything else is 415 (the
//!   service would only skip schema parsing; the fake is stricter so a wrong client fails).
//! - **Answers.** A flow without a Response action answers **202 Accepted** with an empty
//!   body and `x-ms-workflow-run-id`; a flow with one answers its status and body
//!   ([`Behavior`]; whether a Response action can answer other than as configured is
//!   unconfirmed). Unknown flows are 404.
//! - **Approvals** ([`FLOW_APPROVAL`]): the body must hold `title` and `assigned_to`
//!   (text; else 400 `TriggerInputSchemaMismatch`). The flow answers 202 with the approval's
//!   status URL in `Location` and/or the body `{approval_id, status_url, status:
//!   "Pending"}` ([`Config::status_link`]). The status URL is the status flow's trigger
//!   with the relative path `approvals/{id}` (`GET`, same signature): it answers
//!   `{"approval_id", "status": "Pending"}` (or 202, [`Config::pending_202`]) for
//!   [`Config::approval_polls`] polls, then `{"status": "Approved" | "Rejected", "outcome",
//!   "comments", "responder", "completed_at"}` ([`Config::approval_outcome`]).
//! - **Entra.** `POST /{tenant}/oauth2/v2.0/token` (client credentials; `client_id`,
//!   `client_secret` in the form or Basic; `scope` must be
//!   `https://service.flow.microsoft.com//.default`) → `{token_type, expires_in,
//!   access_token}`; a wrong secret is 401 `invalid_client`, a wrong scope 400
//!   `invalid_scope`.
//! - **Errors** are `{"error": {"code", "message"}}` (the codes are unconfirmed). A
//!   throttled trigger ([`Config::rate_limited`]) answers 429 with `Retry-After`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{Fake, Journal, Times, serve};

/// A flow without a Response action: 202.
pub const FLOW_ACCEPTED: &str = "flow-accepted";
/// A flow whose Response action answers 200 `{"received": <the request body>}`.
pub const FLOW_RESPONSE: &str = "flow-response";
/// The approval request flow.
pub const FLOW_APPROVAL: &str = "flow-approval";
/// The approval status flow (`GET …/paths/invoke/approvals/{id}`).
pub const FLOW_APPROVAL_STATUS: &str = "flow-approval-status";
/// The SAS signature of every flow URL, by default.
pub const SIG: &str = "fake-sig";
/// The Entra tenant.
pub const TENANT: &str = "fake-tenant";
/// The Entra application (client) id.
pub const CLIENT_ID: &str = "fake-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "fake-secret";
/// The scope a Power Automate token is asked for.
pub const SCOPE: &str = "https://service.flow.microsoft.com//.default";

/// What a flow answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// No Response action: 202, empty body.
    Accepted,
    /// A Response action with this status and body (`None`: `{"received": <request>}`).
    Respond {
        /// The status.
        status: u16,
        /// The body.
        body: Option<Value>,
    },
    /// The approval request flow.
    Approval,
}

/// Where the approval flow puts the status URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusLink {
    /// In the `Location` header and the body.
    Both,
    /// Only in the `Location` header (the body is empty).
    Location,
    /// Only in the body's `status_url`.
    Body,
}

/// What the fake does; the default has [`FLOW_ACCEPTED`], [`FLOW_RESPONSE`] and
/// [`FLOW_APPROVAL`], signed with [`SIG`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The SAS signature flow URLs carry.
    pub sig: String,
    /// The flows by id.
    pub flows: Vec<(String, Behavior)>,
    /// Where the approval flow puts the status URL.
    pub status_link: StatusLink,
    /// Status polls answered "Pending" before the outcome.
    pub approval_polls: u32,
    /// The outcome: `Approved` or `Rejected`.
    pub approval_outcome: String,
    /// Answer a pending status with 202 and no body instead of 200 `{"status": "Pending"}`.
    pub pending_202: bool,
    /// Trigger requests answered 429 before serving.
    pub rate_limited: u32,
    /// The `Retry-After` of those 429s, in seconds.
    pub retry_after_secs: u64,
    /// The Entra token lifetime, in seconds.
    pub token_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sig: SIG.into(),
            flows: vec![
                (FLOW_ACCEPTED.into(), Behavior::Accepted),
                (
                    FLOW_RESPONSE.into(),
                    Behavior::Respond {
                        status: 200,
                        body: None,
                    },
                ),
                (FLOW_APPROVAL.into(), Behavior::Approval),
            ],
            status_link: StatusLink::Both,
            approval_polls: 2,
            approval_outcome: "Approved".into(),
            pending_202: false,
            rate_limited: 0,
            retry_after_secs: 1,
            token_ttl_secs: 3599,
        }
    }
}

#[derive(Debug)]
struct Approval {
    polls: u32,
    request: Value,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    seq: u64,
    tokens: HashMap<String, std::time::Instant>,
    approvals: BTreeMap<String, Approval>,
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
        tokens: HashMap::new(),
        approvals: BTreeMap::new(),
        rate,
    }));
    Router::new()
        .route(
            "/workflows/{id}/triggers/manual/paths/invoke",
            post(invoke_legacy),
        )
        .route(
            "/powerautomate/automations/direct/workflows/{id}/triggers/manual/paths/invoke",
            post(invoke_direct),
        )
        .route(
            "/workflows/{id}/triggers/manual/paths/invoke/approvals/{approval}",
            get(approval_status),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .with_state(shared)
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

fn flow_error(status: u16, code: &str, message: &str) -> Response {
    crate::json(status, json!({"error": {"code": code, "message": message}}))
}

fn pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Checks `api-version` and the one credential; `Err` is the answer to give.
fn check_call(
    inner: &Inner,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    versions: &[&str],
) -> Result<(), Box<Response>> {
    match param(pairs, "api-version") {
        None => {
            return Err(Box::new(flow_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )));
        }
        Some(v) if !versions.contains(&v) => {
            return Err(Box::new(flow_error(
                400,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    versions.join("', '")
                ),
            )));
        }
        Some(_) => {}
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let sig = param(pairs, "sig");
    match (sig, bearer) {
        (Some(_), Some(_)) => Err(Box::new(flow_error(
            401,
            "MisMatchingOAuthClaims",
            "The request has both a SAS signature and an Authorization header; only one authorization scheme may be used.",
        ))),
        (None, None) => Err(Box::new(flow_error(
            401,
            "DirectApiAuthorizationRequired",
            "The request must be authenticated only by Shared Access scheme or by an OAuth token.",
        ))),
        (Some(sig), None) => {
            let scoped = param(pairs, "sp") == Some("/triggers/manual/run")
                && param(pairs, "sv") == Some("1.0");
            if scoped && sig == inner.config.sig {
                Ok(())
            } else {
                Err(Box::new(flow_error(
                    401,
                    "DirectApiInvalidAuthorizationSignature",
                    "The provided callback URL is not valid: the signature or its scope does not match.",
                )))
            }
        }
        (None, Some(token)) => match inner.tokens.get(token) {
            Some(expires) if std::time::Instant::now() < *expires => Ok(()),
            _ => Err(Box::new(flow_error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid or has expired.",
            ))),
        },
    }
}

async fn invoke_legacy(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    invoke(
        &shared,
        &id,
        &query,
        &headers,
        &body,
        &["2016-06-01", "2016-10-01"],
    )
}

async fn invoke_direct(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    invoke(&shared, &id, &query, &headers, &body, &["1"])
}

fn invoke(
    shared: &Shared,
    id: &str,
    query: &Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
    versions: &[&str],
) -> Response {
    let mut inner = lock(shared);
    let pairs = pairs(query);
    if let Err(answer) = check_call(&inner, &pairs, headers, versions) {
        return *answer;
    }
    let Some(behavior) = inner
        .config
        .flows
        .iter()
        .find(|(f, _)| f == id)
        .map(|(_, b)| b.clone())
    else {
        return flow_error(
            404,
            "WorkflowNotFound",
            &format!("The workflow '{id}' could not be found."),
        );
    };
    if inner.rate.take() {
        let mut response = flow_error(
            429,
            "WorkflowRequestsThrottled",
            "Number of requests for this workflow exceeded the limit; retry after the time in the Retry-After header.",
        );
        if let Ok(v) = HeaderValue::from_str(&inner.config.retry_after_secs.to_string()) {
            response.headers_mut().insert("retry-after", v);
        }
        return response;
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let request: Option<Value> = serde_json::from_slice(body).ok();
    let Some(request) = request.filter(|_| is_json) else {
        return flow_error(
            415,
            "UnsupportedMediaType",
            "The request trigger expects a JSON body sent with 'Content-Type: application/json'.",
        );
    };
    inner.seq += 1;
    let run_id = format!("08584{:016}CU00", inner.seq);
    let mut response = match behavior {
        Behavior::Accepted => {
            let mut r = crate::text(202, "");
            r.headers_mut().remove("content-type");
            r
        }
        Behavior::Respond { status, body } => {
            crate::json(status, body.unwrap_or_else(|| json!({"received": request})))
        }
        Behavior::Approval => {
            for field in ["title", "assigned_to"] {
                if !request.get(field).is_some_and(Value::is_string) {
                    return flow_error(
                        400,
                        "TriggerInputSchemaMismatch",
                        &format!(
                            "The input body for trigger 'manual' of type 'Request' did not match its schema definition. Error details: 'Required properties are missing from object: {field}.'"
                        ),
                    );
                }
            }
            let approval_id = format!("apr-{:04}", inner.seq);
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("127.0.0.1");
            let status_url = format!(
                "http://{host}/workflows/{FLOW_APPROVAL_STATUS}/triggers/manual/paths/invoke/approvals/{approval_id}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={}",
                inner.config.sig
            );
            inner
                .approvals
                .insert(approval_id.clone(), Approval { polls: 0, request });
            let link = inner.config.status_link;
            let mut r = if link == StatusLink::Location {
                let mut r = crate::text(202, "");
                r.headers_mut().remove("content-type");
                r
            } else {
                crate::json(
                    202,
                    json!({"approval_id": approval_id, "status_url": status_url, "status": "Pending"}),
                )
            };
            if link != StatusLink::Body
                && let Ok(v) = HeaderValue::from_str(&status_url)
            {
                r.headers_mut().insert("location", v);
            }
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&run_id) {
        response.headers_mut().insert("x-ms-workflow-run-id", v);
    }
    response
}

async fn approval_status(
    State(shared): State<Shared>,
    Path((id, approval_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut inner = lock(&shared);
    let pairs = pairs(&query);
    if let Err(answer) = check_call(&inner, &pairs, &headers, &["2016-06-01", "2016-10-01"]) {
        return *answer;
    }
    if id != FLOW_APPROVAL_STATUS {
        return flow_error(
            404,
            "WorkflowNotFound",
            &format!("The workflow '{id}' could not be found."),
        );
    }
    let polls_before = inner.config.approval_polls;
    let pending_202 = inner.config.pending_202;
    let outcome = inner.config.approval_outcome.clone();
    let Some(approval) = inner.approvals.get_mut(&approval_id) else {
        return crate::json(
            404,
            json!({"approval_id": approval_id, "error": "no such approval"}),
        );
    };
    approval.polls += 1;
    if approval.polls <= polls_before {
        if pending_202 {
            let mut r = crate::text(202, "");
            r.headers_mut().remove("content-type");
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return r;
        }
        return crate::json(
            200,
            json!({"approval_id": approval_id, "status": "Pending"}),
        );
    }
    let approved = outcome == "Approved";
    crate::json(
        200,
        json!({
            "approval_id": approval_id,
            "status": outcome,
            "outcome": if approved { "Approve" } else { "Reject" },
            "comments": if approved { "Looks good" } else { "Not this quarter" },
            "responder": approval.request.get("assigned_to").cloned().unwrap_or(Value::Null),
            "completed_at": "2024-05-01T12:00:00Z",
        }),
    )
}

async fn token(
    State(shared): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    if tenant != TENANT {
        return crate::json(
            400,
            json!({"error": "invalid_tenant", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")}),
        );
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (client_id, secret) = match &basic {
        Some(pair) => {
            let (id, secret) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
            (id.to_string(), secret.to_string())
        }
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return crate::json(
            400,
            json!({"error": "unsupported_grant_type", "error_description": "AADSTS70003: The app requested an unsupported grant type."}),
        );
    }
    if client_id != CLIENT_ID || secret != CLIENT_SECRET {
        return crate::json(
            401,
            json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
        );
    }
    if form.get("scope").map(String::as_str) != Some(SCOPE) {
        return crate::json(
            400,
            json!({"error": "invalid_scope", "error_description": "AADSTS1002012: The provided value for scope is not valid."}),
        );
    }
    inner.seq += 1;
    let access_token = format!("fake-entra-token-{}", inner.seq);
    let ttl = inner.config.token_ttl_secs;
    inner.tokens.insert(
        access_token.clone(),
        std::time::Instant::now() + std::time::Duration::from_secs(ttl),
    );
    crate::json(
        200,
        json!({"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": access_token}),
    )
}
