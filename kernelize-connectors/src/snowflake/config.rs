//! Settings of the `snowflake-connector` plugin ([`SnowflakeSettings`]).

use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::http::plugin::TimeoutSettings;
use crate::saas::{HttpOptions, PollSettings, parse_url};

/// The most rows a query returns when neither the settings nor the call say otherwise.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;

/// The longest key-pair JWT lifetime Snowflake accepts (one hour).
pub const MAX_JWT_LIFETIME: Duration = Duration::from_secs(3600);

fn default_jwt_lifetime() -> Duration {
    Duration::from_secs(59 * 60)
}

fn default_true() -> bool {
    true
}

fn default_max_rows() -> usize {
    DEFAULT_MAX_ROWS
}

/// The HTTP defaults for Snowflake: a synchronous submit may be held up to 45 s before
/// Snowflake answers 202, so one attempt may take 60 s and a call (retries included) 120 s.
pub fn default_http() -> HttpOptions {
    HttpOptions {
        timeout: TimeoutSettings {
            call: Duration::from_secs(120),
            attempt: Duration::from_secs(60),
        },
        ..HttpOptions::default()
    }
}

/// How the connector authenticates. Every credential is a secret: write it as a
/// `${secret:NAME}` reference.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SnowflakeAuth {
    /// Key-pair authentication: a JWT signed (RS256) with the user's RSA private key, sent
    /// with `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT`.
    KeyPair {
        /// The unencrypted RSA private key in PEM (`BEGIN PRIVATE KEY` or
        /// `BEGIN RSA PRIVATE KEY`), 2048 bits or more.
        #[schemars(with = "String")]
        private_key: SecretString,
        /// The public key's fingerprint (`SHA256:...`, as `DESC USER` shows it in
        /// `RSA_PUBLIC_KEY_FP`); computed from the private key when absent.
        #[serde(default)]
        public_key_fingerprint: Option<String>,
        /// How long each JWT is valid (`"59m"`, at most one hour); a new one is signed five
        /// minutes (at most half the lifetime) before it expires.
        #[serde(
            default = "default_jwt_lifetime",
            with = "kernelize_core::config::duration"
        )]
        #[schemars(with = "String")]
        jwt_lifetime: Duration,
    },
    /// An OAuth access token (Snowflake OAuth or External OAuth), sent with
    /// `X-Snowflake-Authorization-Token-Type: OAUTH`.
    Oauth {
        /// The access token.
        #[schemars(with = "String")]
        token: SecretString,
        /// Whether to send the token-type header (Snowflake assumes OAuth without it).
        #[serde(default = "default_true")]
        send_token_type: bool,
    },
    /// A programmatic access token, sent with
    /// `X-Snowflake-Authorization-Token-Type: PROGRAMMATIC_ACCESS_TOKEN`.
    ProgrammaticAccessToken {
        /// The token.
        #[schemars(with = "String")]
        token: SecretString,
    },
}

impl std::fmt::Debug for SnowflakeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnowflakeAuth::KeyPair {
                public_key_fingerprint,
                jwt_lifetime,
                ..
            } => f
                .debug_struct("KeyPair")
                .field("private_key", &"[redacted]")
                .field("public_key_fingerprint", public_key_fingerprint)
                .field("jwt_lifetime", jwt_lifetime)
                .finish(),
            SnowflakeAuth::Oauth {
                send_token_type, ..
            } => f
                .debug_struct("Oauth")
                .field("token", &"[redacted]")
                .field("send_token_type", send_token_type)
                .finish(),
            SnowflakeAuth::ProgrammaticAccessToken { .. } => f
                .debug_struct("ProgrammaticAccessToken")
                .field("token", &"[redacted]")
                .finish(),
        }
    }
}

/// Settings of the `snowflake-connector` plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeSettings {
    /// The account identifier: `myorg-myaccount`, or an account locator with its region
    /// (`xy12345.us-east-1`).
    pub account: String,
    /// The Snowflake user (login name); needed by key-pair authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// The API's base URL; `https://<account>.snowflakecomputing.com` when absent.
    #[serde(default)]
    pub base_url: Option<String>,
    /// How to authenticate.
    pub auth: SnowflakeAuth,
    /// The warehouse statements run in; the user's `DEFAULT_WAREHOUSE` when absent.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// The database; the user's default namespace when absent.
    #[serde(default)]
    pub database: Option<String>,
    /// The schema; the user's default namespace when absent.
    #[serde(default)]
    pub schema: Option<String>,
    /// The role; the user's `DEFAULT_ROLE` when absent.
    #[serde(default)]
    pub role: Option<String>,
    /// How long a statement may run on Snowflake before it cancels it (`"10m"`); the
    /// account's `STATEMENT_TIMEOUT_IN_SECONDS` when absent. Whole seconds.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub statement_timeout: Option<Duration>,
    /// A query tag put on every statement (`QUERY_TAG`), for Snowflake's query history.
    #[serde(default)]
    pub query_tag: Option<String>,
    /// The most rows one query may return (1,000,000); a call may ask for fewer.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Retry, timeouts (60 s an attempt, 120 s a call by default), rate limit, concurrency.
    #[serde(default = "default_http")]
    pub http: HttpOptions,
    /// How statements answered 202 are polled.
    #[serde(default)]
    pub poll: PollSettings,
}

impl SnowflakeSettings {
    /// Settings for `account` with `auth` and everything else by default.
    pub fn new(account: &str, auth: SnowflakeAuth) -> Self {
        Self {
            account: account.to_string(),
            user: None,
            base_url: None,
            auth,
            warehouse: None,
            database: None,
            schema: None,
            role: None,
            statement_timeout: None,
            query_tag: None,
            max_rows: DEFAULT_MAX_ROWS,
            http: default_http(),
            poll: PollSettings::default(),
        }
    }

    /// The base URL: the setting, or `https://<account>.snowflakecomputing.com`.
    pub fn base_url(&self) -> Result<url::Url> {
        match &self.base_url {
            Some(url) => parse_url("base_url", url),
            None => parse_url(
                "account",
                &format!(
                    "https://{}.snowflakecomputing.com",
                    self.account.to_ascii_lowercase()
                ),
            ),
        }
    }

    /// Checks what serde cannot: the account's characters, the row cap, the JWT lifetime.
    pub fn validate(&self) -> Result<()> {
        let account = self.account.trim();
        if account.is_empty()
            || !account
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`account` must be an account identifier such as `myorg-myaccount` or `xy12345.us-east-1`, not `{}`",
                    self.account
                ),
            ));
        }
        if self.max_rows == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`max_rows` must be at least 1",
            ));
        }
        if let SnowflakeAuth::KeyPair { jwt_lifetime, .. } = &self.auth {
            if self.user.as_deref().is_none_or(|u| u.trim().is_empty()) {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "key-pair authentication needs `user` (the Snowflake login name the public key is registered on)",
                ));
            }
            if *jwt_lifetime > MAX_JWT_LIFETIME || jwt_lifetime.as_secs() < 60 {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "`auth.jwt_lifetime` must be between 1 minute and 1 hour (Snowflake refuses longer JWTs), not {} s",
                        jwt_lifetime.as_secs()
                    ),
                ));
            }
        }
        Ok(())
    }
}
