//! [`MqttSource`]: an [`EventSource`] that subscribes to topic filters on a connection of its
//! own, with manual acknowledgements and (by default) a persistent session.
//!
//! Settlement: `Ack` writes the `PUBACK` (QoS 1) or `PUBREC` (QoS 2) for the message and
//! returns once it is on the wire. MQTT has no negative acknowledgement: `Reject` also
//! acknowledges (the pipeline dead-lettered the message), and `Retry` leaves it
//! unacknowledged with the broker and hands it out again from this source (after the delay)
//! with its attempt raised; should the connection drop first, the broker sends it again
//! instead, flagged DUP. A delivery dropped unsettled is handed out again the same way.
//! QoS 0 messages have nothing to settle.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use kernelize_core::event::Settle;
use kernelize_core::{
    AckHandle, Delivery, Error, ErrorKind, Event, EventSource, Payload, Result, Settlement,
};
use rumqttc::{
    AsyncClient, ClientError, Event as DriverEvent, EventLoop, Outgoing, Packet, PubAck, PubRec,
    Publish, QoS, SubAck, SubscribeFilter, SubscribeReasonCode,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::client::{
    ConnectionSpec, backoff, connection_error, is_refusal, settle_lost_connection,
};
use super::config::{
    MqttSettings, MqttUrl, Qos, TopicFilter, check_client_id, check_filters, random_client_id,
};

/// The most messages a source's buffer holds.
pub const MAX_CAPACITY: usize = 10_000;

fn default_content_type() -> String {
    kernelize_core::payload::MEDIA_OCTET_STREAM.to_string()
}

fn default_capacity() -> usize {
    100
}

/// Options of the `mqtt-connector`'s event source (a pipeline's `source:` settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceOptions {
    /// The subscriptions (1 to 100).
    pub topics: Vec<TopicFilter>,
    /// The source's client id; required for a persistent session (the broker keeps the
    /// session under it), a generated one otherwise.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Start a fresh session on every connect (true), or keep one (false, the default):
    /// QoS 1 and 2 messages published while the source was away are delivered when it
    /// comes back.
    #[serde(default)]
    pub clean_session: bool,
    /// The media type of the events' payloads (MQTT 3.1.1 messages carry none):
    /// `application/octet-stream` unless given.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The most messages buffered between the broker and the pipeline (1 to 10,000; 100).
    #[serde(default = "default_capacity")]
    #[schemars(range(min = 1, max = 10000))]
    pub capacity: usize,
}

impl MqttSourceOptions {
    /// Options subscribing to `topics`, with every default (a persistent session needs a
    /// `client_id` still).
    pub fn new(topics: Vec<TopicFilter>) -> Self {
        MqttSourceOptions {
            topics,
            client_id: None,
            clean_session: false,
            content_type: default_content_type(),
            capacity: default_capacity(),
        }
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        check_filters(&self.topics)?;
        match &self.client_id {
            Some(id) => check_client_id(id)?,
            None if !self.clean_session => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "a persistent session (`clean_session: false`, the default) needs a `client_id`: the broker keeps the session under it; give one, or set `clean_session: true`",
                ));
            }
            None => {}
        }
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("`capacity` is between 1 and {MAX_CAPACITY}"),
            ));
        }
        if self.content_type.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`content_type` is empty; leave it out for application/octet-stream",
            ));
        }
        Ok(())
    }
}

/// A message as it came from the broker, with what settling it needs.
#[derive(Debug, Clone)]
struct Received {
    publish: Publish,
    /// The connection it came on (counted from 1).
    connection: u64,
    /// The broker session it belongs to (raised whenever the broker starts a new one).
    session: u64,
    attempt: u32,
    seq: u64,
    received_at: DateTime<Utc>,
}

struct SourceState {
    buffer: VecDeque<Received>,
    connected: bool,
    connection: u64,
    session: u64,
    /// Acknowledgements (and pings) for the task to write to the socket.
    outbox: Vec<Outbound>,
    /// Set while `open` waits for the first connection and subscription.
    opening: Option<oneshot::Sender<Result<()>>>,
    /// A permanent failure (a refused subscription), returned by every `receive`.
    failure: Option<Error>,
    closed: bool,
    seq: u64,
}

/// A packet the task writes to the socket itself, and who waits for it.
struct Outbound {
    packet: Packet,
    /// The connection it belongs to; written only on that one.
    connection: u64,
    done: oneshot::Sender<Result<()>>,
}

