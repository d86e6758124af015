//! Settings of the `nats-connector` plugin, and the server URL that keeps its credentials out
//! of every message.

use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Permission, Result};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

pub(crate) use crate::secret_url::REDACTED;
use crate::secret_url::{SecretUrl, impl_secret_url, percent_decode};

/// The port a `nats://` URL without one means.
pub const DEFAULT_PORT: u16 = 4222;

/// The most messages one call may fetch, publish or settle, and the largest source batch.
pub const MAX_BATCH: usize = 10_000;

/// The longest a fetch may wait for messages (5 minutes).
pub const MAX_EXPIRES: Duration = Duration::from_secs(300);

/// The longest connect or request timeout the settings take (10 minutes).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_connection_name() -> String {
    "kernelize".into()
}

/// A `nats://[user:password@|token@]host[:port]` URL.
///
/// The credentials are taken out of the URL when it is parsed: the address the client
/// connects to never carries them, `Debug`, `Display` and serialization show `***` in their
/// place, and [`NatsUrl::scrub`] removes them from any text (a driver's message) before it is
/// shown.
#[derive(Clone)]
pub struct NatsUrl {
    secret: SecretUrl,
    port: u16,
    user: Option<String>,
    password: Option<SecretString>,
    token: Option<SecretString>,
}

impl NatsUrl {
    /// Parses and checks a URL: scheme `nats`, a host, an optional port, optional
    /// credentials (`user:password@` or `token@`), nothing else. Errors never quote the URL.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        let parsed = match url::Url::parse(text) {
            Ok(u) => u,
            Err(e) => {
                return invalid(format!(
                    "`url` is not a valid URL ({e}); write nats://[user:password@]host[:port]"
                ));
            }
        };
        match parsed.scheme() {
            "nats" => {}
            "tls" | "ws" | "wss" => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "`url` asks for {}://, which the nats-connector does not offer yet; use nats:// (on a trusted network or through a TLS tunnel)",
                        parsed.scheme()
                    ),
                ));
            }
            other => {
                return invalid(format!(
                    "`url` has scheme `{other}`; the nats-connector takes nats://[user:password@]host[:port]"
                ));
            }
        }
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return invalid("`url` has no host; write nats://host:4222".into()),
        };
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return invalid(
                "`url` takes no path or query; write nats://[user:password@]host[:port]".into(),
            );
        }
        let mut written = Vec::new();
        let (user, password, token) = match (parsed.username(), parsed.password()) {
            ("", None) => (None, None, None),
            ("", Some(_)) => {
                return invalid("`url` has a password without a user".into());
            }
            (user, Some(password)) => {
                written.push(SecretString::from(password.to_string()));
                (
                    Some(percent_decode(user)),
                    Some(SecretString::from(percent_decode(password))),
                    None,
                )
            }
            (token, None) => {
                written.push(SecretString::from(token.to_string()));
                (None, None, Some(SecretString::from(percent_decode(token))))
            }
        };
        let port = parsed.port().unwrap_or(DEFAULT_PORT);
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let redacted = match (&user, &token) {
            (Some(user), _) => format!("nats://{user}:{REDACTED}@{shown_host}:{port}"),
            (None, Some(_)) => format!("nats://{REDACTED}@{shown_host}:{port}"),
            (None, None) => format!("nats://{shown_host}:{port}"),
        };
        // As written first, then as decoded: the order the scrubbing replaces them in.
        let credentials = written
            .into_iter()
            .chain(password.iter().cloned())
            .chain(token.iter().cloned())
            .collect();
        Ok(NatsUrl {
            secret: SecretUrl::stripped(redacted, host, credentials),
            port,
            user,
            password,
            token,
        })
    }

    /// The URL with its credentials replaced by `***`.
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

    /// The address the client connects to: `nats://host:port`, without credentials.
    pub fn address(&self) -> String {
        let host = self.secret.host();
        if host.contains(':') {
            format!("nats://[{host}]:{}", self.port)
        } else {
            format!("nats://{host}:{}", self.port)
        }
    }

    /// The user the URL names, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the URL carries credentials (a user and password, or a token).
    pub fn has_credentials(&self) -> bool {
        self.user.is_some() || self.token.is_some()
    }

    /// `text` with every credential of the URL (as written and as decoded) replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        self.secret.scrub(text)
    }

    /// The network permission connecting to this server needs.
    pub fn permission(&self) -> Permission {
        self.secret.permission()
    }
}

