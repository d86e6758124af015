//! [`NatsClient`]: one reconnecting connection to a NATS server with its JetStream context,
//! the connection's state for consumers that must notice a reconnect, and the translation of
//! the driver's errors into Kernelize errors.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::{
    PublishError, PublishErrorKind, RequestError, RequestErrorKind,
};
use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use kernelize_core::{ActionContext, Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use super::config::{Credentials, NatsSettings, NatsUrl, REDACTED};

/// The context key of JetStream's error code (`10059` for a missing stream) on errors.
pub const NATS_CODE: &str = "nats_code";

/// JetStream's error code for a missing stream.
pub(crate) const STREAM_NOT_FOUND: u64 = 10059;
/// JetStream's error code for a missing consumer.
pub(crate) const CONSUMER_NOT_FOUND: u64 = 10014;
/// JetStream's error code for a stream name taken by a stream of another configuration.
const STREAM_NAME_IN_USE: u64 = 10058;
/// JetStream's error code for subjects that another stream already takes.
const STREAM_SUBJECT_OVERLAP: u64 = 10065;

/// Whether the client is connected, and how many times it has connected.
///
/// A pull request lives on the server of the connection that sent it: after a reconnect
/// (to a restarted server, say) it may be gone, so a consumer waiting on one starts anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    /// Connections made so far (the first is 1).
    pub(crate) epoch: u64,
    /// Whether the client is connected now.
    pub(crate) connected: bool,
}

/// A connection to one NATS server, shared by every clone.
///
/// The `async-nats` client reconnects by itself after the connection drops (with backoff, for
/// ever); commands given meanwhile wait for the new connection, and each request fails with a
/// temporary timeout when no answer came within `request_timeout`. Servers a cluster announces
/// are ignored: the client only connects to the URL's server, the one the network grant covers.
#[derive(Clone)]
pub struct NatsClient {
    inner: Arc<Inner>,
}

struct Inner {
    url: NatsUrl,
    secrets: Vec<SecretString>,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    request_timeout: Duration,
    link: watch::Receiver<Link>,
}

impl fmt::Debug for NatsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsClient")
            .field("url", &self.inner.url)
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

