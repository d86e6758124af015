//! Settings of the `redis-connector` plugin, and the server URL that keeps its password out
//! of every message.

use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Permission, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret_url::{SecretUrl, impl_secret_url};

/// The most entries, keys or ids one call may name or return (`count`, `keys`, `ids`,
/// published entries).
pub const MAX_BATCH: usize = 10_000;

/// The longest a consume may block waiting for messages (5 minutes).
pub const MAX_BLOCK: Duration = Duration::from_secs(300);

/// The port a `redis://` URL without one means.
pub const DEFAULT_PORT: u16 = 6379;

fn default_command_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_value_bytes() -> usize {
    16 * 1024 * 1024
}

/// A `redis://[user][:password@]host[:port][/db]` URL.
///
/// The whole URL is kept as a secret: `Debug`, `Display` and serialization show it with the
/// password replaced by `***`, and [`RedisUrl::scrub`] removes the password from any text (a
/// driver's error message) before it is shown.
#[derive(Clone)]
pub struct RedisUrl {
    secret: SecretUrl,
    port: u16,
    db: i64,
}

impl RedisUrl {
    /// Parses and checks a URL: scheme `redis`, a host, an optional port and an optional
    /// database number. Errors never quote the URL.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        let parsed = match url::Url::parse(text) {
            Ok(u) => u,
            Err(e) => {
                return invalid(format!(
                    "`url` is not a valid URL ({e}); write redis://[:password@]host[:port][/db]"
                ));
            }
        };
        match parsed.scheme() {
            "redis" => {}
            "rediss" => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "`url` asks for TLS (rediss://), which this build of the redis-connector does not include; use redis:// (on a trusted network or through a TLS tunnel)",
                ));
            }
            other => {
                return invalid(format!(
                    "`url` has scheme `{other}`; the redis-connector takes redis://[:password@]host[:port][/db]"
                ));
            }
        }
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return invalid("`url` has no host; write redis://host:6379/0".into()),
        };
        let db = match parsed.path().trim_start_matches('/') {
            "" => 0,
            n => match n.parse::<i64>() {
                Ok(db) if db >= 0 => db,
                _ => {
                    return invalid(format!(
                        "`url` path `/{n}` is not a database number; write redis://host:6379/0"
                    ));
                }
            },
        };
        Ok(RedisUrl {
            secret: SecretUrl::whole(text, &parsed, host)?,
            port: parsed.port().unwrap_or(DEFAULT_PORT),
            db,
        })
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> &str {
        self.secret.redacted()
    }

    /// The server's host name or address.
    pub fn host(&self) -> &str {
        self.secret.host()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// The full URL, password included, for the driver only.
    pub(crate) fn expose(&self) -> &str {
        // `parse` keeps the whole URL (`SecretUrl::whole`), so this is never empty.
        self.secret.expose().unwrap_or_default()
    }

    /// `text` with the password (as written and as decoded) and the full URL replaced by
    /// `***`.
    pub fn scrub(&self, text: &str) -> String {
        self.secret.scrub(text)
    }

    /// The network permission connecting to this server needs.
    pub fn permission(&self) -> Permission {
        self.secret.permission()
    }
}

impl_secret_url!(RedisUrl);

/// Settings of the `redis-connector` plugin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// The server: `redis://[:password@]host[:port][/db]`; write the password as a
    /// `${secret:NAME}` reference.
    #[schemars(with = "String")]
    pub url: RedisUrl,
    /// A namespace put in front of every key and stream name (`"orders:"`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// How long a cached value lives when a `set` names no `ttl`; for ever when absent.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub default_ttl: Option<Duration>,
    /// How long one command may take before it fails with a timeout (a blocking consume
    /// gets its block time on top).
    #[serde(
        default = "default_command_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub command_timeout: Duration,
    /// The largest cached value `get` returns and `set` stores, in bytes (16 MiB).
    #[serde(default = "default_max_value_bytes")]
    #[schemars(range(min = 1))]
    pub max_value_bytes: usize,
}

impl RedisSettings {
    /// Settings for `url` with every default.
    pub fn new(url: &str) -> Result<Self> {
        Ok(RedisSettings {
            url: RedisUrl::parse(url)?,
            key_prefix: None,
            default_ttl: None,
            command_timeout: default_command_timeout(),
            max_value_bytes: default_max_value_bytes(),
        })
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        let invalid = |why: &str| Err(Error::new(ErrorKind::ConfigInvalid, why.to_string()));
        if self.command_timeout.is_zero() {
            return invalid("`command_timeout` must be more than zero");
        }
        if self.default_ttl.is_some_and(|t| t.is_zero()) {
            return invalid("`default_ttl` must be more than zero (leave it out for no expiry)");
        }
        if self.max_value_bytes == 0 {
            return invalid("`max_value_bytes` must be at least 1");
        }
        Ok(())
    }
}
