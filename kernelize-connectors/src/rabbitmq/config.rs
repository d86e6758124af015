//! Settings of the `rabbitmq-connector` plugin, and the broker URL that keeps its password
//! out of every message.

use std::str::FromStr;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Permission, Result};
use lapin::uri::{AMQPScheme, AMQPUri};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret_url::{SecretUrl, impl_secret_url, percent_decode};

/// The most messages one call may publish or get, and the most entries a `declare` may
/// name.
pub const MAX_BATCH: usize = 10_000;

/// The largest prefetch (`basic.qos`) an event source may ask for.
pub const MAX_PREFETCH: u16 = 10_000;

/// The longest a source waits before it requeues a delivery settled with a retry delay
/// (RabbitMQ itself has no delayed requeue).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The port an `amqp://` URL without one means.
pub const DEFAULT_PORT: u16 = 5672;

/// The port an `amqps://` URL without one means.
pub const DEFAULT_TLS_PORT: u16 = 5671;

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_operation_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_reconnect_max_delay() -> Duration {
    Duration::from_secs(10)
}

fn default_max_get_bytes() -> usize {
    64 * 1024 * 1024
}

/// An `amqp://user:password@host:port/vhost` URL (or `amqps://` for TLS).
///
/// The whole URL is kept as a secret: `Debug`, `Display` and serialization show it with the
/// password replaced by `***`, and [`AmqpUrl::scrub`] removes the password from any text (a
/// driver's error message) before it is shown.
///
/// The virtual host is the percent-decoded path: `amqp://host/` and `amqp://host` both mean
/// the default vhost `/` (lapin on its own would take `amqp://host/` as the vhost `""`),
/// `amqp://host/%2f` is `/` too, and `amqp://host/orders` is `orders`. lapin's query
/// parameters (`heartbeat`, `connection_timeout`, `frame_max`, `channel_max`,
/// `auth_mechanism`) are kept.
#[derive(Clone)]
pub struct AmqpUrl {
    secret: SecretUrl,
    port: u16,
    vhost: String,
    user: String,
    tls: bool,
}

impl AmqpUrl {
    /// Parses and checks a URL: scheme `amqp` or `amqps`, a host, an optional port, an
    /// optional vhost. Errors never quote the URL.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        let parsed = match url::Url::parse(text) {
            Ok(u) => u,
            Err(e) => {
                return invalid(format!(
                    "`url` is not a valid URL ({e}); write amqp://user:password@host:5672/vhost"
                ));
            }
        };
        let tls = match parsed.scheme() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return invalid(format!(
                    "`url` has scheme `{other}`; the rabbitmq-connector takes amqp://user:password@host:port/vhost (or amqps:// for TLS)"
                ));
            }
        };
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return invalid("`url` has no host; write amqp://host:5672/vhost".into()),
        };
        let url = AmqpUrl {
            secret: SecretUrl::whole(text, &parsed, host)?,
            port: parsed
                .port()
                .unwrap_or(if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT }),
            vhost: vhost_of(parsed.path()),
            user: match parsed.username() {
                "" => "guest".to_string(),
                user => percent_decode(user),
            },
            tls,
        };
        // lapin's own parser checks the query parameters; its messages may quote the URL.
        url.to_uri()?;
        Ok(url)
    }

    /// The URL as lapin takes it, with the vhost normalized (see the type's docs).
    pub(crate) fn to_uri(&self) -> Result<AMQPUri> {
        // `parse` keeps the whole URL (`SecretUrl::whole`), so this is never empty.
        let full = self.secret.expose().unwrap_or_default();
        let mut uri = AMQPUri::from_str(full).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`url` is not a valid AMQP URL: {}; write amqp://user:password@host:5672/vhost",
                    self.scrub(&e)
                ),
            )
        })?;
        uri.vhost = self.vhost.clone();
        uri.scheme = if self.tls {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        };
        uri.authority.port = self.port;
        Ok(uri)
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> &str {
        self.secret.redacted()
    }

    /// The broker's host name or address.
    pub fn host(&self) -> &str {
        self.secret.host()
    }

    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The virtual host (`/` when the URL names none).
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// The user name (`guest` when the URL names none).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the URL asks for TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `text` with the password (as written and as decoded) and the full URL replaced by
    /// `***`.
    pub fn scrub(&self, text: &str) -> String {
        self.secret.scrub(text)
    }

    /// The network permission connecting to this broker needs.
    pub fn permission(&self) -> Permission {
        self.secret.permission()
    }
}

impl_secret_url!(AmqpUrl);

/// The vhost a URL path names: the percent-decoded path without its leading `/`; `/` when
/// that is empty.
fn vhost_of(path: &str) -> String {
    match path.strip_prefix('/').unwrap_or(path) {
        "" => "/".to_string(),
        raw => percent_decode(raw),
    }
}

