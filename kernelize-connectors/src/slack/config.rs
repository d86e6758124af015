//! The `slack-notifier`'s settings, and [`SecretText`] for secrets in action configs.

use std::fmt;

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::saas::{HttpOptions, parse_url};

/// Slack's Web API, the default `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://slack.com/api/";

/// Settings of the `slack-notifier` plugin. Give `token` for `send_message`, `webhook_url`
/// for `send_webhook`, or both; write them as `${secret:NAME}` references.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The Web API's base URL; `https://slack.com/api/` by default (point it at a fake in
    /// tests).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// A bot token (`xoxb-...`) with the `chat:write` scope, sent as
    /// `Authorization: Bearer`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    /// An incoming webhook URL (`https://hooks.slack.com/services/T.../B.../...`); the URL
    /// is the credential.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub webhook_url: Option<SecretString>,
    /// Retries, timeouts, client-side rate limit and concurrency.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}

impl SlackSettings {
    /// Settings with a bot token and defaults for the rest.
    pub fn with_token(token: SecretString) -> Self {
        Self {
            base_url: default_base_url(),
            token: Some(token),
            webhook_url: None,
            http: HttpOptions::default(),
        }
    }

    /// The Web API's base URL, checked.
    pub fn base(&self) -> Result<Url> {
        parse_url("base_url", &self.base_url)
    }

    /// Checks everything that can be checked without the network.
    pub fn check(&self) -> Result<()> {
        self.base()?;
        if self.token.is_none() && self.webhook_url.is_none() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "give `token` (a bot token, for send_message) or `webhook_url` (an incoming webhook, for send_webhook)",
            ));
        }
        if let Some(url) = &self.webhook_url {
            webhook_origin(url)?;
        }
        Ok(())
    }
}

/// The scheme and host of a webhook URL (`https://hooks.slack.com/`): what may be shown
/// and checked against network grants, the rest of the URL being the secret.
pub fn webhook_origin(url: &SecretString) -> Result<Url> {
    let parsed = Url::parse(url.expose_secret()).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("`webhook_url` is not a valid URL: {e}"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            "`webhook_url` must be an http(s) URL with a host",
        ));
    }
    let mut origin = parsed;
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    // A URL with a host can always drop its credentials.
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    Ok(origin)
}

/// A secret in an action's config (a webhook URL): read like text, never written back
/// (it serializes as `"[redacted]"`) and never shown by `Debug`.
#[derive(Clone)]
pub struct SecretText(pub SecretString);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

impl PartialEq for SecretText {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(SecretText(SecretString::from(String::deserialize(d)?)))
    }
}

impl JsonSchema for SecretText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretText".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}
