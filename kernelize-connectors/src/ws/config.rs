//! [`WsConfig`]: the plain serde settings of a WebSocket connection, and their checks.

use std::fmt;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use url::Url;

/// What [`send`](super::WsConnector::send) does when the outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// The send fails with a [`ErrorKind::RateLimited`] error naming the capacity; the queue
    /// is left as it was.
    Reject,
    /// The oldest queued message is dropped to make room (counted in
    /// `kernelize_ws_dropped_total` and [`WsStats::dropped`](super::WsStats::dropped)).
    DropOldest,
    /// The send waits until there is room (backpressure); waiting senders are served in the
    /// order they started waiting.
    #[default]
    Wait,
}

/// How long to wait between connection attempts: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectPolicy {
    /// The backoff ceiling before the first retry; it doubles with each failed attempt.
    #[serde(with = "kernelize_core::config::duration")]
    pub initial_delay: Duration,
    /// The largest backoff ceiling. A connection that stays up at least this long starts
    /// the backoff over, so a server that accepts and drops at once is not hammered.
    #[serde(with = "kernelize_core::config::duration")]
    pub max_delay: Duration,
    /// Wait a uniformly random time between zero and the ceiling ("full jitter"), so that
    /// many clients dropped together do not come back together. Off waits the ceiling.
    pub full_jitter: bool,
    /// Failed attempts in a row after which the connector gives up and closes; `None` tries
    /// for ever.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            full_jitter: true,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The wait before retry number `retry` (1 for the first): up to
    /// `min(max_delay, initial_delay × 2^(retry-1))`, uniformly random with full jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .initial_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        if !self.full_jitter {
            return ceiling;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// Settings of a WebSocket connection. Plain data: build it in code or read it from
/// configuration; [`WsConnector::builder`](super::WsConnector::builder) checks it and adds
/// headers (credentials among them, as secrets).
///
/// Durations are written as text in configuration files (`"250ms"`, `"30s"`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsConfig {
    /// The endpoint, `ws://` or `wss://`. Put credentials in a secret header rather than
    /// here: a URL carrying a password is refused, and logs and errors show only its
    /// scheme, host and port.
    pub url: String,
    /// Subprotocols to offer (`Sec-WebSocket-Protocol`), in order of preference. When some
    /// are offered the server must choose one of them, or the handshake fails.
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// How often to send a Ping; `None` turns heartbeats (and dead-peer detection) off.
    #[serde(
        default = "defaults::heartbeat_interval",
        with = "kernelize_core::config::opt_duration"
    )]
    pub heartbeat_interval: Option<Duration>,
    /// How long after a Ping some frame (the Pong, or anything else) must arrive before the
    /// peer is taken for dead and the connection is dropped. Also bounds the wait for the
    /// peer's answer to our Close.
    #[serde(
        default = "defaults::pong_timeout",
        with = "kernelize_core::config::duration"
    )]
    pub pong_timeout: Duration,
    /// Time for one connection attempt: TCP, TLS and the WebSocket handshake.
    #[serde(
        default = "defaults::connect_timeout",
        with = "kernelize_core::config::duration"
    )]
    pub connect_timeout: Duration,
    /// Waits between connection attempts.
    #[serde(default)]
    pub reconnect: ReconnectPolicy,
    /// Most messages waiting to be sent (and being sent); kept across reconnects.
    #[serde(default = "defaults::queue_capacity")]
    pub queue_capacity: usize,
    /// What a send does when the queue is full.
    #[serde(default)]
    pub overflow: OverflowPolicy,
    /// Most received messages buffered until the receive stream takes them. When it is
    /// full the connector stops reading the socket (backpressure to the server).
    #[serde(default = "defaults::inbound_capacity")]
    pub inbound_capacity: usize,
    /// Largest message, in bytes, received (a bigger one fails the connection) or accepted
    /// by a send (a bigger one is refused).
    #[serde(default = "defaults::max_message_size")]
    pub max_message_size: usize,
    /// Longest a graceful [`close`](super::WsConnector::close) waits for queued messages to
    /// go out before it sends the Close frame.
    #[serde(
        default = "defaults::close_timeout",
        with = "kernelize_core::config::duration"
    )]
    pub close_timeout: Duration,
}

