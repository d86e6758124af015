//! [`SlackClient`]: `chat.postMessage`, `auth.test` and incoming webhooks, typed, usable
//! from Rust without the plugin.

use std::sync::Arc;

use kernelize_core::{Error, ErrorKind, Result};
use reqwest::Method;
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{SlackSettings, webhook_origin};
use crate::http::{
    BearerAuth, Classifier, HttpClient, Layer, Request, Response, Verdict, default_verdict, excerpt,
};
use crate::saas::build_client;

/// The media type of Web API calls: JSON with its charset, which Slack asks for (a body
/// without it is answered with the `missing_charset` warning).
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The arguments of `chat.postMessage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PostMessage {
    /// A channel id (`C0123456789`) or name (`#general`).
    pub channel: String,
    /// The text (mrkdwn), or the fallback text of `blocks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Block Kit blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<Value>>,
    /// Legacy attachments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Value>>,
    /// The parent message's `ts`, to reply in a thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// Also show a thread reply in the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_broadcast: Option<bool>,
    /// Format `text` as mrkdwn (Slack's default) or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mrkdwn: Option<bool>,
    /// Unfurl links to text content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfurl_links: Option<bool>,
    /// Unfurl links to media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfurl_media: Option<bool>,
    /// The bot's name for this message (needs `chat:write.customize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The bot's icon as an emoji (needs `chat:write.customize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    /// The bot's icon as an image URL (needs `chat:write.customize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
}

/// A message Slack accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PostedMessage {
    /// The channel's id.
    pub channel: String,
    /// The message's timestamp, its id within the channel.
    pub ts: String,
    /// The message as Slack stored it.
    #[serde(default)]
    pub message: Value,
    /// Warnings of the answer (`warning` and `response_metadata.warnings`).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What `auth.test` says about the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Identity {
    /// The workspace URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The workspace's name.
    #[serde(default)]
    pub team: Option<String>,
    /// The user's name.
    #[serde(default)]
    pub user: Option<String>,
    /// The workspace's id.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The user's id.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The bot's id, for bot tokens.
    #[serde(default)]
    pub bot_id: Option<String>,
}

/// The body of an incoming-webhook post.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebhookMessage {
    /// The text (mrkdwn), or the fallback text of `blocks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Block Kit blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<Value>>,
}

/// The envelope of every Web API answer.
#[derive(Debug, Default, Deserialize)]
struct Envelope {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    needed: Option<String>,
    #[serde(default)]
    provided: Option<String>,
    #[serde(default)]
    warning: Option<String>,
    #[serde(default)]
    response_metadata: Option<Metadata>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    messages: Vec<String>,
}

/// Slack's classification for the retry layer: HTTP 429 (and a 200 whose `error` is
/// `ratelimited`) retries after `Retry-After`; the rest as [`default_verdict`].
pub fn slack_verdict(response: &Response) -> Verdict {
    if response.status.as_u16() == 200 && response.body.len() < 4096 {
        let needle = b"\"ratelimited\"";
        if response.body.windows(needle.len()).any(|w| w == needle)
            && let Ok(answer) = serde_json::from_slice::<Envelope>(&response.body)
            && !answer.ok
            && answer.error.as_deref() == Some("ratelimited")
        {
            return Verdict::Retry {
                after: response.retry_after(),
            };
        }
    }
    default_verdict(response)
}

/// A client of the Slack Web API and of incoming webhooks. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct SlackClient {
    /// The Web API, with the bot token; `None` without a token.
    api: Option<HttpClient>,
    /// Incoming webhooks: no credentials of its own (the URL is the credential).
    hooks: HttpClient,
}

impl SlackClient {
    /// A client for `settings` (no network traffic until the first call).
    pub fn new(settings: &SlackSettings) -> Result<Self> {
        settings.check()?;
        let classifier: Classifier = Arc::new(slack_verdict);
        let api = match &settings.token {
            Some(token) => {
                let auth: Arc<dyn Layer> = Arc::new(BearerAuth::new(token.clone()));
                Some(build_client(
                    settings.base()?.as_str(),
                    &settings.http,
                    Some(classifier.clone()),
                    vec![auth],
                )?)
            }
            None => None,
        };
        let hooks = build_client(
            "https://hooks.slack.com/",
            &settings.http,
            Some(classifier),
            Vec::new(),
        )?;
        Ok(Self { api, hooks })
    }

