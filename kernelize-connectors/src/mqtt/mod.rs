//! `mqtt-connector`: MQTT 3.1.1 publish and subscribe at QoS 0, 1 and 2, and an event
//! source (persistent sessions, manual acknowledgements) and sink for event pipelines.
//!
//! ## Client
//!
//! [`rumqttc`](https://crates.io/crates/rumqttc), async on tokio, pure Rust: MQTT 3.1.1 (and
//! 5), QoS 0/1/2, persistent sessions (`clean_session: false`), manual acknowledgements,
//! and an event loop that reconnects when it is polled again after an error. Its event loop
//! moves only while polled, so each connection gets a task of its own that polls it without
//! pause, pairs the packet ids it reports with the callers waiting for them, and reconnects
//! with backoff (the [`client`](MqttPublisher) docs say how confirmations are matched).
//! `paho-mqtt` was the alternative: the Eclipse client is mature and complete, but a binding
//! to the Paho C library — a C toolchain (and CMake, OpenSSL) at build time, `unsafe` FFI
//! underneath and callbacks on threads of its own — where rumqttc is plain Rust on the
//! runtime the SDK already uses. TLS (`mqtts://`) is not built in yet and is refused with a
//! clear error; MQTT 5 (headers as user properties, content types, message expiry) is not
//! used yet.
//!
//! ## Settings ([`MqttSettings`])
//!
//! | setting           | default              | meaning |
//! |-------------------|----------------------|---------|
//! | `url`             | —                    | `mqtt://[user:password@]host[:port][?client_id=ID]`; write the password as `${secret:NAME}` |
//! | `client_id`       | URL's, or generated  | the publishing connection's client id (`kernelize-` and 12 hex digits when absent) |
//! | `keep_alive`      | `"30s"`              | ping interval of an idle connection (at least 1s; `"0s"` for none) |
//! | `clean_session`   | `true`               | whether the publishing connection starts a fresh session on each connect |
//! | `max_packet_size` | 1 MiB                | the largest packet sent or accepted (at most 268,435,455 bytes) |
//! | `connect_timeout` | `"5s"`               | how long connecting (TCP and `CONNECT`/`CONNACK`) may take |
//! | `ack_timeout`     | `"30s"`              | how long a publish waits for `PUBACK`/`PUBCOMP`, and a source's acknowledgement to be written |
//!
//! The URL's password never appears in `Debug` output, serialized settings or error
//! messages ([`MqttUrl`]). Unknown settings are refused.
//!
//! ## Permissions
//!
//! `network` to the URL's host, checked at activation, at every call and when a source or
//! sink is opened; without it the operation fails with `permission denied` naming the host.
//!
//! ## Actions
//!
//! - `publish` `{topic, qos?, retain?}` → `{published, topic}`: the input is the body — JSON
//!   as its text, bytes as they are, records one JSON object per row (one message each),
//!   nothing as an empty body (with `retain`, that clears the topic's retained message). It
//!   returns once the broker confirmed every message: `PUBACK` at QoS 1, `PUBCOMP` at QoS 2,
//!   written to the socket at QoS 0.
//! - `subscribe` `{topics: [{filter, qos}], max_messages?, wait?}` →
//!   `{messages: [{topic, qos, retain, payload, base64, pkid}]}`: subscribes on a connection
//!   of its own (clean session), collects until `max_messages` (100) or `wait` (`"5s"`)
//!   and acknowledges what it collected. `payload` is the body's JSON when it parses, else
//!   base64 text with `base64: true`. Retained messages arrive first. For the command line
//!   and for looking; pipelines use the event source.
//!
//! ## Event source ([`MqttSource`], options [`MqttSourceOptions`])
//!
//! `{topics: [{filter, qos}], client_id, clean_session (false), content_type
//! ("application/octet-stream"), capacity (100)}`. Each source has its own connection with
//! manual acknowledgements. With `clean_session: false` (the default; it needs a
//! `client_id`) the broker keeps the session while the source is away: QoS 1 and 2 messages
//! published meanwhile are delivered when it connects again, and messages it had not
//! acknowledged come again flagged DUP.
//!
//! - Events: `id` is `"<count>-<packet id>"` (packet ids are reused, the count makes it
//!   unique within the source), `subject` the topic, `headers` `mqtt.qos`, `mqtt.retain`,
//!   `mqtt.dup` and `mqtt.packet_id`, `payload` bytes of `content_type` (MQTT 3.1.1 carries
//!   no content type), `key` none (no message id either), `attempt` 2 for a DUP delivery, 1
//!   otherwise, raised by each local retry.
//! - Settling: `ack` writes the `PUBACK` (QoS 1) or `PUBREC` (QoS 2) and returns once it is
//!   on the wire. MQTT has no negative acknowledgement: `reject` acknowledges too (the
//!   pipeline dead-lettered the message); `retry` leaves it unacknowledged with the broker
//!   and the source hands it out again after the delay (should the connection drop first,
//!   the broker sends it again itself, flagged DUP). A delivery dropped unsettled is handed
//!   out again at once. QoS 0 messages have nothing to settle.
//! - Settling after the delivery's connection was lost is a temporary error: the broker
//!   sends the message again on the resumed session. When the broker started a new session
//!   instead (a clean session, or a broker that lost its state), there is nothing left to
//!   acknowledge and settling succeeds.
//! - Reconnect: after a loss the task reconnects on its own with exponential backoff (100 ms
//!   to 5 s, with jitter) until the source is dropped, and subscribes again when the broker
//!   did not keep the session.
//! - Backpressure: once `capacity` messages wait in the buffer the task stops reading from
//!   the socket, and TCP holds the rest at the broker (Mosquitto does not hold back QoS 1
//!   messages a client has not acknowledged, so the broker's in-flight window is no
//!   bound). Acknowledgements do not wait for reading to resume: the task writes them to
//!   the socket itself, and a ping every `keep_alive / 2` while paused, so a pipeline that
//!   takes nothing for a while keeps its connection.
//!
//! ## Event sink ([`MqttSink`], options [`MqttSinkOptions`])
//!
//! `{topic?, qos (1), retain (false)}`: each event is published to `topic`, else to its
//! `subject`, on the plugin's connection; bytes as they are, JSON as its text, records one
//! message per row. An event counts as written once the broker confirmed all its messages;
//! the others are named in the `WriteReport` with their errors, and a batch none of whose
//! events was written fails as a whole (temporary while the broker is unreachable). MQTT
//! 3.1.1 carries neither headers nor a message id: an event's `headers` and `key` are not
//! sent and the broker does not de-duplicate, so a retried write may deliver twice.
//!
//! ## Limits and failures
//!
//! Messages are at most `max_packet_size` (a larger one is `invalid input`, a larger
//! incoming one drops the connection); topics and filters at most 65,535 bytes, at most
//! 100 filters a subscription; `subscribe` collects at most 10,000 messages for at most 5
//! minutes; a source buffers at most 10,000. A publisher holds at most 200 publishes at
//! once (rumqttc's in-flight window is 100); further callers wait for a place. An invalid
//! topic or filter is `invalid input` naming it; a refused subscription `permission
//! denied`; an unreachable broker a temporary `remote` error naming host and port; refused
//! credentials `config invalid`. While the publishing connection is down, publishes fail at
//! once with a temporary error, and those waiting for a confirmation when it drops fail
//! with a temporary error too (the message may or may not have been delivered).