impl_secret_url!(NatsUrl);

/// Writes a secret as `***` (or nothing when absent): settings never serialize credentials.
fn serialize_secret<S: Serializer>(
    value: &Option<SecretString>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

/// Settings of the `nats-connector` plugin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// The server: `nats://[user:password@|token@]host[:port]` (port 4222 when absent);
    /// write credentials as `${secret:NAME}` references.
    #[schemars(with = "String")]
    pub url: NatsUrl,
    /// The user to log in as (with `password`), when the URL carries no credentials.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's password; write it as a `${secret:NAME}` reference.
    #[serde(default, serialize_with = "serialize_secret")]
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// A token to log in with, instead of a user and password; write it as a
    /// `${secret:NAME}` reference.
    #[serde(default, serialize_with = "serialize_secret")]
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    /// How long connecting may take before it fails with a temporary error.
    #[serde(
        default = "default_connect_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub connect_timeout: Duration,
    /// How long a JetStream request, a publish acknowledgement or a message acknowledgement
    /// may take before it fails with a temporary error.
    #[serde(
        default = "default_request_timeout",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub request_timeout: Duration,
    /// The connection's name, as the server's monitoring shows it.
    #[serde(default = "default_connection_name")]
    pub connection_name: String,
}

/// How the client logs in.
#[derive(Clone)]
pub(crate) enum Credentials {
    None,
    UserPassword(String, SecretString),
    Token(SecretString),
}

impl NatsSettings {
    /// Settings for `url` with every default.
    pub fn new(url: &str) -> Result<Self> {
        Ok(NatsSettings {
            url: NatsUrl::parse(url)?,
            user: None,
            password: None,
            token: None,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            connection_name: default_connection_name(),
        })
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        self.credentials().map(drop)?;
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("`{name}` must be more than zero and at most 10 minutes"),
                ));
            }
        }
        if self.connection_name.is_empty()
            || self.connection_name.len() > 256
            || self.connection_name.chars().any(char::is_control)
        {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`connection_name` must be 1 to 256 characters, none of them control characters",
            ));
        }
        Ok(())
    }

    /// The credentials, from the URL or from the settings (never both).
    pub(crate) fn credentials(&self) -> Result<Credentials> {
        let invalid = |why: &str| Err(Error::new(ErrorKind::ConfigInvalid, why.to_string()));
        let from_settings = self.user.is_some() || self.password.is_some() || self.token.is_some();
        if self.url.has_credentials() && from_settings {
            return invalid(
                "credentials are given twice: in `url` and in `user`/`password`/`token`; keep one",
            );
        }
        if let (Some(user), Some(password)) = (&self.url.user, &self.url.password) {
            return Ok(Credentials::UserPassword(user.clone(), password.clone()));
        }
        if let Some(token) = &self.url.token {
            return Ok(Credentials::Token(token.clone()));
        }
        match (&self.user, &self.password, &self.token) {
            (None, None, None) => Ok(Credentials::None),
            (Some(user), Some(password), None) => {
                Ok(Credentials::UserPassword(user.clone(), password.clone()))
            }
            (None, None, Some(token)) => Ok(Credentials::Token(token.clone())),
            (Some(_), None, None) => invalid("`user` needs a `password`"),
            (None, Some(_), None) => invalid("`password` needs a `user`"),
            _ => invalid("give either `user` and `password`, or `token`, not both"),
        }
    }

    /// Every secret of the settings, to scrub from driver messages.
    pub(crate) fn secrets(&self) -> Vec<SecretString> {
        self.password
            .iter()
            .chain(self.token.iter())
            .cloned()
            .collect()
    }
}
