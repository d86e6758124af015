//! [`WsConnector`], its builder and [`WsSender`]: the handles users hold. The work happens
//! in a background task (see `driver.rs`).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, Stream};
use kernelize_core::{Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::Instrument;

use super::config::{WsConfig, endpoint};
use super::driver::{Control, Driver, HeaderSource, Settings, secret_value};
use super::message::Message;
use super::queue::OutboundQueue;
use super::state::{ConnectionState, Telemetry, WsStats};

/// Headers the handshake sets itself; set subprotocols through
/// [`WsConfig::subprotocols`].
const RESERVED_HEADERS: [&str; 7] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

enum HeaderEntry {
    Plain(String),
    Secret(SecretString),
}

/// Builds a [`WsConnector`]: the settings plus handshake headers, credentials among them.
///
/// ```no_run
/// use kernelize_connectors::ws::{WsConfig, WsConnector};
/// use secrecy::SecretString;
///
/// # async fn demo() -> kernelize_core::Result<()> {
/// let mut config = WsConfig::new("wss://stream.example.com/v1/events");
/// config.subprotocols = vec!["v2.events".into()];
/// let ws = WsConnector::builder(config)
///     .bearer_auth(SecretString::from("token from the secret store"))
///     .header("X-Client", "kernelize")
///     .connect()
///     .await?;
/// ws.send("hello").await?;
/// # Ok(()) }
/// ```
pub struct WsConnectorBuilder {
    config: WsConfig,
    headers: Vec<(String, HeaderEntry)>,
}

impl fmt::Debug for WsConnectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, entry)| match entry {
                HeaderEntry::Plain(value) => (name.as_str(), value.as_str()),
                HeaderEntry::Secret(_) => (name.as_str(), "[redacted]"),
            })
            .collect();
        f.debug_struct("WsConnectorBuilder")
            .field("config", &self.config)
            .field("headers", &headers)
            .finish()
    }
}

impl WsConnectorBuilder {
    /// Adds a handshake header whose value may be shown in logs and Debug output.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into(), HeaderEntry::Plain(value.into())));
        self
    }

    /// Adds a handshake header holding a credential: it reaches the wire, marked sensitive,
    /// and nothing else (not Debug output, logs or errors).
    pub fn secret_header(mut self, name: impl Into<String>, value: SecretString) -> Self {
        self.headers.push((name.into(), HeaderEntry::Secret(value)));
        self
    }

    /// Adds `Authorization: Bearer TOKEN` as a secret header.
    pub fn bearer_auth(self, token: SecretString) -> Self {
        let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
        self.secret_header("authorization", value)
    }

    fn settings(&self) -> Result<Settings> {
        let config = &self.config;
        let url = config.validate()?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, entry) in &self.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("`{name}` is not a valid header name"),
                )
            })?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "the `{header}` header is set by the WebSocket handshake itself \
                         (subprotocols go in WsConfig::subprotocols)"
                    ),
                ));
            }
            let source = match entry {
                HeaderEntry::Plain(value) => {
                    HeaderSource::Plain(HeaderValue::from_str(value).map_err(|_| {
                        Error::new(
                            ErrorKind::ConfigInvalid,
                            format!(
                                "the `{header}` header value holds characters a header cannot carry"
                            ),
                        )
                    })?)
                }
                HeaderEntry::Secret(secret) => {
                    secret_value(&header, secret)?;
                    HeaderSource::Secret(secret.clone())
                }
            };
            headers.push((header, source));
        }
        let settings = Settings {
            endpoint: endpoint(&url),
            url,
            subprotocols: config.subprotocols.clone(),
            headers,
            heartbeat_interval: config.heartbeat_interval,
            pong_timeout: config.pong_timeout,
            connect_timeout: config.connect_timeout,
            reconnect: config.reconnect.clone(),
            max_message_size: config.max_message_size,
        };
        // Built once here so that a request the handshake cannot make fails now, not on
        // the first attempt in the background.
        settings.request()?;
        Ok(settings)
    }

    /// Connects, and returns once the first connection is up. The first attempt's failure
    /// (refused, timed out, handshake refused) is returned as is and nothing keeps running;
    /// after that first success every drop is reconnected in the background.
    pub async fn connect(self) -> Result<WsConnector> {
        let (first, outcome) = oneshot::channel();
        let connector = self.spawn(Some(first))?;
        match outcome.await {
            Ok(Ok(())) => Ok(connector),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                ErrorKind::Unexpected,
                "the WebSocket task ended before its first connection attempt finished",
            )
            .with_context("endpoint", connector.endpoint())),
        }
    }

    /// Starts connecting in the background and returns at once: messages sent before the
    /// first connection wait in the queue, and failed attempts are retried under the
    /// reconnect policy from the start. Fails only on invalid settings, or outside a tokio
    /// runtime.
    pub fn start(self) -> Result<WsConnector> {
        self.spawn(None)
    }

    fn spawn(self, first: Option<oneshot::Sender<Result<()>>>) -> Result<WsConnector> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidState,
                "a WebSocket connector must be started within a tokio runtime",
            )
        })?;
        let settings = Arc::new(self.settings()?);
        let config = self.config;
        let host = settings.url.host_str().unwrap_or_default().to_string();
        let telemetry = Arc::new(Telemetry::new(host));
        let queue = Arc::new(OutboundQueue::new(
            config.queue_capacity,
            config.overflow,
            config.max_message_size,
            settings.endpoint.clone(),
            telemetry.clone(),
        ));
        let (inbound_tx, inbound) = mpsc::channel(config.inbound_capacity);
        let (control, control_rx) = watch::channel(Control::Run);
        let (state_tx, state) = watch::channel(ConnectionState::Connecting { attempt: 1 });
        let protocol = Arc::new(Mutex::new(None));
        let driver = Driver {
            settings: settings.clone(),
            queue: queue.clone(),
            telemetry: telemetry.clone(),
            inbound: inbound_tx,
            control: control_rx,
            state: state_tx,
            protocol: protocol.clone(),
            first,
        };
        let span = tracing::info_span!("websocket", endpoint = %settings.endpoint);
        runtime.spawn(driver.run().instrument(span));
        Ok(WsConnector {
            shared: Arc::new(Shared {
                settings,
                queue,
                telemetry,
                control,
                state,
                protocol,
                close_timeout: config.close_timeout,
            }),
            inbound,
        })
    }
}

