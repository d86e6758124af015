//! The `bigquery-connector`'s settings: where BigQuery is, how to authenticate, and the
//! limits of one call.

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::saas::{HttpOptions, PollSettings};

/// BigQuery's REST v2 root.
pub const DEFAULT_BASE_URL: &str = "https://bigquery.googleapis.com/bigquery/v2";
/// Google's OAuth2 token endpoint (the `token_uri` of every service-account key).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The OAuth2 scope asked for by default: read and write BigQuery.
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
/// On-demand query pricing in USD per TiB scanned (US and EU multi-regions), the default
/// of `price_per_tib`.
pub const DEFAULT_PRICE_PER_TIB: f64 = 6.25;
/// The default cap on the rows one `query` call returns.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;
/// The default cap on the result pages one `query` call reads.
pub const DEFAULT_MAX_PAGES: usize = 10_000;

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}

fn default_scopes() -> Vec<String> {
    vec![DEFAULT_SCOPE.into()]
}

fn default_price() -> f64 {
    DEFAULT_PRICE_PER_TIB
}

fn default_max_rows() -> usize {
    DEFAULT_MAX_ROWS
}

fn default_max_pages() -> usize {
    DEFAULT_MAX_PAGES
}

/// Settings of the `bigquery-connector` plugin.
///
/// Give exactly one credential: `service_account_key` (the whole JSON key file of a
/// service account, as one secret) or `access_token` (an OAuth2 access token obtained
/// elsewhere, e.g. `gcloud auth print-access-token`; it is not refreshed).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySettings {
    /// The project jobs run in and tables belong to, unless an action names another; the
    /// service-account key's `project_id` when absent.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The API root; `https://bigquery.googleapis.com/bigquery/v2` when absent.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The service account's JSON key file, whole (`${secret:BIGQUERY_KEY}`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub service_account_key: Option<SecretString>,
    /// A ready OAuth2 access token, instead of a service-account key.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub access_token: Option<SecretString>,
    /// The token endpoint; the key's `token_uri` when absent, else
    /// `https://oauth2.googleapis.com/token`. The assertion's `aud` is this URL.
    #[serde(default)]
    pub token_url: Option<String>,
    /// OAuth2 scopes asked for with a service-account key.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The location (`US`, `EU`, `europe-west2`) jobs run in, unless an action names one;
    /// BigQuery picks it from the tables a query reads when absent.
    #[serde(default)]
    pub location: Option<String>,
    /// On-demand price in USD per TiB scanned, for `dry_run`'s cost estimate (6.25).
    #[serde(default = "default_price")]
    pub price_per_tib: f64,
    /// The most rows one `query` returns (1,000,000); more is an error, never a silent cut.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// The most result pages one `query` reads (10,000).
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// How long and how often to poll a query that is not complete yet.
    #[serde(default)]
    pub poll: PollSettings,
    /// Retry, timeouts, rate limit and concurrency of the HTTP client.
    #[serde(default)]
    pub http: HttpOptions,
}

impl std::fmt::Debug for BigQuerySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigQuerySettings")
            .field("project_id", &self.project_id)
            .field("base_url", &self.base_url)
            .field(
                "credentials",
                &match (&self.service_account_key, &self.access_token) {
                    (Some(_), _) => "service_account_key",
                    (None, Some(_)) => "access_token",
                    (None, None) => "none",
                },
            )
            .field("token_url", &self.token_url)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl BigQuerySettings {
    /// Settings for `project_id` with a service-account key, everything else default.
    pub fn with_key(project_id: Option<&str>, key: SecretString) -> Self {
        Self {
            project_id: project_id.map(str::to_string),
            base_url: default_base_url(),
            service_account_key: Some(key),
            access_token: None,
            token_url: None,
            scopes: default_scopes(),
            location: None,
            price_per_tib: DEFAULT_PRICE_PER_TIB,
            max_rows: DEFAULT_MAX_ROWS,
            max_pages: DEFAULT_MAX_PAGES,
            poll: PollSettings::default(),
            http: HttpOptions::default(),
        }
    }

    /// Settings for `project_id` with a ready access token, everything else default.
    pub fn with_token(project_id: &str, token: SecretString) -> Self {
        Self {
            service_account_key: None,
            access_token: Some(token),
            ..Self::with_key(Some(project_id), SecretString::from(String::new()))
        }
    }

    /// Checks the settings and reads the key: which credential, which project.
    pub(crate) fn credential(&self) -> Result<Credential> {
        if self.max_rows == 0 || self.max_pages == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`max_rows` and `max_pages` must be at least 1",
            ));
        }
        if !(self.price_per_tib.is_finite() && self.price_per_tib >= 0.0) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`price_per_tib` must be a number of at least 0",
            ));
        }
        match (&self.service_account_key, &self.access_token) {
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::ConfigInvalid,
                "give either `service_account_key` or `access_token`, not both",
            )),
            (None, None) => Err(Error::new(
                ErrorKind::ConfigInvalid,
                "BigQuery needs a credential: `service_account_key` (the JSON key file of a service account) or `access_token`",
            )),
            (None, Some(token)) => {
                if token.expose_secret().trim().is_empty() {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        "`access_token` is empty",
                    ));
                }
                Ok(Credential::Token(token.clone()))
            }
            (Some(key), None) => Ok(Credential::Key(ServiceAccountKey::parse(key)?)),
        }
    }
}

