//! [`RabbitSource`]: a queue consumer with manual acknowledgements and a bounded prefetch,
//! as an [`EventSource`] that reconnects on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use kernelize_core::event::{AckHandle, Delivery, Event, EventSource, Settle, Settlement};
use kernelize_core::{Error, ErrorKind, Payload, Result};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Connection, Consumer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::client::{RabbitClient, short};
use super::config::{AmqpUrl, MAX_PREFETCH, MAX_RETRY_DELAY};
use super::fields::{attempt_of, event_headers};
use super::topology::{QueueSpec, declare_queue};

fn default_prefetch() -> u16 {
    100
}

fn default_content_type() -> String {
    kernelize_core::payload::MEDIA_OCTET_STREAM.to_string()
}

/// Options of a `rabbitmq-connector` event source (a pipeline's `source:` settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceOptions {
    /// The queue to consume.
    pub queue: String,
    /// The most deliveries the broker sends before some are settled (`basic.qos`; 1 to
    /// 10,000; 100 when absent). Nothing more is buffered.
    #[serde(default = "default_prefetch")]
    #[schemars(range(min = 1, max = 10000))]
    pub prefetch: u16,
    /// Declare the queue first (on every connect) with these settings; its `name` may be
    /// left out.
    #[serde(default)]
    pub declare: Option<QueueSpec>,
    /// The consumer tag the broker shows; the broker makes one up when absent.
    #[serde(default)]
    pub consumer_tag: Option<String>,
    /// The media type of bodies whose message has no `content_type` property
    /// (`application/octet-stream` when absent).
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

impl SourceOptions {
    /// Options for consuming `queue` with every default.
    pub fn new(queue: impl Into<String>) -> Self {
        SourceOptions {
            queue: queue.into(),
            prefetch: default_prefetch(),
            declare: None,
            consumer_tag: None,
            content_type: default_content_type(),
        }
    }

    /// Checks what the schema cannot.
    pub fn check(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        if self.queue.is_empty() {
            return invalid("the source needs a `queue`".into());
        }
        short("`queue`", &self.queue)?;
        if self.prefetch == 0 || self.prefetch > MAX_PREFETCH {
            return invalid(format!(
                "`prefetch` must be 1 to {MAX_PREFETCH}; it is {}",
                self.prefetch
            ));
        }
        if let Some(tag) = &self.consumer_tag {
            short("`consumer_tag`", tag)?;
        }
        if let Some(spec) = &self.declare
            && !spec.name.is_empty()
            && spec.name != self.queue
        {
            return invalid(format!(
                "`declare.name` is `{}` but the source consumes `{}`; leave the name out",
                spec.name, self.queue
            ));
        }
        Ok(())
    }
}

/// A consumer of one queue, as an [`EventSource`].
///
/// It has a connection of its own, named `<connection_name> source <queue>`, with one
/// channel whose prefetch is `prefetch`; deliveries are acknowledged manually. When the
/// connection is lost, [`EventSource::receive`] opens a new one (waiting longer after each
/// failed attempt, up to the settings' `reconnect_max_delay`) and consumes again, until
/// its cancellation token fires or the plugin shuts down. A failure that retrying cannot
/// mend (the queue does not exist, access refused) is returned instead; calling `receive`
/// again tries again.
pub struct RabbitSource {
    client: RabbitClient,
    options: SourceOptions,
    live: Option<Live>,
    /// How many connections this source opened; part of every event id.
    generation: u64,
    /// Failed connection attempts since the last success.
    failures: u32,
}

impl std::fmt::Debug for RabbitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSource")
            .field("url", self.client.url())
            .field("queue", &self.options.queue)
            .field("prefetch", &self.options.prefetch)
            .field("generation", &self.generation)
            .field("connected", &self.live.is_some())
            .finish()
    }
}

/// One connection's consumer.
struct Live {
    // Kept so the connection stays open; dropping it closes the connection.
    _connection: Connection,
    _channel: Channel,
    consumer: Consumer,
    /// False once this connection was given up: its deliveries cannot be settled.
    alive: Arc<AtomicBool>,
    opened: std::time::Instant,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

impl RabbitSource {
    /// Checks `options` and starts consuming (declaring the queue first when asked);
    /// fails when the first connection cannot be made.
    pub async fn open(client: RabbitClient, options: SourceOptions) -> Result<Self> {
        options.check()?;
        let mut source = RabbitSource {
            client,
            options,
            live: None,
            generation: 0,
            failures: 0,
        };
        let live = source.connect().await?;
        source.live = Some(live);
        Ok(source)
    }

