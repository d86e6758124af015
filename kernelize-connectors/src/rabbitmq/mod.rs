//! `rabbitmq-connector`: RabbitMQ over AMQP 0-9-1 — declaring exchanges, queues and
//! bindings (dead-lettering included), publishing with publisher confirms, reading and
//! inspecting queues, and an event source and sink for event pipelines.
//!
//! ## Client
//!
//! [`lapin`](https://crates.io/crates/lapin) 4, the most used AMQP 0-9-1 client for Rust,
//! on tokio (its `tokio` runtime feature; lapin 4 reaches the runtime through `async-rs`,
//! so no executor or reactor adapter crates are needed). Every publish returns a future of
//! its own confirm that carries the message the broker returned, if it did, so a batch's
//! failures are known message by message without bookkeeping of delivery tags; a channel
//! error poisons exactly the acknowledgement handles of that channel, which is what a
//! source needs to refuse settling deliveries of a lost connection. TLS (`amqps://`) goes
//! through rustls with the system's root certificates. Its cost: each connection runs its
//! I/O loop on an OS thread of its own (here: one for the actions, one per open source and
//! per open sink). TLS through a broker is not covered by the tests here (the local broker
//! speaks plain AMQP). lapin's own automatic recovery is not used: the source reconnects
//! itself (below), so that the rule for deliveries of the old connection is ours.
//!
//! [`amqprs`](https://crates.io/crates/amqprs) was the alternative: tokio-native (no extra
//! thread) and with a simpler API, but with a much smaller user base, and publisher
//! confirms and returns arrive through channel callbacks (`publish_ack`, `publish_nack`,
//! `publish_return`), so telling which message of a batch failed would mean matching
//! delivery tags and returns by hand; rejected for that.
//!
//! ## Settings ([`RabbitSettings`])
//!
//! | setting               | default            | meaning |
//! |-----------------------|--------------------|---------|
//! | `url`                 | —                  | `amqp://user:password@host:port/vhost` (`amqps://` for TLS); write the password as `${secret:NAME}` |
//! | `connection_name`     | `kernelize-<hex>`  | the client-provided connection name the broker shows; sources add ` source <queue>`, sinks ` sink` |
//! | `connect_timeout`     | `"10s"`            | how long opening a connection (TCP, TLS, handshake) may take |
//! | `operation_timeout`   | `"30s"`            | how long one broker operation may take: a declare, a get, the confirms of one publish or sink write |
//! | `reconnect_max_delay` | `"10s"`            | the longest wait between a source's reconnection attempts (from 100 ms, doubling, with jitter) |
//! | `max_get_bytes`       | 64 MiB             | the most body bytes one `get` returns |
//!
//! The vhost is the URL's percent-decoded path; `amqp://host` and `amqp://host/` both mean
//! `/`. lapin's query parameters (`heartbeat`, `frame_max`, `channel_max`,
//! `connection_timeout`, `auth_mechanism`) are honoured. The URL's password never appears in
//! `Debug` output, serialized settings or error messages ([`AmqpUrl`]). Unknown settings
//! are refused.
//!
//! ## Permissions
//!
//! `network` to the URL's host, checked at activation, at every call and when a source or
//! sink opens; without it the call fails with `permission denied` naming the host.
//!
//! ## Actions
//!
//! Each action runs on a channel of its own on the plugin's shared connection, which is
//! opened again when it was lost.
//!
//! - `declare` `{exchanges, queues, bindings}` → `{exchanges, queues: [{queue, messages,
//!   consumers}], bindings}`. Exchanges `{name, kind: direct|topic|fanout|headers, durable,
//!   auto_delete, internal, arguments}`, then queues `{name, durable, exclusive,
//!   auto_delete, queue_type: classic|quorum|stream, dead_letter_exchange,
//!   dead_letter_routing_key, message_ttl ("30s"), max_length, arguments}`, then bindings
//!   `{queue, exchange, routing_key, arguments}`, in order. `durable` is true when absent.
//!   The typed queue settings become `x-queue-type`, `x-dead-letter-exchange`,
//!   `x-dead-letter-routing-key`, `x-message-ttl` and `x-max-length`; giving one also in
//!   `arguments` is refused. Declaring what exists with the same settings is a no-op; with
//!   other settings the broker answers `PRECONDITION_FAILED`, a `config invalid` error
//!   carrying the broker's text (`inequivalent arg 'durable' ...`) and `amqp_code: 406`.
//!   An exclusive queue belongs to the plugin's shared connection (a source, having its own
//!   connection, cannot consume it: use the source's `declare`).
//! - `publish` `{exchange, routing_key, persistent, headers, message_id, content_type,
//!   mandatory}` → `{published, exchange, routing_key}`. The input is the body: JSON is one
//!   message (`application/json`), except an array, which is one message per item; bytes
//!   are one message with their media type; records are one JSON object message per row.
//!   The channel is in confirm mode: every message is sent, then every confirm awaited. A
//!   message the broker nacks, or returns as unroutable (with `mandatory: true`), fails;
//!   when any fails the call fails, naming how many were published and which failed (the
//!   others stay published: repeating the call publishes them again).
//! - `get` `{queue, count, ack}` → `{messages: [{delivery_tag, exchange, routing_key,
//!   redelivered, message_id, content_type, correlation_id, timestamp, persistent,
//!   headers, body, body_base64}], remaining}`: up to `count` `basic.get`s on one channel,
//!   then one `basic.ack` (multiple) for all of them, or with `ack: false` one `basic.nack`
//!   with requeue — a peek; the messages stay in the queue, marked redelivered. A delivery
//!   tag is only good on its channel, which closes with the call, so a later call cannot
//!   settle them one by one: consume through the event source for that. The body is parsed
//!   JSON for JSON content types, text when UTF-8, else base64 in `body_base64`. Reading
//!   stops early at `max_get_bytes` of bodies; the message that would pass it is put back.
//! - `purge` `{queue}` → `{purged}`; `delete_queue` `{queue, if_unused, if_empty}` →
//!   `{messages}`; `delete_exchange` `{exchange, if_unused}` → `{exchange}`.
//! - `queue_info` `{queue}` → `{queue, messages, consumers}` (a passive declare: `messages`
//!   counts ready messages, not those delivered and unacknowledged); `not found` when the
//!   queue does not exist.
//!
//! ## Event source ([`SourceOptions`], [`RabbitSource`])
//!
//! `{queue, prefetch, declare, consumer_tag, content_type}`: a `basic.consume` with manual
//! acknowledgements on a connection of its own, with `basic.qos(prefetch)` (100 when
//! absent, at most 10,000), so at most `prefetch` deliveries are unsettled or buffered at
//! a time. `declare` (queue settings as in `declare`) declares the queue on every connect.
//!
//! - Each message is an event: `id` `<connection>-<delivery tag>` (the number of the
//!   connection the source opened, so ids stay unique across reconnects), `key` its
//!   `message_id`, `subject` the queue, `payload` its body as bytes with its `content_type`
//!   property (else the source's `content_type`, `application/octet-stream` when absent),
//!   `headers` its application headers by name (as text; tables and arrays as JSON text,
//!   `x-death` too) and its properties, exchange, routing key and redelivered flag as
//!   `rabbitmq.<name>`. `attempt` is the quorum queue's `x-delivery-count` plus one when
//!   present, else 2 for a redelivered message and 1 otherwise (classic queues only know
//!   "redelivered", not how often).
//! - Settling: ack → `basic.ack`; retry → `basic.nack` with requeue. RabbitMQ has no delayed
//!   requeue: a retry with a delay holds the delivery (and its prefetch place) that long,
//!   at most 60 s, then requeues it, and `retry` returns at once. Reject →
//!   `basic.reject` without requeue, which dead-letters the message to the queue's
//!   dead-letter exchange when it has one (with an `x-death` header) and drops it
//!   otherwise. A handle dropped unsettled requeues the delivery at once.
//! - Connection loss: `receive` opens a new connection and consumes again, waiting 100 ms,
//!   then longer after each failed attempt up to `reconnect_max_delay`, until its token is
//!   cancelled or the plugin shuts down. Errors retrying cannot mend (the queue is gone,
//!   access refused) are returned; the next `receive` tries again. Settling a delivery of
//!   the lost connection is a temporary `remote` error: the broker has put the message
//!   back and delivers it again, so nothing unacknowledged is lost, and nothing
//!   acknowledged comes back. An acknowledgement sent just before the loss may not have
//!   reached the broker: delivery is at least once. Deliveries the source had buffered
//!   when the connection broke are not handed out (they cannot be settled; the broker
//!   delivers them again). A delivery held unsettled longer than the broker's
//!   `consumer_timeout` (30 minutes by default) makes the broker close the channel: the
//!   source reconnects, and the message comes again.
//!
//! ## Event sink ([`SinkOptions`], [`RabbitSink`])
//!
//! `{exchange, routing_key, persistent, mandatory}`: a connection of its own and a channel
//! in confirm mode; the exchange must exist when the sink opens. Each event is one message:
//! `Payload::Bytes` as its bytes with the media type as `content_type`, `Payload::Json`
//! serialized (`application/json`), `Payload::Empty` as an empty body; records are refused
//! (a failed event: split them into one event per row). The routing key is the sink's
//! `routing_key`, else the event's `subject`; `message_id` is the event's `key`; the
//! event's headers become text headers, except the `rabbitmq.` ones of a source's delivery.
//! `mandatory` is true when absent: an event no queue takes fails rather than vanishing.
//! A write publishes the whole batch and then waits for every confirm; each nacked,
//! returned or unconfirmed event is reported in the [`WriteReport`](kernelize_core::WriteReport). The write fails as a
//! whole (temporary when the broker is unreachable) only when nothing was written because
//! the connection or channel was down; the next write reconnects.
//!
//! ## Limits and failures
//!
//! `get` reads at most 10,000 messages and `max_get_bytes` of bodies; `publish` and
//! `declare` take at most 10,000 messages or entries. Names, routing keys, header names
//! and short properties longer than AMQP's 255 bytes are refused before anything is sent.
//! Every operation is bounded by `operation_timeout` and the call's deadline and
//! cancellation. Broker replies map to kinds: `ACCESS_REFUSED` → `permission denied`
//! (wrong user or password when connecting), `NOT_FOUND` → `not found`,
//! `PRECONDITION_FAILED` → `config invalid` for declares and `invalid input` otherwise,
//! `RESOURCE_LOCKED` → `invalid state`, `CONNECTION_FORCED` and lost connections →
//! temporary `remote` errors; the reply code is in the `amqp_code` context. Shutting the
//! plugin down closes its connection, ends its sources and makes its sinks refuse writes.