impl NatsClient {
    /// Connects to the server of `settings` (checked here), failing with a temporary error
    /// when it does not answer within `connect_timeout`.
    ///
    /// The caller checks network permissions first; the plugin does.
    pub async fn connect(settings: &NatsSettings) -> Result<Self> {
        settings.check()?;
        let url = settings.url.clone();
        let secrets = settings.secrets();
        let (link_tx, link_rx) = watch::channel(Link {
            epoch: 0,
            connected: false,
        });
        let link_tx = Arc::new(link_tx);
        let events = link_tx.clone();
        let shown = url.redacted().to_string();
        let mut options = match settings.credentials()? {
            Credentials::None => ConnectOptions::new(),
            Credentials::UserPassword(user, password) => {
                ConnectOptions::with_user_and_password(user, password.expose_secret().to_string())
            }
            Credentials::Token(token) => {
                ConnectOptions::with_token(token.expose_secret().to_string())
            }
        };
        options = options
            .name(&settings.connection_name)
            .connection_timeout(settings.connect_timeout)
            .request_timeout(Some(settings.request_timeout))
            .ignore_discovered_servers()
            .event_callback(move |event| {
                let events = events.clone();
                let shown = shown.clone();
                async move { on_event(&events, &shown, event) }
            });
        let connecting = options.connect(url.address());
        // One attempt, bounded: the client does not retry a first connection.
        let limit = settings.connect_timeout.saturating_mul(2);
        let client = match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(connect_error(&url, &secrets, &e)),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "nats could not connect to {} within {}",
                        url.redacted(),
                        duration_text(limit)
                    ),
                )
                .with_context("nats", url.redacted())
                .set_temporary());
            }
        };
        // The event of the first connection may still be on its way; the client is
        // connected now either way.
        link_tx.send_if_modified(|link| {
            let first = link.epoch == 0;
            if first {
                *link = Link {
                    epoch: 1,
                    connected: true,
                };
            }
            first
        });
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(settings.request_timeout)
            .build(client.clone());
        Ok(NatsClient {
            inner: Arc::new(Inner {
                url,
                secrets,
                client,
                jetstream,
                request_timeout: settings.request_timeout,
                link: link_rx,
            }),
        })
    }

    /// The server's URL (its credentials are never shown).
    pub fn url(&self) -> &NatsUrl {
        &self.inner.url
    }

    /// How long one request may take.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// The driver's client, for what this crate does not wrap.
    pub fn driver(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The driver's JetStream context (requests bounded by `request_timeout`).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    /// Whether the client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Flushes what the client has buffered; `Ok` when the server answered.
    pub async fn ping(&self) -> Result<()> {
        let flush = self.inner.client.flush();
        match tokio::time::timeout(self.inner.request_timeout, flush).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.unreachable(&format!("nats could not reach the server: {e}"))),
            Err(_) => Err(self.unreachable(&format!(
                "nats did not answer within {} (`request_timeout`)",
                duration_text(self.inner.request_timeout)
            ))),
        }
    }

    /// Fails with a temporary error when the client is not connected, so that nothing is
    /// queued to be sent on a later connection after its caller was told it failed.
    pub(crate) fn ensure_connected(&self, doing: &str) -> Result<()> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(self.unreachable(&format!(
                "nats could not {doing}: the connection to the server is down (reconnecting)"
            )))
        }
    }

    /// A receiver of the connection's state, for consumers that restart their pull requests
    /// after a reconnect.
    pub(crate) fn link(&self) -> watch::Receiver<Link> {
        self.inner.link.clone()
    }

    /// A temporary error saying the server cannot be reached.
    pub(crate) fn unreachable(&self, message: &str) -> Error {
        Error::new(
            ErrorKind::Remote,
            format!(
                "{}; is a NATS server running at {}:{}?",
                self.scrub(message),
                self.inner.url.host(),
                self.inner.url.port()
            ),
        )
        .with_context("nats", self.inner.url.redacted())
        .set_temporary()
    }

    /// `text` without any credential of the settings.
    pub(crate) fn scrub(&self, text: &str) -> String {
        scrub(&self.inner.url, &self.inner.secrets, text)
    }

    /// The Kernelize error of a failed request (JetStream API call, acknowledgement).
    pub(crate) fn request_error(&self, doing: &str, e: &RequestError) -> Error {
        let url = &self.inner.url;
        let error = match e.kind() {
            RequestErrorKind::TimedOut => Error::new(
                ErrorKind::Timeout,
                format!(
                    "nats did not {doing} within {} (`request_timeout`); the server is down or busy",
                    duration_text(self.inner.request_timeout)
                ),
            )
            .set_temporary(),
            RequestErrorKind::NoResponders => Error::new(
                ErrorKind::Remote,
                format!(
                    "nats could not {doing}: nothing answers on the server (is JetStream enabled? start nats-server with -js)"
                ),
            )
            .set_permanent(),
            _ => Error::new(
                ErrorKind::Remote,
                format!("nats could not {doing}: {}", self.scrub(&error_chain(e))),
            )
            .set_temporary(),
        };
        error.with_context("nats", url.redacted())
    }

    /// The Kernelize error of an error answer of the JetStream API.
    pub(crate) fn api_error(&self, doing: &str, error: &jetstream::Error) -> Error {
        let code = error.error_code().0;
        let status = error.code();
        let detail = self.scrub(&error.to_string());
        let (kind, temporary, hint) = match (code, status) {
            (STREAM_NOT_FOUND, _) => (
                ErrorKind::NotFound,
                false,
                Some("create it with `create_stream`, or set `create: true` on a source"),
            ),
            (CONSUMER_NOT_FOUND, _) => (
                ErrorKind::NotFound,
                false,
                Some("create it with `create_consumer`, or set `create: true` on a source"),
            ),
            (STREAM_NAME_IN_USE, _) => (
                ErrorKind::InvalidInput,
                false,
                Some("a stream of that name exists with another configuration"),
            ),
            (STREAM_SUBJECT_OVERLAP, _) => (
                ErrorKind::InvalidInput,
                false,
                Some("another stream already takes some of these subjects"),
            ),
            (_, 404) => (ErrorKind::NotFound, false, None),
            (_, 429) => (ErrorKind::RateLimited, true, None),
            (_, 408 | 500..=599) => (ErrorKind::Remote, true, None),
            (_, 400..=499) => (ErrorKind::InvalidInput, false, None),
            _ => (ErrorKind::Remote, false, None),
        };
        let mut message = format!("nats could not {doing}: {detail}");
        if let Some(hint) = hint {
            message.push_str("; ");
            message.push_str(hint);
        }
        let error = Error::new(kind, message)
            .with_status(u16::try_from(status).unwrap_or(0))
            .with_context("nats", self.inner.url.redacted())
            .with_context(NATS_CODE, code);
        if temporary {
            error.set_temporary()
        } else {
            error.set_permanent()
        }
    }

    /// The Kernelize error of a failed JetStream publish.
    pub(crate) fn publish_error(&self, subject: &str, e: &PublishError) -> Error {
        let url = &self.inner.url;
        let error = match e.kind() {
            PublishErrorKind::StreamNotFound => Error::new(
                ErrorKind::NotFound,
                format!(
                    "nats could not publish to `{subject}`: no stream takes this subject; create one with `create_stream`"
                ),
            )
            .set_permanent(),
            PublishErrorKind::TimedOut => Error::new(
                ErrorKind::Timeout,
                format!(
                    "nats got no acknowledgement of a message to `{subject}` within {} (`request_timeout`); the server is down or busy",
                    duration_text(self.inner.request_timeout)
                ),
            )
            .set_temporary(),
            PublishErrorKind::MaxPayloadExceeded => Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "nats could not publish to `{subject}`: {}",
                    self.scrub(&e.to_string())
                ),
            )
            .set_permanent(),
            PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "nats could not publish to `{subject}`: {}",
                        self.scrub(&e.to_string())
                    ),
                )
                .set_permanent()
            }
            _ => {
                // An error answer of the stream (a limit, a full store) comes as the source.
                let api = std::error::Error::source(e)
                    .and_then(|s| s.downcast_ref::<jetstream::Error>());
                match api {
                    Some(api) => {
                        return self
                            .api_error(&format!("publish to `{subject}`"), api)
                            .with_context("subject", subject);
                    }
                    None => Error::new(
                        ErrorKind::Remote,
                        format!(
                            "nats could not publish to `{subject}`: {}",
                            self.scrub(&error_chain(e))
                        ),
                    )
                    .set_temporary(),
                }
            }
        };
        error
            .with_context("nats", url.redacted())
            .with_context("subject", subject)
    }
}

