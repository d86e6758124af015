//! [`RedisClient`]: one reconnecting connection to a Redis server, the key namespace, command
//! timeouts, and the translation of the driver's errors into Kernelize errors.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, Value};
use kernelize_core::{ActionContext, Error, ErrorKind, Result};

use super::config::{RedisSettings, RedisUrl};

/// The context key of the server's error code (`WRONGTYPE`, `NOGROUP`) on errors.
pub const REDIS_CODE: &str = "redis_code";

/// How many idle connections for blocking reads a client keeps.
const MAX_IDLE_BLOCKING: usize = 4;

/// How many times the connection manager tries to reconnect before a command fails.
const RECONNECT_ATTEMPTS: usize = 3;

/// A connection to one Redis server, shared by every clone.
///
/// Commands go through the `redis` crate's `ConnectionManager`: one multiplexed connection
/// that pipelines concurrent commands and reconnects (with backoff) after the connection
/// drops. A command that fails because the connection dropped is not resent: it fails with
/// a temporary error, and the next command uses the new connection. Blocking reads
/// (`XREADGROUP BLOCK`) use separate connections, so that they never hold up the others.
///
/// Every key and stream name goes through [`RedisClient::key`], which puts the settings'
/// `key_prefix` in front.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    url: RedisUrl,
    driver: ::redis::Client,
    manager: ConnectionManager,
    prefix: String,
    command_timeout: Duration,
    default_ttl: Option<Duration>,
    max_value_bytes: usize,
    idle_blocking: Mutex<Vec<MultiplexedConnection>>,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClient")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// Connects to the server of `settings` (checked here), failing when it does not answer
    /// within `command_timeout` (a few reconnect attempts included).
    ///
    /// The caller checks network permissions first; the plugin does.
    pub async fn connect(settings: &RedisSettings) -> Result<Self> {
        settings.check()?;
        let url = settings.url.clone();
        let driver = ::redis::Client::open(url.expose())
            .map_err(|e| driver_error(&url, "read the URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.command_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(RECONNECT_ATTEMPTS)
            .set_max_delay(settings.command_timeout);
        let connecting = ConnectionManager::new_with_config(driver.clone(), config);
        // The manager retries a refused connection; bound the whole attempt.
        let limit = settings.command_timeout.saturating_mul(2);
        let manager = match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(manager)) => manager,
            Ok(Err(e)) => return Err(driver_error(&url, "connect", e)),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "redis could not connect to {} within {}",
                        url.redacted(),
                        humantime_text(limit)
                    ),
                )
                .with_context("redis", url.redacted())
                .set_temporary());
            }
        };
        Ok(RedisClient {
            inner: Arc::new(Inner {
                url,
                driver,
                manager,
                prefix: settings.key_prefix.clone().unwrap_or_default(),
                command_timeout: settings.command_timeout,
                default_ttl: settings.default_ttl,
                max_value_bytes: settings.max_value_bytes,
                idle_blocking: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The server's URL (its password is never shown).
    pub fn url(&self) -> &RedisUrl {
        &self.inner.url
    }

    /// `name` in the settings' namespace: `key_prefix` + `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.inner.prefix)
    }

    /// The namespace every key and stream name gets (`""` when none).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// How long one command may take.
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// The TTL of a cached value whose `set` names none.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// The largest cached value, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.inner.max_value_bytes
    }

    /// Sends `PING`; `Ok` when the server answers.
    pub async fn ping(&self) -> Result<()> {
        self.run(&::redis::cmd("PING"), "ping the server")
            .await
            .map(drop)
    }

    /// Runs one command on the shared connection, within `command_timeout`.
    pub(crate) async fn run(&self, cmd: &Cmd, doing: &str) -> Result<Value> {
        let mut conn = self.inner.manager.clone();
        let answer = self
            .timed(
                self.inner.command_timeout,
                doing,
                cmd.query_async::<Value>(&mut conn),
            )
            .await?;
        Ok(answer)
    }

    /// Runs a pipeline on the shared connection, within `command_timeout`; one answer per
    /// command (an atomic pipeline answers like one command).
    pub(crate) async fn run_pipeline(&self, pipe: &Pipeline, doing: &str) -> Result<Vec<Value>> {
        let mut conn = self.inner.manager.clone();
        self.timed(
            self.inner.command_timeout,
            doing,
            pipe.query_async::<Vec<Value>>(&mut conn),
        )
        .await
    }

    /// Runs a command that may block on the server for up to `block` on a connection of its
    /// own, within `command_timeout + block`.
    pub(crate) async fn run_blocking(
        &self,
        cmd: &Cmd,
        block: Duration,
        doing: &str,
    ) -> Result<Value> {
        let limit = self.inner.command_timeout.saturating_add(block);
        let idle = self
            .inner
            .idle_blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.command_timeout))
                    .set_response_timeout(None);
                self.timed(
                    self.inner.command_timeout,
                    "open a connection for a blocking read",
                    self.inner
                        .driver
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await?
            }
        };
        // On an error or a timeout the connection is dropped, not reused: an answer may
        // still be on its way.
        let answer = self
            .timed(limit, doing, cmd.query_async::<Value>(&mut conn))
            .await?;
        let mut idle = self
            .inner
            .idle_blocking
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_BLOCKING {
            idle.push(conn);
        }
        Ok(answer)
    }

    async fn timed<T>(
        &self,
        limit: Duration,
        doing: &str,
        work: impl Future<Output = std::result::Result<T, RedisError>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(doing, e)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "redis did not {doing} within {} (`command_timeout`)",
                    humantime_text(limit)
                ),
            )
            .with_context("redis", self.inner.url.redacted())
            .set_temporary()),
        }
    }

    /// The Kernelize error for a driver error met while doing `doing`.
    pub(crate) fn error(&self, doing: &str, e: RedisError) -> Error {
        driver_error(&self.inner.url, doing, e)
    }
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