/// What the handles share with each other (the task holds its own parts).
struct Shared {
    settings: Arc<Settings>,
    queue: Arc<OutboundQueue>,
    telemetry: Arc<Telemetry>,
    control: watch::Sender<Control>,
    state: watch::Receiver<ConnectionState>,
    protocol: Arc<Mutex<Option<String>>>,
    close_timeout: Duration,
}

impl Shared {
    async fn send(&self, message: Message) -> Result<()> {
        self.queue.push(message, true).await
    }

    fn try_send(&self, message: Message) -> Result<()> {
        self.queue
            .push(message, false)
            .now_or_never()
            .unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Unexpected,
                    "the queue could not take the message without waiting",
                ))
            })
    }

    fn begin_close(&self, deadline: Instant, code: CloseCode, why: &str) {
        self.queue
            .close(Error::new(ErrorKind::InvalidState, why.to_string()));
        self.control.send_if_modified(|control| {
            if *control == Control::Run {
                *control = Control::Close { deadline, code };
                true
            } else {
                false
            }
        });
        self.queue.nudge();
    }

    async fn close(&self) -> Result<()> {
        self.begin_close(
            Instant::now() + self.close_timeout,
            CloseCode::Normal,
            "close() was called",
        );
        let mut state = self.state.clone();
        let closed = state.wait_for(ConnectionState::is_closed).await;
        match closed.as_deref() {
            Ok(ConnectionState::Closed { error: Some(e) }) => Err(e.clone()),
            Ok(_) => Ok(()),
            Err(_) => Err(Error::new(
                ErrorKind::Unexpected,
                "the WebSocket task ended without closing",
            )
            .with_context("endpoint", &self.settings.endpoint)),
        }
    }

    fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    fn stats(&self) -> WsStats {
        self.telemetry.stats(self.queue.len())
    }
}

