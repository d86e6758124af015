//! [`RabbitSink`]: publishes events to an exchange with publisher confirms, as an
//! [`EventSink`] that reports failures message by message.

use async_trait::async_trait;
use kernelize_core::event::{Event, EventSink, WriteReport};
use kernelize_core::payload::MEDIA_JSON;
use kernelize_core::{Error, ErrorKind, Payload, Result};
use lapin::options::ConfirmSelectOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::client::{RabbitClient, short};
use super::fields::PROPERTY_PREFIX;
use super::publisher::{OutgoingMessage, message_properties, publish_confirmed};
use super::topology::inspect_exchange;

fn yes() -> bool {
    true
}

/// Options of a `rabbitmq-connector` event sink (a pipeline sink's settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkOptions {
    /// The exchange; `""` (the default) is the default exchange, which routes to the queue
    /// named by the routing key. It must exist when the sink opens.
    #[serde(default)]
    pub exchange: String,
    /// The routing key of every message; each event's `subject` when absent.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Whether the broker writes the messages to disk (delivery mode 2; true when absent).
    #[serde(default = "yes")]
    pub persistent: bool,
    /// Whether an event no queue takes is a failure (true when absent); with `false` the
    /// broker drops it and it counts as written.
    #[serde(default = "yes")]
    pub mandatory: bool,
}

impl SinkOptions {
    /// Options for publishing to `exchange` with every default.
    pub fn new(exchange: impl Into<String>) -> Self {
        SinkOptions {
            exchange: exchange.into(),
            routing_key: None,
            persistent: true,
            mandatory: true,
        }
    }

    /// Checks what the schema cannot.
    pub fn check(&self) -> Result<()> {
        short("`exchange`", &self.exchange)?;
        if let Some(key) = &self.routing_key {
            short("`routing_key`", key)?;
        }
        Ok(())
    }
}

/// Publishes events to one exchange, as an [`EventSink`].
///
/// It has a connection of its own, named `<connection_name> sink`, and one channel in
/// confirm mode. A write publishes every event of the batch, then waits (at most the
/// settings' `operation_timeout`) for every confirm; the events the broker nacked or
/// returned as unroutable, and those whose confirm never came, are the failures of the
/// [`WriteReport`]. A write fails as a whole, with a temporary error, only when no event
/// was written because the connection or channel was down; the next write opens them
/// again. Writes run one at a time.
pub struct RabbitSink {
    client: RabbitClient,
    options: SinkOptions,
    state: tokio::sync::Mutex<Option<SinkChannel>>,
}

impl std::fmt::Debug for RabbitSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSink")
            .field("url", self.client.url())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

struct SinkChannel {
    connection: Connection,
    /// `None` once it broke (or timed out); the next write opens another.
    channel: Option<Channel>,
}

impl RabbitSink {
    /// Checks `options`, connects, and checks that the exchange exists.
    pub async fn open(client: RabbitClient, options: SinkOptions) -> Result<Self> {
        options.check()?;
        let sink = RabbitSink {
            client,
            options,
            state: tokio::sync::Mutex::new(None),
        };
        let mut state = sink.state.lock().await;
        let channel = sink.ensure_channel(&mut state).await?;
        inspect_exchange(&sink.client, &channel, &sink.options.exchange).await?;
        drop(state);
        Ok(sink)
    }

    /// The options the sink was opened with.
    pub fn options(&self) -> &SinkOptions {
        &self.options
    }

    /// The confirm-mode channel, opened (with its connection) when missing or broken.
    async fn ensure_channel(&self, state: &mut Option<SinkChannel>) -> Result<Channel> {
        if let Some(SinkChannel {
            channel: Some(channel),
            ..
        }) = state.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let connection = match state.take() {
            Some(open) if open.connection.status().connected() => open.connection,
            _ => self.client.open_connection("sink").await?,
        };
        let channel = self
            .client
            .timed("open a channel", connection.create_channel())
            .await?;
        self.client
            .timed(
                "turn on publisher confirms",
                channel.confirm_select(ConfirmSelectOptions::default()),
            )
            .await?;
        *state = Some(SinkChannel {
            connection,
            channel: Some(channel.clone()),
        });
        Ok(channel)
    }

    /// The message for one event.
    fn message(&self, event: &Event) -> Result<OutgoingMessage> {
        let (body, content_type) = match &event.payload {
            Payload::Bytes(blob) => (blob.data.clone(), Some(blob.media_type.as_str())),
            Payload::Json(value) => (
                bytes::Bytes::from(serde_json::to_vec(value)?),
                Some(MEDIA_JSON),
            ),
            Payload::Empty => (bytes::Bytes::new(), None),
            Payload::Records(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "the rabbitmq sink writes one message per event and refuses records; split them into one event per row first",
                )
                .set_permanent());
            }
        };
        let routing_key = match (&self.options.routing_key, &event.subject) {
            (Some(key), _) => key.as_str(),
            (None, Some(subject)) => subject.as_str(),
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "the event has no subject to route by; set the sink's `routing_key`",
                )
                .set_permanent());
            }
        };
        let mut headers = FieldTable::default();
        for (name, value) in &event.headers {
            if name.starts_with(PROPERTY_PREFIX) {
                continue;
            }
            headers.insert(
                short("a header name", name)?,
                AMQPValue::LongString(LongString::from(value.as_str())),
            );
        }
        Ok(OutgoingMessage {
            exchange: short("`exchange`", &self.options.exchange)?,
            routing_key: short("the routing key", routing_key)?,
            mandatory: self.options.mandatory,
            body,
            properties: message_properties(
                content_type,
                event.key.as_deref(),
                headers,
                self.options.persistent,
            )?,
        })
    }
}

#[async_trait]
impl EventSink for RabbitSink {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        if self.client.closed().is_cancelled() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "the rabbitmq-connector was shut down",
            ));
        }
        if events.is_empty() {
            return Ok(WriteReport::all_written());
        }
        let mut failed = Vec::new();
        let mut messages = Vec::with_capacity(events.len());
        let mut positions = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            match self.message(event) {
                Ok(message) => {
                    messages.push(message);
                    positions.push(i);
                }
                Err(e) => failed.push((i, e.with_context("event", &event.id))),
            }
        }
        if messages.is_empty() {
            return Ok(WriteReport { failed });
        }
        let mut state = self.state.lock().await;
        let channel = self.ensure_channel(&mut state).await?;
        let outcome = publish_confirmed(
            self.client.url(),
            &channel,
            &messages,
            self.client.settings().operation_timeout,
        )
        .await;
        if let Some(e) = &outcome.channel_error {
            // The channel is unusable now (or stuck); the next write opens another, on the
            // same connection while that lives.
            if let Some(open) = state.as_mut() {
                open.channel = None;
            }
            if outcome.written() == 0 && failed.is_empty() {
                return Err(e.clone());
            }
        }
        for (position, result) in positions.into_iter().zip(outcome.results) {
            if let Err(e) = result {
                failed.push((position, e.with_context("event", &events[position].id)));
            }
        }
        failed.sort_by_key(|(i, _)| *i);
        Ok(WriteReport { failed })
    }
}
