//! `log-notifier`: sends messages to the log and the audit sink.
//!
//! Its `send_message` action takes the same config as the chat notifiers (`channel`, `text`),
//! so a workflow can swap it for `slack-notifier` without other changes. The text may come
//! from the config or from the input (a JSON object with `text`, a JSON string, or any
//! payload, which is summarized).

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use schemars::JsonSchema;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditSink, Outcome};
use crate::error::{Error, ErrorKind, Result};
use crate::payload::Payload;
use crate::plugin::{
    Action, ActionContext, ActionRouter, Call, Category, Handler, InitContext, Plugin,
    PluginMetadata,
};

/// Plugin id of the log notifier.
pub const ID: &str = "log-notifier";

/// Per-call config of `send_message`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageConfig {
    /// Where the message goes (`#data-pipeline`); recorded with the message.
    #[serde(default)]
    pub channel: Option<String>,
    /// The message; when absent it is taken from the input.
    #[serde(default)]
    pub text: Option<String>,
    /// Log level: `info` (default), `warn` or `error`.
    #[serde(default)]
    pub level: Option<String>,
}

/// What `send_message` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SentMessage {
    /// The channel the message was sent to, if any.
    pub channel: Option<String>,
    /// The text sent.
    pub text: String,
    /// When it was sent (RFC 3339, UTC).
    pub ts: String,
}

/// `send_message`: writes a message to the log and the audit sink.
#[derive(Debug)]
pub struct SendMessage;

impl Action for SendMessage {
    const NAME: &'static str = "send_message";
    const DESCRIPTION: &'static str =
        "Write a message to the log and the audit sink (same input as the chat notifiers).";
    type Config = SendMessageConfig;
    type Input = Payload;
    type Output = SentMessage;
}

static ROUTER: LazyLock<ActionRouter<LogNotifier>> =
    LazyLock::new(|| ActionRouter::new().action::<SendMessage>());

/// The `log-notifier` plugin.
#[derive(Default)]
pub struct LogNotifier {
    audit: Option<Arc<dyn AuditSink>>,
}

impl std::fmt::Debug for LogNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogNotifier").finish_non_exhaustive()
    }
}

impl LogNotifier {
    /// A notifier; the manager gives it the audit sink at initialization.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Plugin for LogNotifier {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            ID,
            "Log notifier",
            Version::new(0, 1, 0),
            Category::Monitoring,
        )
        .description("Sends messages to the log and the audit trail.")
        .author("Kernelize")
        .actions(ROUTER.descriptors())
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        self.audit = ctx.audit;
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }
}

fn text_from_input(input: Payload) -> Result<Option<String>> {
    Ok(match input {
        Payload::Empty => None,
        Payload::Json(serde_json::Value::Null) => None,
        Payload::Json(serde_json::Value::String(s)) => Some(s),
        Payload::Json(serde_json::Value::Object(map))
            if map.get("text").is_some_and(|t| t.is_string()) =>
        {
            map.get("text").and_then(|t| t.as_str()).map(str::to_string)
        }
        Payload::Json(other) => Some(other.to_string()),
        Payload::Records(r) => Some(format!("{} records", r.num_rows())),
        Payload::Bytes(b) => Some(format!("{} bytes of {}", b.data.len(), b.media_type)),
    })
}

#[async_trait]
impl Handler<SendMessage> for LogNotifier {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: SendMessageConfig,
        input: Payload,
    ) -> Result<SentMessage> {
        let text = match config.text {
            Some(t) => t,
            None => text_from_input(input)?.ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "send_message needs a text, in its config or its input",
                )
            })?,
        };
        let channel = config.channel;
        let where_to = channel.as_deref().unwrap_or("-");
        match config.level.as_deref().unwrap_or("info") {
            "info" => tracing::info!(target: "kernelize::notify", channel = where_to, "{text}"),
            "warn" => tracing::warn!(target: "kernelize::notify", channel = where_to, "{text}"),
            "error" => tracing::error!(target: "kernelize::notify", channel = where_to, "{text}"),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("unknown level `{other}`; known levels: info, warn, error"),
                ));
            }
        }
        if let Some(audit) = &self.audit {
            audit.record(
                &AuditEvent::new(ID, "notify.send", where_to, Outcome::Success)
                    .with_detail(text.clone()),
            );
        }
        Ok(SentMessage {
            channel,
            text,
            ts: chrono::Utc::now().to_rfc3339(),
        })
    }
}
