//! [`MqttPublisher`]: one connection to a broker that publishes at QoS 0, 1 and 2 and tells
//! each caller when the broker confirmed its message; and what every MQTT connection of the
//! connector shares: options, reconnect backoff and the translation of the driver's errors.
//!
//! rumqttc's `EventLoop` does the protocol; it moves only while polled, so each connection
//! has a task of its own that polls it without pause and is never cancelled mid-poll (a
//! cancelled poll can lose a packet it had taken but not written). Callers talk to the
//! event loop through rumqttc's request channel and learn the outcome from the events the
//! task sees.
//!
//! How a publish finds its confirmation: rumqttc gives a QoS 1/2 message its packet id when
//! it takes the request from its channel, and reports it as `Outgoing::Publish(pkid)` (or
//! `Outgoing::AwaitAck(pkid)` when that id is still in use). Requests leave the channel in
//! the order they entered it, so each caller's completion is queued, under one lock, in the
//! same order as its request, and the task pairs the n-th `Outgoing::Publish` with the
//! n-th queued completion; `PUBACK` (QoS 1) or `PUBCOMP` (QoS 2) for that packet id then
//! completes it. QoS 0 completes once written to the socket.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kernelize_core::{Error, ErrorKind, Result};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions,
    Outgoing, Packet, QoS, Request,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::config::{MqttSettings, MqttUrl, Qos, check_topic};

/// How many publishes one publisher holds at once (queued or waiting for the broker);
/// further callers wait for a place. Twice rumqttc's in-flight window of 100.
const MAX_QUEUED_PUBLISHES: usize = 200;

/// The longest pause between two reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The bytes a PUBLISH needs besides its topic and payload (fixed header, lengths, packet id).
const PUBLISH_OVERHEAD: usize = 9;

/// What a connection is opened with.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSpec {
    pub(crate) url: MqttUrl,
    pub(crate) client_id: String,
    pub(crate) clean_session: bool,
    pub(crate) manual_acks: bool,
    pub(crate) keep_alive: Duration,
    pub(crate) max_packet_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_capacity: usize,
}

impl ConnectionSpec {
    /// The plugin's publishing connection.
    pub(crate) fn publisher(settings: &MqttSettings) -> Self {
        ConnectionSpec {
            url: settings.url.clone(),
            client_id: settings.publisher_client_id(),
            clean_session: settings.clean_session,
            manual_acks: false,
            keep_alive: settings.keep_alive,
            max_packet_size: settings.max_packet_size,
            connect_timeout: settings.connect_timeout,
            request_capacity: MAX_QUEUED_PUBLISHES + 16,
        }
    }

    /// The driver's client and event loop for this connection.
    pub(crate) fn open(&self) -> (AsyncClient, EventLoop) {
        let mut options = MqttOptions::new(
            self.client_id.clone(),
            self.url.host().to_string(),
            self.url.port(),
        );
        // Checked by `MqttSettings::check`: 0 or at least 1s (rumqttc asserts it).
        let keep_alive = if self.keep_alive.is_zero() {
            Duration::ZERO
        } else {
            self.keep_alive.max(Duration::from_secs(1))
        };
        options
            .set_keep_alive(keep_alive)
            .set_max_packet_size(self.max_packet_size, self.max_packet_size)
            .set_manual_acks(self.manual_acks)
            .set_request_channel_capacity(self.request_capacity);
        // rumqttc refuses a persistent session without a client id; ours is never empty.
        if !self.client_id.is_empty() {
            options.set_clean_session(self.clean_session);
        }
        if let Some((user, password)) = self.url.credentials() {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, self.request_capacity);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(self.connect_timeout.as_secs().max(1));
        eventloop.set_network_options(network);
        (client, eventloop)
    }
}

/// How long to wait before reconnect attempt `failures` (1, 2, ...): exponential from
/// 100 ms up to 5 s, with full jitter.
pub(crate) fn backoff(failures: u32) -> Duration {
    let ceiling = Duration::from_millis(100)
        .saturating_mul(1u32 << failures.min(10))
        .min(MAX_BACKOFF);
    let jittered = ceiling.as_millis() as f64 * (0.5 + rand::random::<f64>() / 2.0);
    Duration::from_millis(jittered as u64)
}

