//! The fake of the Slack Web API (`chat.postMessage`, `conversations.history`,
//! `auth.test`) and of incoming webhooks (API facts §11).
//!
//! ## Credentials of the default [`Config`]
//!
//! - Bot token `xoxb-fake-token` with scope `chat:write`, sent as
//!   `Authorization: Bearer xoxb-fake-token` (or, form-encoded, as the `token` field).
//! - The Web API is under `/api/` (`base_url` = `{fake}/api/`).
//! - Incoming webhook at `/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX`, posting
//!   to `#data-pipeline`.
//! - Channels: `#data-pipeline` (`C0123456789`), `#general` (`C0000000001`),
//!   `#old-alerts` (`C0000000002`, archived) and `#private-ops` (`C0000000003`, the bot
//!   is not a member). A channel is given by id, by name, or by `#name`.
//!
//! ## What it checks and answers
//!
//! `chat.postMessage` takes JSON (`application/json`; without `; charset=utf-8` the answer
//! carries the `missing_charset` warning, as Slack's does) or a form. Errors come as HTTP
//! 200 `{"ok": false, "error": ...}`: `not_authed` (no token), `invalid_auth` (a wrong
//! one), `missing_scope` with `needed` and `provided`, `channel_not_found`,
//! `is_archived`, `not_in_channel`, `no_text` (none of `text`, `blocks`, `attachments`),
//! `invalid_blocks` (blocks not a list of objects with a `type`), `msg_too_long` (text
//! over 40,000 characters), `invalid_json`. Success is
//! `{"ok": true, "channel", "ts", "message": {...}}`, with [`Config::warning`] as
//! `warning` and in `response_metadata.warnings` when set. The first
//! [`Config::rate_limited`] calls are answered **HTTP 429** with `Retry-After`
//! ([`Config::retry_after`]) and `{"ok": false, "error": "ratelimited"}`.
//!
//! Posted messages are kept per channel and listed, newest first, by
//! `conversations.history?channel=` — so a test in another process can see what was
//! posted — and every request is in the journal.
//!
//! The webhook takes JSON with `text` or `blocks` and answers `200 ok` as plain text;
//! errors are plain-text bodies: 400 `invalid_payload`, 404 `no_service` (an unknown
//! webhook path), and [`Config::webhook_error`] to answer any documented one (403
//! `action_prohibited`, 404 `channel_not_found`, 410 `channel_is_archived`, 500
//! `rollup_error`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{Fake, Journal, Times, serve};

/// The bot token the default config accepts.
pub const TOKEN: &str = "xoxb-fake-token";
/// The default webhook's path.
pub const WEBHOOK_PATH: &str = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
/// The id of `#data-pipeline`.
pub const DATA_PIPELINE: &str = "C0123456789";

/// A channel of the fake workspace.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Its id (`C0123456789`).
    pub id: String,
    /// Its name, without `#`.
    pub name: String,
    /// Archived channels answer `is_archived`.
    pub archived: bool,
    /// Whether the bot is a member; if not, posting answers `not_in_channel`.
    pub member: bool,
}

impl Channel {
    fn new(id: &str, name: &str) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            archived: false,
            member: true,
        }
    }
}

/// What the fake accepts and how it answers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bot token.
    pub token: String,
    /// The token's scopes (`chat:write` is needed to post).
    pub scopes: Vec<String>,
    /// The workspace's channels.
    pub channels: Vec<Channel>,
    /// Answer the first N `chat.postMessage` calls with HTTP 429.
    pub rate_limited: u32,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after: u64,
    /// A warning every successful post carries (`superfluous_charset`...).
    pub warning: Option<String>,
    /// The incoming webhook's path.
    pub webhook_path: String,
    /// The channel the webhook posts to.
    pub webhook_channel: String,
    /// Answer every webhook post with this status and plain-text body.
    pub webhook_error: Option<(u16, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            token: TOKEN.into(),
            scopes: vec!["chat:write".into()],
            channels: vec![
                Channel::new(DATA_PIPELINE, "data-pipeline"),
                Channel::new("C0000000001", "general"),
                Channel {
                    archived: true,
                    ..Channel::new("C0000000002", "old-alerts")
                },
                Channel {
                    member: false,
                    ..Channel::new("C0000000003", "private-ops")
                },
            ],
            rate_limited: 0,
            retry_after: 1,
            warning: None,
            webhook_path: WEBHOOK_PATH.into(),
            webhook_channel: DATA_PIPELINE.into(),
            webhook_error: None,
        }
    }
}

