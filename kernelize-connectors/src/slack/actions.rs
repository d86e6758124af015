//! The `slack-notifier`'s typed actions: their names, per-call configs and outputs.

use kernelize_core::{Action, Payload, Permission};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::PostedMessage;
use super::config::SecretText;
use crate::saas::network;

/// Config of `send_message`. Without `text` and `blocks`, the text is a summary of the
/// input (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageConfig {
    /// A channel id (`C0123456789`) or name (`#data-pipeline`).
    pub channel: String,
    /// The text (mrkdwn), or the fallback text shown in notifications when `blocks` are
    /// given.
    #[serde(default)]
    pub text: Option<String>,
    /// Block Kit blocks (a list of block objects).
    #[serde(default)]
    pub blocks: Option<Vec<Value>>,
    /// Legacy attachments.
    #[serde(default)]
    pub attachments: Option<Vec<Value>>,
    /// Reply in the thread of this message `ts`.
    #[serde(default)]
    pub thread_ts: Option<String>,
    /// Also show the thread reply in the channel.
    #[serde(default)]
    pub reply_broadcast: Option<bool>,
    /// Format `text` as mrkdwn (Slack's default is yes).
    #[serde(default)]
    pub mrkdwn: Option<bool>,
    /// Unfurl links to text content.
    #[serde(default)]
    pub unfurl_links: Option<bool>,
    /// Unfurl links to media.
    #[serde(default)]
    pub unfurl_media: Option<bool>,
    /// The bot's name for this message (needs the `chat:write.customize` scope).
    #[serde(default)]
    pub username: Option<String>,
    /// The bot's icon as an emoji, `:robot_face:` (needs `chat:write.customize`).
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// The bot's icon as an image URL (needs `chat:write.customize`).
    #[serde(default)]
    pub icon_url: Option<String>,
}

/// What `send_message` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SentMessage {
    /// The channel's id.
    pub channel: String,
    /// The message's timestamp (its id; give it as `thread_ts` to reply).
    pub ts: String,
    /// The text sent (configured or summarized), if any.
    #[serde(default)]
    pub text: Option<String>,
    /// Slack's warnings (`missing_charset`, `superfluous_charset`...); empty when none.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl SentMessage {
    pub(crate) fn from_posted(posted: PostedMessage, text: Option<String>) -> Self {
        Self {
            channel: posted.channel,
            ts: posted.ts,
            text,
            warnings: posted.warnings,
        }
    }
}

/// Config of `send_webhook`. Without `text` and `blocks`, the text is a summary of the
/// input, as for `send_message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendWebhookConfig {
    /// The incoming webhook's URL (a secret: write `${secret:NAME}`); the plugin's
    /// `webhook_url` when absent.
    #[serde(default)]
    pub webhook_url: Option<SecretText>,
    /// The text (mrkdwn).
    #[serde(default)]
    pub text: Option<String>,
    /// Block Kit blocks.
    #[serde(default)]
    pub blocks: Option<Vec<Value>>,
}

/// What `send_webhook` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SentWebhook {
    /// Always `true`: the webhook answered `ok` (a failure is an error).
    pub delivered: bool,
    /// The text sent, if any.
    #[serde(default)]
    pub text: Option<String>,
}

/// Action `send_message`.
#[derive(Debug)]
pub struct SendMessage;

impl Action for SendMessage {
    const NAME: &'static str = "send_message";
    const DESCRIPTION: &'static str = "Post a message to a channel with chat.postMessage: the configured text or blocks, or a short summary of the input.";
    type Config = SendMessageConfig;
    type Input = Payload;
    type Output = SentMessage;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `send_webhook`.
#[derive(Debug)]
pub struct SendWebhook;

impl Action for SendWebhook {
    const NAME: &'static str = "send_webhook";
    const DESCRIPTION: &'static str = "Post a message to an incoming webhook: the configured text or blocks, or a short summary of the input.";
    type Config = SendWebhookConfig;
    type Input = Payload;
    type Output = SentWebhook;

    fn permissions() -> Vec<Permission> {
        network()
    }
}