/// Forgets what a lost connection left in the event loop: requests still in rumqttc's
/// channel move to its `pending` list (so nothing sent after this can be mistaken for
/// something sent before), and events it buffered from the old connection are dropped.
pub(crate) fn settle_lost_connection(eventloop: &mut EventLoop) {
    eventloop.clean();
    eventloop.state.events.clear();
}

/// The Kernelize error for a connection failure of the driver.
pub(crate) fn connection_error(url: &MqttUrl, e: &ConnectionError) -> Error {
    let at = format!("{}:{}", url.host(), url.port());
    let (kind, temporary, message) = match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => (
                ErrorKind::ConfigInvalid,
                false,
                format!(
                    "the MQTT broker at {at} refused the user name or password; check the credentials in `url`"
                ),
            ),
            ConnectReturnCode::NotAuthorized => (
                ErrorKind::PermissionDenied,
                false,
                format!("the MQTT broker at {at} does not authorize this client to connect"),
            ),
            ConnectReturnCode::BadClientId => (
                ErrorKind::ConfigInvalid,
                false,
                format!("the MQTT broker at {at} refused the client id; pick another `client_id`"),
            ),
            ConnectReturnCode::RefusedProtocolVersion => (
                ErrorKind::Unsupported,
                false,
                format!("the MQTT broker at {at} does not speak MQTT 3.1.1"),
            ),
            ConnectReturnCode::ServiceUnavailable => (
                ErrorKind::Remote,
                true,
                format!("the MQTT broker at {at} is not available"),
            ),
            ConnectReturnCode::Success => (
                ErrorKind::Unexpected,
                true,
                format!("the MQTT broker at {at} refused the connection with code 0"),
            ),
        },
        ConnectionError::NetworkTimeout => (
            ErrorKind::Timeout,
            true,
            format!("the MQTT broker at {at} did not answer within `connect_timeout`"),
        ),
        ConnectionError::FlushTimeout => (
            ErrorKind::Timeout,
            true,
            format!("writing to the MQTT broker at {at} timed out"),
        ),
        ConnectionError::Io(io) => (
            ErrorKind::Remote,
            true,
            format!("could not reach the MQTT broker at {at}: {io}; is a broker running there?"),
        ),
        ConnectionError::MqttState(state) => (
            ErrorKind::Remote,
            true,
            format!("the connection to the MQTT broker at {at} failed: {state}"),
        ),
        other => (
            ErrorKind::Remote,
            true,
            format!("the connection to the MQTT broker at {at} failed: {other}"),
        ),
    };
    let error = Error::new(kind, message).with_context("mqtt", url.redacted());
    if temporary {
        error.set_temporary()
    } else {
        error.set_permanent()
    }
}

/// Whether a failed connect should end an open rather than be retried: the broker refused
/// this client for good (credentials, authorization, client id, protocol).
pub(crate) fn is_refusal(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword
                | ConnectReturnCode::NotAuthorized
                | ConnectReturnCode::BadClientId
                | ConnectReturnCode::RefusedProtocolVersion
        )
    )
}

/// Polls until the first `CONNACK`, within the connect timeout; returns whether the broker
/// kept a session.
pub(crate) async fn first_connect(
    eventloop: &mut EventLoop,
    spec: &ConnectionSpec,
    cancel: &CancellationToken,
) -> Result<bool> {
    let limit = spec.connect_timeout.saturating_add(Duration::from_secs(1));
    let connecting = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack.session_present),
                Ok(_) => {}
                Err(e) => {
                    settle_lost_connection(eventloop);
                    return Err(connection_error(&spec.url, &e));
                }
            }
        }
    };
    tokio::select! {
        out = tokio::time::timeout(limit, connecting) => match out {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the MQTT broker at {}:{} did not accept the connection within `connect_timeout`",
                    spec.url.host(),
                    spec.url.port()
                ),
            )
            .with_context("mqtt", spec.url.redacted())
            .set_temporary()),
        },
        () = cancel.cancelled() => Err(Error::new(ErrorKind::Cancelled, "connecting was cancelled")),
    }
}