/// The longest duration a setting may hold.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

mod defaults {
    use std::time::Duration;

    pub(super) fn heartbeat_interval() -> Option<Duration> {
        Some(Duration::from_secs(20))
    }
    pub(super) fn pong_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn queue_capacity() -> usize {
        1024
    }
    pub(super) fn inbound_capacity() -> usize {
        256
    }
    pub(super) fn max_message_size() -> usize {
        16 << 20
    }
    pub(super) fn close_timeout() -> Duration {
        Duration::from_secs(5)
    }
}

impl WsConfig {
    /// Settings for `url` with every default: a Ping every 20 s answered within 10 s,
    /// 10 s to connect, reconnects from 500 ms doubling up to 30 s with full jitter for
    /// ever, a queue of 1024 messages that makes senders wait when full, 256 received
    /// messages buffered, messages up to 16 MiB, 5 s to flush on close.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            subprotocols: Vec::new(),
            heartbeat_interval: defaults::heartbeat_interval(),
            pong_timeout: defaults::pong_timeout(),
            connect_timeout: defaults::connect_timeout(),
            reconnect: ReconnectPolicy::default(),
            queue_capacity: defaults::queue_capacity(),
            overflow: OverflowPolicy::default(),
            inbound_capacity: defaults::inbound_capacity(),
            max_message_size: defaults::max_message_size(),
            close_timeout: defaults::close_timeout(),
        }
    }

    /// Checks the settings and parses the URL.
    pub(crate) fn validate(&self) -> Result<Url> {
        let invalid = |message: String| Error::new(ErrorKind::ConfigInvalid, message);
        let url = Url::parse(&self.url).map_err(|e| {
            invalid(format!(
                "the WebSocket url `{}` does not parse: {e}",
                redact_url(&self.url)
            ))
        })?;
        if url.scheme() != "ws" && url.scheme() != "wss" {
            return Err(invalid(format!(
                "the WebSocket url must start with ws:// or wss://, not {}://",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("the WebSocket url has no host".to_string()));
        }
        if url.password().is_some() {
            return Err(invalid(format!(
                "the WebSocket url for {} carries a password; pass credentials as a secret header instead",
                endpoint(&url)
            )));
        }
        for protocol in &self.subprotocols {
            let is_token = !protocol.is_empty()
                && protocol
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !is_token {
                return Err(invalid(format!(
                    "`{protocol}` is not a valid WebSocket subprotocol name"
                )));
            }
        }
        if self.heartbeat_interval == Some(Duration::ZERO) {
            return Err(invalid(
                "heartbeat_interval must be above zero (leave it out to turn heartbeats off)"
                    .to_string(),
            ));
        }
        for (name, value) in [
            ("pong_timeout", self.pong_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(format!("{name} must be above zero")));
            }
        }
        // Deadlines are computed as now + duration; keep them far from overflowing.
        for (name, value) in [
            (
                "heartbeat_interval",
                self.heartbeat_interval.unwrap_or_default(),
            ),
            ("pong_timeout", self.pong_timeout),
            ("connect_timeout", self.connect_timeout),
            ("close_timeout", self.close_timeout),
            ("reconnect.initial_delay", self.reconnect.initial_delay),
            ("reconnect.max_delay", self.reconnect.max_delay),
        ] {
            if value > MAX_DURATION {
                return Err(invalid(format!("{name} must be at most a year")));
            }
        }
        if self.reconnect.initial_delay > self.reconnect.max_delay {
            return Err(invalid(
                "reconnect.initial_delay is larger than reconnect.max_delay".to_string(),
            ));
        }
        if self.reconnect.max_attempts == Some(0) {
            return Err(invalid(
                "reconnect.max_attempts must be at least 1 (leave it out to try for ever)"
                    .to_string(),
            ));
        }
        for (name, value) in [
            ("queue_capacity", self.queue_capacity),
            ("inbound_capacity", self.inbound_capacity),
            ("max_message_size", self.max_message_size),
        ] {
            if value == 0 {
                return Err(invalid(format!("{name} must be at least 1")));
            }
        }
        // A semaphore holds the free queue slots; keep within what it can count.
        if self.queue_capacity > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(invalid(format!(
                "queue_capacity {} is larger than the most supported ({})",
                self.queue_capacity,
                tokio::sync::Semaphore::MAX_PERMITS
            )));
        }
        Ok(url)
    }
}

