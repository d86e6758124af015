//! Publishing with publisher confirms: every message of a batch is sent, then every
//! confirm is awaited, and each message gets its own outcome (written, nacked, returned as
//! unroutable, or lost with the channel).

use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation};

use super::client::{AMQP_CODE, amqp_error, timeout_error};
use super::config::AmqpUrl;

/// One message to publish.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingMessage {
    pub(crate) exchange: ShortString,
    pub(crate) routing_key: ShortString,
    pub(crate) mandatory: bool,
    pub(crate) body: bytes::Bytes,
    pub(crate) properties: BasicProperties,
}

/// What became of a batch: one result per message, in order, and the channel's own
/// failure when the channel (or its connection) broke, after which it cannot be used.
#[derive(Debug)]
pub(crate) struct PublishOutcome {
    pub(crate) results: Vec<Result<()>>,
    pub(crate) channel_error: Option<Error>,
}

impl PublishOutcome {
    /// How many messages the broker confirmed.
    pub(crate) fn written(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}

/// Publishes `messages` on `channel` (in confirm mode) and waits, at most `limit` in all,
/// for every confirm.
///
/// A message the broker nacks fails with a temporary error; one it returns as unroutable
/// (a mandatory message no queue took) with a permanent one naming the exchange and
/// routing key; one whose confirm never came, because the channel closed or `limit`
/// passed, with a temporary error (it may or may not have been stored).
pub(crate) async fn publish_confirmed(
    url: &AmqpUrl,
    channel: &Channel,
    messages: &[OutgoingMessage],
    limit: Duration,
) -> PublishOutcome {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pending = Vec::with_capacity(messages.len());
    let mut channel_error = None;
    for message in messages {
        if let Some(e) = &channel_error {
            pending.push(Err(Error::clone(e)));
            continue;
        }
        let options = BasicPublishOptions {
            mandatory: message.mandatory,
            immediate: false,
        };
        let sending = channel.basic_publish(
            message.exchange.clone(),
            message.routing_key.clone(),
            options,
            &message.body,
            message.properties.clone(),
        );
        match tokio::time::timeout_at(deadline, sending).await {
            Ok(Ok(confirm)) => pending.push(Ok(confirm)),
            Ok(Err(e)) => {
                let e = amqp_error(url, "publish", &e);
                channel_error = Some(e.clone());
                pending.push(Err(e));
            }
            Err(_) => {
                let e = timeout_error(url, "take the message", limit);
                channel_error = Some(e.clone());
                pending.push(Err(e));
            }
        }
    }
    let mut results = Vec::with_capacity(messages.len());
    for (message, sent) in messages.iter().zip(pending) {
        let confirm = match sent {
            Ok(confirm) => confirm,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        let result = match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)))) => {
                Err(unroutable(
                    url,
                    message,
                    returned.reply_code,
                    returned.reply_text.as_str(),
                ))
            }
            Ok(Ok(Confirmation::Nack(None))) => Err(Error::new(
                ErrorKind::Remote,
                "rabbitmq refused the message (basic.nack): it could not store it; publishing it again may succeed",
            )
            .with_context("rabbitmq", url.redacted())
            .set_temporary()),
            Ok(Err(e)) => {
                let e = amqp_error(url, "confirm the message", &e);
                channel_error.get_or_insert_with(|| e.clone());
                Err(e)
            }
            Err(_) => {
                let e = timeout_error(url, "confirm the message", limit);
                channel_error.get_or_insert_with(|| e.clone());
                Err(e)
            }
        };
        results.push(result);
    }
    PublishOutcome {
        results,
        channel_error,
    }
}

/// The error for a message the broker returned (basic.return).
fn unroutable(url: &AmqpUrl, message: &OutgoingMessage, code: u16, text: &str) -> Error {
    let exchange = match message.exchange.as_str() {
        "" => "the default exchange",
        name => name,
    };
    Error::new(
        ErrorKind::Remote,
        format!(
            "rabbitmq returned the message as unroutable ({code} {text}): no queue is bound to {exchange} for routing key `{}`",
            message.routing_key.as_str()
        ),
    )
    .with_context("rabbitmq", url.redacted())
    .with_context(AMQP_CODE, code)
    .with_context("exchange", message.exchange.as_str())
    .with_context("routing_key", message.routing_key.as_str())
    .set_permanent()
}

/// The properties of a message to publish: its content type, message id and headers,
/// delivery mode 2 (persistent) or 1, and the current time as its timestamp.
pub(crate) fn message_properties(
    content_type: Option<&str>,
    message_id: Option<&str>,
    headers: lapin::types::FieldTable,
    persistent: bool,
) -> Result<BasicProperties> {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(if persistent { 2 } else { 1 })
        .with_timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
    if let Some(content_type) = content_type {
        properties =
            properties.with_content_type(super::client::short("the content type", content_type)?);
    }
    if let Some(id) = message_id {
        properties = properties.with_message_id(super::client::short("the message id", id)?);
    }
    if !headers.inner().is_empty() {
        properties = properties.with_headers(headers);
    }
    Ok(properties)
}