/// Publishes on one connection and tells each caller when the broker confirmed its
/// message. Clones share the connection; the last one dropped closes it.
///
/// While the connection is down, publishes fail at once with a temporary error (the task
/// reconnects with backoff). When it drops with messages unconfirmed, each of them fails
/// with a temporary error: it may or may not have reached the broker, so a retry delivers
/// it at least once. With `clean_session: false`, messages the broker had not confirmed
/// are sent again on the resumed session, as MQTT asks, though their callers were already
/// told they failed.
#[derive(Clone)]
pub struct MqttPublisher {
    handle: Arc<PublisherHandle>,
}

struct PublisherHandle {
    core: Arc<PublisherCore>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl std::fmt::Debug for MqttPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPublisher")
            .field("url", &self.handle.core.url)
            .field("client_id", &self.handle.core.client_id)
            .finish_non_exhaustive()
    }
}

struct PublisherCore {
    url: MqttUrl,
    client_id: String,
    client: AsyncClient,
    places: Arc<Semaphore>,
    ack_timeout: Duration,
    max_packet_size: usize,
    clean_session: bool,
    tracker: Mutex<Tracker>,
}

/// A caller waiting for the outcome of its publish.
struct Waiter {
    qos: QoS,
    done: oneshot::Sender<Result<()>>,
    _place: OwnedSemaphorePermit,
}

impl Waiter {
    fn finish(self, outcome: Result<()>) {
        // The caller may have stopped waiting (its deadline passed); nothing to tell then.
        let _ = self.done.send(outcome);
    }
}

/// A message of an earlier connection that rumqttc sends again on a resumed session; its
/// caller was already told it failed.
#[derive(Debug, Clone, Copy)]
struct Orphan {
    qos: QoS,
    /// Not yet written on the new connection.
    queued: bool,
}

#[derive(Default)]
struct Tracker {
    connected: bool,
    closed: bool,
    last_error: Option<String>,
    /// Requests in rumqttc's channel, oldest first, waiting for their packet id.
    unassigned: VecDeque<Waiter>,
    /// Written, waiting for `PUBACK` (QoS 1) or `PUBCOMP` (QoS 2), by packet id.
    awaiting: HashMap<u16, Waiter>,
    /// Taken from the channel while its packet id was still in use.
    collided: Option<(u16, Waiter)>,
    orphans: HashMap<u16, Orphan>,
}

impl PublisherCore {
    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn not_confirmed(&self, why: &str) -> Error {
        Error::new(
            ErrorKind::Remote,
            format!(
                "the connection to the MQTT broker was lost before it confirmed the message ({why}); it may or may not have been delivered"
            ),
        )
        .with_context("mqtt", self.url.redacted())
        .set_temporary()
    }

    /// A connection came up.
    fn on_connack(&self, session_present: bool) {
        let mut t = self.tracker();
        t.connected = true;
        t.last_error = None;
        if !session_present {
            // rumqttc dropped what it would have sent again.
            t.orphans.clear();
        }
    }

    /// The connection went down: fail every publish not yet confirmed.
    fn on_lost(&self, eventloop: &mut EventLoop, why: &str) {
        let mut t = self.tracker();
        settle_lost_connection(eventloop);
        t.connected = false;
        t.last_error = Some(why.to_string());
        // Keep what a resumed session must send again (QoS 1/2 messages with a packet id,
        // QoS 2 releases); never-sent messages are dropped with their callers' failure.
        let keep_session = !self.clean_session;
        let mut orphans = Vec::new();
        eventloop.pending.retain(|request| match request {
            Request::Publish(p) if keep_session && p.pkid != 0 => {
                orphans.push((
                    p.pkid,
                    Orphan {
                        qos: p.qos,
                        queued: true,
                    },
                ));
                true
            }
            Request::PubRel(r) if keep_session => {
                orphans.push((
                    r.pkid,
                    Orphan {
                        qos: QoS::ExactlyOnce,
                        queued: true,
                    },
                ));
                true
            }
            _ => false,
        });
        t.orphans.extend(orphans);
        let mut failed: Vec<Waiter> = t.unassigned.drain(..).collect();
        failed.extend(t.awaiting.drain().map(|(_, w)| w));
        failed.extend(t.collided.take().map(|(_, w)| w));
        drop(t);
        for waiter in failed {
            waiter.finish(Err(self.not_confirmed(why)));
        }
    }