fn humantime_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The server's error code (`WRONGTYPE`, `NOGROUP`, `BUSYGROUP`, ...) of a driver error,
/// also when it arrived inside a pipeline's answer.
fn server_code(e: &RedisError) -> Option<String> {
    if let Some(code) = e.code() {
        return Some(code.to_string());
    }
    let text = e.to_string();
    [
        "WRONGTYPE",
        "NOGROUP",
        "BUSYGROUP",
        "NOAUTH",
        "WRONGPASS",
        "NOPERM",
        "OOM",
    ]
    .into_iter()
    .find(|code| text.contains(code))
    .map(str::to_string)
}

/// Maps a driver error to a Kernelize error: kind, temporary or permanent, a hint, and no
/// password anywhere in the text.
pub(crate) fn driver_error(url: &RedisUrl, doing: &str, e: RedisError) -> Error {
    use ::redis::{ErrorKind as Rk, ServerErrorKind as Sk};
    let code = server_code(&e);
    let detail = match (&code, e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    };
    let detail = url.scrub(&detail);
    let (kind, temporary, hint) = if e.is_timeout() {
        (ErrorKind::Timeout, true, None)
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        (
            ErrorKind::Remote,
            true,
            Some(format!(
                "is a Redis server running at {}:{}?",
                url.host(),
                url.port()
            )),
        )
    } else {
        match (e.kind(), code.as_deref()) {
            (Rk::AuthenticationFailed, _) | (_, Some("NOAUTH" | "WRONGPASS")) => (
                ErrorKind::ConfigInvalid,
                false,
                Some("check the user and password in `url`".into()),
            ),
            (Rk::InvalidClientConfig, _) => (ErrorKind::ConfigInvalid, false, None),
            (Rk::Server(Sk::NoPerm), _) | (_, Some("NOPERM")) => (
                ErrorKind::PermissionDenied,
                false,
                Some("the server's ACL does not allow this command or key for the user".into()),
            ),
            (Rk::Server(Sk::BusyLoading | Sk::TryAgain | Sk::MasterDown | Sk::ClusterDown), _)
            | (_, Some("OOM")) => (ErrorKind::Remote, true, None),
            (_, Some("WRONGTYPE")) => (
                ErrorKind::InvalidInput,
                false,
                Some("the key holds another kind of value than this action works on".into()),
            ),
            (_, Some("NOGROUP")) => (
                ErrorKind::NotFound,
                false,
                Some("the stream or its consumer group does not exist; set `create_group: true` to create them".into()),
            ),
            (Rk::Parse | Rk::UnexpectedReturnType, _) => (ErrorKind::Unexpected, false, None),
            _ => (ErrorKind::Remote, false, None),
        }
    };
    let mut message = format!("redis could not {doing}: {detail}");
    if let Some(hint) = hint {
        message.push_str("; ");
        message.push_str(&hint);
    }
    let mut error = Error::new(kind, message).with_context("redis", url.redacted());
    if let Some(code) = code {
        error = error.with_context(REDIS_CODE, code);
    }
    if temporary {
        error.set_temporary()
    } else {
        error.set_permanent()
    }
}