struct SourceCore {
    url: MqttUrl,
    client: AsyncClient,
    filters: Vec<TopicFilter>,
    capacity: usize,
    ack_timeout: Duration,
    keep_alive: Duration,
    content_type: String,
    state: Mutex<SourceState>,
    /// Wakes `receive`: a message arrived, or the source failed or closed.
    ready: Notify,
    /// Wakes the task: an acknowledgement waits in the outbox.
    outbox_ready: Notify,
    /// Wakes a paused task: the buffer has room again.
    room: Notify,
}

impl SourceCore {
    fn state(&self) -> MutexGuard<'_, SourceState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the task may read from the broker: the buffer has room (or the source is
    /// closing).
    fn has_room(&self) -> bool {
        let s = self.state();
        s.closed || s.buffer.len() < self.capacity
    }

    fn subscribe(&self) -> std::result::Result<(), ClientError> {
        self.client.try_subscribe_many(
            self.filters
                .iter()
                .map(|f| SubscribeFilter::new(f.filter.clone(), f.qos.to_driver())),
        )
    }

    /// A connection came up; subscribes on the first one and whenever the broker lost the
    /// session.
    fn on_connack(&self, session_present: bool) {
        let mut s = self.state();
        s.connected = true;
        s.connection += 1;
        let first = s.connection == 1;
        if session_present {
            // The broker sends again what it had not seen acknowledged; drop the copies.
            let current = s.connection;
            s.buffer.retain(|r| r.connection == current);
        } else {
            s.session += 1;
        }
        if first || !session_present {
            if let Err(e) = self.subscribe() {
                let error = Error::new(
                    ErrorKind::Unexpected,
                    format!("the MQTT client did not take the subscription: {e}"),
                )
                .set_temporary();
                if let Some(opening) = s.opening.take() {
                    let _ = opening.send(Err(error));
                }
            }
        } else if let Some(opening) = s.opening.take() {
            let _ = opening.send(Ok(()));
        }
    }

    fn on_suback(&self, suback: &SubAck) {
        let refused: Vec<&str> = suback
            .return_codes
            .iter()
            .zip(&self.filters)
            .filter(|(code, _)| matches!(code, SubscribeReasonCode::Failure))
            .map(|(_, f)| f.filter.as_str())
            .collect();
        let mut s = self.state();
        let outcome = if refused.is_empty() {
            Ok(())
        } else {
            let error = Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the MQTT broker refused the subscription to {}; check the broker's access rules for this client",
                    refused
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_context("mqtt", self.url.redacted())
            .set_permanent();
            s.failure = Some(error.clone());
            Err(error)
        };
        if let Some(opening) = s.opening.take() {
            let _ = opening.send(outcome);
        }
        drop(s);
        self.ready.notify_waiters();
    }

    fn on_publish(&self, publish: Publish) {
        let mut s = self.state();
        s.seq += 1;
        // The task reads only while the buffer has room, one message a poll: it never holds
        // more than `capacity` (plus retried deliveries handed back).
        let received = Received {
            attempt: if publish.dup { 2 } else { 1 },
            connection: s.connection,
            session: s.session,
            seq: s.seq,
            received_at: Utc::now(),
            publish,
        };
        s.buffer.push_back(received);
        drop(s);
        self.ready.notify_one();
    }

    /// The connection went down; returns whether the source was still opening (and has
    /// told `open` why it failed).
    fn on_lost(&self, eventloop: &mut EventLoop, error: &Error) -> bool {
        let mut s = self.state();
        settle_lost_connection(eventloop);
        // Nothing of the old connection may be written on the next (a subscription is
        // sent again when needed).
        eventloop.pending.clear();
        s.connected = false;
        let outbox = std::mem::take(&mut s.outbox);
        let opening = s.opening.take();
        drop(s);
        for out in outbox {
            let _ = out.done.send(Err(self.lost_before_ack()));
        }
        match opening {
            Some(opening) => {
                let _ = opening.send(Err(error.clone()));
                true
            }
            None => false,
        }
    }

    fn lost_before_ack(&self) -> Error {
        Error::new(
            ErrorKind::Remote,
            "the connection to the MQTT broker was lost before the acknowledgement was written; the broker delivers the message again",
        )
        .with_context("mqtt", self.url.redacted())
        .set_temporary()
    }

    fn close(&self) {
        let mut s = self.state();
        s.closed = true;
        s.connected = false;
        let outbox = std::mem::take(&mut s.outbox);
        drop(s);
        for out in outbox {
            let _ = out.done.send(Err(Error::new(
                ErrorKind::InvalidState,
                "the MQTT source was closed before the acknowledgement was written",
            )));
        }
        self.ready.notify_waiters();
    }