    /// One event of a live connection.
    fn on_event(&self, event: &Event) {
        let mut t = self.tracker();
        let finished = match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                let pkid = *pkid;
                if t.collided.as_ref().is_some_and(|(id, _)| *id == pkid) {
                    if let Some((_, waiter)) = t.collided.take() {
                        t.awaiting.insert(pkid, waiter);
                    }
                    None
                } else if let Some(orphan) = t.orphans.get_mut(&pkid).filter(|o| o.queued) {
                    orphan.queued = false;
                    None
                } else {
                    match t.unassigned.pop_front() {
                        Some(waiter) if waiter.qos == QoS::AtMostOnce || pkid == 0 => Some(waiter),
                        Some(waiter) => {
                            t.awaiting.insert(pkid, waiter);
                            None
                        }
                        None => {
                            tracing::warn!(
                                pkid,
                                "mqtt: a publish left that no caller is waiting for"
                            );
                            None
                        }
                    }
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                if let Some(waiter) = t.unassigned.pop_front() {
                    t.collided = Some((*pkid, waiter));
                }
                None
            }
            Event::Outgoing(Outgoing::PubRel(pkid)) => {
                if let Some(orphan) = t.orphans.get_mut(pkid) {
                    orphan.queued = false;
                }
                None
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                Self::confirmed(&mut t, ack.pkid, QoS::AtLeastOnce)
            }
            Event::Incoming(Packet::PubComp(comp)) => {
                Self::confirmed(&mut t, comp.pkid, QoS::ExactlyOnce)
            }
            _ => None,
        };
        drop(t);
        if let Some(waiter) = finished {
            waiter.finish(Ok(()));
        }
    }

    /// The broker confirmed packet `pkid` of a `qos` message: an orphan's confirmation (it
    /// came first) or a waiting caller's.
    fn confirmed(t: &mut Tracker, pkid: u16, qos: QoS) -> Option<Waiter> {
        if t.orphans
            .get(&pkid)
            .is_some_and(|o| o.qos == qos && !o.queued)
        {
            t.orphans.remove(&pkid);
            return None;
        }
        if t.awaiting.get(&pkid).is_some_and(|w| w.qos == qos) {
            return t.awaiting.remove(&pkid);
        }
        None
    }

    /// The publisher is closing: fail whoever still waits.
    fn close(&self) {
        let mut t = self.tracker();
        t.closed = true;
        t.connected = false;
        let mut failed: Vec<Waiter> = t.unassigned.drain(..).collect();
        failed.extend(t.awaiting.drain().map(|(_, w)| w));
        failed.extend(t.collided.take().map(|(_, w)| w));
        drop(t);
        for waiter in failed {
            waiter.finish(Err(Error::new(
                ErrorKind::InvalidState,
                "the MQTT connection was closed before the broker confirmed the message",
            )));
        }
    }
}

impl MqttPublisher {
    /// Connects with `settings` (checked here) and starts the task that keeps the
    /// connection. Fails when the broker cannot be reached or refuses the client.
    ///
    /// The caller checks network permissions first; the plugin does.
    pub async fn connect(settings: &MqttSettings) -> Result<Self> {
        settings.check()?;
        let spec = ConnectionSpec::publisher(settings);
        let (client, mut eventloop) = spec.open();
        let stop = CancellationToken::new();
        first_connect(&mut eventloop, &spec, &stop).await?;
        let core = Arc::new(PublisherCore {
            url: spec.url.clone(),
            client_id: spec.client_id.clone(),
            client,
            places: Arc::new(Semaphore::new(MAX_QUEUED_PUBLISHES)),
            ack_timeout: settings.ack_timeout,
            max_packet_size: settings.max_packet_size,
            clean_session: spec.clean_session,
            tracker: Mutex::new(Tracker {
                connected: true,
                ..Tracker::default()
            }),
        });
        tokio::spawn(run_publisher(core.clone(), eventloop, stop.clone()));
        Ok(MqttPublisher {
            handle: Arc::new(PublisherHandle {
                core,
                stop: stop.clone(),
                _stop_on_drop: stop.drop_guard(),
            }),
        })
    }