mod actions;
mod client;
mod config;
mod fields;
mod publisher;
mod sink;
mod source;
mod topology;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use base64::Engine as _;
use kernelize_core::event::{EventSink, EventSource};
use kernelize_core::payload::MEDIA_JSON;
use kernelize_core::plugin::{
    ActionContext, ActionRouter, Call, Category, Handler, HealthReport, InitContext, Plugin,
    PluginMetadata,
};
use kernelize_core::{
    Error, ErrorKind, Payload, Permission, PermissionGuard, PluginFactory, Result,
};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use serde_json::Value;

pub use actions::{
    Declare, DeclareConfig, Declared, DeleteExchange, DeleteExchangeConfig, DeleteQueue,
    DeleteQueueConfig, ExchangeDeleted, Get, GetConfig, Got, Publish, PublishConfig, Published,
    Purge, PurgeConfig, Purged, QueueDeleted, QueueInfoAction, QueueInfoConfig, ReceivedMessage,
};
pub use client::{AMQP_CODE, RabbitClient};
pub use config::{
    AmqpUrl, DEFAULT_PORT, DEFAULT_TLS_PORT, MAX_BATCH, MAX_PREFETCH, MAX_RETRY_DELAY,
    RabbitSettings,
};
pub use fields::PROPERTY_PREFIX;
pub use sink::{RabbitSink, SinkOptions};
pub use source::{RabbitSource, SourceOptions};
pub use topology::{BindingSpec, ExchangeSpec, ExchangeType, QueueInfo, QueueSpec, QueueType};