impl fmt::Debug for WsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConfig")
            .field("url", &redact_url(&self.url))
            .field("subprotocols", &self.subprotocols)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("pong_timeout", &self.pong_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &self.reconnect)
            .field("queue_capacity", &self.queue_capacity)
            .field("overflow", &self.overflow)
            .field("inbound_capacity", &self.inbound_capacity)
            .field("max_message_size", &self.max_message_size)
            .field("close_timeout", &self.close_timeout)
            .finish()
    }
}

/// `scheme://host:port` of a URL: what logs and errors may show. Paths and query strings
/// are left out because some services put keys there.
pub(crate) fn endpoint(url: &Url) -> String {
    match url.port_or_known_default() {
        Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or("")),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
    }
}

/// A URL as Debug output may show it: its endpoint, with `/…` standing for a path or query.
fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => {
            let rest = if url.path() != "/" || url.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!("{}{rest}", endpoint(&url))
        }
        Err(_) => "(unparsable url)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_durations_as_text_and_fills_defaults() {
        let config: WsConfig = serde_json::from_value(serde_json::json!({
            "url": "wss://stream.example.com/v1",
            "heartbeat_interval": "5s",
            "reconnect": {"initial_delay": "100ms", "max_attempts": 3},
            "overflow": "drop_oldest"
        }))
        .unwrap_or_else(|_| WsConfig::new(""));
        assert_eq!(config.heartbeat_interval, Some(Duration::from_secs(5)));
        assert_eq!(config.reconnect.initial_delay, Duration::from_millis(100));
        assert_eq!(config.reconnect.max_attempts, Some(3));
        assert_eq!(config.overflow, OverflowPolicy::DropOldest);
        assert_eq!(config.queue_capacity, 1024);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn debug_and_errors_leave_out_path_query_and_password() {
        let config = WsConfig::new("wss://api.example.com/ws/listenkey123?token=abc");
        let shown = format!("{config:?}");
        assert!(shown.contains("wss://api.example.com:443/…"), "{shown}");
        assert!(
            !shown.contains("abc") && !shown.contains("listenkey123"),
            "{shown}"
        );

        let err = WsConfig::new("ws://me:hunter2@example.com/")
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn refuses_bad_settings() {
        let mut config = WsConfig::new("http://example.com/");
        assert!(config.validate().is_err());
        config.url = "ws://example.com/".into();
        config.queue_capacity = 0;
        assert!(config.validate().is_err());
        config.queue_capacity = 1;
        config.subprotocols = vec!["a, b".into()];
        assert!(config.validate().is_err());
        config.subprotocols = vec!["graphql-transport-ws".into()];
        assert!(config.validate().is_ok());
        config.close_timeout = Duration::from_secs(u64::MAX);
        assert!(config.validate().is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
            full_jitter: false,
            max_attempts: None,
        };
        let waits: Vec<u128> = (1..=6).map(|r| policy.backoff(r).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 800, 800]);
        let jittered = ReconnectPolicy {
            full_jitter: true,
            ..policy
        };
        assert!((0..100).all(|_| jittered.backoff(3) <= Duration::from_millis(400)));
    }
}
