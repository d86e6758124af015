//! [`RabbitClient`]: the connection the plugin's actions share, how connections are opened
//! and named, timeouts, and the translation of lapin's errors into Kernelize errors.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kernelize_core::{ActionContext, Error, ErrorKind, Result};
use lapin::types::ShortString;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use super::config::{AmqpUrl, RabbitSettings};

/// The context key of the broker's reply code (`406`, `404`, `312`) on errors.
pub const AMQP_CODE: &str = "amqp_code";

/// The shortest wait between two reconnection attempts.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);

/// A connection to one RabbitMQ broker for the plugin's actions, shared by every clone.
///
/// Each action opens a channel of its own on the shared connection (channels are cheap,
/// and a broker error such as `PRECONDITION_FAILED` closes only the channel it happened
/// on) and closes it when done. A connection found closed is opened again for the next
/// action; an action that was running on it fails with a temporary error and is not
/// repeated. Event sources and sinks open connections of their own
/// ([`RabbitClient::open_connection`]) so that a consumer's prefetch and a sink's confirms
/// never share a socket with one-off calls.
#[derive(Clone)]
pub struct RabbitClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RabbitSettings,
    connection_name: String,
    connection: tokio::sync::Mutex<Option<Connection>>,
    /// Cancelled when the plugin shuts down: sources end and sinks refuse writes.
    closed: CancellationToken,
}

impl fmt::Debug for RabbitClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitClient")
            .field("url", &self.inner.settings.url)
            .field("connection_name", &self.inner.connection_name)
            .finish_non_exhaustive()
    }
}

impl RabbitClient {
    /// Checks `settings` and opens the shared connection, failing when the broker does not
    /// complete the handshake within `connect_timeout`.
    ///
    /// The caller checks network permissions first; the plugin does.
    pub async fn connect(settings: RabbitSettings) -> Result<Self> {
        settings.check()?;
        let connection_name = settings.resolved_connection_name();
        let connection = open_connection(&settings, &connection_name).await?;
        Ok(RabbitClient {
            inner: Arc::new(Inner {
                settings,
                connection_name,
                connection: tokio::sync::Mutex::new(Some(connection)),
                closed: CancellationToken::new(),
            }),
        })
    }

    /// The broker's URL (its password is never shown).
    pub fn url(&self) -> &AmqpUrl {
        &self.inner.settings.url
    }

    /// The settings the client was made with.
    pub fn settings(&self) -> &RabbitSettings {
        &self.inner.settings
    }

    /// The client-provided name of the shared connection; sources and sinks add a suffix.
    pub fn connection_name(&self) -> &str {
        &self.inner.connection_name
    }

    /// Opens a connection of its own, named `<connection_name> <suffix>`.
    pub async fn open_connection(&self, suffix: &str) -> Result<Connection> {
        let name = format!("{} {suffix}", self.inner.connection_name);
        open_connection(&self.inner.settings, &name).await
    }

    /// Cancelled once the plugin shut down.
    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.inner.closed
    }

    /// A new channel on the shared connection, opening the connection again when it was
    /// lost.
    pub(crate) async fn channel(&self) -> Result<Channel> {
        if self.inner.closed.is_cancelled() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "the rabbitmq-connector was shut down",
            ));
        }
        let mut slot = self.inner.connection.lock().await;
        if let Some(connection) = slot.as_ref()
            && connection.status().connected()
        {
            match self
                .timed("open a channel", connection.create_channel())
                .await
            {
                Ok(channel) => return Ok(channel),
                // The connection died under us: open a new one below.
                Err(e) if e.is_temporary() => {
                    tracing::debug!(error = %e, "the shared RabbitMQ connection was lost; reconnecting");
                }
                Err(e) => return Err(e),
            }
        }
        *slot = None;
        let connection = open_connection(&self.inner.settings, &self.inner.connection_name).await?;
        let channel = self
            .timed("open a channel", connection.create_channel())
            .await?;
        *slot = Some(connection);
        Ok(channel)
    }

    /// Opens and closes a channel: `Ok` when the broker answers.
    pub async fn ping(&self) -> Result<()> {
        let channel = self.channel().await?;
        self.timed("close a channel", channel.close(200, "OK".into()))
            .await
    }

    /// Closes the shared connection and ends every source and sink opened from it.
    pub async fn close(&self) {
        self.inner.closed.cancel();
        let connection = self.inner.connection.lock().await.take();
        if let Some(connection) = connection
            && connection.status().connected()
        {
            let closing = connection.close(200, "shutdown".into());
            if let Err(e) = self.timed("close the connection", closing).await {
                tracing::debug!(error = %e, "closing the RabbitMQ connection failed");
            }
        }
    }

    /// Runs one broker operation within `operation_timeout`, mapping its error.
    pub(crate) async fn timed<T>(
        &self,
        doing: &str,
        work: impl Future<Output = lapin::Result<T>>,
    ) -> Result<T> {
        timed(
            &self.inner.settings.url,
            self.inner.settings.operation_timeout,
            doing,
            work,
        )
        .await
    }

    /// The Kernelize error for a lapin error met while doing `doing`.
    pub(crate) fn error(&self, doing: &str, e: &lapin::Error) -> Error {
        amqp_error(&self.inner.settings.url, doing, e)
    }

    /// A growing, jittered wait for reconnection attempt `failures` (1 the first time).
    pub(crate) fn reconnect_delay(&self, failures: u32) -> Duration {
        reconnect_delay(failures, self.inner.settings.reconnect_max_delay)
    }
}

