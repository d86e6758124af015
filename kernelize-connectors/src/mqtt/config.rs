//! Settings of the `mqtt-connector` plugin, the broker URL that keeps its password out of
//! every message, QoS levels, and the checks of topic names and filters.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Permission, Result};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret_url::{SecretUrl, impl_secret_url, percent_decode};

/// The port an `mqtt://` URL without one means.
pub const DEFAULT_PORT: u16 = 1883;

/// The largest packet MQTT can carry (its remaining-length field tops out at 256 MiB).
pub const MAX_PACKET_SIZE: usize = 268_435_455;

/// The most bytes a topic name or filter may have (MQTT's two-byte length prefix).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// The most topic filters one subscription names.
pub const MAX_FILTERS: usize = 100;

/// The longest client id taken (MQTT 3.1.1 promises 23 characters; brokers take more).
pub const MAX_CLIENT_ID: usize = 256;

fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

fn default_clean_session() -> bool {
    true
}

fn default_max_packet_size() -> usize {
    1024 * 1024
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}

/// An MQTT quality of service, written `0`, `1` or `2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub enum Qos {
    /// `0`: at most once; the broker confirms nothing.
    AtMostOnce,
    /// `1`: at least once; confirmed by `PUBACK`.
    #[default]
    AtLeastOnce,
    /// `2`: exactly once between two parties; confirmed by `PUBREC`/`PUBREL`/`PUBCOMP`.
    ExactlyOnce,
}

impl Qos {
    /// The level as its number.
    pub fn level(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
            Qos::ExactlyOnce => 2,
        }
    }

    /// The level of number `n`; an `invalid input` error for anything but 0, 1 and 2.
    pub fn from_level(n: u64) -> Result<Self> {
        match n {
            0 => Ok(Qos::AtMostOnce),
            1 => Ok(Qos::AtLeastOnce),
            2 => Ok(Qos::ExactlyOnce),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`qos` is 0, 1 or 2, not {other}"),
            )),
        }
    }

    pub(crate) fn to_driver(self) -> rumqttc::QoS {
        match self {
            Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
            Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
            Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
        }
    }

    pub(crate) fn of_driver(qos: rumqttc::QoS) -> Self {
        match qos {
            rumqttc::QoS::AtMostOnce => Qos::AtMostOnce,
            rumqttc::QoS::AtLeastOnce => Qos::AtLeastOnce,
            rumqttc::QoS::ExactlyOnce => Qos::ExactlyOnce,
        }
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.level())
    }
}

impl Serialize for Qos {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(self.level())
    }
}

impl<'de> Deserialize<'de> for Qos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        Qos::from_level(n).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

impl JsonSchema for Qos {
    fn schema_name() -> Cow<'static, str> {
        "Qos".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "Quality of service: 0 (at most once), 1 (at least once) or 2 (exactly once).",
            "type": "integer",
            "enum": [0, 1, 2]
        })
    }
}

/// One subscription: a topic filter and the QoS asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicFilter {
    /// The filter: a topic name, or one with `+` (one level) and `#` (the rest) wildcards.
    pub filter: String,
    /// The most QoS messages are delivered with (the broker grants at most this).
    #[serde(default)]
    pub qos: Qos,
}

impl TopicFilter {
    /// A filter at `qos`.
    pub fn new(filter: impl Into<String>, qos: Qos) -> Self {
        TopicFilter {
            filter: filter.into(),
            qos,
        }
    }
}

/// Checks a topic name to publish to: not empty, no wildcards, no NUL, at most 65,535 bytes.
pub fn check_topic(topic: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("topic `{}` is not valid: {why}", shorten(topic)),
        )
        .with_context("topic", shorten(topic)))
    };
    if topic.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the topic is empty; give a topic such as `sensors/room1/temperature`",
        ));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return invalid("longer than 65,535 bytes");
    }
    if topic.contains(['+', '#']) {
        return invalid("wildcards (`+`, `#`) are for subscriptions; publish to a concrete topic");
    }
    if topic.contains('\0') {
        return invalid("it contains a NUL character");
    }
    Ok(())
}

/// Checks a topic filter: not empty, `#` only as the whole last level, `+` only as a whole
/// level, no NUL, at most 65,535 bytes.
pub fn check_filter(filter: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("topic filter `{}` is not valid: {why}", shorten(filter)),
        )
        .with_context("filter", shorten(filter)))
    };
    if filter.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a topic filter is empty; give one such as `sensors/+/temperature` or `sensors/#`",
        ));
    }
    if filter.len() > MAX_TOPIC_BYTES {
        return invalid("longer than 65,535 bytes");
    }
    if filter.contains('\0') {
        return invalid("it contains a NUL character");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != last) {
            return invalid("`#` must be a whole level and the last one (`a/b/#`)");
        }
        if level.contains('+') && *level != "+" {
            return invalid("`+` must be a whole level (`a/+/c`)");
        }
    }
    Ok(())
}

