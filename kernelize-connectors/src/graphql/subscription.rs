//! GraphQL subscriptions over WebSocket with the graphql-transport-ws protocol: one socket
//! per [`Subscription`], driven by a task of its own.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};
use kernelize_core::{Error, ErrorKind, Result};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tracing::Instrument;
use url::Url;

use super::options::{SubscriptionOptions, describe_url};
use super::protocol::{self, CLOSE_ACK_TIMEOUT, CLOSE_BAD_MESSAGE, SUBPROTOCOL, ServerMessage};
use super::request::GraphQLRequest;
use super::response::{GraphQLResponse, errors_error};

/// Subscription ids, unique in the process (the protocol needs them unique per socket).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a WebSocket is to the code below: a stream of messages and a sink for them.
trait Socket:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin + Send + 'static
{
}

impl<T> Socket for T where
    T: Stream<Item = Result<Message, WsError>>
        + Sink<Message, Error = WsError>
        + Unpin
        + Send
        + 'static
{
}

/// A running GraphQL subscription: a [`Stream`] of results.
///
/// Each `next` message from the server is an `Ok` item (a [`GraphQLResponse`], which may
/// carry field errors beside its data). The stream ends after the server's `complete`; an
/// `error` message, a close code or a broken connection is one last `Err` item, then the
/// end. Protocol pings from the server are answered while the stream is alive.
///
/// [`Subscription::unsubscribe`] (or [`SubscriptionHandle::unsubscribe`] from elsewhere)
/// sends `complete` for this operation and closes its socket; dropping the subscription
/// does the same in the background. Results not yet read are then discarded.
///
/// Backpressure: a few results ([`SubscriptionOptions::buffer`]) wait for a slow consumer;
/// beyond that the socket is not read until the consumer catches up, so server pings wait
/// too and a server with a short ping timeout may close the connection.
pub struct Subscription {
    results: mpsc::Receiver<Result<GraphQLResponse>>,
    handle: SubscriptionHandle,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.handle.id())
            .field("finished", &self.handle.is_finished())
            .finish()
    }
}

impl Subscription {
    /// The operation id sent in `subscribe`.
    pub fn id(&self) -> &str {
        self.handle.id()
    }

    /// A handle that can end this subscription from another task.
    pub fn handle(&self) -> SubscriptionHandle {
        self.handle.clone()
    }

    /// Ends the subscription: sends `complete` for it, closes its socket, and returns when
    /// that is done (within the close timeout, however the server behaves).
    pub async fn unsubscribe(self) {
        self.handle.unsubscribe().await;
    }
}

impl Stream for Subscription {
    type Item = Result<GraphQLResponse>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.handle.stop_requested() {
            return Poll::Ready(None);
        }
        this.results.poll_recv(cx)
    }
}