use client::{short, within_call};
use publisher::{OutgoingMessage, message_properties, publish_confirmed};

/// The plugin's id.
pub const ID: &str = "rabbitmq-connector";

static ROUTER: LazyLock<ActionRouter<RabbitConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Declare>()
        .action::<Publish>()
        .action::<Get>()
        .action::<Purge>()
        .action::<DeleteQueue>()
        .action::<DeleteExchange>()
        .action::<QueueInfoAction>()
});

/// The `rabbitmq-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(RabbitConnector::new()))
}

/// The `rabbitmq-connector` plugin. Made by [`factory`] and connected by the manager's
/// `initialize`, or connected directly with [`RabbitConnector::connect`].
#[derive(Debug, Default)]
pub struct RabbitConnector {
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    client: RabbitClient,
    /// The grants of activation, for opening sources and sinks (calls bring their own).
    permissions: PermissionGuard,
}

impl RabbitConnector {
    /// A connector not yet connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `settings` and the network grant in `permissions` (each call's grants are
    /// checked too), then connects.
    pub async fn connect(settings: RabbitSettings, permissions: &PermissionGuard) -> Result<Self> {
        settings.check()?;
        check_network(&settings.url, permissions)?;
        let client = RabbitClient::connect(settings).await?;
        Ok(RabbitConnector {
            open: Some(Open {
                client,
                permissions: permissions.clone(),
            }),
        })
    }