/// Updates the connection's state from the client's events, and logs them.
fn on_event(link: &watch::Sender<Link>, server: &str, event: Event) {
    match event {
        Event::Connected => {
            // The first connection's event may come after `connect` has already counted it.
            link.send_if_modified(|l| {
                let new = !l.connected;
                if new {
                    l.epoch += 1;
                    l.connected = true;
                }
                new
            });
            tracing::info!(nats = %server, "connected to the NATS server");
        }
        Event::Disconnected => {
            link.send_modify(|l| l.connected = false);
            tracing::warn!(nats = %server, "lost the connection to the NATS server; reconnecting");
        }
        Event::Closed => {
            link.send_modify(|l| l.connected = false);
            tracing::info!(nats = %server, "the NATS connection was closed");
        }
        Event::SlowConsumer(sid) => {
            tracing::warn!(nats = %server, sid, "a NATS subscription fell behind and lost messages");
        }
        other => tracing::debug!(nats = %server, event = %other, "NATS client event"),
    }
}

/// Maps a connection failure: kind, temporary or permanent, a hint, no credential.
fn connect_error(url: &NatsUrl, secrets: &[SecretString], e: &async_nats::ConnectError) -> Error {
    let detail = scrub(url, secrets, &error_chain(e));
    let (kind, temporary, hint) = match e.kind() {
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => (
            ErrorKind::ConfigInvalid,
            false,
            "check the credentials (`url`, `user`/`password` or `token`)".to_string(),
        ),
        ConnectErrorKind::ServerParse => {
            (ErrorKind::ConfigInvalid, false, "check `url`".to_string())
        }
        ConnectErrorKind::Tls => (
            ErrorKind::Unsupported,
            false,
            "the server asks for TLS, which the nats-connector does not offer yet".to_string(),
        ),
        ConnectErrorKind::TimedOut => (
            ErrorKind::Timeout,
            true,
            format!("is a NATS server running at {}:{}?", url.host(), url.port()),
        ),
        _ => (
            ErrorKind::Remote,
            true,
            format!("is a NATS server running at {}:{}?", url.host(), url.port()),
        ),
    };
    let error = Error::new(
        kind,
        format!(
            "nats could not connect to {}: {detail}; {hint}",
            url.redacted()
        ),
    )
    .with_context("nats", url.redacted());
    if temporary {
        error.set_temporary()
    } else {
        error.set_permanent()
    }
}

/// `text` without the URL's credentials or the settings' secrets.
fn scrub(url: &NatsUrl, secrets: &[SecretString], text: &str) -> String {
    let mut out = url.scrub(text);
    for secret in secrets {
        let secret = secret.expose_secret();
        if !secret.is_empty() {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// An error's message with its sources', `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
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

/// A duration as short text: `5s`, `250ms`.
pub(crate) fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