/// A WebSocket connection that stays up: it reconnects after every drop, keeps outbound
/// messages queued while down, and hands received messages to one stream across
/// connections. See the [module docs](super) for the guarantees.
///
/// The connector is a [`Stream`] of received [`Message`]s (also [`recv`](Self::recv)); it
/// sends through [`send`](Self::send), or through [`WsSender`]s from
/// [`sender`](Self::sender) in other tasks. Dropping it closes the connection (a Close
/// frame with code 1001, queued messages discarded); [`close`](Self::close) first flushes
/// the queue.
pub struct WsConnector {
    shared: Arc<Shared>,
    inbound: mpsc::Receiver<Message>,
}

impl fmt::Debug for WsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConnector")
            .field("endpoint", &self.shared.settings.endpoint)
            .field(
                "headers",
                &self
                    .shared
                    .settings
                    .headers
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("state", &self.shared.state())
            .finish_non_exhaustive()
    }
}

impl WsConnector {
    /// A builder, to add headers (credentials among them) to the handshake.
    pub fn builder(config: WsConfig) -> WsConnectorBuilder {
        WsConnectorBuilder {
            config,
            headers: Vec::new(),
        }
    }

    /// Connects with no extra headers; see [`WsConnectorBuilder::connect`].
    pub async fn connect(config: WsConfig) -> Result<Self> {
        Self::builder(config).connect().await
    }

    /// Queues a message. It goes out, in order, once a connection is up; see
    /// [`OverflowPolicy`](super::OverflowPolicy) for a full queue. Fails once the connector
    /// is closing or closed, and for a message over `max_message_size`.
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.shared.send(message.into()).await
    }

    /// Queues a message without waiting: with [`OverflowPolicy::Wait`](super::OverflowPolicy)
    /// a full queue is an error here, as with `Reject`.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<()> {
        self.shared.try_send(message.into())
    }

    /// The next received message; `None` once the connector has closed and every message
    /// received before was taken.
    pub async fn recv(&mut self) -> Option<Message> {
        self.inbound.recv().await
    }

    /// A cloneable handle that sends and closes, for other tasks. It does not keep the
    /// connection open: dropping the connector closes it.
    pub fn sender(&self) -> WsSender {
        WsSender {
            shared: self.shared.clone(),
        }
    }

    /// Closes gracefully: refuses new sends, flushes the queue (reconnecting if need be)
    /// for up to `close_timeout`, sends a Close frame (1000), waits up to `pong_timeout` for
    /// the peer's, and ends the receive stream once its buffer is read. Returns an error
    /// when messages were left unsent, or the error that had already ended the connector.
    pub async fn close(&self) -> Result<()> {
        self.shared.close().await
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        self.shared.state()
    }

    /// A receiver of the connection state, to await changes (`changed`, `wait_for`). A
    /// watch keeps only the latest state: a quick Disconnected → Connecting → Connected may
    /// be seen as Connected alone; [`stats`](Self::stats) counts every reconnect.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.clone()
    }

    /// The subprotocol the server chose on the latest connection.
    pub fn protocol(&self) -> Option<String> {
        self.shared
            .protocol
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counters since the connector started.
    pub fn stats(&self) -> WsStats {
        self.shared.stats()
    }

    /// `scheme://host:port` of the endpoint (no path, query or credentials).
    pub fn endpoint(&self) -> &str {
        &self.shared.settings.endpoint
    }
}

impl Stream for WsConnector {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inbound.poll_recv(cx)
    }
}

impl Drop for WsConnector {
    fn drop(&mut self) {
        self.shared
            .begin_close(Instant::now(), CloseCode::Away, "the connector was dropped");
    }
}

/// Sends and closes for a [`WsConnector`], from any task; clones share the one queue.
#[derive(Clone)]
pub struct WsSender {
    shared: Arc<Shared>,
}

impl fmt::Debug for WsSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSender")
            .field("endpoint", &self.shared.settings.endpoint)
            .finish_non_exhaustive()
    }
}

impl WsSender {
    /// Queues a message; see [`WsConnector::send`].
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.shared.send(message.into()).await
    }

    /// Queues a message without waiting; see [`WsConnector::try_send`].
    pub fn try_send(&self, message: impl Into<Message>) -> Result<()> {
        self.shared.try_send(message.into())
    }

    /// Closes gracefully; see [`WsConnector::close`].
    pub async fn close(&self) -> Result<()> {
        self.shared.close().await
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        self.shared.state()
    }

    /// Counters since the connector started.
    pub fn stats(&self) -> WsStats {
        self.shared.stats()
    }
}