    /// Has the task write the acknowledgement of `received`, and waits until it is on the
    /// wire.
    async fn acknowledge(&self, received: &Received) -> Result<()> {
        let written = {
            let mut s = self.state();
            if s.closed {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the MQTT source is closed; the broker delivers the message again",
                ));
            }
            if !s.connected || s.connection != received.connection {
                if s.connected && s.session != received.session {
                    // The broker started a new session: it forgot the message, and there is
                    // nothing left to acknowledge.
                    return Ok(());
                }
                return Err(self.lost_before_ack());
            }
            let pkid = received.publish.pkid;
            let packet = match received.publish.qos {
                QoS::ExactlyOnce => Packet::PubRec(PubRec::new(pkid)),
                _ => Packet::PubAck(PubAck::new(pkid)),
            };
            let (done, written) = oneshot::channel();
            s.outbox.push(Outbound {
                packet,
                connection: received.connection,
                done,
            });
            written
        };
        self.outbox_ready.notify_one();
        match tokio::time::timeout(self.ack_timeout, written).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(self.lost_before_ack()),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                "the acknowledgement was not written to the MQTT broker within `ack_timeout`",
            )
            .with_context("mqtt", self.url.redacted())
            .set_temporary()),
        }
    }

    /// Hands `received` out again, unless the broker will send it again itself.
    fn requeue(&self, received: Received) {
        let mut s = self.state();
        if s.closed {
            return;
        }
        if received.connection != s.connection && received.session == s.session {
            // Its connection is gone but the session lives: the broker sends it again.
            return;
        }
        s.buffer.push_back(received);
        drop(s);
        self.ready.notify_one();
    }
}

/// Settles one delivery of an [`MqttSource`].
struct MqttAck {
    core: Arc<SourceCore>,
    received: Option<Received>,
}

#[async_trait]
impl Settle for MqttAck {
    async fn settle(mut self: Box<Self>, settlement: Settlement) -> Result<()> {
        let Some(mut received) = self.received.take() else {
            return Ok(());
        };
        match settlement {
            Settlement::Ack | Settlement::Reject => self.core.acknowledge(&received).await,
            Settlement::Retry { delay } => {
                received.attempt = received.attempt.saturating_add(1);
                match delay.filter(|d| !d.is_zero()) {
                    Some(delay) => {
                        let core = self.core.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            core.requeue(received);
                        });
                    }
                    None => self.core.requeue(received),
                }
                Ok(())
            }
        }
    }
}

impl Drop for MqttAck {
    fn drop(&mut self) {
        if let Some(mut received) = self.received.take() {
            received.attempt = received.attempt.saturating_add(1);
            self.core.requeue(received);
        }
    }
}

/// An [`EventSource`] of the messages of MQTT topic filters.
///
/// Each source has its own connection and task. Events: `id` is the source's running
/// count and the packet id (`"17-3"`; packet ids alone are reused), `subject` the topic,
/// `headers` `mqtt.qos`, `mqtt.retain`, `mqtt.dup` and `mqtt.packet_id`, `payload` the body
/// as bytes of the options' `content_type`, `attempt` 2 for a message the broker flagged
/// DUP (1 otherwise), raised by each local retry. Dropping the source disconnects it.
pub struct MqttSource {
    core: Arc<SourceCore>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    _guard: DropGuard,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("url", &self.core.url)
            .field("filters", &self.core.filters)
            .finish_non_exhaustive()
    }
}

