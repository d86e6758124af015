//! [`RedisCache`]: JSON values under keys, with a time to live, for plugin response caching.
//!
//! Values are stored as JSON text (a Redis string holding `{"a":1}`), so any client can read
//! them and a value read back is the JSON that was stored. A key that holds text that is
//! not JSON (written by another program) is a `corrupt data` error, never a guess.

use std::time::Duration;

use ::redis::Value;
use kernelize_core::{Error, ErrorKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::{REDIS_CODE, RedisClient};
use super::config::MAX_BATCH;

/// How a [`RedisCache::set`] stores its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// How long the value lives; the client's `default_ttl` when `None`, and for ever when
    /// that is `None` too.
    pub ttl: Option<Duration>,
    /// Store only when the key does not exist yet (`SET NX`).
    pub only_if_absent: bool,
}

/// A cache of JSON values in Redis, usable from any Rust code (and behind the plugin's
/// `get`, `set` and `delete` actions).
///
/// ```no_run
/// use std::time::Duration;
/// use kernelize_connectors::redis::{RedisCache, RedisSettings, SetOptions};
///
/// # async fn demo() -> kernelize_core::Result<()> {
/// let cache = RedisCache::connect(&RedisSettings::new("redis://127.0.0.1:6379/0")?).await?;
/// let ttl = SetOptions { ttl: Some(Duration::from_secs(60)), ..SetOptions::default() };
/// cache.set("answer:42", &serde_json::json!({"status": 200}), ttl).await?;
/// let hit: Option<serde_json::Value> = cache.get("answer:42").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisCache {
    client: RedisClient,
}

impl RedisCache {
    /// A cache on an open client (its prefix, default TTL and value cap apply).
    pub fn new(client: RedisClient) -> Self {
        RedisCache { client }
    }

    /// Connects to the server of `settings` and returns a cache on it.
    pub async fn connect(settings: &super::RedisSettings) -> Result<Self> {
        Ok(RedisCache::new(RedisClient::connect(settings).await?))
    }