/// Settings of the `rabbitmq-connector` plugin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RabbitSettings {
    /// The broker: `amqp://user:password@host:port/vhost` (`amqps://` for TLS); write the
    /// password as a `${secret:NAME}` reference.
    #[schemars(with = "String")]
    pub url: AmqpUrl,
    /// The client-provided connection name the broker shows (`rabbitmqctl
    /// list_connections client_properties`, the management UI); `kernelize-` and a random
    /// suffix when absent. Event sources and sinks add ` source <queue>` and ` sink`.
    #[serde(default)]
    pub connection_name: Option<String>,
    /// How long opening a connection (TCP, TLS, AMQP handshake) may take.
    #[serde(
        default = "default_connect_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub connect_timeout: Duration,
    /// How long one broker operation may take: a declare, a `basic.get`, the publisher
    /// confirms of one publish call or one sink write.
    #[serde(
        default = "default_operation_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub operation_timeout: Duration,
    /// The longest wait between two reconnection attempts of an event source (the waits
    /// grow from 100 ms, with jitter).
    #[serde(
        default = "default_reconnect_max_delay",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub reconnect_max_delay: Duration,
    /// The most body bytes one `get` call returns (64 MiB); it stops early, leaving the
    /// rest in the queue.
    #[serde(default = "default_max_get_bytes")]
    #[schemars(range(min = 1))]
    pub max_get_bytes: usize,
}

impl RabbitSettings {
    /// Settings for `url` with every default.
    pub fn new(url: &str) -> Result<Self> {
        Ok(RabbitSettings {
            url: AmqpUrl::parse(url)?,
            connection_name: None,
            connect_timeout: default_connect_timeout(),
            operation_timeout: default_operation_timeout(),
            reconnect_max_delay: default_reconnect_max_delay(),
            max_get_bytes: default_max_get_bytes(),
        })
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        let invalid = |why: &str| Err(Error::new(ErrorKind::ConfigInvalid, why.to_string()));
        if self.connect_timeout.is_zero() {
            return invalid("`connect_timeout` must be more than zero");
        }
        if self.operation_timeout.is_zero() {
            return invalid("`operation_timeout` must be more than zero");
        }
        if self.reconnect_max_delay < Duration::from_millis(100) {
            return invalid("`reconnect_max_delay` must be at least 100ms");
        }
        if self.max_get_bytes == 0 {
            return invalid("`max_get_bytes` must be at least 1");
        }
        if let Some(name) = &self.connection_name {
            if name.trim().is_empty() {
                return invalid(
                    "`connection_name` must not be empty (leave it out for a generated one)",
                );
            }
            // Room for the ` source <queue>` suffix within the broker's 64 KiB long string.
            if name.len() > 1024 {
                return invalid("`connection_name` must be at most 1024 bytes");
            }
        }
        Ok(())
    }

    /// The connection name: the configured one, or `kernelize-` and a random suffix.
    pub(crate) fn resolved_connection_name(&self) -> String {
        self.connection_name
            .clone()
            .unwrap_or_else(|| format!("kernelize-{:08x}", rand::random::<u32>()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_vhost_is_the_decoded_path_and_slash_when_empty() {
        for (url, vhost) in [
            ("amqp://h", "/"),
            ("amqp://h/", "/"),
            ("amqp://h/%2f", "/"),
            ("amqp://h:5673/orders", "orders"),
            ("amqp://h/a%2Fb", "a/b"),
        ] {
            let parsed = AmqpUrl::parse(url).unwrap();
            assert_eq!(parsed.vhost(), vhost, "{url}");
            assert_eq!(parsed.to_uri().unwrap().vhost, vhost, "{url}");
        }
        assert_eq!(AmqpUrl::parse("amqp://h").unwrap().port(), 5672);
        assert_eq!(AmqpUrl::parse("amqps://h").unwrap().port(), 5671);
    }

    #[test]
    fn the_password_never_shows() {
        let url = AmqpUrl::parse("amqp://app:s%40cret-pw@broker:5672/prod").unwrap();
        let shown = format!("{url} {url:?} {}", serde_json::to_string(&url).unwrap());
        assert!(!shown.contains("cret-pw"), "{shown}");
        assert_eq!(url.user(), "app");
        assert_eq!(
            url.scrub("login s@cret-pw refused; s%40cret-pw"),
            "login *** refused; ***"
        );
    }

    #[test]
    fn bad_urls_are_config_errors_that_do_not_quote_the_url() {
        for bad in [
            "http://u:topsecret@h/",
            "not a url topsecret",
            "amqp://u:topsecret@h/?heartbeat=abc",
        ] {
            let e = AmqpUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{bad}: {e}");
            assert!(!e.to_string().contains("topsecret"), "{e}");
        }
    }
}