/// Opens a connection named `name` within `connect_timeout`.
async fn open_connection(settings: &RabbitSettings, name: &str) -> Result<Connection> {
    let url = &settings.url;
    let mut uri = url.to_uri()?;
    if uri.query.connection_timeout.is_none() {
        uri.query.connection_timeout =
            Some(u64::try_from(settings.connect_timeout.as_millis()).unwrap_or(u64::MAX));
    }
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let connecting = Connection::connect_uri(uri, properties);
    match tokio::time::timeout(settings.connect_timeout, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(amqp_error(url, "connect", &e)),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "rabbitmq did not accept a connection at {}:{} within {} (`connect_timeout`)",
                url.host(),
                url.port(),
                duration_text(settings.connect_timeout)
            ),
        )
        .with_context("rabbitmq", url.redacted())
        .set_temporary()),
    }
}

/// Runs `work` within `limit`, mapping its error.
pub(crate) async fn timed<T>(
    url: &AmqpUrl,
    limit: Duration,
    doing: &str,
    work: impl Future<Output = lapin::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(amqp_error(url, doing, &e)),
        Err(_) => Err(timeout_error(url, doing, limit)),
    }
}

/// The error for an operation that took longer than `limit`.
pub(crate) fn timeout_error(url: &AmqpUrl, doing: &str, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "rabbitmq did not {doing} within {} (`operation_timeout`)",
            duration_text(limit)
        ),
    )
    .with_context("rabbitmq", url.redacted())
    .set_temporary()
}

/// Runs `work` until it finishes, the call is cancelled or its deadline passes.
pub(crate) async fn within_call<T>(
    ctx: &ActionContext,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    ctx.check_alive()?;
    let deadline = ctx.deadline.map(tokio::time::Instant::from_std);
    tokio::select! {
        out = work => out,
        () = ctx.cancel.cancelled() => Err(Error::new(ErrorKind::Cancelled, "the call was cancelled")),
        () = sleep_until(deadline) => Err(Error::new(ErrorKind::Timeout, "the call passed its deadline")),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A short AMQP string (a name, a routing key, a property): at most 255 bytes.
pub(crate) fn short(what: &str, value: &str) -> Result<ShortString> {
    ShortString::try_new(value).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{what} is {} bytes long; AMQP allows at most 255",
                value.len()
            ),
        )
    })
}

/// Half the capped exponential delay, plus a random part of the other half.
fn reconnect_delay(failures: u32, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let cap = RECONNECT_MIN_DELAY
        .saturating_mul(1u32 << exponent)
        .min(max)
        .max(RECONNECT_MIN_DELAY);
    let half = cap / 2;
    let jitter = half.mul_f64(rand::random::<f64>());
    half + jitter
}

fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The name of an AMQP reply code, as the broker writes it.
fn reply_name(code: u16) -> &'static str {
    match code {
        311 => "CONTENT_TOO_LARGE",
        312 => "NO_ROUTE",
        313 => "NO_CONSUMERS",
        320 => "CONNECTION_FORCED",
        402 => "INVALID_PATH",
        403 => "ACCESS_REFUSED",
        404 => "NOT_FOUND",
        405 => "RESOURCE_LOCKED",
        406 => "PRECONDITION_FAILED",
        501 => "FRAME_ERROR",
        502 => "SYNTAX_ERROR",
        503 => "COMMAND_INVALID",
        504 => "CHANNEL_ERROR",
        505 => "UNEXPECTED_FRAME",
        506 => "RESOURCE_ERROR",
        530 => "NOT_ALLOWED",
        540 => "NOT_IMPLEMENTED",
        541 => "INTERNAL_ERROR",
        _ => "UNKNOWN",
    }
}