    fn api(&self) -> Result<&HttpClient> {
        self.api.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "the Slack Web API needs a bot token: set `token` (`${secret:SLACK_BOT_TOKEN}`)",
            )
        })
    }

    /// Calls Web API `method` with a JSON body and reads the envelope; `ok: false` is an
    /// error ([`slack_error`]).
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        body: &impl Serialize,
        context: Option<(&'static str, &str)>,
    ) -> Result<(T, Vec<String>)> {
        let api = self.api()?;
        let data = serde_json::to_vec(body)?;
        let request = api.request(Method::POST, method)?.bytes(data, JSON_UTF8);
        let describe = request.describe();
        let response = api.send(request).await?;
        if !response.is_success() {
            return Err(response
                .error_for_status(&describe)
                .err()
                .unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::Unexpected,
                        "a non-2xx answer was taken for success",
                    )
                }));
        }
        let envelope: Envelope = response.json()?;
        let mut warnings: Vec<String> = envelope
            .warning
            .iter()
            .flat_map(|w| w.split(','))
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(meta) = &envelope.response_metadata {
            for w in &meta.warnings {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
        }
        if !envelope.ok {
            return Err(slack_error(method, &envelope, &response, context));
        }
        Ok((response.json()?, warnings))
    }

    /// Posts a message (`chat.postMessage`).
    pub async fn post_message(&self, message: &PostMessage) -> Result<PostedMessage> {
        if message.channel.trim().is_empty() {
            return Err(Error::new(ErrorKind::InvalidInput, "`channel` is empty"));
        }
        let no_text = message.text.as_deref().is_none_or(str::is_empty);
        if no_text && message.blocks.is_none() && message.attachments.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a Slack message needs `text`, `blocks` or `attachments`",
            ));
        }
        let (mut posted, warnings): (PostedMessage, _) = self
            .call(
                "chat.postMessage",
                message,
                Some(("channel", message.channel.as_str())),
            )
            .await?;
        posted.warnings = warnings;
        Ok(posted)
    }

    /// Who the token is (`auth.test`); a cheap check that it works.
    pub async fn auth_test(&self) -> Result<Identity> {
        Ok(self
            .call("auth.test", &serde_json::json!({}), None)
            .await?
            .0)
    }

    /// Posts to an incoming webhook. Success is `200 ok`; an error answer is plain text
    /// (`invalid_payload`, `action_prohibited`, `channel_not_found`, `channel_is_archived`,
    /// `rollup_error`...) and becomes an error naming it. The URL never appears in errors.
    pub async fn post_webhook(&self, url: &SecretString, message: &WebhookMessage) -> Result<()> {
        let origin = webhook_origin(url)?;
        let no_text = message.text.as_deref().is_none_or(str::is_empty);
        if no_text && message.blocks.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a Slack webhook message needs `text` or `blocks`",
            ));
        }
        let host = origin.host_str().unwrap_or("").to_string();
        let redact = |e: Error| redact_url(e, url, &origin);
        let request: Request = self
            .hooks
            .request(Method::POST, url.expose_secret())
            .map_err(redact)?
            .json(message)?
            .path_template("/services/{redacted}");
        let response = self.hooks.send(request).await.map_err(redact)?;
        if response.is_success() {
            return Ok(());
        }
        Err(webhook_error(&response, &host))
    }
}

/// `error` with any trace of the webhook URL replaced by its origin.
fn redact_url(error: Error, url: &SecretString, origin: &url::Url) -> Error {
    let secret = url.expose_secret();
    let path = url::Url::parse(secret)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let mut message = error.message().replace(secret, origin.as_str());
    if path.len() > 1 {
        message = message.replace(&path, "/…");
    }
    let mut redacted = Error::new(error.kind(), message);
    if let Some(status) = error.status() {
        redacted = redacted.with_status(status);
    }
    if let Some(after) = error.retry_after() {
        redacted = redacted.with_retry_after(after);
    }
    if error.is_temporary() {
        redacted.set_temporary()
    } else {
        redacted.set_permanent()
    }
}