    /// The client, once connected.
    pub fn client(&self) -> Option<&RabbitClient> {
        self.open.as_ref().map(|o| &o.client)
    }

    /// Opens an event source on the plugin's broker (as [`Plugin::open_source`], typed).
    pub async fn source(&self, options: SourceOptions) -> Result<RabbitSource> {
        let open = self.opened(None)?;
        RabbitSource::open(open.client.clone(), options).await
    }

    /// Opens an event sink on the plugin's broker (as [`Plugin::open_sink`], typed).
    pub async fn sink(&self, options: SinkOptions) -> Result<RabbitSink> {
        let open = self.opened(None)?;
        RabbitSink::open(open.client.clone(), options).await
    }

    /// The connection, after checking the grants of a call (or of activation).
    fn opened(&self, call: Option<&ActionContext>) -> Result<&Open> {
        let open = self.open.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "the rabbitmq-connector is not initialized",
            )
        })?;
        let guard = call.map_or(&open.permissions, |ctx| &ctx.permissions);
        check_network(open.client.url(), guard)?;
        Ok(open)
    }
}

/// Checks the grant of network access to the broker's host.
fn check_network(url: &AmqpUrl, guard: &PermissionGuard) -> Result<()> {
    crate::network::check_network(
        &url.permission(),
        url.host(),
        url.redacted(),
        guard,
        "the RabbitMQ broker",
        "rabbitmq",
    )
}

/// Parses event source or sink options, as a `config invalid` error naming the role.
fn parse_options<T: serde::de::DeserializeOwned>(role: &str, options: Value) -> Result<T> {
    serde_json::from_value(options).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("invalid rabbitmq {role} options: {e}"),
        )
    })
}

#[async_trait]
impl Plugin for RabbitConnector {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(ID, "RabbitMQ", semver::Version::new(0, 1, 0), Category::Connector)
            .description(
                "Declares RabbitMQ exchanges, queues (with dead-lettering) and bindings, publishes with publisher confirms, reads and inspects queues; an event source (manual acks, prefetch, reconnection) and sink (confirms, per-message failures).",
            )
            .author("Kernelize")
            .needs(Permission::Network { host: "*".into() })
            .config_type::<RabbitSettings>()
            .actions(ROUTER.descriptors())
            .event_source::<SourceOptions>()
            .event_sink::<SinkOptions>()
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: RabbitSettings = ctx.config.parse()?;
        *self = RabbitConnector::connect(settings, &ctx.permissions)
            .await
            .map_err(|e| ctx.config.redactor().redact_error(e))?;
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }

    async fn shutdown(&self) -> Result<()> {
        if let Some(open) = &self.open {
            open.client.close().await;
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        match &self.open {
            None => HealthReport::unhealthy("not initialized"),
            Some(open) => match open.client.ping().await {
                Ok(()) => HealthReport::healthy(),
                Err(e) => HealthReport::unhealthy(e.message().to_string()),
            },
        }
    }

    async fn open_source(&self, options: Value) -> Result<Box<dyn EventSource>> {
        let options: SourceOptions = parse_options("source", options)?;
        Ok(Box::new(self.source(options).await?))
    }

    async fn open_sink(&self, options: Value) -> Result<Arc<dyn EventSink>> {
        let options: SinkOptions = parse_options("sink", options)?;
        Ok(Arc::new(self.sink(options).await?))
    }
}