mod actions;
mod client;
mod config;
mod sink;
mod source;

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use futures::future::join_all;
use kernelize_core::plugin::{
    ActionContext, ActionRouter, Call, Category, Handler, HealthReport, InitContext, Plugin,
    PluginMetadata,
};
use kernelize_core::{
    Error, ErrorKind, EventSink, EventSource, Payload, Permission, PermissionGuard, PluginFactory,
    Result,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use actions::{
    Publish, PublishConfig, Published, ReceivedMessage, Subscribe, SubscribeConfig, Subscribed,
};
pub use client::MqttPublisher;
pub use config::{
    DEFAULT_PORT, MAX_CLIENT_ID, MAX_FILTERS, MAX_PACKET_SIZE, MAX_TOPIC_BYTES, MqttSettings,
    MqttUrl, Qos, TopicFilter, check_client_id, check_filter, check_filters, check_topic,
    random_client_id,
};
pub use sink::{MqttSink, MqttSinkOptions, bodies_of};
pub use source::{MAX_CAPACITY, MqttSource, MqttSourceOptions};

/// The plugin's id.
pub const ID: &str = "mqtt-connector";

/// The longest a `subscribe` call collects (5 minutes).
pub const MAX_WAIT: Duration = Duration::from_secs(300);

static ROUTER: LazyLock<ActionRouter<MqttConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Publish>()
        .action::<Subscribe>()
});