/// Ends a [`Subscription`] from anywhere; cheap to clone.
#[derive(Clone)]
pub struct SubscriptionHandle {
    id: Arc<str>,
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for SubscriptionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl SubscriptionHandle {
    /// The operation id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends `complete` for the subscription, closes its socket and waits until that is
    /// done; the subscription's stream ends. Does nothing more once it has ended.
    pub async fn unsubscribe(&self) {
        self.stop.send_replace(true);
        // The driving task holds the only receiver: closed means it has finished.
        self.stop.closed().await;
    }

    /// Whether the subscription has ended (completed, failed or unsubscribed) and its
    /// socket is closed.
    pub fn is_finished(&self) -> bool {
        self.stop.is_closed()
    }

    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Opens a socket, initializes it, subscribes with `request` and starts the task that
/// drives the socket. Fails when any of that fails (the socket is then closed).
pub(crate) async fn open(
    options: &SubscriptionOptions,
    url: &Url,
    request: &GraphQLRequest,
) -> Result<Subscription> {
    let server = describe_url(url);
    let labels = request.labels();
    let kind = labels.kind_label();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed).to_string();
    let span = tracing::debug_span!(
        "graphql_subscription",
        operation_type = kind,
        operation_name = %labels.name,
        id = %id,
        server = %server
    );
    let opened = async {
        let mut ws = connect(options, url, &server).await?;
        initialize(&mut ws, options, &server).await?;
        let subscribe = protocol::subscribe(&id, request.body());
        send_text(&mut ws, subscribe, &server, options.max_message_size).await?;
        tracing::debug!("subscribed");
        Ok::<_, Error>(ws)
    }
    .instrument(span.clone())
    .await;
    let ws = match opened {
        Ok(ws) => ws,
        Err(error) => {
            tracing::debug!(parent: &span, error = %error, "subscription refused");
            metrics::counter!("kernelize_graphql_subscriptions_total", "operation_type" => kind, "outcome" => "refused")
                .increment(1);
            return Err(error);
        }
    };
    let (results_tx, results_rx) = mpsc::channel(options.buffer);
    let (stop_tx, stop_rx) = watch::channel(false);
    let driver = Driver {
        ws,
        id: id.clone(),
        server,
        kind,
        results: results_tx,
        stop: stop_rx,
        keepalive: options.keepalive,
        close_timeout: options.close_timeout,
        max_message_size: options.max_message_size,
    };
    tokio::spawn(driver.run().instrument(span));
    Ok(Subscription {
        results: results_rx,
        handle: SubscriptionHandle {
            id: id.into(),
            stop: Arc::new(stop_tx),
        },
    })
}

/// Connects within the connect timeout, asking for the graphql-transport-ws subprotocol.
async fn connect(options: &SubscriptionOptions, url: &Url, server: &str) -> Result<impl Socket> {
    let max = options.max_message_size;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| protocol::ws_error(server, e, max))?;
    let headers = request.headers_mut();
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    for (name, value) in &options.headers {
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("the value of header `{name}` holds characters a header cannot carry"),
            )
        })?;
        value.set_sensitive(true);
        headers.insert(name.clone(), value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(options.connect_timeout, connecting).await {
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "cannot connect to {server} within {} ms",
                options.connect_timeout.as_millis()
            ),
        )
        .set_temporary()),
        Ok(Err(e)) => Err(protocol::ws_error(server, e, max)),
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}

/// A failure and the close frame to answer it with (`None` when the socket is gone or the
/// server closed it).
struct Failure {
    error: Error,
    close: Option<(u16, &'static str)>,
}

impl Failure {
    fn new(error: Error) -> Self {
        Self { error, close: None }
    }

    fn closing(error: Error, code: u16, reason: &'static str) -> Self {
        Self {
            error,
            close: Some((code, reason)),
        }
    }
}

/// Sends `connection_init` and waits for `connection_ack` within the ack timeout,
/// answering pings meanwhile. On failure the socket is closed.
async fn initialize<S: Socket>(
    ws: &mut S,
    options: &SubscriptionOptions,
    server: &str,
) -> Result<()> {
    let max = options.max_message_size;
    let init = protocol::connection_init(options.init_payload.as_ref().map(|p| p.expose_secret()));
    send_text(ws, init, server, max).await?;
    let failure = match tokio::time::timeout(options.ack_timeout, wait_for_ack(ws, server, max))
        .await
    {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(failure)) => failure,
        Err(_) => Failure::closing(
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "{server} did not acknowledge the connection (no connection_ack within {} ms)",
                    options.ack_timeout.as_millis()
                ),
            )
            .set_temporary(),
            CLOSE_ACK_TIMEOUT,
            "Connection acknowledgement timeout",
        ),
    };
    close(ws, failure.close, options.close_timeout).await;
    Err(failure.error)
}

async fn wait_for_ack<S: Socket>(ws: &mut S, server: &str, max: usize) -> Result<(), Failure> {
    loop {
        let text = match ws.next().await {
            None => {
                return Err(Failure::new(
                    Error::new(
                        ErrorKind::Remote,
                        format!("{server} ended the connection before connection_ack"),
                    )
                    .set_temporary(),
                ));
            }
            Some(Err(e)) => return Err(Failure::new(protocol::ws_error(server, e, max))),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(Failure::new(protocol::close_error(server, frame.as_ref())));
            }
            Some(Ok(Message::Binary(_))) => return Err(binary_message(server)),
            Some(Ok(_)) => continue,
        };
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::ConnectionAck {}) => return Ok(()),
            Ok(ServerMessage::Ping {}) => send_text(ws, protocol::pong(), server, max)
                .await
                .map_err(Failure::new)?,
            Ok(ServerMessage::Pong {}) => {}
            Ok(other) => {
                return Err(Failure::closing(
                    Error::new(
                        ErrorKind::Remote,
                        format!("{server} sent `{}` before connection_ack", other.kind()),
                    )
                    .set_permanent(),
                    CLOSE_BAD_MESSAGE,
                    "Invalid message received",
                ));
            }
            Err(e) => return Err(invalid_message(server, &e)),
        }
    }
}

