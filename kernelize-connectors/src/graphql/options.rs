//! [`SubscriptionOptions`]: how subscriptions reach the server over WebSocket.

use std::fmt;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use url::Url;

/// How subscriptions reach the server: the WebSocket URL, the `connection_init` payload,
/// extra handshake headers, timeouts, keep-alive pings and memory bounds.
///
/// The `connection_init` payload and the header values usually carry credentials: they
/// are kept as secrets and never appear in `Debug` output, logs or errors.
#[derive(Clone)]
pub struct SubscriptionOptions {
    pub(crate) url: Option<Url>,
    pub(crate) init_payload: Option<SecretString>,
    pub(crate) headers: Vec<(HeaderName, SecretString)>,
    pub(crate) connect_timeout: Duration,
    pub(crate) ack_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) max_message_size: usize,
    pub(crate) buffer: usize,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            url: None,
            init_payload: None,
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            keepalive: None,
            max_message_size: 16 << 20,
            buffer: 32,
        }
    }
}

impl fmt::Debug for SubscriptionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("SubscriptionOptions")
            .field("url", &self.url.as_ref().map(describe_url))
            .field(
                "init_payload",
                &self.init_payload.as_ref().map(|_| "[redacted]"),
            )
            .field("headers", &headers)
            .field("connect_timeout", &self.connect_timeout)
            .field("ack_timeout", &self.ack_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("keepalive", &self.keepalive)
            .field("max_message_size", &self.max_message_size)
            .field("buffer", &self.buffer)
            .finish()
    }
}

impl SubscriptionOptions {
    /// The defaults: the URL derived from the HTTP endpoint (`http` becomes `ws`, `https`
    /// becomes `wss`), no `connection_init` payload, 10 s to connect, 10 s for the server's
    /// `connection_ack`, no keep-alive pings of our own, messages up to 16 MiB, 32 results
    /// buffered per subscription.
    pub fn new() -> Self {
        Self::default()
    }

    /// The WebSocket URL (`ws://` or `wss://`), when it is not the HTTP endpoint's.
    pub fn url(mut self, url: &str) -> Result<Self> {
        let parsed = Url::parse(url).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("bad WebSocket URL `{url}`: {e}"),
            )
        })?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "the WebSocket URL `{}` must be ws or wss",
                    describe_url(&parsed)
                ),
            ));
        }
        self.url = Some(parsed);
        Ok(self)
    }

    /// The `connection_init` payload (usually credentials: `{"authToken": "..."}` or
    /// `{"headers": {"Authorization": "Bearer ..."}}`), kept as a secret.
    pub fn init_payload<P: Serialize + ?Sized>(mut self, payload: &P) -> Result<Self> {
        let value = serde_json::to_value(payload)?;
        if !value.is_object() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "the connection_init payload must be a JSON object",
            ));
        }
        self.init_payload = Some(SecretString::from(value.to_string()));
        Ok(self)
    }

    /// A header sent with the WebSocket handshake (some servers authenticate the upgrade
    /// request rather than `connection_init`); its value is kept as a secret and marked
    /// sensitive.
    pub fn header(mut self, name: &str, value: SecretString) -> Result<Self> {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("bad header name `{name}`: {e}"),
            )
        })?;
        if HeaderValue::from_str(value.expose_secret()).is_err() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("the value of header `{name}` holds characters a header cannot carry"),
            ));
        }
        self.headers.push((name, value));
        Ok(self)
    }

    /// How long connecting (TCP, TLS and the WebSocket handshake) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the server's `connection_ack` after `connection_init`.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long ending a subscription waits for the server's side of the closing handshake.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sends a protocol `ping` every `interval`; a server that has not answered the
    /// previous ping with `pong` by the next one ends the subscription with a timeout
    /// error. Off by default: the server's own pings are always answered.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.keepalive = Some(interval);
        self
    }

    /// The largest message (and frame) accepted from the server; a larger one ends the
    /// subscription with an error instead of being buffered.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1);
        self
    }

    /// How many results wait for a consumer that is slower than the server; when they are
    /// all waiting the socket is not read (backpressure), so memory stays bounded at
    /// `buffer × max_message_size`.
    pub fn buffer(mut self, results: usize) -> Self {
        self.buffer = results.max(1);
        self
    }
}

/// A URL for messages: without its query, which may carry a credential.
pub(crate) fn describe_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_credential() {
        let options = SubscriptionOptions::new()
            .url("wss://api.example.com/graphql?token=s3cret-in-url")
            .unwrap()
            .init_payload(&serde_json::json!({"authToken": "s3cret-token"}))
            .unwrap()
            .header("authorization", SecretString::from("Bearer s3cret-header"))
            .unwrap();
        let debug = format!("{options:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
    }

    #[test]
    fn only_websocket_urls_are_accepted() {
        let err = SubscriptionOptions::new()
            .url("http://api.example.com/graphql")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    }
}
