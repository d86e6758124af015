//! The background task of a connector: connect, run a session, and after any drop wait
//! out the backoff and connect again, until the connector closes or gives up.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use kernelize_core::{Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use url::Url;

use super::config::ReconnectPolicy;
use super::message::Message;
use super::queue::OutboundQueue;
use super::session::{self, Liveness, SessionContext, SessionEnd, Socket, Tracked};
use super::state::{ConnectionState, DisconnectReason, Telemetry};

/// A header value: shown in Debug output, or a secret that only reaches the wire.
#[derive(Clone)]
pub(crate) enum HeaderSource {
    Plain(HeaderValue),
    Secret(SecretString),
}

/// Checked settings, shared by the handle and the task.
pub(crate) struct Settings {
    pub(crate) url: Url,
    pub(crate) endpoint: String,
    pub(crate) subprotocols: Vec<String>,
    pub(crate) headers: Vec<(HeaderName, HeaderSource)>,
    pub(crate) heartbeat_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) max_message_size: usize,
}

impl Settings {
    /// The handshake request, built anew for each attempt (fresh key, secrets exposed only
    /// into header values marked sensitive).
    pub(crate) fn request(&self) -> Result<tungstenite::handshake::client::Request> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ws_error(e, "building a request for"))?;
        let headers = request.headers_mut();
        if !self.subprotocols.is_empty() {
            let offered = HeaderValue::from_str(&self.subprotocols.join(", ")).map_err(|_| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    "a subprotocol name holds characters a header cannot carry",
                )
            })?;
            headers.insert("sec-websocket-protocol", offered);
        }
        for (name, source) in &self.headers {
            let value = match source {
                HeaderSource::Plain(value) => value.clone(),
                HeaderSource::Secret(secret) => secret_value(name, secret)?,
            };
            headers.append(name.clone(), value);
        }
        Ok(request)
    }

    fn tungstenite_config(&self) -> WebSocketConfig {
        let write_buffer = 128 * 1024;
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
            .write_buffer_size(write_buffer)
            // Room for the buffer, one message and a control frame; only reached while
            // writes fail, and it keeps a stuck socket from growing memory without bound.
            .max_write_buffer_size(
                write_buffer
                    .saturating_add(self.max_message_size)
                    .saturating_add(1024),
            )
    }
}

/// A secret as a header value marked sensitive; the error never quotes it.
pub(crate) fn secret_value(name: &HeaderName, secret: &SecretString) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose_secret()).map_err(|_| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("the secret for the `{name}` header holds characters a header cannot carry"),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// What the handle asks of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Keep the connection up.
    Run,
    /// Flush the queue until `deadline`, then send a Close with `code` and finish.
    Close {
        /// When to stop flushing.
        deadline: Instant,
        /// The close code to send.
        code: CloseCode,
    },
}

impl Control {
    /// The close deadline and code, once closing.
    pub(crate) fn closing(&self) -> Option<(Instant, CloseCode)> {
        match *self {
            Self::Run => None,
            Self::Close { deadline, code } => Some((deadline, code)),
        }
    }
}

/// Everything the task owns.
pub(crate) struct Driver {
    pub(crate) settings: Arc<Settings>,
    pub(crate) queue: Arc<OutboundQueue>,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) inbound: mpsc::Sender<Message>,
    pub(crate) control: watch::Receiver<Control>,
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) protocol: Arc<Mutex<Option<String>>>,
    /// Present for `connect()`: the first attempt's outcome goes here, and a failure ends
    /// the task instead of retrying.
    pub(crate) first: Option<oneshot::Sender<Result<()>>>,
}

/// Marks the queue closed however the task ends (a panic or the runtime shutting down
/// included), so no sender waits for room that will never come.
struct QueueCloser(Arc<OutboundQueue>);

impl Drop for QueueCloser {
    fn drop(&mut self) {
        self.0.close(Error::new(
            ErrorKind::InvalidState,
            "the connection task has ended",
        ));
    }
}

impl Driver {
    /// Runs until the connector closes or gives up.
    pub(crate) async fn run(mut self) {
        let _closer = QueueCloser(self.queue.clone());
        let error = self.connect_loop().await;
        self.telemetry.set_connected(false);
        let reason = error
            .clone()
            .unwrap_or_else(|| Error::new(ErrorKind::InvalidState, "closed"));
        self.queue.close(reason);
        let left = self.queue.discard();
        let error = match (error, left) {
            (None, 0) => None,
            (None, left) => Some(
                Error::new(
                    ErrorKind::Timeout,
                    format!("closed with {left} queued messages unsent"),
                )
                .with_context("endpoint", &self.settings.endpoint),
            ),
            (Some(e), _) => Some(e),
        };
        match &error {
            None => tracing::info!("websocket closed"),
            Some(e) => tracing::warn!(error = %e, unsent = left, "websocket closed"),
        }
        self.state.send_replace(ConnectionState::Closed { error });
    }