/// Checks a subscription's filters: at least one, at most 100, each valid.
pub fn check_filters(filters: &[TopicFilter]) -> Result<()> {
    if filters.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "`topics` is empty; give at least one `{filter, qos}`",
        ));
    }
    if filters.len() > MAX_FILTERS {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`topics` names {} filters; at most {MAX_FILTERS} are taken",
                filters.len()
            ),
        ));
    }
    filters.iter().try_for_each(|f| check_filter(&f.filter))
}

/// Checks a client id: not empty, at most 256 characters, no NUL.
pub fn check_client_id(id: &str) -> Result<()> {
    let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
    if id.is_empty() {
        return invalid("`client_id` is empty; leave it out for a generated one".into());
    }
    if id.chars().count() > MAX_CLIENT_ID || id.contains('\0') {
        return invalid(format!(
            "`client_id` must be at most {MAX_CLIENT_ID} characters without NUL"
        ));
    }
    Ok(())
}

/// A client id of the form `kernelize-` and 12 random hex digits (22 characters, within
/// the 23 that MQTT 3.1.1 brokers must accept).
pub fn random_client_id() -> String {
    format!(
        "kernelize-{:012x}",
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

/// At most 80 characters of `text`, for messages.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(77).collect();
        short.push_str("...");
        short
    }
}

/// An `mqtt://[user[:password]@]host[:port][?client_id=ID]` URL.
///
/// `Debug`, `Display` and serialization show it with the password replaced by `***`;
/// errors about it never quote it.
#[derive(Clone)]
pub struct MqttUrl {
    secret: SecretUrl,
    port: u16,
    username: Option<String>,
    password: Option<SecretString>,
    client_id: Option<String>,
}

impl MqttUrl {
    /// Parses and checks a URL: scheme `mqtt` (or `tcp`), a host, an optional port, optional
    /// credentials and an optional `client_id` query parameter. Errors never quote the URL.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        let parsed = match url::Url::parse(text) {
            Ok(u) => u,
            Err(e) => {
                return invalid(format!(
                    "`url` is not a valid URL ({e}); write mqtt://[user:password@]host[:port]"
                ));
            }
        };
        match parsed.scheme() {
            "mqtt" | "tcp" => {}
            "mqtts" | "ssl" | "wss" => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "`url` asks for TLS (mqtts://), which this build of the mqtt-connector does not include; use mqtt:// (on a trusted network or through a TLS tunnel)",
                ));
            }
            other => {
                return invalid(format!(
                    "`url` has scheme `{other}`; the mqtt-connector takes mqtt://[user:password@]host[:port]"
                ));
            }
        }
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return invalid("`url` has no host; write mqtt://host:1883".into()),
        };
        if !matches!(parsed.path(), "" | "/") {
            return invalid(
                "`url` has a path; MQTT has none: write mqtt://host:1883 (topics go in each call)"
                    .into(),
            );
        }
        let mut client_id = None;
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "client_id" => {
                    check_client_id(&value)?;
                    client_id = Some(value.into_owned());
                }
                other => {
                    return invalid(format!(
                        "`url` has query parameter `{other}`; only `client_id` is taken"
                    ));
                }
            }
        }
        let username = match parsed.username() {
            "" => None,
            user => Some(percent_decode(user)),
        };
        let password = parsed
            .password()
            .map(|p| SecretString::from(percent_decode(p)));
        if password.is_some() && username.is_none() {
            return invalid(
                "`url` has a password but no user name; MQTT 3.1.1 sends a password only with a user name".into(),
            );
        }
        Ok(MqttUrl {
            secret: SecretUrl::whole(text, &parsed, host)?,
            port: parsed.port().unwrap_or(DEFAULT_PORT),
            username,
            password,
            client_id,
        })
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

    /// The user name, when the URL has one.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The `client_id` query parameter, when given.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The credentials for the driver only.
    pub(crate) fn credentials(&self) -> Option<(String, String)> {
        self.username.as_ref().map(|user| {
            let password = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string())
                .unwrap_or_default();
            (user.clone(), password)
        })
    }

    /// The network permission connecting to this broker needs.
    pub fn permission(&self) -> Permission {
        self.secret.permission()
    }
}

impl_secret_url!(MqttUrl);