/// The `mqtt-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(MqttConnector::new()))
}

/// The `mqtt-connector` plugin. Made by [`factory`] and connected by the manager's
/// `initialize`, or connected directly with [`MqttConnector::connect`].
#[derive(Debug, Default)]
pub struct MqttConnector {
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    settings: MqttSettings,
    publisher: MqttPublisher,
    permissions: PermissionGuard,
}

impl MqttConnector {
    /// A connector not yet connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `settings` and the network grant in `permissions` (each call's grants are
    /// checked too), then connects the publishing connection.
    pub async fn connect(settings: MqttSettings, permissions: &PermissionGuard) -> Result<Self> {
        settings.check()?;
        check_network(&settings.url, permissions)?;
        let publisher = MqttPublisher::connect(&settings).await?;
        Ok(MqttConnector {
            open: Some(Open {
                settings,
                publisher,
                permissions: permissions.clone(),
            }),
        })
    }

    /// The publishing connection, for Rust code.
    pub fn publisher(&self) -> Option<&MqttPublisher> {
        self.open.as_ref().map(|o| &o.publisher)
    }

    /// The connection, after checking the grants in `guard`.
    fn open_with(&self, guard: &PermissionGuard) -> Result<&Open> {
        let open = self.open.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "the mqtt-connector is not initialized",
            )
        })?;
        check_network(&open.settings.url, guard)?;
        Ok(open)
    }

    /// Opens an event source with `options` (see the module docs).
    pub async fn source(&self, options: MqttSourceOptions) -> Result<MqttSource> {
        let open = self.open_with(&self.granted()?)?;
        MqttSource::open(&open.settings, options).await
    }

    /// Opens an event sink with `options` on the plugin's connection (see the module docs).
    pub fn sink(&self, options: MqttSinkOptions) -> Result<MqttSink> {
        let open = self.open_with(&self.granted()?)?;
        MqttSink::new(open.publisher.clone(), options)
    }

    fn granted(&self) -> Result<PermissionGuard> {
        self.open
            .as_ref()
            .map(|o| o.permissions.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidState,
                    "the mqtt-connector is not initialized",
                )
            })
    }
}

/// Checks the grant of network access to the broker's host.
fn check_network(url: &MqttUrl, guard: &PermissionGuard) -> Result<()> {
    crate::network::check_network(
        &url.permission(),
        url.host(),
        url.redacted(),
        guard,
        "the MQTT broker",
        "mqtt",
    )
}

/// Reads a source's or sink's options.
fn options_of<T: DeserializeOwned>(options: Value, role: &str) -> Result<T> {
    serde_json::from_value(options).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("the mqtt-connector's {role} options are not valid: {e}"),
        )
    })
}

/// Runs `work` until it finishes, the call is cancelled or its deadline passes.
async fn within_call<T>(ctx: &ActionContext, work: impl Future<Output = Result<T>>) -> Result<T> {
    ctx.check_alive()?;
    let deadline = ctx.deadline.map(tokio::time::Instant::from_std);
    tokio::select! {
        out = work => out,
        () = ctx.cancel.cancelled() => Err(Error::new(ErrorKind::Cancelled, "the call was cancelled")),
        () = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        } => Err(Error::new(ErrorKind::Timeout, "the call passed its deadline")),
    }
}

