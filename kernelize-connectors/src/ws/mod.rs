//! The WebSocket connector: one connection that stays up, with a queue that survives
//! reconnects.
//!
//! - [`WsConfig`] is plain serde data (URL, subprotocols, heartbeat, reconnect backoff,
//!   queue size and [`OverflowPolicy`], size limits, timeouts);
//!   [`WsConnector::builder`] adds handshake headers, credentials as
//!   [`SecretString`](secrecy::SecretString)s, and connects.
//! - [`WsConnector::send`] queues a [`Message`]; the connector is a `Stream` of received
//!   messages across reconnects; [`WsConnector::close`] flushes, closes and ends the stream.
//! - [`ConnectionState`] (watch it with [`WsConnector::watch_state`]) and [`WsStats`] tell
//!   what it is doing.
//!
//! ```no_run
//! use futures::StreamExt;
//! use kernelize_connectors::ws::{OverflowPolicy, WsConfig, WsConnector};
//!
//! # async fn demo() -> kernelize_core::Result<()> {
//! let mut config = WsConfig::new("wss://feed.example.com/v1");
//! config.queue_capacity = 10_000;
//! config.overflow = OverflowPolicy::DropOldest;
//! let mut ws = WsConnector::connect(config).await?;
//! ws.send(r#"{"subscribe": "prices"}"#).await?;
//! while let Some(message) = ws.next().await {
//!     println!("{:?}", message.as_text());
//! }
//! # Ok(()) }
//! ```
//!
//! # What happens, and what is guaranteed
//!
//! **Connecting.** [`WsConnectorBuilder::connect`] returns once the first connection is up,
//! or with the first attempt's error. [`WsConnectorBuilder::start`] returns at once and
//! retries from the start. `wss://` uses rustls with the system's root certificates.
//! Subprotocols offered in [`WsConfig::subprotocols`] go in `Sec-WebSocket-Protocol`; the
//! server must pick one of them ([`WsConnector::protocol`] tells which).
//!
//! **Reconnecting.** After any drop (the peer closes, an I/O or protocol error, a dead
//! peer) and after any failed attempt, the connector waits a backoff drawn with full jitter
//! from a ceiling that doubles from `reconnect.initial_delay` up to `reconnect.max_delay`,
//! then connects again, for ever or up to `reconnect.max_attempts` failed attempts in a
//! row. The backoff starts over only after a connection that stayed up `max_delay`, so a
//! server that accepts and drops at once sees the waits grow. Refused handshakes (401, 403,
//! 404) are retried too — load balancers answer those during deploys — only invalid
//! settings stop it. Each step shows in [`ConnectionState`].
//!
//! **Dead peers.** Every `heartbeat_interval` a Ping goes out. When nothing at all (a Pong
//! or any other byte) has come back `pong_timeout` after the oldest unanswered Ping, or a
//! write has not moved a byte for `pong_timeout` while nothing came in, the peer is taken
//! for dead: the connection is dropped without waiting for TCP to notice (which can take
//! many minutes), and reconnected. A receiver that does not read the stream stops the
//! connector reading the socket (backpressure), and that pause is not held against the
//! peer.
//!
//! **Sending.** Messages wait in one bounded queue (`queue_capacity`), also while
//! disconnected. A message leaves the queue only after it was written *and flushed* to a
//! live connection; a write that fails leaves it at the head, and it goes first on the next
//! connection. So within the bound, across any number of reconnects, no message is lost
//! and the order is kept. When the queue is full the [`OverflowPolicy`] decides: `Reject`
//! (an error naming the capacity), `DropOldest` (counted in `kernelize_ws_dropped_total`
//! and [`WsStats::dropped`]) or `Wait` (backpressure; the default).
//!
//! What the transport cannot promise, and this connector does not pretend to:
//!
//! - *Flushed is not received.* A flushed message sits in the operating system's buffers,
//!   then the network's, then the peer's; if the peer dies before its application reads
//!   it, it is gone, and it is not sent again. Only an acknowledgement from the peer's
//!   application can close that gap, and WebSocket has none; protocols that need it (a
//!   sequence number the server echoes back) build it on top.
//! - *A rare duplicate.* When a connection dies in the middle of a flush, a message of
//!   that batch may have reached the peer although the flush reported failure; it is sent
//!   again on the next connection. Receivers that cannot tolerate a repeat should
//!   deduplicate by an id of their own.
//! - A `close` whose `close_timeout` passes while a batch is being written reports that
//!   batch unsent, though part of it may still reach the peer.
//!
//! **Receiving.** Text and binary messages from every connection arrive, in order per
//! connection, on the connector's stream (up to `inbound_capacity` buffered). Messages and
//! frames above `max_message_size` fail the connection (and it reconnects) instead of
//! growing memory.
//!
//! **Closing.** [`WsConnector::close`] refuses new sends, flushes the queue (reconnecting if
//! need be) for up to `close_timeout`, sends a Close frame (1000), waits up to
//! `pong_timeout` for the peer's, then ends the receive stream. Dropping the connector
//! sends a Close frame (1001) without flushing and stops the background task; messages
//! still queued are counted as dropped.
//!
//! **Observability.** The task runs in a `websocket` tracing span carrying the endpoint
//! (`scheme://host:port`: never a path, query string or credential). Metrics, labelled by
//! host: `kernelize_ws_messages_sent_total`, `kernelize_ws_messages_received_total`,
//! `kernelize_ws_reconnects_total`, `kernelize_ws_dropped_total` (label `reason`:
//! `overflow` or `closed`) and the gauge `kernelize_ws_connected`.
//!
//! **Secrets.** Secret headers are exposed only into header values marked sensitive, built
//! anew for each attempt; Debug output shows `[redacted]`, and errors name the header,
//! never its value. One caveat outside this crate: tungstenite logs the raw handshake
//! request, headers included, at `trace` level through the `log` crate; keep the
//! `tungstenite` target below `trace` where credentials travel in headers.

mod config;
mod connector;
mod driver;
mod message;
mod queue;
mod session;
mod state;

pub use config::{OverflowPolicy, ReconnectPolicy, WsConfig};
pub use connector::{WsConnector, WsConnectorBuilder, WsSender};
pub use message::Message;
pub use state::{ConnectionState, DisconnectReason, WsStats};
