#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;
mod summary;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::{ActionContext, ActionRouter, Handler, HealthReport};
use kernelize_core::{Error, ErrorKind, Payload, PluginFactory, Result};
use secrecy::SecretString;
use url::Url;

pub use actions::{
    SendMessage, SendMessageConfig, SendWebhook, SendWebhookConfig, SentMessage, SentWebhook,
};
pub use client::{
    Identity, JSON_UTF8, PostMessage, PostedMessage, SlackClient, WebhookMessage, error_kind,
    slack_verdict,
};
pub use config::{DEFAULT_BASE_URL, SecretText, SlackSettings, webhook_origin};
pub use summary::{MAX_SUMMARY, summarize};

use crate::saas::{Connector, check_host};

/// The plugin's id.
pub const ID: &str = "slack-notifier";

/// The `slack-notifier` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<SlackConnector>()
}

static ROUTER: LazyLock<ActionRouter<SlackConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<SendMessage>()
        .action::<SendWebhook>()
});

/// The Slack connector: a [`SlackClient`] and the plugin's webhook. Made a registry plugin
/// by [`factory`] (through [`crate::saas::Hosted`]).
#[derive(Debug)]
pub struct SlackConnector {
    client: SlackClient,
    hosts: Vec<Url>,
    has_token: bool,
    webhook_url: Option<SecretString>,
}

impl SlackConnector {
    /// The client, for calls the actions do not cover.
    pub fn client(&self) -> &SlackClient {
        &self.client
    }
}

#[async_trait]
impl Connector for SlackConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Slack";
    const DESCRIPTION: &'static str = "Posts messages to Slack channels (chat.postMessage with a bot token) and incoming webhooks; without configured text, it summarizes the step's input.";
    type Settings = SlackSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: SlackSettings) -> Result<Self> {
        let client = SlackClient::new(&settings)?;
        let mut hosts = Vec::new();
        if settings.token.is_some() {
            hosts.push(settings.base()?);
        }
        if let Some(url) = &settings.webhook_url {
            hosts.push(webhook_origin(url)?);
        }
        Ok(Self {
            client,
            hosts,
            has_token: settings.token.is_some(),
            webhook_url: settings.webhook_url,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        self.hosts.clone()
    }

    async fn health(&self) -> HealthReport {
        if !self.has_token {
            return HealthReport::healthy();
        }
        // A refused token is unhealthy (activation fails and says why); Slack being
        // unreachable or slow is only degraded.
        match self.client.auth_test().await {
            Ok(_) => HealthReport::healthy(),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                HealthReport::unhealthy(e.message().to_string())
            }
            Err(e) => HealthReport::degraded(e.message().to_string()),
        }
    }
}

/// The text to send: the configured one, else (without blocks or attachments) a summary
/// of the input.
fn message_text(text: Option<String>, has_rich: bool, input: Payload) -> Result<Option<String>> {
    match text {
        Some(t) if !t.is_empty() => Ok(Some(t)),
        _ if has_rich => Ok(None),
        _ => summarize(input).map(Some),
    }
}

#[async_trait]
impl Handler<SendMessage> for SlackConnector {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: SendMessageConfig,
        input: Payload,
    ) -> Result<SentMessage> {
        let has_rich = config.blocks.is_some() || config.attachments.is_some();
        let text = message_text(config.text, has_rich, input)
            .map_err(|e| e.with_context("channel", &config.channel))?;
        let message = PostMessage {
            channel: config.channel,
            text: text.clone(),
            blocks: config.blocks,
            attachments: config.attachments,
            thread_ts: config.thread_ts,
            reply_broadcast: config.reply_broadcast,
            mrkdwn: config.mrkdwn,
            unfurl_links: config.unfurl_links,
            unfurl_media: config.unfurl_media,
            username: config.username,
            icon_emoji: config.icon_emoji,
            icon_url: config.icon_url,
        };
        let posted = self.client.post_message(&message).await?;
        Ok(SentMessage::from_posted(posted, text))
    }
}

#[async_trait]
impl Handler<SendWebhook> for SlackConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SendWebhookConfig,
        input: Payload,
    ) -> Result<SentWebhook> {
        let url = match config.webhook_url {
            Some(SecretText(url)) => {
                // A webhook named by the call may be on a host the plugin's hosts do not
                // cover: check its grant here.
                check_host(&webhook_origin(&url)?, &ctx.permissions, "Slack")?;
                url
            }
            None => self.webhook_url.clone().ok_or_else(|| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    "no webhook: set `webhook_url` in the plugin settings or the action's config",
                )
            })?,
        };
        let text = message_text(config.text, config.blocks.is_some(), input)?;
        let message = WebhookMessage {
            text: text.clone(),
            blocks: config.blocks,
        };
        self.client.post_webhook(&url, &message).await?;
        Ok(SentWebhook {
            delivered: true,
            text,
        })
    }
}