/// The credential the settings give.
pub(crate) enum Credential {
    /// A service-account key, exchanged for tokens.
    Key(ServiceAccountKey),
    /// A ready access token.
    Token(SecretString),
}

/// The fields of a service-account JSON key that signing in needs.
pub(crate) struct ServiceAccountKey {
    /// `client_email`: the assertion's `iss`.
    pub(crate) client_email: String,
    /// `private_key`: the RSA key in PEM.
    pub(crate) private_key: SecretString,
    /// `private_key_id`: the JWT header's `kid`.
    pub(crate) private_key_id: Option<String>,
    /// `token_uri`.
    pub(crate) token_uri: Option<String>,
    /// `project_id`.
    pub(crate) project_id: Option<String>,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
}

impl ServiceAccountKey {
    /// Reads a JSON key. Errors name the missing field at most: serde's other messages
    /// may quote a value, and every value of a key file is treated as secret.
    fn parse(key: &SecretString) -> Result<Self> {
        let file: KeyFile = serde_json::from_str(key.expose_secret()).map_err(|e| {
            let text = e.to_string();
            let detail = if text.starts_with("missing field") {
                text.split(" at line").next().unwrap_or("").to_string()
            } else if e.is_syntax() || e.is_eof() {
                "it is not JSON".into()
            } else {
                "a field has the wrong type".into()
            };
            Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`service_account_key` is not a service-account JSON key ({detail}); give the whole key file downloaded from IAM → Service accounts → Keys"
                ),
            )
        })?;
        if let Some(kind) = &file.kind
            && kind != "service_account"
        {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`service_account_key` is a `{kind}` credential; only `service_account` keys are supported (or give `access_token`)"
                ),
            ));
        }
        Ok(Self {
            client_email: file.client_email,
            private_key: SecretString::from(file.private_key),
            private_key_id: file.private_key_id,
            token_uri: file.token_uri,
            project_id: file.project_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(key: &str) -> BigQuerySettings {
        BigQuerySettings::with_key(None, SecretString::from(key.to_string()))
    }

    fn refused(key: &str) -> Error {
        settings(key).credential().err().unwrap()
    }

    #[test]
    fn a_key_that_is_not_json_is_refused_without_quoting_it() {
        let err = refused("hunter2-not-json");
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
        assert!(err.message().contains("not JSON"), "{err}");
        assert!(!err.message().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_key_without_client_email_names_the_field() {
        let err = refused(r#"{"type":"service_account","private_key":"hunter2"}"#);
        assert!(err.message().contains("client_email"), "{err}");
        assert!(!err.message().contains("hunter2"), "{err}");
        let err = refused(r#"{"type":"service_account","client_email":7,"private_key":"hunter2"}"#);
        assert!(err.message().contains("wrong type"), "{err}");
        assert!(!err.message().contains("hunter2"), "{err}");
    }

    #[test]
    fn user_credentials_are_refused() {
        let err = refused(r#"{"type":"authorized_user","client_email":"a","private_key":"b"}"#);
        assert!(err.message().contains("authorized_user"), "{err}");
    }

    #[test]
    fn exactly_one_credential() {
        let mut both = settings(r#"{}"#);
        both.access_token = Some(SecretString::from("t".to_string()));
        assert!(both.credential().is_err());
        let mut none = settings(r#"{}"#);
        none.service_account_key = None;
        assert!(none.credential().is_err());
    }
}