    /// The broker's URL (its password is never shown).
    pub fn url(&self) -> &MqttUrl {
        &self.handle.core.url
    }

    /// Closes the connection for every clone: publishes waiting for the broker fail, later
    /// ones are refused, and the connection ends with a `DISCONNECT`.
    pub fn close(&self) {
        self.handle.stop.cancel();
    }

    /// The connection's client id.
    pub fn client_id(&self) -> &str {
        &self.handle.core.client_id
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.handle.core.tracker().connected
    }

    /// How long a publish waits for the broker's confirmation.
    pub fn ack_timeout(&self) -> Duration {
        self.handle.core.ack_timeout
    }

    /// Publishes `payload` to `topic` and waits until the broker confirmed it: `PUBACK` at
    /// QoS 1, `PUBCOMP` at QoS 2, written to the socket at QoS 0. Fails with `invalid
    /// input` for a bad topic or a message above `max_packet_size`, with a temporary error
    /// while the connection is down or when it drops before the confirmation, and with a
    /// timeout after `ack_timeout`.
    pub async fn publish(&self, topic: &str, qos: Qos, retain: bool, payload: Bytes) -> Result<()> {
        let core = &self.handle.core;
        check_topic(topic)?;
        let size = topic.len() + payload.len() + PUBLISH_OVERHEAD;
        if size > core.max_packet_size {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the message is {} bytes, more than `max_packet_size` ({} bytes) allows",
                    payload.len(),
                    core.max_packet_size
                ),
            )
            .with_context("topic", topic));
        }
        let place =
            core.places.clone().acquire_owned().await.map_err(|_| {
                Error::new(ErrorKind::InvalidState, "the MQTT connection is closed")
            })?;
        let (done, outcome) = oneshot::channel();
        {
            let mut t = core.tracker();
            if t.closed {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "the MQTT connection is closed",
                ));
            }
            if !t.connected {
                let why = t
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "reconnecting".into());
                return Err(Error::new(
                    ErrorKind::Remote,
                    format!("not connected to the MQTT broker ({why}); reconnecting"),
                )
                .with_context("mqtt", core.url.redacted())
                .set_temporary());
            }
            // Queued under the same lock as the request, so the two orders agree.
            core.client
                .try_publish(topic, qos.to_driver(), retain, payload.to_vec())
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("the MQTT client did not take the message: {e}"),
                    )
                    .set_temporary()
                })?;
            t.unassigned.push_back(Waiter {
                qos: qos.to_driver(),
                done,
                _place: place,
            });
        }
        match tokio::time::timeout(core.ack_timeout, outcome).await {
            Ok(Ok(result)) => result.map_err(|e| e.with_context("topic", topic)),
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::InvalidState,
                "the MQTT connection was closed before the broker confirmed the message",
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the MQTT broker did not confirm the message within `ack_timeout` ({}s)",
                    core.ack_timeout.as_secs_f64()
                ),
            )
            .with_context("topic", topic)
            .with_context("mqtt", core.url.redacted())
            .set_temporary()),
        }
    }
}

/// Keeps the publisher's connection: polls, pairs events with callers, reconnects with
/// backoff, and on stop disconnects cleanly.
async fn run_publisher(
    core: Arc<PublisherCore>,
    mut eventloop: EventLoop,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let polled = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                tracing::info!(mqtt = %core.url, "mqtt: reconnected");
                core.on_connack(ack.session_present);
            }
            Ok(event) => core.on_event(&event),
            Err(e) => {
                let error = connection_error(&core.url, &e);
                tracing::warn!(mqtt = %core.url, error = %error.message(), "mqtt: publishing connection lost; reconnecting");
                core.on_lost(&mut eventloop, error.message());
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff(failures)) => {}
                }
            }
        }
    }
    core.close();
    if eventloop.network.is_some() && core.client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling() {
        assert!(backoff(1) <= Duration::from_millis(200));
        for n in [10, 20, u32::MAX] {
            assert!(backoff(n) <= MAX_BACKOFF);
            assert!(backoff(n) >= MAX_BACKOFF / 2);
        }
    }
}