#[async_trait]
impl Handler<Declare> for RabbitConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DeclareConfig,
        _input: Payload,
    ) -> Result<Declared> {
        let client = &self.opened(Some(&ctx))?.client;
        let entries = config.exchanges.len() + config.queues.len() + config.bindings.len();
        if entries > MAX_BATCH {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`declare` names {entries} entries; at most {MAX_BATCH} a call"),
            ));
        }
        within_call(&ctx, async {
            let channel = client.channel().await?;
            let mut declared = Declared {
                exchanges: Vec::with_capacity(config.exchanges.len()),
                queues: Vec::with_capacity(config.queues.len()),
                bindings: 0,
            };
            for spec in &config.exchanges {
                topology::declare_exchange(client, &channel, spec).await?;
                declared.exchanges.push(spec.name.clone());
            }
            for spec in &config.queues {
                declared
                    .queues
                    .push(topology::declare_queue(client, &channel, spec).await?);
            }
            for spec in &config.bindings {
                topology::declare_binding(client, &channel, spec).await?;
                declared.bindings += 1;
            }
            close_channel(client, channel).await;
            Ok(declared)
        })
        .await
    }
}

/// The bodies and content type of a `publish` input.
fn bodies_of(input: Payload) -> Result<(Vec<bytes::Bytes>, Option<String>)> {
    let json_bodies = |items: Vec<Value>| -> Result<Vec<bytes::Bytes>> {
        items
            .iter()
            .map(|item| Ok(bytes::Bytes::from(serde_json::to_vec(item)?)))
            .collect()
    };
    match input {
        Payload::Empty => Err(Error::new(
            ErrorKind::InvalidInput,
            "nothing to publish: give an input (JSON, bytes or records)",
        )),
        Payload::Json(Value::Array(items)) => {
            Ok((json_bodies(items)?, Some(MEDIA_JSON.to_string())))
        }
        Payload::Json(value) => Ok((
            vec![bytes::Bytes::from(serde_json::to_vec(&value)?)],
            Some(MEDIA_JSON.to_string()),
        )),
        Payload::Bytes(blob) => Ok((vec![blob.data], Some(blob.media_type))),
        Payload::Records(records) => Ok((
            json_bodies(records.to_json_rows()?)?,
            Some(MEDIA_JSON.to_string()),
        )),
    }
}