impl MqttSource {
    /// Connects to the broker of `settings`, subscribes as `options` say, and returns once
    /// the broker confirmed the subscription. Fails with a temporary error when the broker
    /// cannot be reached, `invalid input` for a bad filter, `permission denied` when the
    /// broker refuses the subscription.
    ///
    /// The caller checks network permissions first; the plugin does.
    pub async fn open(settings: &MqttSettings, options: MqttSourceOptions) -> Result<Self> {
        settings.check()?;
        options.check()?;
        let spec = ConnectionSpec {
            url: settings.url.clone(),
            client_id: options.client_id.clone().unwrap_or_else(random_client_id),
            clean_session: options.clean_session,
            manual_acks: true,
            keep_alive: settings.keep_alive,
            max_packet_size: settings.max_packet_size,
            connect_timeout: settings.connect_timeout,
            // Only subscriptions and the final disconnect go through rumqttc's channel.
            request_capacity: 16,
        };
        let (client, eventloop) = spec.open();
        let (opened, opening) = oneshot::channel();
        let core = Arc::new(SourceCore {
            url: spec.url.clone(),
            client,
            filters: options.topics,
            capacity: options.capacity,
            ack_timeout: settings.ack_timeout,
            keep_alive: settings.keep_alive,
            content_type: options.content_type,
            state: Mutex::new(SourceState {
                buffer: VecDeque::new(),
                connected: false,
                connection: 0,
                session: 0,
                outbox: Vec::new(),
                opening: Some(opened),
                failure: None,
                closed: false,
                seq: 0,
            }),
            ready: Notify::new(),
            outbox_ready: Notify::new(),
            room: Notify::new(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_source(core.clone(), eventloop, stop.clone()));
        let source = MqttSource {
            core,
            stop: stop.clone(),
            task: Some(task),
            _guard: stop.drop_guard(),
        };
        let limit = settings
            .connect_timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1));
        match tokio::time::timeout(limit, opening).await {
            Ok(Ok(Ok(()))) => Ok(source),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Unexpected,
                "the MQTT source's connection task ended while opening",
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the MQTT broker at {}:{} did not confirm the connection and subscription within twice `connect_timeout`",
                    settings.url.host(),
                    settings.url.port()
                ),
            )
            .with_context("mqtt", settings.url.redacted())
            .set_temporary()),
        }
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.core.state().connected
    }

    /// Messages waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.core.state().buffer.len()
    }

    /// Disconnects cleanly (`DISCONNECT`) and waits for the connection's task to end.
    /// Messages not acknowledged stay with the broker in a persistent session.
    pub async fn close(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn delivery(&self, received: Received) -> Delivery {
        let publish = &received.publish;
        let id = format!("{}-{}", received.seq, publish.pkid);
        let headers = BTreeMap::from([
            (
                "mqtt.qos".to_string(),
                Qos::of_driver(publish.qos).to_string(),
            ),
            ("mqtt.retain".to_string(), publish.retain.to_string()),
            ("mqtt.dup".to_string(), publish.dup.to_string()),
            ("mqtt.packet_id".to_string(), publish.pkid.to_string()),
        ]);
        let event = Event {
            id: id.clone(),
            key: None,
            subject: Some(publish.topic.clone()),
            headers,
            payload: Payload::bytes(publish.payload.clone(), self.core.content_type.clone()),
            attempt: received.attempt,
            received_at: received.received_at,
        };
        let ack = if publish.qos == QoS::AtMostOnce {
            AckHandle::none(id)
        } else {
            AckHandle::new(
                id,
                MqttAck {
                    core: self.core.clone(),
                    received: Some(received),
                },
            )
        };
        Delivery { event, ack }
    }
}

#[async_trait]
impl EventSource for MqttSource {
    async fn receive(&mut self, cancel: &CancellationToken) -> Result<Option<Delivery>> {
        loop {
            let ready = self.core.ready.notified();
            {
                let mut s = self.core.state();
                if let Some(failure) = &s.failure {
                    return Err(failure.clone());
                }
                if let Some(received) = s.buffer.pop_front() {
                    if s.buffer.len() < self.core.capacity {
                        // Room again: a paused task may read on.
                        self.core.room.notify_one();
                    }
                    drop(s);
                    return Ok(Some(self.delivery(received)));
                }
                if s.closed {
                    return Ok(None);
                }
            }
            tokio::select! {
                () = ready => {}
                () = cancel.cancelled() => return Ok(None),
            }
        }
    }
}

