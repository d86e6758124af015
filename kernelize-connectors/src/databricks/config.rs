//! The `databricks-connector`'s settings.

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use kernelize_core::{Error, ErrorKind, Result};

use crate::saas::{HttpOptions, PollSettings, parse_url};

/// The most rows a `query` returns unless the settings say otherwise.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;

/// The most rows `load` stages in one call unless the settings say otherwise.
pub const DEFAULT_MAX_LOAD_ROWS: usize = 1_000_000;

/// Settings of the `databricks-connector` plugin.
///
/// Authenticate with a personal access token (`token`) or with OAuth machine-to-machine
/// (`client_id` + `client_secret` of a service principal); give exactly one of the two.
/// Write credentials as `${secret:NAME}` references.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabricksSettings {
    /// The workspace URL, `https://<workspace-host>` (for example
    /// `https://adb-1234567890123456.7.azuredatabricks.net` or
    /// `https://dbc-a1b2c3d4-e5f6.cloud.databricks.com`). Also accepted as `base_url`.
    #[serde(alias = "base_url")]
    pub host: String,
    /// A personal access token (`dapi...`), sent as `Authorization: Bearer`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    /// The OAuth client id (the service principal's application id), for OAuth M2M.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth secret of the service principal, for OAuth M2M.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<SecretString>,
    /// The OAuth token endpoint; `{host}/oidc/v1/token` when absent.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The SQL warehouse that runs `query` and `load` statements when the action's config
    /// names none.
    #[serde(default)]
    pub warehouse_id: Option<String>,
    /// The default catalog of statements.
    #[serde(default)]
    pub catalog: Option<String>,
    /// The default schema of statements.
    #[serde(default)]
    pub schema: Option<String>,
    /// The Unity Catalog volume directory `load` stages its files in
    /// (`/Volumes/<catalog>/<schema>/<volume>[/dir]`) when the action's config names none.
    #[serde(default)]
    pub staging_path: Option<String>,
    /// How long the statement API holds the submission open for a result: `0s` or `5s` to
    /// `50s` (`10s` by default). Longer statements are polled.
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout: String,
    /// The most rows a `query` returns (1,000,000 by default); a larger result is an error
    /// that says to narrow the query or set `row_limit`.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// The most rows `load` takes in one call (1,000,000 by default).
    #[serde(default = "default_max_load_rows")]
    pub max_load_rows: usize,
    /// How statements, job runs and model versions are polled.
    #[serde(default)]
    pub poll: PollSettings,
    /// Retries, timeouts, client-side rate limit and concurrency.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_wait_timeout() -> String {
    "10s".into()
}

fn default_max_rows() -> usize {
    DEFAULT_MAX_ROWS
}

fn default_max_load_rows() -> usize {
    DEFAULT_MAX_LOAD_ROWS
}

/// How the connector authenticates.
#[derive(Debug)]
pub enum Credentials {
    /// A personal access token.
    Token(SecretString),
    /// OAuth M2M client credentials.
    OAuth {
        /// The token endpoint.
        token_url: Url,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: SecretString,
    },
}

impl DatabricksSettings {
    /// Settings for `host` with a personal access token and defaults for the rest.
    pub fn with_token(host: &str, token: SecretString) -> Self {
        Self {
            host: host.to_string(),
            token: Some(token),
            client_id: None,
            client_secret: None,
            token_url: None,
            warehouse_id: None,
            catalog: None,
            schema: None,
            staging_path: None,
            wait_timeout: default_wait_timeout(),
            max_rows: DEFAULT_MAX_ROWS,
            max_load_rows: DEFAULT_MAX_LOAD_ROWS,
            poll: PollSettings::default(),
            http: HttpOptions::default(),
        }
    }

    /// The workspace URL, checked.
    pub fn host_url(&self) -> Result<Url> {
        parse_url("host", self.host.trim_end_matches('/'))
    }

    /// Checks the settings and picks the credentials.
    pub fn credentials(&self) -> Result<Credentials> {
        let host = self.host_url()?;
        match (&self.token, &self.client_id, &self.client_secret) {
            (Some(token), None, None) => Ok(Credentials::Token(token.clone())),
            (None, Some(id), Some(secret)) => {
                let token_url = match &self.token_url {
                    Some(u) => parse_url("token_url", u)?,
                    None => host.join("/oidc/v1/token").map_err(|e| {
                        Error::new(
                            ErrorKind::ConfigInvalid,
                            format!("cannot build the token URL from `host`: {e}"),
                        )
                    })?,
                };
                Ok(Credentials::OAuth {
                    token_url,
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                })
            }
            (None, None, None) => Err(Error::new(
                ErrorKind::ConfigInvalid,
                "give `token` (a personal access token) or `client_id` and `client_secret` (OAuth M2M)",
            )),
            (Some(_), _, _) => Err(Error::new(
                ErrorKind::ConfigInvalid,
                "give either `token` or `client_id` + `client_secret`, not both",
            )),
            _ => Err(Error::new(
                ErrorKind::ConfigInvalid,
                "OAuth M2M needs both `client_id` and `client_secret`",
            )),
        }
    }

    /// Checks everything that can be checked without the network.
    pub fn check(&self) -> Result<()> {
        self.credentials()?;
        check_wait_timeout(&self.wait_timeout)?;
        if let Some(path) = &self.staging_path {
            check_volume_path("staging_path", path)?;
        }
        if self.max_rows == 0 || self.max_load_rows == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`max_rows` and `max_load_rows` must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Checks a `wait_timeout`: `0s`, or `5s` to `50s`, as the statement API takes it.
pub fn check_wait_timeout(wait: &str) -> Result<()> {
    let seconds = wait.strip_suffix('s').and_then(|n| n.parse::<u32>().ok());
    match seconds {
        Some(0) | Some(5..=50) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("`wait_timeout` must be \"0s\" or between \"5s\" and \"50s\", not `{wait}`"),
        )),
    }
}

/// Checks a staging directory: an absolute Unity Catalog volume path without quotes,
/// `..` or control characters (it is written into a `COPY INTO` statement).
pub fn check_volume_path(setting: &str, path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("`{setting}` ({path}) {why}"),
        ))
    };
    if !path.starts_with("/Volumes/") {
        return bad(
            "must be a Unity Catalog volume path, `/Volumes/<catalog>/<schema>/<volume>[/dir]`",
        );
    }
    if path
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .count()
        < 4
    {
        return bad("must name a catalog, a schema and a volume");
    }
    if path
        .chars()
        .any(|c| c == '\'' || c == '\\' || c == '"' || c.is_control())
        || path.split('/').any(|s| s == ".." || s == ".")
    {
        return bad("must not hold quotes, backslashes, control characters or `.`/`..` segments");
    }
    Ok(())
}
