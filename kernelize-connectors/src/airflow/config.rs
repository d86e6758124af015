//! Settings of the `airflow-connector` plugin.

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::saas::{HttpOptions, PollSettings, parse_url};

/// The most items one page asks for (Airflow's `[api] maximum_page_limit` defaults to 100
/// and the server clamps larger asks to it).
pub const MAX_PAGE_SIZE: u32 = 100;

/// The most pages one listing reads, whatever `max_pages` says (1,000 pages of 100).
pub const MAX_PAGES: usize = 1000;

/// Which REST API the Airflow deployment serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// Airflow 2: the stable API under `/api/v1`, HTTP Basic authentication.
    V1,
    /// Airflow 3: the API under `/api/v2`, a JWT from `POST /auth/token` as bearer token.
    V2,
}

impl ApiVersion {
    /// The path segment (`v1`, `v2`).
    pub fn segment(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
        }
    }
}

fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}

fn default_max_pages() -> usize {
    100
}

/// Settings of the `airflow-connector` plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AirflowSettings {
    /// The webserver (Airflow 2) or API server (Airflow 3) root, without `/api/...`:
    /// `https://airflow.example.com` (a path prefix such as `https://host/airflow` is kept).
    /// Airflow is self-hosted, so there is no default.
    pub base_url: String,
    /// `v1` for Airflow 2 (`/api/v1`, Basic auth) or `v2` for Airflow 3 (`/api/v2`, token).
    pub api_version: ApiVersion,
    /// The user name (Basic auth in v1, `/auth/token` in v2); not needed with
    /// `access_token`.
    #[serde(default)]
    pub username: Option<String>,
    /// The password (`${secret:AIRFLOW_PASSWORD}`); not needed with `access_token`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// A ready bearer token (a managed service's API token, or a JWT issued elsewhere),
    /// sent as is instead of signing in; it is not refreshed.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub access_token: Option<SecretString>,
    /// v2 only: the token endpoint; `{base_url}/auth/token` when absent.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Items asked for per page of a listing (1 to 100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Most pages one listing reads (at most 1,000); a listing with more pages fails
    /// rather than return part of the list.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// How often and how long `wait: true` polls a DAG run.
    #[serde(default)]
    pub poll: PollSettings,
    /// Retry, timeouts, client-side rate limit and concurrency.
    #[serde(default)]
    pub http: HttpOptions,
}

impl AirflowSettings {
    /// Checks the settings that serde cannot: URLs, credentials, page size and cap.
    pub fn check(&self) -> Result<()> {
        parse_url("base_url", &self.base_url)?;
        if let Some(url) = &self.token_url {
            parse_url("token_url", url)?;
        }
        if self.access_token.is_none() && (self.username.is_none() || self.password.is_none()) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "give `username` and `password` (or `access_token`) to sign in to Airflow",
            ));
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`page_size` must be 1 to {MAX_PAGE_SIZE}, not {}",
                    self.page_size
                ),
            ));
        }
        if self.max_pages == 0 || self.max_pages > MAX_PAGES {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`max_pages` must be 1 to {MAX_PAGES}, not {}",
                    self.max_pages
                ),
            ));
        }
        Ok(())
    }
}