/// Settings of the `mqtt-connector` plugin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// The broker: `mqtt://[user:password@]host[:port][?client_id=ID]`; write the password
    /// as a `${secret:NAME}` reference.
    #[schemars(with = "String")]
    pub url: MqttUrl,
    /// The client id of the plugin's publishing connection; the URL's `client_id`, else
    /// `kernelize-` and 12 random hex digits.
    #[serde(default)]
    pub client_id: Option<String>,
    /// How often an idle connection pings the broker (`"30s"`; at least 1s, `"0s"` for
    /// never); the broker drops a client silent for 1.5 times this.
    #[serde(
        default = "default_keep_alive",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub keep_alive: Duration,
    /// Whether the publishing connection starts a fresh session each time (true); false
    /// keeps its session (QoS 2 hand-shakes in progress) across reconnects.
    #[serde(default = "default_clean_session")]
    pub clean_session: bool,
    /// The largest packet sent or accepted, in bytes (1 MiB; at most 268,435,455).
    #[serde(default = "default_max_packet_size")]
    #[schemars(range(min = 64, max = 268435455))]
    pub max_packet_size: usize,
    /// How long connecting (TCP and `CONNECT`/`CONNACK`) may take (`"5s"`).
    #[serde(
        default = "default_connect_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub connect_timeout: Duration,
    /// How long a QoS 1 or 2 publish waits for the broker's `PUBACK` / `PUBCOMP`, and a
    /// source's acknowledgement for being written (`"30s"`).
    #[serde(
        default = "default_ack_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub ack_timeout: Duration,
}

impl MqttSettings {
    /// Settings for `url` with every default.
    pub fn new(url: &str) -> Result<Self> {
        Ok(MqttSettings {
            url: MqttUrl::parse(url)?,
            client_id: None,
            keep_alive: default_keep_alive(),
            clean_session: default_clean_session(),
            max_packet_size: default_max_packet_size(),
            connect_timeout: default_connect_timeout(),
            ack_timeout: default_ack_timeout(),
        })
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        if let Some(id) = &self.client_id {
            check_client_id(id)?;
            if self.url.client_id().is_some_and(|from_url| from_url != id) {
                return invalid(
                    "`client_id` and the URL's `client_id` differ; give it in one place".into(),
                );
            }
        }
        if !self.keep_alive.is_zero() && self.keep_alive < Duration::from_secs(1) {
            return invalid("`keep_alive` is at least 1s (or 0s for no pings)".into());
        }
        if self.keep_alive > Duration::from_secs(u64::from(u16::MAX)) {
            return invalid("`keep_alive` is at most 65535s".into());
        }
        if !(64..=MAX_PACKET_SIZE).contains(&self.max_packet_size) {
            return invalid(format!(
                "`max_packet_size` is between 64 and {MAX_PACKET_SIZE} bytes"
            ));
        }
        if self.connect_timeout < Duration::from_secs(1) {
            return invalid("`connect_timeout` is at least 1s".into());
        }
        if self.ack_timeout.is_zero() {
            return invalid("`ack_timeout` must be more than zero".into());
        }
        Ok(())
    }

    /// The publishing connection's client id: `client_id`, the URL's, or a generated one.
    pub fn publisher_client_id(&self) -> String {
        self.client_id
            .clone()
            .or_else(|| self.url.client_id().map(str::to_string))
            .unwrap_or_else(random_client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_the_wildcard_rules() {
        for good in ["a", "a/b", "+", "#", "a/+/c", "a/#", "+/+", "/", "a//b"] {
            assert!(check_filter(good).is_ok(), "{good}");
        }
        for bad in ["", "a#", "a/#/b", "a+", "a/b+/c", "#/a", "a/\0"] {
            assert_eq!(
                check_filter(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        assert!(check_topic("a/+").is_err());
        assert!(check_topic("a/b").is_ok());
    }

    #[test]
    fn the_password_is_never_shown() {
        let url = MqttUrl::parse("mqtt://app:s%40cret@broker.internal:1884?client_id=x").unwrap();
        let shown = format!("{url} {url:?} {}", serde_json::to_string(&url).unwrap());
        assert!(!shown.contains("cret"), "{shown}");
        assert_eq!(
            url.credentials(),
            Some(("app".to_string(), "s@cret".to_string()))
        );
        assert_eq!(
            (url.host(), url.port(), url.client_id()),
            ("broker.internal", 1884, Some("x"))
        );
    }

    #[test]
    fn bad_urls_are_config_errors_that_do_not_quote_them() {
        for bad in [
            "not a url",
            "http://host",
            "mqtt://",
            "mqtt://h:1883/path",
            "mqtt://h?x=1",
            "mqtt://:pw-secret@h",
        ] {
            let e = MqttUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{bad}");
            assert!(!e.message().contains("pw-secret"));
        }
        assert_eq!(
            MqttUrl::parse("mqtts://h").unwrap_err().kind(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn qos_reads_only_0_1_and_2() {
        assert_eq!(serde_json::from_str::<Qos>("2").unwrap(), Qos::ExactlyOnce);
        assert!(serde_json::from_str::<Qos>("3").is_err());
        assert_eq!(serde_json::to_string(&Qos::AtMostOnce).unwrap(), "0");
    }

    #[test]
    fn generated_client_ids_fit_mqtt_3_1_1() {
        let id = random_client_id();
        assert!(id.len() <= 23 && id.starts_with("kernelize-"), "{id}");
    }
}
