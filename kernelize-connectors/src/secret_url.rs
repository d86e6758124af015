//! What the broker connectors' URL types share: a URL that carries a password, kept as a
//! secret, shown only redacted, and scrubbed out of any text before it is shown.
//!
//! Each connector's URL type (`RedisUrl`, `NatsUrl`, `AmqpUrl`, `MqttUrl`) parses its own
//! scheme and keeps a [`SecretUrl`] for the rest; [`impl_secret_url!`] gives it the redacted
//! `Debug`, `Display` and `Serialize`, and a `Deserialize` through its `parse`.

use std::fmt;

use kernelize_core::{Error, ErrorKind, Permission, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text that stands for a password or other credential in messages.
pub(crate) const REDACTED: &str = "***";

/// `%XX` escapes decoded; anything malformed is kept as written.
pub(crate) fn percent_decode(text: &str) -> String {
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

/// The secret parts of a server URL: the URL as written (when the driver takes it whole),
/// its redacted form, its credentials as written and as decoded, and the host it names.
#[derive(Clone)]
pub(crate) struct SecretUrl {
    /// The URL as written, password included; `None` when the connector takes the
    /// credentials out and never hands the whole URL on.
    full: Option<SecretString>,
    redacted: String,
    host: String,
    /// The credentials as written (percent-encoded) and as decoded, to scrub from messages.
    credentials: Vec<SecretString>,
}

impl SecretUrl {
    /// Keeps `text` whole for the driver, shown as `parsed` with its password replaced by
    /// `***`; `host` is the host `parsed` names, without IPv6 brackets.
    // Every connector but NATS keeps its URL this way.
    #[cfg_attr(
        not(any(feature = "redis", feature = "rabbitmq", feature = "mqtt")),
        allow(dead_code)
    )]
    pub(crate) fn whole(text: &str, parsed: &url::Url, host: &str) -> Result<Self> {
        let credentials: Vec<SecretString> = parsed
            .password()
            .map(|p| vec![SecretString::from(p), SecretString::from(percent_decode(p))])
            .unwrap_or_default();
        let mut shown = parsed.clone();
        if parsed.password().is_some() && shown.set_password(Some(REDACTED)).is_err() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`url` cannot carry a password",
            ));
        }
        Ok(SecretUrl {
            full: Some(SecretString::from(text.to_string())),
            redacted: shown.to_string(),
            host: host.to_string(),
            credentials,
        })
    }

    /// Keeps no whole URL, for a connector that takes the credentials out of it: `redacted`
    /// is how the URL is shown, `credentials` what to scrub (as written and as decoded).
    // Only the NATS connector, whose client takes the credentials apart, keeps it this way.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn stripped(redacted: String, host: &str, credentials: Vec<SecretString>) -> Self {
        SecretUrl {
            full: None,
            redacted,
            host: host.to_string(),
            credentials,
        }
    }

    /// The URL with its credentials replaced by `***`.
    pub(crate) fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The server's host name or address.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The URL as written, password included, for the driver only; `None` when built with
    /// [`SecretUrl::stripped`].
    // Only the connectors whose driver takes the whole URL (Redis, RabbitMQ) call this.
    #[cfg_attr(not(any(feature = "redis", feature = "rabbitmq")), allow(dead_code))]
    pub(crate) fn expose(&self) -> Option<&str> {
        self.full.as_ref().map(|full| full.expose_secret())
    }

    /// `text` with the whole URL replaced by its redacted form, and each credential (as
    /// written and as decoded) by `***`.
    // The MQTT connector shows no driver text that could carry its password.
    #[cfg_attr(
        not(any(feature = "redis", feature = "nats", feature = "rabbitmq")),
        allow(dead_code)
    )]
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = match &self.full {
            Some(full) => text.replace(full.expose_secret(), &self.redacted),
            None => text.to_string(),
        };
        for credential in &self.credentials {
            let credential = credential.expose_secret();
            if !credential.is_empty() {
                out = out.replace(credential, REDACTED);
            }
        }
        out
    }

    /// The network permission connecting to this server needs.
    pub(crate) fn permission(&self) -> Permission {
        Permission::Network {
            host: self.host.clone(),
        }
    }

    /// Writes `name("redacted URL")`, the `Debug` form of the URL type called `name`.
    pub(crate) fn fmt_debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple(name).field(&self.redacted).finish()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Serialized redacted: settings never write a password out.
impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted)
    }
}

/// Reads a string and parses it with `parse`, whose messages never quote the URL.
pub(crate) fn deserialize_parsed<'de, D, T>(
    d: D,
    parse: fn(&str) -> Result<T>,
) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    parse(&text).map_err(|e| serde::de::Error::custom(e.message()))
}

/// Implements the redacted `Debug`, `Display` and `Serialize`, and a `Deserialize` through
/// `parse`, for a URL type with a `secret: SecretUrl` field and a
/// `parse(&str) -> Result<Self>`.
macro_rules! impl_secret_url {
    ($url:ident) => {
        impl std::fmt::Debug for $url {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.secret.fmt_debug(stringify!($url), f)
            }
        }

        impl std::fmt::Display for $url {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.secret, f)
            }
        }

        impl serde::Serialize for $url {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&self.secret, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $url {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                $crate::secret_url::deserialize_parsed(d, $url::parse)
            }
        }
    };
}

pub(crate) use impl_secret_url;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn percent_decode_keeps_malformed_escapes_as_written() {
        assert_eq!(percent_decode("s%40cret"), "s@cret");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
    }

    #[test]
    fn a_whole_url_is_scrubbed_whole_and_by_its_password() {
        let text = "redis://:s%40cret@cache:6379/0";
        let parsed = url::Url::parse(text).unwrap();
        let url = SecretUrl::whole(text, &parsed, "cache").unwrap();
        assert_eq!(url.redacted(), "redis://:***@cache:6379/0");
        assert_eq!(url.expose(), Some(text));
        assert_eq!(
            url.scrub(&format!("{text} refused s@cret")),
            "redis://:***@cache:6379/0 refused ***"
        );
    }

    #[test]
    fn a_stripped_url_keeps_no_whole_url_and_scrubs_its_credentials() {
        let url = SecretUrl::stripped(
            "nats://***@bus:4222".to_string(),
            "bus",
            vec![SecretString::from("t%2Bk"), SecretString::from("t+k")],
        );
        assert_eq!(url.expose(), None);
        assert_eq!(url.scrub("nats://t%2Bk@bus t+k"), "nats://***@bus ***");
        assert_eq!(url.to_string(), "nats://***@bus:4222");
    }
}