/// Starts the fake on a free loopback port.
pub async fn start(config: Config) -> std::io::Result<Fake> {
    let journal = Journal::new();
    serve(router(config, journal.clone()), journal).await
}

/// The fake's routes, with its state inside.
pub fn router(config: Config, _journal: Journal) -> Router {
    let workspace = Workspace {
        limited: Times::new(config.rate_limited),
        config,
        messages: BTreeMap::new(),
        clock: 0,
    };
    Router::new()
        .fallback(handle)
        .with_state(Shared(Arc::new(Mutex::new(workspace))))
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Workspace>>);

struct Workspace {
    config: Config,
    limited: Times,
    /// Messages by channel id, oldest first.
    messages: BTreeMap<String, Vec<Value>>,
    clock: u64,
}

fn failure(error: &str) -> Response {
    crate::json(200, json!({"ok": false, "error": error}))
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, crate::MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return failure("request_too_large"),
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let mut ws = shared.0.lock().unwrap_or_else(|p| p.into_inner());
    if path.starts_with("/services/") {
        return ws.webhook(&parts.method, &path, &parts.headers, &body);
    }
    match path.strip_prefix("/api/") {
        Some("chat.postMessage") if parts.method == Method::POST => {
            ws.post_message(&parts.headers, &body)
        }
        Some("conversations.history") => ws.history(&parts.headers, &query, &body),
        Some("auth.test") => {
            match ws.authenticate(&parts.headers, &args(&parts.headers, &body, &query)) {
                Ok(()) => crate::json(
                    200,
                    json!({"ok": true, "url": "https://fake.slack.com/", "team": "Fake", "user": "kernelize-bot", "team_id": "T00000000", "user_id": "U0FAKEBOT", "bot_id": "B0FAKEBOT"}),
                ),
                Err(r) => *r,
            }
        }
        Some(_) => failure("unknown_method"),
        None => crate::text(404, "not found"),
    }
}

/// The call's arguments: the JSON body, or form fields and the query string.
fn args(headers: &HeaderMap, body: &Bytes, query: &str) -> Map<String, Value> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut map = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        map.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
            map.extend(m);
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    map
}