fn binary_message(server: &str) -> Failure {
    Failure::closing(
        Error::new(
            ErrorKind::Remote,
            format!("{server} sent a binary message; graphql-transport-ws is text only"),
        )
        .set_permanent(),
        CLOSE_BAD_MESSAGE,
        "Invalid message received",
    )
}

fn invalid_message(server: &str, e: &serde_json::Error) -> Failure {
    Failure::closing(
        Error::new(
            ErrorKind::Remote,
            format!("{server} sent a message that is not graphql-transport-ws: {e}"),
        )
        .set_permanent(),
        CLOSE_BAD_MESSAGE,
        "Invalid message received",
    )
}

async fn send_text<S: Socket>(ws: &mut S, text: String, server: &str, max: usize) -> Result<()> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| protocol::ws_error(server, e, max))
}

/// Closes the socket politely within `timeout`: sends `frame` (when the close is ours to
/// start) and reads until the server's side of the handshake, which also flushes our
/// answer to a close the server started. Errors are of no interest any more.
async fn close<S: Socket>(ws: &mut S, frame: Option<(u16, &'static str)>, timeout: Duration) {
    close_after(ws, None, frame, timeout).await;
}

/// [`close`], sending `last` (a `complete`) first, all within the same `timeout`.
async fn close_after<S: Socket>(
    ws: &mut S,
    last: Option<String>,
    frame: Option<(u16, &'static str)>,
    timeout: Duration,
) {
    let closing = async {
        if let Some(last) = last
            && ws.send(Message::text(last)).await.is_err()
        {
            return;
        }
        if let Some((code, reason)) = frame {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            if ws.send(Message::Close(Some(frame))).await.is_err() {
                return;
            }
        }
        while let Some(Ok(_)) = ws.next().await {}
    };
    let _ = tokio::time::timeout(timeout, closing).await;
}

/// How a subscription ended.
enum End {
    /// The server sent `complete`.
    Completed,
    /// The consumer unsubscribed or dropped the subscription.
    Unsubscribed,
    /// Anything else.
    Failed(Failure),
}

/// Owns one socket for one subscription.
struct Driver<S> {
    ws: S,
    id: String,
    server: String,
    kind: &'static str,
    results: mpsc::Sender<Result<GraphQLResponse>>,
    stop: watch::Receiver<bool>,
    keepalive: Option<Duration>,
    close_timeout: Duration,
    max_message_size: usize,
}

impl<S: Socket> Driver<S> {
    async fn run(mut self) {
        metrics::gauge!("kernelize_graphql_subscriptions_active").increment(1.0);
        let end = self.pump().await;
        let outcome = match end {
            End::Completed => {
                tracing::debug!("subscription completed");
                close(
                    &mut self.ws,
                    Some((1000, "Normal Closure")),
                    self.close_timeout,
                )
                .await;
                "completed"
            }
            End::Unsubscribed => {
                tracing::debug!("unsubscribing");
                let complete = protocol::complete(&self.id);
                let normal = Some((1000, "Normal Closure"));
                close_after(&mut self.ws, Some(complete), normal, self.close_timeout).await;
                "unsubscribed"
            }
            End::Failed(failure) => {
                tracing::debug!(error = %failure.error, "subscription failed");
                close(&mut self.ws, failure.close, self.close_timeout).await;
                self.deliver(Err(failure.error)).await;
                "failed"
            }
        };
        metrics::gauge!("kernelize_graphql_subscriptions_active").decrement(1.0);
        metrics::counter!("kernelize_graphql_subscriptions_total", "operation_type" => self.kind, "outcome" => outcome)
            .increment(1);
    }

    /// Reads the socket until the subscription ends.
    async fn pump(&mut self) -> End {
        let mut keepalive = self
            .keepalive
            .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        let mut awaiting_pong = false;
        loop {
            tokio::select! {
                biased;
                _ = self.stop.changed() => return End::Unsubscribed,
                _ = self.results.closed() => return End::Unsubscribed,
                message = self.ws.next() => {
                    if let Some(end) = self.on_message(message, &mut awaiting_pong).await {
                        return end;
                    }
                }
                _ = tick(&mut keepalive) => {
                    if awaiting_pong {
                        let every = self.keepalive.unwrap_or_default();
                        return End::Failed(Failure::closing(
                            Error::new(
                                ErrorKind::Timeout,
                                format!("{} did not answer a ping within {} ms", self.server, every.as_millis()),
                            )
                            .set_temporary(),
                            1000,
                            "Normal Closure",
                        ));
                    }
                    awaiting_pong = true;
                    if let Err(e) = self.send(protocol::ping()).await {
                        return End::Failed(Failure::new(e));
                    }
                }
            }
        }
    }

    /// Handles one message; `Some` when it ends the subscription.
    async fn on_message(
        &mut self,
        message: Option<Result<Message, WsError>>,
        awaiting_pong: &mut bool,
    ) -> Option<End> {
        let server = &self.server;
        let text = match message {
            None => {
                return Some(End::Failed(Failure::new(
                    Error::new(
                        ErrorKind::Remote,
                        format!(
                            "{server} ended the connection without completing the subscription"
                        ),
                    )
                    .set_temporary(),
                )));
            }
            Some(Err(e)) => {
                let close = matches!(e, WsError::Capacity(_)).then_some((1009, "Message Too Big"));
                let error = protocol::ws_error(server, e, self.max_message_size);
                return Some(End::Failed(Failure { error, close }));
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Some(End::Failed(Failure::new(protocol::close_error(
                    server,
                    frame.as_ref(),
                ))));
            }
            Some(Ok(Message::Binary(_))) => return Some(End::Failed(binary_message(server))),
            // WebSocket-level pings are answered by tungstenite itself.
            Some(Ok(_)) => return None,
        };
        let message = match serde_json::from_str::<ServerMessage>(&text) {
            Ok(message) => message,
            Err(e) => return Some(End::Failed(invalid_message(server, &e))),
        };
        match message {
            ServerMessage::Next { id, payload } if id == self.id => {
                metrics::counter!("kernelize_graphql_subscription_events_total", "operation_type" => self.kind)
                    .increment(1);
                if self.deliver(Ok(payload)).await {
                    None
                } else {
                    Some(End::Unsubscribed)
                }
            }
            ServerMessage::Error { id, payload } if id == self.id => {
                Some(End::Failed(Failure::closing(
                    errors_error(
                        &format!("{server} ended the subscription with errors"),
                        payload,
                    ),
                    1000,
                    "Normal Closure",
                )))
            }
            ServerMessage::Complete { id } if id == self.id => Some(End::Completed),
            ServerMessage::Next { .. }
            | ServerMessage::Error { .. }
            | ServerMessage::Complete { .. } => {
                tracing::debug!("ignoring a message for another operation id");
                None
            }
            ServerMessage::Ping {} => match self.send(protocol::pong()).await {
                Ok(()) => None,
                Err(e) => Some(End::Failed(Failure::new(e))),
            },
            ServerMessage::Pong {} => {
                *awaiting_pong = false;
                None
            }
            // A repeated acknowledgement changes nothing.
            ServerMessage::ConnectionAck {} => None,
        }
    }

    async fn send(&mut self, text: String) -> Result<()> {
        send_text(&mut self.ws, text, &self.server, self.max_message_size).await
    }

    /// Hands a result to the consumer, waiting while the buffer is full; `false` when the
    /// consumer has gone or unsubscribed meanwhile.
    async fn deliver(&mut self, item: Result<GraphQLResponse>) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        tokio::select! {
            biased;
            _ = self.stop.changed() => false,
            sent = self.results.send(item) => sent.is_ok(),
        }
    }
}

/// The next keep-alive tick, or never without keep-alive.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}