#[async_trait]
impl Plugin for MqttConnector {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(ID, "MQTT", semver::Version::new(0, 1, 0), Category::Connector)
            .description(
                "Publishes and subscribes to MQTT topics at QoS 0, 1 and 2, and is an event source (persistent sessions, manual acknowledgements) and sink for event pipelines.",
            )
            .author("Kernelize")
            .needs(Permission::Network { host: "*".into() })
            .config_type::<MqttSettings>()
            .actions(ROUTER.descriptors())
            .event_source::<MqttSourceOptions>()
            .event_sink::<MqttSinkOptions>()
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: MqttSettings = ctx.config.parse()?;
        *self = MqttConnector::connect(settings, &ctx.permissions)
            .await
            .map_err(|e| ctx.config.redactor().redact_error(e))?;
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }

    async fn shutdown(&self) -> Result<()> {
        if let Some(open) = &self.open {
            open.publisher.close();
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        match &self.open {
            None => HealthReport::unhealthy("not initialized"),
            Some(open) if open.publisher.is_connected() => HealthReport::healthy(),
            Some(_) => HealthReport::unhealthy("not connected to the broker; reconnecting"),
        }
    }

    async fn open_source(&self, options: Value) -> Result<Box<dyn EventSource>> {
        let options: MqttSourceOptions = options_of(options, "source")?;
        Ok(Box::new(self.source(options).await?))
    }

    async fn open_sink(&self, options: Value) -> Result<Arc<dyn EventSink>> {
        let options: MqttSinkOptions = options_of(options, "sink")?;
        Ok(Arc::new(self.sink(options)?))
    }
}

#[async_trait]
impl Handler<Publish> for MqttConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: PublishConfig,
        input: Payload,
    ) -> Result<Published> {
        let open = self.open_with(&ctx.permissions)?;
        check_topic(&config.topic)?;
        let bodies = bodies_of(&input)?;
        let count = bodies.len();
        let publisher = &open.publisher;
        within_call(&ctx, async {
            join_all(
                bodies
                    .into_iter()
                    .map(|body| publisher.publish(&config.topic, config.qos, config.retain, body)),
            )
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()
        })
        .await?;
        Ok(Published {
            published: count,
            topic: config.topic,
        })
    }
}

#[async_trait]
impl Handler<Subscribe> for MqttConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SubscribeConfig,
        _input: Payload,
    ) -> Result<Subscribed> {
        let open = self.open_with(&ctx.permissions)?;
        check_filters(&config.topics)?;
        if !(1..=MAX_CAPACITY).contains(&config.max_messages) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`max_messages` is between 1 and {MAX_CAPACITY}"),
            ));
        }
        if config.wait > MAX_WAIT {
            return Err(Error::new(ErrorKind::InvalidInput, "`wait` is at most 5m"));
        }
        let options = MqttSourceOptions {
            topics: config.topics,
            client_id: None,
            clean_session: true,
            content_type: kernelize_core::payload::MEDIA_OCTET_STREAM.to_string(),
            capacity: config.max_messages,
        };
        let mut source = within_call(&ctx, MqttSource::open(&open.settings, options)).await?;
        // Stop collecting early enough to acknowledge before the call's deadline.
        let mut until = Instant::now() + config.wait;
        if let Some(deadline) = ctx.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            until = until.min(Instant::now() + left.saturating_sub(left / 4));
        }
        let until = tokio::time::Instant::from_std(until);
        let mut deliveries = Vec::new();
        while deliveries.len() < config.max_messages {
            let next = tokio::select! {
                next = source.receive(&ctx.cancel) => next,
                () = tokio::time::sleep_until(until) => break,
            };
            match next? {
                Some(delivery) => deliveries.push(delivery),
                None => break,
            }
        }
        ctx.check_alive()?;
        let mut messages = Vec::with_capacity(deliveries.len());
        let mut acks = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            messages.push(message_of(&delivery.event));
            acks.push(delivery.ack.ack());
        }
        within_call(&ctx, async {
            join_all(acks)
                .await
                .into_iter()
                .collect::<Result<Vec<()>>>()
        })
        .await?;
        source.close().await;
        Ok(Subscribed { messages })
    }
}

/// A collected event as `subscribe` returns it.
fn message_of(event: &kernelize_core::Event) -> ReceivedMessage {
    let header = |name: &str| event.headers.get(name).map(String::as_str);
    let body: &[u8] = match &event.payload {
        Payload::Bytes(blob) => &blob.data,
        _ => &[],
    };
    let (payload, base64) = match serde_json::from_slice::<Value>(body) {
        Ok(value) => (value, false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    ReceivedMessage {
        topic: event.subject.clone().unwrap_or_default(),
        qos: header("mqtt.qos")
            .and_then(|q| q.parse::<u64>().ok())
            .and_then(|q| Qos::from_level(q).ok())
            .unwrap_or_default(),
        retain: header("mqtt.retain") == Some("true"),
        payload,
        base64,
        pkid: header("mqtt.packet_id")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
    }
}