/// Keeps a source's connection: polls, buffers messages, writes acknowledgements,
/// reconnects with backoff (subscribing again when the broker lost the session), and on
/// stop disconnects cleanly.
///
/// Acknowledgements do not go through rumqttc's request channel: rumqttc writes those only
/// while polled, and polling reads more messages. The task writes them to the socket
/// itself, between polls: a poll is interrupted when one waits. That is safe for this
/// connection, whose packets are small and flushed one by one: an interrupted poll has
/// either taken nothing, or left what it read in rumqttc's buffers for the next poll. A
/// full buffer stops the polling (TCP backpressure holds the rest at the broker); pings
/// keep the connection meanwhile.
async fn run_source(core: Arc<SourceCore>, mut eventloop: EventLoop, stop: CancellationToken) {
    let mut failures = 0u32;
    let ping_every = (!core.keep_alive.is_zero()).then_some(core.keep_alive / 2);
    let mut paused_since: Option<tokio::time::Instant> = None;
    loop {
        let outbox = std::mem::take(&mut core.state().outbox);
        if let Err(error) = write_outbox(&core, &mut eventloop, outbox).await {
            tracing::warn!(mqtt = %core.url, error = %error.message(), "mqtt: source connection lost; reconnecting");
            core.on_lost(&mut eventloop, &error);
            failures = failures.saturating_add(1);
        }
        if eventloop.network.is_some() && !core.has_room() {
            // Paused: wait for room, an acknowledgement to write, or the next ping.
            paused_since.get_or_insert_with(tokio::time::Instant::now);
            let room = core.room.notified();
            let outbox_ready = core.outbox_ready.notified();
            if core.has_room() {
                continue;
            }
            let ping_due = async {
                match ping_every {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = room => {}
                () = outbox_ready => {}
                () = ping_due => {
                    let (done, _) = oneshot::channel();
                    let connection = core.state().connection;
                    let ping = Outbound { packet: Packet::PingReq, connection, done };
                    if let Err(error) = write_outbox(&core, &mut eventloop, vec![ping]).await {
                        tracing::warn!(mqtt = %core.url, error = %error.message(), "mqtt: source connection lost; reconnecting");
                        core.on_lost(&mut eventloop, &error);
                        failures = failures.saturating_add(1);
                    }
                }
                () = stop.cancelled() => break,
            }
            continue;
        }
        if paused_since
            .take()
            .is_some_and(|since| since.elapsed() >= core.keep_alive / 2)
        {
            // rumqttc's own ping may come due as soon as it polls again, while the broker's
            // answer to its last one is still unread: it would count that one as missing
            // and drop the connection.
            eventloop.state.await_pingresp = false;
        }
        let outbox_ready = core.outbox_ready.notified();
        let polled = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = outbox_ready => continue,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(DriverEvent::Incoming(Packet::ConnAck(ack))) => {
                if failures > 0 {
                    tracing::info!(mqtt = %core.url, session_present = ack.session_present, "mqtt: source reconnected");
                }
                failures = 0;
                core.on_connack(ack.session_present);
            }
            Ok(DriverEvent::Incoming(Packet::Publish(publish))) => core.on_publish(publish),
            Ok(DriverEvent::Incoming(Packet::SubAck(suback))) => core.on_suback(&suback),
            Ok(_) => {}
            Err(e) => {
                let error = connection_error(&core.url, &e);
                if core.on_lost(&mut eventloop, &error) {
                    // Still opening: `open` reports the error.
                    break;
                }
                if is_refusal(&e) {
                    tracing::error!(mqtt = %core.url, error = %error.message(), "mqtt: the broker refused the source; retrying");
                } else {
                    tracing::warn!(mqtt = %core.url, error = %error.message(), "mqtt: source connection lost; reconnecting");
                }
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff(failures)) => {}
                }
            }
        }
    }
    let connected = core.state().connected;
    core.close();
    if connected && core.client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match eventloop.poll().await {
                    Ok(DriverEvent::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

/// Writes `packets` (acknowledgements, a ping) to the socket between polls, and tells each
/// waiter; an error means the connection is gone.
async fn write_outbox(
    core: &SourceCore,
    eventloop: &mut EventLoop,
    packets: Vec<Outbound>,
) -> Result<()> {
    if packets.is_empty() {
        return Ok(());
    }
    let current = core.state().connection;
    let Some(network) = eventloop.network.as_mut() else {
        for out in packets {
            let _ = out.done.send(Err(core.lost_before_ack()));
        }
        return Ok(());
    };
    let mut waiting = Vec::with_capacity(packets.len());
    let mut failure = None;
    for out in packets {
        if out.connection != current {
            // Its connection is gone: the broker sends the message again.
            let _ = out.done.send(Err(core.lost_before_ack()));
            continue;
        }
        if failure.is_none()
            && let Err(e) = network.write(out.packet).await
        {
            failure = Some(e.to_string());
        }
        waiting.push(out.done);
    }
    if failure.is_none() {
        match tokio::time::timeout(core.ack_timeout, network.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e.to_string()),
            Err(_) => failure = Some("writing to the socket timed out".into()),
        }
    }
    match failure {
        None => {
            for done in waiting {
                let _ = done.send(Ok(()));
            }
            Ok(())
        }
        Some(why) => {
            for done in waiting {
                let _ = done.send(Err(core.lost_before_ack()));
            }
            Err(Error::new(
                ErrorKind::Remote,
                format!("writing to the MQTT broker failed: {why}"),
            )
            .with_context("mqtt", core.url.redacted())
            .set_temporary())
        }
    }
}