#[async_trait]
impl Handler<Publish> for RabbitConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: PublishConfig,
        input: Payload,
    ) -> Result<Published> {
        let client = &self.opened(Some(&ctx))?.client;
        let (bodies, input_type) = bodies_of(input)?;
        if bodies.len() > MAX_BATCH {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the input makes {} messages; `publish` takes at most {MAX_BATCH} a call",
                    bodies.len()
                ),
            ));
        }
        let headers = fields::field_table(&config.headers)?;
        let properties = message_properties(
            config.content_type.as_deref().or(input_type.as_deref()),
            config.message_id.as_deref(),
            headers,
            config.persistent,
        )?;
        let exchange = short("`exchange`", &config.exchange)?;
        let routing_key = short("`routing_key`", &config.routing_key)?;
        let messages: Vec<OutgoingMessage> = bodies
            .into_iter()
            .map(|body| OutgoingMessage {
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
                mandatory: config.mandatory,
                body,
                properties: properties.clone(),
            })
            .collect();
        let outcome = within_call(&ctx, async {
            let channel = client.channel().await?;
            client
                .timed(
                    "turn on publisher confirms",
                    channel.confirm_select(ConfirmSelectOptions::default()),
                )
                .await?;
            let outcome = publish_confirmed(
                client.url(),
                &channel,
                &messages,
                client.settings().operation_timeout,
            )
            .await;
            if outcome.channel_error.is_none() {
                close_channel(client, channel).await;
            }
            Ok(outcome)
        })
        .await?;
        let published = outcome.written();
        let total = outcome.results.len();
        let failures: Vec<(usize, Error)> = outcome
            .results
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.err().map(|e| (i, e)))
            .collect();
        let Some((first_index, first)) = failures.first() else {
            return Ok(Published {
                published,
                exchange: config.exchange,
                routing_key: config.routing_key,
            });
        };
        let failed_list: Vec<String> = failures
            .iter()
            .take(20)
            .map(|(i, _)| i.to_string())
            .collect();
        let mut error = Error::new(
            first.kind(),
            format!(
                "published {published} of {total} messages; message {first_index}: {}",
                first.message()
            ),
        )
        .with_context("published", published)
        .with_context("failed", failed_list.join(","));
        for (key, value) in first.context() {
            error = error.with_context(key, value);
        }
        // Repeating a partly published call publishes the rest again.
        Err(if published == 0 && first.is_temporary() {
            error.set_temporary()
        } else {
            error.set_permanent()
        })
    }
}

/// Closes a channel the action is done with, so that what it sent (an ack) reaches the
/// broker before the call returns; a failure only means the broker closes it.
async fn close_channel(client: &RabbitClient, channel: lapin::Channel) {
    if let Err(e) = client
        .timed("close the channel", channel.close(200, "OK".into()))
        .await
    {
        tracing::debug!(error = %e, "closing a RabbitMQ channel failed");
    }
}

/// A message read by `get`, as output.
fn received_message(delivery: lapin::message::Delivery) -> ReceivedMessage {
    let properties = &delivery.properties;
    let content_type = properties
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_string());
    let is_json = content_type.as_deref().is_some_and(|c| {
        let essence = c.split(';').next().unwrap_or("").trim();
        essence == MEDIA_JSON || essence.ends_with("+json")
    });
    let parsed = is_json
        .then(|| serde_json::from_slice::<Value>(&delivery.data).ok())
        .flatten();
    let (body, body_base64) = match parsed {
        Some(value) => (value, None),
        None => match std::str::from_utf8(&delivery.data) {
            Ok(text) => (Value::String(text.to_string()), None),
            Err(_) => (
                Value::Null,
                Some(base64::engine::general_purpose::STANDARD.encode(&delivery.data)),
            ),
        },
    };
    ReceivedMessage {
        delivery_tag: delivery.delivery_tag,
        exchange: delivery.exchange.as_str().to_string(),
        routing_key: delivery.routing_key.as_str().to_string(),
        redelivered: delivery.redelivered,
        message_id: properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string()),
        content_type,
        correlation_id: properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_string()),
        timestamp: *properties.timestamp(),
        persistent: *properties.delivery_mode() == Some(2),
        headers: properties
            .headers()
            .as_ref()
            .map(fields::json_object)
            .unwrap_or_default(),
        body,
        body_base64,
    }
}