/// The error of an `ok: false` answer: its kind from the `error` code, its message naming
/// the method, the code, the channel and, for `missing_scope`, the scopes.
fn slack_error(
    method: &str,
    envelope: &Envelope,
    response: &Response,
    context: Option<(&'static str, &str)>,
) -> Error {
    let code = envelope
        .error
        .clone()
        .unwrap_or_else(|| "unknown_error".into());
    let (kind, temporary) = error_kind(&code);
    let mut message = format!("Slack {method} failed: {code}");
    if let Some((key, value)) = context {
        message.push_str(&format!(" ({key} `{value}`)"));
    }
    if code == "missing_scope" {
        message.push_str(&format!(
            "; the token needs `{}` and has `{}`",
            envelope.needed.as_deref().unwrap_or("?"),
            envelope.provided.as_deref().unwrap_or("")
        ));
    }
    if let Some(meta) = &envelope.response_metadata
        && !meta.messages.is_empty()
    {
        message.push_str(&format!(": {}", meta.messages.join("; ")));
    }
    let mut e = Error::new(kind, message)
        .with_status(response.status.as_u16())
        .with_context("error", &code);
    if let Some((key, value)) = context {
        e = e.with_context(key, value);
    }
    if let Some(needed) = &envelope.needed {
        e = e.with_context("needed", needed);
    }
    if let Some(after) = response.retry_after() {
        e = e.with_retry_after(after);
    }
    if temporary {
        e.set_temporary()
    } else {
        e.set_permanent()
    }
}

/// The error kind of a Slack `error` code, and whether retrying may help.
pub fn error_kind(code: &str) -> (ErrorKind, bool) {
    match code {
        "channel_not_found" | "user_not_found" | "thread_not_found" | "message_not_found"
        | "no_service" => (ErrorKind::NotFound, false),
        "invalid_auth"
        | "not_authed"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "no_permission"
        | "missing_scope"
        | "not_allowed_token_type"
        | "not_in_channel"
        | "restricted_action"
        | "ekm_access_denied"
        | "access_denied"
        | "action_prohibited"
        | "invalid_token"
        | "team_access_not_granted" => (ErrorKind::PermissionDenied, false),
        "is_archived" | "channel_is_archived" => (ErrorKind::InvalidState, false),
        "ratelimited" | "rate_limited" => (ErrorKind::RateLimited, true),
        "no_text"
        | "invalid_blocks"
        | "invalid_blocks_format"
        | "msg_too_long"
        | "too_many_attachments"
        | "invalid_arguments"
        | "invalid_arg_name"
        | "invalid_array_arg"
        | "invalid_charset"
        | "invalid_form_data"
        | "invalid_json"
        | "json_not_object"
        | "invalid_payload"
        | "invalid_post_type"
        | "missing_post_type"
        | "invalid_attachments"
        | "duplicate_message_not_found"
        | "as_user_not_supported"
        | "metadata_too_large"
        | "invalid_metadata_format" => (ErrorKind::InvalidInput, false),
        "fatal_error"
        | "internal_error"
        | "service_unavailable"
        | "request_timeout"
        | "rollup_error" => (ErrorKind::Remote, true),
        _ => (ErrorKind::Remote, false),
    }
}

/// The error of a webhook's non-2xx plain-text answer.
fn webhook_error(response: &Response, host: &str) -> Error {
    let status = response.status.as_u16();
    let text = response.text();
    let code = text.trim();
    let (kind, temporary) = match error_kind(code) {
        (ErrorKind::Remote, false) => match status {
            400 => (ErrorKind::InvalidInput, false),
            401 | 403 => (ErrorKind::PermissionDenied, false),
            404 => (ErrorKind::NotFound, false),
            410 => (ErrorKind::InvalidState, false),
            429 => (ErrorKind::RateLimited, true),
            s => (ErrorKind::Remote, s >= 500),
        },
        known => known,
    };
    let shown = if code.is_empty() {
        "(empty body)".to_string()
    } else {
        excerpt(code.as_bytes())
    };
    let mut e = Error::new(
        kind,
        format!("the Slack incoming webhook at {host} answered {status}: {shown}"),
    )
    .with_status(status)
    .with_context("error", shown);
    if let Some(after) = response.retry_after() {
        e = e.with_retry_after(after);
    }
    if temporary {
        e.set_temporary()
    } else {
        e.set_permanent()
    }
}