/// Maps a lapin error to a Kernelize error: kind, temporary or permanent, the broker's
/// reply code in context, a hint, and no password anywhere in the text.
pub(crate) fn amqp_error(url: &AmqpUrl, doing: &str, e: &lapin::Error) -> Error {
    use lapin::ErrorKind as Lk;
    let detail = url.scrub(&e.to_string());
    let mut code = None;
    let unreachable_hint = || {
        Some(format!(
            "is a RabbitMQ broker running at {}:{}?",
            url.host(),
            url.port()
        ))
    };
    let lost_hint = || Some("the connection to RabbitMQ was lost".to_string());
    let (kind, temporary, hint) = match e.kind() {
        Lk::ProtocolError(amqp) => {
            let id = amqp.get_id();
            code = Some(id);
            reply_kind(url, doing, id)
        }
        Lk::IOError(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::NotFound
            | std::io::ErrorKind::AddrNotAvailable
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
            | std::io::ErrorKind::TimedOut => (ErrorKind::Remote, true, unreachable_hint()),
            _ if doing == "connect" => (ErrorKind::Remote, true, unreachable_hint()),
            _ => (ErrorKind::Remote, true, lost_hint()),
        },
        Lk::InvalidConnectionState(_)
        | Lk::InvalidChannelState(..)
        | Lk::InvalidChannel(_)
        | Lk::MissingHeartbeatError
        | Lk::RuntimeShutdownError(_) => (ErrorKind::Remote, true, lost_hint()),
        Lk::ChannelsLimitReached => (
            ErrorKind::Remote,
            true,
            Some("the connection has as many channels open as the broker allows".into()),
        ),
        Lk::AuthProviderError(_) => (
            ErrorKind::ConfigInvalid,
            false,
            Some("check the user and password in `url`".into()),
        ),
        Lk::InvalidProtocolVersion(_) => (
            ErrorKind::Unsupported,
            false,
            Some("the broker does not speak AMQP 0-9-1".into()),
        ),
        Lk::ParsingError(_) => (ErrorKind::CorruptData, false, None),
        _ => (ErrorKind::Unexpected, false, None),
    };
    let mut message = format!("rabbitmq could not {doing}: {detail}");
    if let Some(hint) = hint {
        message.push_str("; ");
        message.push_str(&hint);
    }
    let mut error = Error::new(kind, message).with_context("rabbitmq", url.redacted());
    if let Some(code) = code {
        error = error
            .with_context(AMQP_CODE, code)
            .with_context("amqp_reply", reply_name(code));
    }
    if temporary {
        error.set_temporary()
    } else {
        error.set_permanent()
    }
}

/// Kind, temporariness and hint of a broker's reply code.
fn reply_kind(url: &AmqpUrl, doing: &str, code: u16) -> (ErrorKind, bool, Option<String>) {
    match code {
        311 => (
            ErrorKind::InvalidInput,
            false,
            Some("the message is larger than the broker accepts".into()),
        ),
        320 => (
            ErrorKind::Remote,
            true,
            Some("the broker closed the connection (an operator, or the broker shutting down)".into()),
        ),
        402 | 530 if doing == "connect" => (
            ErrorKind::PermissionDenied,
            false,
            Some(format!(
                "vhost `{}` does not exist or user `{}` has no access to it",
                url.vhost(),
                url.user()
            )),
        ),
        403 if doing == "connect" => (
            ErrorKind::PermissionDenied,
            false,
            Some(format!(
                "the broker refused user `{}`: check the user and password in `url`",
                url.user()
            )),
        ),
        403 => (
            ErrorKind::PermissionDenied,
            false,
            Some(format!(
                "user `{}` lacks the permission on vhost `{}`",
                url.user(),
                url.vhost()
            )),
        ),
        404 => (ErrorKind::NotFound, false, None),
        405 => (
            ErrorKind::InvalidState,
            false,
            Some("another connection holds the queue exclusively".into()),
        ),
        406 if doing.starts_with("declare") => (
            ErrorKind::ConfigInvalid,
            false,
            Some(
                "it exists with other settings: declare it with the settings it has, or delete it first"
                    .into(),
            ),
        ),
        406 => (ErrorKind::InvalidInput, false, None),
        506 | 541 => (ErrorKind::Remote, true, None),
        501..=505 | 540 => (ErrorKind::Unexpected, false, None),
        _ => (ErrorKind::Remote, false, None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reconnect_delays_grow_to_the_cap_with_jitter() {
        let max = Duration::from_secs(10);
        for failures in 1..40 {
            let d = reconnect_delay(failures, max);
            assert!(
                d >= Duration::from_millis(50) && d <= max,
                "{failures}: {d:?}"
            );
        }
        assert!(reconnect_delay(1, max) <= Duration::from_millis(100));
        assert!(reconnect_delay(30, max) >= Duration::from_secs(5));
    }

    #[test]
    fn names_longer_than_255_bytes_are_refused() {
        assert!(short("queue", "orders").is_ok());
        let e = short("queue", &"q".repeat(256)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("256 bytes"), "{e}");
    }
}