    /// The options the source was opened with.
    pub fn options(&self) -> &SourceOptions {
        &self.options
    }

    /// How many connections the source has opened (1 until the first reconnection).
    pub fn connections_opened(&self) -> u64 {
        self.generation
    }

    async fn connect(&mut self) -> Result<Live> {
        let queue = &self.options.queue;
        let connection = self
            .client
            .open_connection(&format!("source {queue}"))
            .await?;
        let channel = self
            .client
            .timed("open a channel", connection.create_channel())
            .await?;
        if let Some(spec) = &self.options.declare {
            let mut spec = spec.clone();
            spec.name.clone_from(queue);
            declare_queue(&self.client, &channel, &spec).await?;
        }
        self.client
            .timed(
                "set the prefetch",
                channel.basic_qos(self.options.prefetch, BasicQosOptions { global: false }),
            )
            .await?;
        let tag = short(
            "`consumer_tag`",
            self.options.consumer_tag.as_deref().unwrap_or(""),
        )?;
        let consumer = self
            .client
            .timed(
                "start consuming",
                channel.basic_consume(
                    short("`queue`", queue)?,
                    tag,
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .map_err(|e| e.with_context("queue", queue))?;
        self.generation += 1;
        tracing::debug!(queue = %queue, generation = self.generation, "rabbitmq source consuming");
        Ok(Live {
            _connection: connection,
            _channel: channel,
            consumer,
            alive: Arc::new(AtomicBool::new(true)),
            opened: std::time::Instant::now(),
        })
    }

    /// Drops the current connection. One that ended soon after it opened counts as a
    /// failed attempt, so that a broker ending every consumer at once is not hammered.
    fn give_up_connection(&mut self) {
        if let Some(live) = self.live.take() {
            if live.opened.elapsed() < Duration::from_secs(5) {
                self.failures = self.failures.saturating_add(1);
            } else {
                self.failures = 0;
            }
        }
    }

    /// Connects, waiting first after a failed attempt; `None` when cancelled.
    async fn reconnect(&mut self, cancel: &CancellationToken) -> Result<Option<()>> {
        let closed = self.client.closed().clone();
        if self.failures > 0 {
            let wait = self.client.reconnect_delay(self.failures);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return Ok(None),
                () = closed.cancelled() => return Ok(None),
            }
        }
        let attempt = tokio::select! {
            attempt = self.connect() => attempt,
            () = cancel.cancelled() => return Ok(None),
            () = closed.cancelled() => return Ok(None),
        };
        match attempt {
            Ok(live) => {
                // `failures` is cleared once the connection proves itself (a delivery, or
                // five seconds of life), not by connecting alone.
                self.live = Some(live);
                Ok(Some(()))
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                if e.is_temporary() {
                    tracing::warn!(queue = %self.options.queue, failures = self.failures, error = %e, "rabbitmq source could not reconnect; trying again");
                    Ok(Some(()))
                } else {
                    Err(e)
                }
            }
        }
    }

    fn delivery(&self, delivery: lapin::message::Delivery, alive: &Arc<AtomicBool>) -> Delivery {
        let lapin::message::Delivery {
            delivery_tag,
            exchange,
            routing_key,
            redelivered,
            properties,
            data,
            acker,
        } = delivery;
        let id = format!("{}-{delivery_tag}", self.generation);
        let media_type = properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_else(|| self.options.content_type.clone());
        let mut event = Event::new(id.clone(), Payload::bytes(data, media_type))
            .with_subject(self.options.queue.clone());
        event.key = properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_string());
        event.attempt = attempt_of(&properties, redelivered);
        event.headers = event_headers(
            &properties,
            exchange.as_str(),
            routing_key.as_str(),
            redelivered,
        );
        let settle = RabbitAck {
            acker: Some(acker),
            alive: alive.clone(),
            url: self.client.url().clone(),
            timeout: self.client.settings().operation_timeout,
        };
        Delivery {
            event,
            ack: AckHandle::new(id, settle),
        }
    }
}

#[async_trait]
impl EventSource for RabbitSource {
    async fn receive(&mut self, cancel: &CancellationToken) -> Result<Option<Delivery>> {
        let closed = self.client.closed().clone();
        loop {
            if cancel.is_cancelled() || closed.is_cancelled() {
                return Ok(None);
            }
            let Some(live) = self.live.as_mut() else {
                if self.reconnect(cancel).await?.is_none() {
                    return Ok(None);
                }
                continue;
            };
            let next = tokio::select! {
                next = live.consumer.next() => next,
                () = cancel.cancelled() => return Ok(None),
                () = closed.cancelled() => return Ok(None),
            };
            match next {
                Some(Ok(delivery)) if delivery.acker.usable() => {
                    let alive = live.alive.clone();
                    self.failures = 0;
                    return Ok(Some(self.delivery(delivery, &alive)));
                }
                Some(Ok(_)) => {
                    // Buffered before its channel broke: it cannot be settled, and the
                    // broker delivers it again, so it is not handed out.
                }
                Some(Err(e)) => {
                    let e = self.client.error("consume", &e);
                    tracing::warn!(queue = %self.options.queue, error = %e, "rabbitmq source lost its connection; reconnecting");
                    self.give_up_connection();
                }
                None => {
                    // The broker cancelled the consumer (the queue was deleted) or the
                    // channel closed: start over on a new connection.
                    tracing::warn!(queue = %self.options.queue, "rabbitmq consumer ended; reconnecting");
                    self.give_up_connection();
                }
            }
        }
    }
}

/// Settles one delivery on the channel it came on.
struct RabbitAck {
    acker: Option<Acker>,
    alive: Arc<AtomicBool>,
    url: AmqpUrl,
    timeout: Duration,
}

impl RabbitAck {
    fn lost(&self) -> Error {
        Error::new(
            ErrorKind::Remote,
            "the connection this delivery came on was lost; RabbitMQ delivers the message again",
        )
        .with_context("rabbitmq", self.url.redacted())
        .set_temporary()
    }
}

/// Runs one settlement; `Ok(false)` when the channel was already gone.
async fn settle_with(
    acker: &Acker,
    settlement: Settlement,
    url: &AmqpUrl,
    timeout: Duration,
) -> Result<bool> {
    let doing = match settlement {
        Settlement::Ack => "acknowledge the delivery",
        Settlement::Retry { .. } => "requeue the delivery",
        Settlement::Reject => "reject the delivery",
    };
    let work = async {
        match settlement {
            Settlement::Ack => acker.ack(BasicAckOptions::default()).await,
            Settlement::Retry { .. } => {
                let requeue = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                acker.nack(requeue).await
            }
            Settlement::Reject => acker.reject(BasicRejectOptions { requeue: false }).await,
        }
    };
    super::client::timed(url, timeout, doing, work).await
}

#[async_trait]
impl Settle for RabbitAck {
    async fn settle(mut self: Box<Self>, settlement: Settlement) -> Result<()> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        if !self.alive.load(Ordering::SeqCst) || !acker.usable() {
            return Err(self.lost());
        }
        if let Settlement::Retry { delay: Some(delay) } = settlement
            && !delay.is_zero()
        {
            // RabbitMQ cannot requeue later: hold the delivery (and its prefetch place)
            // for the delay, then requeue it.
            let delay = delay.min(MAX_RETRY_DELAY);
            let (url, timeout, alive) = (self.url.clone(), self.timeout, self.alive.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if alive.load(Ordering::SeqCst)
                    && let Err(e) = settle_with(&acker, settlement, &url, timeout).await
                {
                    tracing::warn!(error = %e, "a delayed requeue failed; RabbitMQ delivers the message again once the connection closes");
                }
            });
            return Ok(());
        }
        match settle_with(&acker, settlement, &self.url, self.timeout).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.lost()),
            Err(e) if e.kind() == ErrorKind::Remote && e.is_temporary() => {
                Err(self.lost().with_context("cause", e.message()))
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for RabbitAck {
    fn drop(&mut self) {
        // Dropped unsettled: requeue it now rather than when the connection closes, so it
        // does not hold a prefetch place meanwhile.
        let Some(acker) = self.acker.take() else {
            return;
        };
        if !self.alive.load(Ordering::SeqCst) || !acker.usable() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (url, timeout) = (self.url.clone(), self.timeout);
            runtime.spawn(async move {
                let retry = Settlement::Retry { delay: None };
                if let Err(e) = settle_with(&acker, retry, &url, timeout).await {
                    tracing::debug!(error = %e, "requeueing a dropped delivery failed");
                }
            });
        }
    }
}