impl Workspace {
    fn authenticate(
        &self,
        headers: &HeaderMap,
        args: &Map<String, Value>,
    ) -> std::result::Result<(), Box<Response>> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
            .or_else(|| args.get("token").and_then(Value::as_str).map(String::from));
        match bearer {
            None => Err(Box::new(failure("not_authed"))),
            Some(t) if t != self.config.token => Err(Box::new(failure("invalid_auth"))),
            Some(_) => Ok(()),
        }
    }

    fn channel(&self, given: &str) -> Option<&Channel> {
        let name = given.strip_prefix('#').unwrap_or(given);
        self.config
            .channels
            .iter()
            .find(|c| c.id == given || c.name == name)
    }

    fn post_message(&mut self, headers: &HeaderMap, body: &Bytes) -> Response {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_json = content_type.starts_with("application/json");
        let mut warnings: Vec<String> = self.config.warning.iter().cloned().collect();
        if is_json && !content_type.contains("charset=utf-8") {
            warnings.push("missing_charset".into());
        }
        if is_json && serde_json::from_slice::<Map<String, Value>>(body).is_err() {
            return failure("invalid_json");
        }
        let args = args(headers, body, "");
        if let Err(response) = self.authenticate(headers, &args) {
            return *response;
        }
        if !self.config.scopes.iter().any(|s| s == "chat:write") {
            return crate::json(
                200,
                json!({"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": self.config.scopes.join(",")}),
            );
        }
        if self.limited.take() {
            let mut response = crate::json(429, json!({"ok": false, "error": "ratelimited"}));
            if let Ok(value) = self.config.retry_after.to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
            return response;
        }
        let Some(given) = args.get("channel").and_then(Value::as_str) else {
            return failure("channel_not_found");
        };
        let Some(channel) = self.channel(given).cloned() else {
            return failure("channel_not_found");
        };
        if channel.archived {
            return failure("is_archived");
        }
        if !channel.member {
            return failure("not_in_channel");
        }
        let text = args.get("text").and_then(Value::as_str).unwrap_or("");
        // A form sends blocks as JSON text.
        let blocks = match args.get("blocks") {
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v) => Some(v),
                Err(_) => return failure("invalid_blocks"),
            },
            other => other.cloned(),
        };
        if let Some(blocks) = &blocks {
            let ok = blocks.as_array().is_some_and(|list| {
                !list.is_empty()
                    && list
                        .iter()
                        .all(|b| b.get("type").is_some_and(Value::is_string))
            });
            if !ok {
                return failure("invalid_blocks");
            }
        }
        if text.is_empty() && blocks.is_none() && !args.contains_key("attachments") {
            return failure("no_text");
        }
        if text.chars().count() > 40_000 {
            return failure("msg_too_long");
        }
        let ts = self.next_ts();
        let mut message = json!({
            "type": "message",
            "text": text,
            "user": "U0FAKEBOT",
            "bot_id": "B0FAKEBOT",
            "ts": ts,
        });
        if let Some(blocks) = blocks {
            message["blocks"] = blocks;
        }
        if let Some(thread) = args.get("thread_ts").and_then(Value::as_str) {
            message["thread_ts"] = json!(thread);
        }
        self.messages
            .entry(channel.id.clone())
            .or_default()
            .push(message.clone());
        let mut answer = json!({"ok": true, "channel": channel.id, "ts": ts, "message": message});
        if !warnings.is_empty() {
            answer["warning"] = json!(warnings.join(","));
            answer["response_metadata"] = json!({"warnings": warnings});
        }
        crate::json(200, answer)
    }

    fn next_ts(&mut self) -> String {
        self.clock += 1;
        format!("1714550400.{:06}", self.clock)
    }

    fn history(&self, headers: &HeaderMap, query: &str, body: &Bytes) -> Response {
        let args = args(headers, body, query);
        if let Err(response) = self.authenticate(headers, &args) {
            return *response;
        }
        let Some(channel) = args
            .get("channel")
            .and_then(Value::as_str)
            .and_then(|c| self.channel(c))
        else {
            return failure("channel_not_found");
        };
        let mut messages = self.messages.get(&channel.id).cloned().unwrap_or_default();
        messages.reverse();
        crate::json(
            200,
            json!({"ok": true, "messages": messages, "has_more": false}),
        )
    }

    fn webhook(
        &mut self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Response {
        if *method != Method::POST || path != self.config.webhook_path {
            return crate::text(404, "no_service");
        }
        if let Some((status, text)) = &self.config.webhook_error {
            return crate::text(*status, text);
        }
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/json") {
            return crate::text(400, "invalid_payload");
        }
        let Ok(Value::Object(payload)) = serde_json::from_slice::<Value>(body) else {
            return crate::text(400, "invalid_payload");
        };
        let text = payload.get("text").and_then(Value::as_str).unwrap_or("");
        let blocks = payload.get("blocks");
        let blocks_ok = blocks.is_none_or(|b| {
            b.as_array().is_some_and(|l| {
                l.iter()
                    .all(|x| x.get("type").is_some_and(Value::is_string))
            })
        });
        if (text.is_empty() && blocks.is_none()) || !blocks_ok {
            return crate::text(400, "invalid_payload");
        }
        let ts = self.next_ts();
        let mut message = json!({"type": "message", "subtype": "bot_message", "text": text, "bot_id": "B0FAKEHOOK", "ts": ts});
        if let Some(b) = blocks {
            message["blocks"] = b.clone();
        }
        let channel = self.config.webhook_channel.clone();
        self.messages.entry(channel).or_default().push(message);
        crate::text(200, "ok")
    }
}