#[async_trait]
impl Handler<Get> for RabbitConnector {
    async fn handle(&self, ctx: ActionContext, config: GetConfig, _input: Payload) -> Result<Got> {
        let client = &self.opened(Some(&ctx))?.client;
        if config.count == 0 || config.count > MAX_BATCH {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`count` must be 1 to {MAX_BATCH}; it is {}", config.count),
            ));
        }
        let queue = short("`queue`", &config.queue)?;
        let max_bytes = client.settings().max_get_bytes;
        within_call(&ctx, async {
            let channel = client.channel().await?;
            let mut got = Got {
                messages: Vec::new(),
                remaining: 0,
            };
            let mut bytes = 0usize;
            let mut last_taken = None;
            while got.messages.len() < config.count {
                let next = client
                    .timed(
                        "get a message",
                        channel.basic_get(queue.clone(), BasicGetOptions { no_ack: false }),
                    )
                    .await
                    .map_err(|e| e.with_context("queue", &config.queue))?;
                let Some(message) = next else {
                    got.remaining = 0;
                    break;
                };
                got.remaining = message.message_count;
                let size = message.delivery.data.len();
                if !got.messages.is_empty() && bytes.saturating_add(size) > max_bytes {
                    // Past the byte bound: put this one back and stop.
                    let requeue = BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    };
                    client
                        .timed(
                            "put a message back",
                            channel.basic_nack(message.delivery.delivery_tag, requeue),
                        )
                        .await?;
                    got.remaining = got.remaining.saturating_add(1);
                    break;
                }
                bytes += size;
                last_taken = Some(message.delivery.delivery_tag);
                got.messages.push(received_message(message.delivery));
            }
            if let Some(tag) = last_taken {
                if config.ack {
                    client
                        .timed(
                            "acknowledge the messages",
                            channel.basic_ack(tag, BasicAckOptions { multiple: true }),
                        )
                        .await?;
                } else {
                    let requeue = BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    };
                    client
                        .timed("put the messages back", channel.basic_nack(tag, requeue))
                        .await?;
                    got.remaining = got
                        .remaining
                        .saturating_add(u32::try_from(got.messages.len()).unwrap_or(u32::MAX));
                }
            }
            close_channel(client, channel).await;
            Ok(got)
        })
        .await
    }
}

#[async_trait]
impl Handler<Purge> for RabbitConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: PurgeConfig,
        _input: Payload,
    ) -> Result<Purged> {
        let client = &self.opened(Some(&ctx))?.client;
        let queue = short("`queue`", &config.queue)?;
        within_call(&ctx, async {
            let channel = client.channel().await?;
            let purged = client
                .timed(
                    "purge the queue",
                    channel.queue_purge(queue, QueuePurgeOptions::default()),
                )
                .await
                .map_err(|e| e.with_context("queue", &config.queue))?;
            close_channel(client, channel).await;
            Ok(Purged { purged })
        })
        .await
    }
}

#[async_trait]
impl Handler<DeleteQueue> for RabbitConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DeleteQueueConfig,
        _input: Payload,
    ) -> Result<QueueDeleted> {
        let client = &self.opened(Some(&ctx))?.client;
        let queue = short("`queue`", &config.queue)?;
        let options = QueueDeleteOptions {
            if_unused: config.if_unused,
            if_empty: config.if_empty,
            nowait: false,
        };
        within_call(&ctx, async {
            let channel = client.channel().await?;
            let messages = client
                .timed("delete the queue", channel.queue_delete(queue, options))
                .await
                .map_err(|e| e.with_context("queue", &config.queue))?;
            close_channel(client, channel).await;
            Ok(QueueDeleted { messages })
        })
        .await
    }
}

#[async_trait]
impl Handler<DeleteExchange> for RabbitConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DeleteExchangeConfig,
        _input: Payload,
    ) -> Result<ExchangeDeleted> {
        let client = &self.opened(Some(&ctx))?.client;
        if config.exchange.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the default exchange `\"\"` cannot be deleted",
            ));
        }
        let exchange = short("`exchange`", &config.exchange)?;
        let options = ExchangeDeleteOptions {
            if_unused: config.if_unused,
            nowait: false,
        };
        within_call(&ctx, async {
            let channel = client.channel().await?;
            client
                .timed(
                    "delete the exchange",
                    channel.exchange_delete(exchange, options),
                )
                .await
                .map_err(|e| e.with_context("exchange", &config.exchange))?;
            close_channel(client, channel).await;
            Ok(ExchangeDeleted {
                exchange: config.exchange.clone(),
            })
        })
        .await
    }
}

#[async_trait]
impl Handler<QueueInfoAction> for RabbitConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: QueueInfoConfig,
        _input: Payload,
    ) -> Result<QueueInfo> {
        let client = &self.opened(Some(&ctx))?.client;
        within_call(&ctx, async {
            let channel = client.channel().await?;
            let info = topology::inspect_queue(client, &channel, &config.queue).await?;
            close_channel(client, channel).await;
            Ok(info)
        })
        .await
    }
}
