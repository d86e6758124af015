//! What a connector reports about itself: [`ConnectionState`], [`DisconnectReason`],
//! [`WsStats`], and the counters and metrics behind them.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kernelize_core::Error;

/// Where the connection stands. Watch it with
/// [`WsConnector::watch_state`](super::WsConnector::watch_state).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum ConnectionState {
    /// A connection attempt is under way (1 for the first attempt after a drop).
    Connecting {
        /// Attempts in a row, this one included.
        attempt: u32,
    },
    /// Connected; queued messages are going out.
    Connected {
        /// The subprotocol the server chose, if subprotocols were offered.
        protocol: Option<String>,
    },
    /// Not connected; the next attempt starts after `retry_in`.
    Disconnected {
        /// Why the connection ended or the attempt failed.
        reason: DisconnectReason,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// Finished for good: closed by [`close`](super::WsConnector::close), by dropping the
    /// connector, or given up. The receive stream ends once its buffer is read.
    Closed {
        /// Why it gave up, or what a graceful close could not do (messages left unsent);
        /// `None` for a clean close.
        error: Option<Error>,
    },
}

impl ConnectionState {
    /// Whether the state is [`ConnectionState::Connected`].
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }

    /// Whether the state is [`ConnectionState::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

/// Why a connection ended (or an attempt failed).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum DisconnectReason {
    /// The peer sent a Close frame or ended the stream.
    PeerClosed {
        /// The close code, when the peer gave one (1001 for "going away").
        code: Option<u16>,
        /// The reason the peer gave (may be empty).
        reason: String,
    },
    /// Nothing arrived within the pong timeout after a Ping: the peer or the path to it is
    /// gone, and the connection was dropped without waiting for TCP to notice.
    DeadPeer {
        /// How long the connection had been silent.
        silent_for: Duration,
    },
    /// The connection failed: I/O, TLS or protocol error.
    Failed(Error),
    /// A connection attempt failed (refused, timed out, handshake refused).
    ConnectFailed(Error),
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed { code, reason } => {
                f.write_str("the peer closed the connection")?;
                if let Some(code) = code {
                    write!(f, " (code {code}")?;
                    if !reason.is_empty() {
                        write!(f, ", {reason}")?;
                    }
                    f.write_str(")")?;
                }
                Ok(())
            }
            Self::DeadPeer { silent_for } => write!(
                f,
                "no answer to a ping: silent for {} ms",
                silent_for.as_millis()
            ),
            Self::Failed(e) => write!(f, "the connection failed: {e}"),
            Self::ConnectFailed(e) => write!(f, "could not connect: {e}"),
        }
    }
}

/// Counters of one connector, since it started.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WsStats {
    /// Messages written and flushed to a live connection.
    pub sent: u64,
    /// Data messages received (control frames not counted).
    pub received: u64,
    /// Messages dropped: pushed out by [`OverflowPolicy::DropOldest`](super::OverflowPolicy)
    /// or left unsent when the connector closed.
    pub dropped: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    /// Connections dropped because the peer stopped answering pings.
    pub dead_peers: u64,
    /// Messages in the outbound queue right now.
    pub queued: u64,
    /// Whether a connection is up right now.
    pub connected: bool,
}

/// The counters behind [`WsStats`], also sent to the `metrics` facade labelled by host.
#[derive(Debug)]
pub(crate) struct Telemetry {
    host: String,
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    connections: AtomicU64,
    dead_peers: AtomicU64,
    connected: AtomicBool,
}

impl Telemetry {
    pub(crate) fn new(host: String) -> Self {
        Self {
            host,
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            dead_peers: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        }
    }

    pub(crate) fn sent(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.sent.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("kernelize_ws_messages_sent_total", "host" => self.host.clone())
            .increment(n);
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kernelize_ws_messages_received_total", "host" => self.host.clone())
            .increment(1);
    }

    /// `reason` is `overflow` (DropOldest) or `closed` (left unsent at the end).
    pub(crate) fn dropped(&self, n: u64, reason: &'static str) {
        if n == 0 {
            return;
        }
        self.dropped.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("kernelize_ws_dropped_total", "host" => self.host.clone(), "reason" => reason)
            .increment(n);
    }

    pub(crate) fn dead_peer(&self) {
        self.dead_peers.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection came up (or went down).
    pub(crate) fn set_connected(&self, up: bool) {
        let was = self.connected.swap(up, Ordering::Relaxed);
        if was == up {
            return;
        }
        let gauge = metrics::gauge!("kernelize_ws_connected", "host" => self.host.clone());
        if up {
            // The gauge counts connected connectors per host, so several connectors to
            // one host add up instead of overwriting each other.
            gauge.increment(1.0);
            if self.connections.fetch_add(1, Ordering::Relaxed) > 0 {
                metrics::counter!("kernelize_ws_reconnects_total", "host" => self.host.clone())
                    .increment(1);
            }
        } else {
            gauge.decrement(1.0);
        }
    }

    pub(crate) fn stats(&self, queued: usize) -> WsStats {
        WsStats {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            reconnects: self.connections.load(Ordering::Relaxed).saturating_sub(1),
            dead_peers: self.dead_peers.load(Ordering::Relaxed),
            queued: queued as u64,
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}
