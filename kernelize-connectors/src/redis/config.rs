//! Settings of the `redis-connector` plugin, and the server URL that keeps its password out
//! of every message.

use std::fmt;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Permission, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most entries, keys or ids one call may name or return (`count`, `keys`, `ids`,
/// published entries).
pub const MAX_BATCH: usize = 10_000;

/// The longest a consume may block waiting for messages (5 minutes).
pub const MAX_BLOCK: Duration = Duration::from_secs(300);

/// The port a `redis://` URL without one means.
pub const DEFAULT_PORT: u16 = 6379;

/// The text that stands for a password in messages.
const REDACTED: &str = "***";

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
    full: SecretString,
    redacted: String,
    host: String,
    port: u16,
    db: i64,
    /// The password as written in the URL and percent-decoded, to scrub from messages.
    passwords: Vec<SecretString>,
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
        let passwords: Vec<SecretString> = parsed
            .password()
            .map(|p| vec![SecretString::from(p), SecretString::from(percent_decode(p))])
            .unwrap_or_default();
        let mut shown = parsed.clone();
        if parsed.password().is_some() && shown.set_password(Some(REDACTED)).is_err() {
            return invalid("`url` cannot carry a password".into());
        }
        Ok(RedisUrl {
            full: SecretString::from(text.to_string()),
            redacted: shown.to_string(),
            host: host.to_string(),
            port: parsed.port().unwrap_or(DEFAULT_PORT),
            db,
            passwords,
        })
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The server's host name or address.
    pub fn host(&self) -> &str {
        &self.host
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
        self.full.expose_secret()
    }

    /// `text` with the password (as written and as decoded) and the full URL replaced by
    /// `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(self.full.expose_secret(), &self.redacted);
        for password in &self.passwords {
            let password = password.expose_secret();
            if !password.is_empty() {
                out = out.replace(password, REDACTED);
            }
        }
        out
    }

    /// The network permission connecting to this server needs.
    pub fn permission(&self) -> Permission {
        Permission::Network {
            host: self.host.clone(),
        }
    }
}

/// `%XX` escapes decoded; anything malformed is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted)
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // The message of `parse` never quotes the URL.
        RedisUrl::parse(&text).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

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