    fn closing(&self) -> Option<Instant> {
        self.control
            .borrow()
            .closing()
            .map(|(deadline, _)| deadline)
    }

    /// Resolves once closing leaves nothing to connect for: the queue is empty or the
    /// close deadline has passed.
    async fn close_due(&self) {
        let mut control = self.control.clone();
        loop {
            let closing = control.borrow_and_update().closing();
            if let Some((deadline, _)) = closing {
                if self.queue.len() == 0 {
                    return;
                }
                sleep_until(deadline).await;
                return;
            }
            if control.changed().await.is_err() {
                return;
            }
        }
    }

    /// Connects and reconnects; returns the error that ended it, if any.
    async fn connect_loop(&mut self) -> Option<Error> {
        let policy = self.settings.reconnect.clone();
        // Failed attempts in a row (for `max_attempts`) and the backoff step (reset only by
        // a connection that stayed up, so a flapping server sees the backoff grow).
        let mut failures: u32 = 0;
        let mut step: u32 = 0;
        loop {
            if let Some(deadline) = self.closing()
                && (self.queue.len() == 0 || Instant::now() >= deadline)
            {
                return None;
            }
            self.state.send_replace(ConnectionState::Connecting {
                attempt: failures + 1,
            });
            let liveness = Arc::new(Liveness::new());
            let attempt = tokio::select! {
                attempt = connect(&self.settings, liveness.clone()) => Some(attempt),
                () = self.close_due() => None,
            };
            let wait = match attempt {
                None => return None,
                Some(Ok((socket, protocol))) => {
                    if let Some(first) = self.first.take() {
                        let _ = first.send(Ok(()));
                    }
                    failures = 0;
                    let since = Instant::now();
                    let end = self.session(socket, &liveness, protocol).await;
                    match end {
                        SessionEnd::Closed => return None,
                        SessionEnd::Dropped(reason) => {
                            if since.elapsed() >= policy.max_delay {
                                step = 0;
                            }
                            step = step.saturating_add(1);
                            let wait = policy.backoff(step);
                            if matches!(reason, DisconnectReason::DeadPeer { .. }) {
                                self.telemetry.dead_peer();
                            }
                            tracing::warn!(
                                reason = %reason,
                                retry_in_ms = wait.as_millis() as u64,
                                "websocket connection lost"
                            );
                            self.state.send_replace(ConnectionState::Disconnected {
                                reason,
                                retry_in: wait,
                            });
                            wait
                        }
                    }
                }
                Some(Err(e)) => {
                    if let Some(first) = self.first.take() {
                        let _ = first.send(Err(e.clone()));
                        return Some(e);
                    }
                    if matches!(
                        e.kind(),
                        ErrorKind::ConfigInvalid | ErrorKind::Unexpected | ErrorKind::Unsupported
                    ) {
                        return Some(e);
                    }
                    failures = failures.saturating_add(1);
                    if let Some(max) = policy.max_attempts
                        && failures >= max
                    {
                        return Some(
                            Error::new(
                                ErrorKind::Remote,
                                format!("gave up after {failures} failed connection attempts"),
                            )
                            .with_context("endpoint", &self.settings.endpoint)
                            .set_source(e),
                        );
                    }
                    step = step.saturating_add(1);
                    let wait = policy.backoff(step);
                    tracing::warn!(
                        error = %e,
                        attempt = failures,
                        retry_in_ms = wait.as_millis() as u64,
                        "websocket connection attempt failed"
                    );
                    self.state.send_replace(ConnectionState::Disconnected {
                        reason: DisconnectReason::ConnectFailed(e),
                        retry_in: wait,
                    });
                    wait
                }
            };
            let retry_at = Instant::now() + wait;
            tokio::select! {
                () = sleep_until(retry_at) => {}
                () = self.close_due() => return None,
            }
        }
    }

    async fn session(
        &self,
        socket: Socket,
        liveness: &Liveness,
        protocol: Option<String>,
    ) -> SessionEnd {
        *self.protocol.lock().unwrap_or_else(PoisonError::into_inner) = protocol.clone();
        self.telemetry.set_connected(true);
        tracing::info!(
            protocol = protocol.as_deref().unwrap_or(""),
            "websocket connected"
        );
        self.state
            .send_replace(ConnectionState::Connected { protocol });
        let end = session::run(
            socket,
            liveness,
            SessionContext {
                settings: &self.settings,
                queue: &self.queue,
                telemetry: &self.telemetry,
                inbound: &self.inbound,
                control: self.control.clone(),
            },
        )
        .await;
        self.telemetry.set_connected(false);
        end
    }
}