    /// The client underneath.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// The value under `key`, deserialized; `None` when the key does not exist (or expired).
    ///
    /// Fails with `invalid input` when the key holds something other than a string (a
    /// stream, a list), with `invalid input` when the value is larger than
    /// `max_value_bytes` (without transferring more than that), and with `corrupt data`
    /// when it is not JSON or does not deserialize as `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(bytes) = self.get_bytes(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::CorruptData,
                format!("the value under key `{key}` is not the JSON expected: {e}"),
            )
            .with_context("key", key)
        })
    }

    /// The value under `key` as JSON; `None` when absent.
    pub async fn get_json(&self, key: &str) -> Result<Option<serde_json::Value>> {
        self.get(key).await
    }

    /// The raw bytes under `key`, at most `max_value_bytes`; `None` when absent.
    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let name = self.client.key(key);
        let max = self.client.max_value_bytes();
        // One atomic round trip that never transfers more than `max + 1` bytes: whether the
        // key exists, its length, and its first `max + 1` bytes.
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("EXISTS")
            .arg(&name)
            .cmd("STRLEN")
            .arg(&name)
            .cmd("GETRANGE")
            .arg(&name)
            .arg(0)
            .arg(max);
        let answers = match self
            .client
            .run_pipeline(&pipe, &format!("read key `{key}`"))
            .await
        {
            Ok(a) => a,
            Err(e) => return Err(self.explain_wrong_type(key, e).await),
        };
        let [exists, len, value] = answers.as_slice() else {
            return Err(unexpected_answer("read a key", &answers));
        };
        if matches!(exists, Value::Int(0)) {
            return Ok(None);
        }
        let len = match len {
            Value::Int(n) => usize::try_from(*n).unwrap_or(usize::MAX),
            other => return Err(unexpected_answer("read a key's length", other)),
        };
        if len > max {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the value under key `{key}` is {len} bytes, more than `max_value_bytes` ({max})"
                ),
            )
            .with_context("key", key)
            .set_permanent());
        }
        match value {
            Value::BulkString(bytes) => Ok(Some(bytes.clone())),
            Value::SimpleString(text) => Ok(Some(text.clone().into_bytes())),
            other => Err(unexpected_answer("read a key's value", other)),
        }
    }

    /// A wrong-type error names what the key does hold.
    async fn explain_wrong_type(&self, key: &str, error: Error) -> Error {
        if !has_code(&error, "WRONGTYPE") {
            return error;
        }
        let mut ty = ::redis::cmd("TYPE");
        ty.arg(self.client.key(key));
        let held = match self.client.run(&ty, "read a key's type").await {
            Ok(Value::SimpleString(t)) => t,
            Ok(Value::BulkString(t)) => String::from_utf8_lossy(&t).into_owned(),
            _ => "another type".into(),
        };
        Error::new(
            ErrorKind::InvalidInput,
            format!("key `{key}` holds a {held}, not a cached value (a string)"),
        )
        .with_context("key", key)
        .set_permanent()
    }

    /// Stores `value` as JSON text under `key`. Returns `false` when `only_if_absent` was
    /// asked and the key already existed (nothing was written), `true` otherwise.
    ///
    /// Fails with `invalid input` when the JSON text is larger than `max_value_bytes`, or
    /// the TTL is zero.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<bool> {
        let text = serde_json::to_vec(value).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the value for key `{key}` does not serialize as JSON: {e}"),
            )
        })?;
        let max = self.client.max_value_bytes();
        if text.len() > max {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the value for key `{key}` is {} bytes of JSON, more than `max_value_bytes` ({max})",
                    text.len()
                ),
            )
            .with_context("key", key));
        }
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.client.key(key)).arg(text);
        if let Some(ttl) = options.ttl.or(self.client.default_ttl()) {
            cmd.arg("PX").arg(ttl_millis(ttl)?);
        }
        if options.only_if_absent {
            cmd.arg("NX");
        }
        match self.client.run(&cmd, &format!("write key `{key}`")).await {
            Ok(Value::Nil) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(self.explain_wrong_type(key, e).await),
        }
    }

    /// Deletes `keys` (at most 10,000); returns how many existed. Deleting a missing key is
    /// not an error.
    pub async fn delete<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        check_batch("keys", keys.len())?;
        let mut cmd = ::redis::cmd("DEL");
        for key in keys {
            cmd.arg(self.client.key(key.as_ref()));
        }
        match self.client.run(&cmd, "delete keys").await? {
            Value::Int(n) => Ok(u64::try_from(n).unwrap_or(0)),
            other => Err(unexpected_answer("delete keys", &other)),
        }
    }
}

/// A TTL in whole milliseconds, at least 1.
pub(crate) fn ttl_millis(ttl: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "`ttl` must be more than zero (leave it out to keep the value without expiry)",
        ));
    }
    Ok(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// Fails when a list of `what` is longer than [`MAX_BATCH`].
pub(crate) fn check_batch(what: &str, len: usize) -> Result<()> {
    if len > MAX_BATCH {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{len} {what} in one call; at most {MAX_BATCH} are allowed"),
        ));
    }
    Ok(())
}

/// An answer of a shape the command never gives.
pub(crate) fn unexpected_answer(doing: &str, answer: &(impl std::fmt::Debug + ?Sized)) -> Error {
    let text: String = format!("{answer:?}").chars().take(200).collect();
    Error::new(
        ErrorKind::Unexpected,
        format!("redis answered an unexpected shape to `{doing}`: {text}"),
    )
}

/// Whether an error came from a server reply with error code `code` (`WRONGTYPE`).
pub(crate) fn has_code(e: &Error, code: &str) -> bool {
    e.context_value(REDIS_CODE) == Some(code)
}