/// One connection attempt: TCP, TLS for `wss://`, the WebSocket handshake, all within the
/// connect timeout. Returns the socket and the subprotocol the server chose.
async fn connect(settings: &Settings, liveness: Arc<Liveness>) -> Result<(Socket, Option<String>)> {
    let request = settings.request()?;
    let endpoint = &settings.endpoint;
    let host = settings.url.host_str().unwrap_or_default();
    let port = settings.url.port_or_known_default().unwrap_or(80);
    let attempt = async {
        let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Remote, format!("cannot reach {endpoint}: {e}"))
                    .set_source(e)
                    .set_temporary()
            })?;
        // Messages are flushed one batch at a time; Nagle would only delay them.
        tcp.set_nodelay(true).map_err(|e| {
            Error::new(ErrorKind::Remote, format!("cannot set up the socket: {e}")).set_temporary()
        })?;
        let stream = Tracked::new(tcp, liveness);
        // `None` lets tokio-tungstenite build the rustls client config with the system's
        // root certificates and the crate's one crypto provider (aws-lc-rs here).
        tokio_tungstenite::client_async_tls_with_config(
            request,
            stream,
            Some(settings.tungstenite_config()),
            None,
        )
        .await
        .map_err(|e| ws_error(e, "connecting to").with_context("endpoint", endpoint))
    };
    // rustls panics when it cannot pick a crypto provider (two compiled in, none
    // installed); that is a build problem to report, not a reason to kill the task.
    let attempt = AssertUnwindSafe(attempt).catch_unwind();
    let (socket, response) = match timeout(settings.connect_timeout, attempt).await {
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "no WebSocket connection within {} ms",
                    settings.connect_timeout.as_millis()
                ),
            )
            .with_context("endpoint", endpoint));
        }
        Ok(Err(_panic)) => {
            return Err(Error::new(
                ErrorKind::Unexpected,
                "setting up TLS panicked; with more than one rustls crypto provider compiled in, \
                 install one with rustls::crypto::CryptoProvider::install_default",
            )
            .with_context("endpoint", endpoint));
        }
        Ok(Ok(outcome)) => outcome?,
    };
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((socket, protocol))
}

/// A tungstenite error as ours. `doing` completes "while {doing} the peer".
pub(crate) fn ws_error(e: tungstenite::Error, doing: &str) -> Error {
    use tungstenite::Error as E;
    use tungstenite::error::ProtocolError as P;
    match e {
        E::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(crate::http::excerpt)
                .unwrap_or_default();
            let kind = match status.as_u16() {
                401 | 403 => ErrorKind::PermissionDenied,
                404 | 410 => ErrorKind::NotFound,
                429 => ErrorKind::RateLimited,
                _ => ErrorKind::Remote,
            };
            let mut error = Error::new(
                kind,
                format!("the server refused the WebSocket handshake ({status}) {body}")
                    .trim_end()
                    .to_string(),
            )
            .with_status(status.as_u16());
            if let Some(after) = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                error = error.with_retry_after(Duration::from_secs(after));
            }
            if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                error.set_temporary()
            } else {
                error.set_permanent()
            }
        }
        E::Protocol(P::SecWebSocketSubProtocolError(sub)) => Error::new(
            ErrorKind::Remote,
            format!("subprotocol negotiation failed: {sub}"),
        )
        .set_permanent(),
        E::Url(url) => Error::new(
            ErrorKind::ConfigInvalid,
            format!("bad WebSocket url: {url}"),
        ),
        E::HttpFormat(http) => Error::new(
            ErrorKind::ConfigInvalid,
            format!("bad WebSocket request: {http}"),
        ),
        E::Capacity(capacity) => Error::new(
            ErrorKind::CorruptData,
            format!("a frame broke a size limit while {doing} the peer: {capacity}"),
        )
        .set_temporary(),
        E::Utf8(_) => Error::new(
            ErrorKind::CorruptData,
            format!("invalid UTF-8 in a text message while {doing} the peer"),
        )
        .set_temporary(),
        E::Io(io) => Error::new(
            ErrorKind::Remote,
            format!("I/O error while {doing} the peer: {io}"),
        )
        .set_source(io)
        .set_temporary(),
        E::Tls(tls) => Error::new(
            ErrorKind::Remote,
            format!("TLS error while {doing} the peer: {tls}"),
        )
        .set_temporary(),
        other => Error::new(
            ErrorKind::Remote,
            format!("WebSocket error while {doing} the peer: {other}"),
        )
        .set_temporary(),
    }
}
