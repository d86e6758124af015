//! The `powerbi-connector`'s settings.

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::saas::{HttpOptions, PollSettings, parse_url};

/// The Power BI REST API's base URL (the caller's own organization).
pub const DEFAULT_BASE_URL: &str = "https://api.powerbi.com/v1.0/myorg";
/// The Microsoft Entra authority that issues tokens (public cloud).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The scope of a client-credentials token for Power BI.
pub const DEFAULT_SCOPE: &str = "https://analysis.windows.net/powerbi/api/.default";
/// The most rows Power BI takes in one push-rows request.
pub const MAX_PUSH_ROWS: usize = 10_000;
/// How many refresh-history entries one poll asks for (`$top`).
pub const DEFAULT_HISTORY_TOP: u32 = 10;
/// The largest `$top` the connector asks for.
pub const MAX_HISTORY_TOP: u32 = 1000;
/// The group id that stands for My workspace in action configs.
pub const MY_WORKSPACE: &str = "me";

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}

fn default_authority() -> String {
    DEFAULT_AUTHORITY.to_string()
}

fn default_scope() -> String {
    DEFAULT_SCOPE.to_string()
}

fn default_push_chunk_rows() -> usize {
    MAX_PUSH_ROWS
}

fn default_history_top() -> u32 {
    DEFAULT_HISTORY_TOP
}

/// Settings of the `powerbi-connector` (see the module docs for a table).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerBiSettings {
    /// The REST API's base URL (`https://api.powerbi.com/v1.0/myorg`).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The Entra authority (`https://login.microsoftonline.com`; national clouds have their
    /// own).
    #[serde(default = "default_authority")]
    pub authority: String,
    /// The directory (tenant) id, or a verified domain (`contoso.onmicrosoft.com`).
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The app's client secret; write it as `${secret:NAME}`.
    #[schemars(with = "String")]
    pub client_secret: SecretString,
    /// The token scope (`https://analysis.windows.net/powerbi/api/.default`).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// The workspace actions use when their config names none; My workspace when absent.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Rows per push-rows request (10,000, Power BI's limit; less to stay under its rows
    /// per hour).
    #[serde(default = "default_push_chunk_rows")]
    pub push_chunk_rows: usize,
    /// How many refresh-history entries a poll asks for (`$top`, 10).
    #[serde(default = "default_history_top")]
    pub history_top: u32,
    /// How refreshes are polled.
    #[serde(default)]
    pub poll: PollSettings,
    /// Retry, timeouts, rate limit and concurrency of the HTTP client.
    #[serde(default)]
    pub http: HttpOptions,
}

impl PowerBiSettings {
    /// Settings for a tenant and an app's credentials, everything else default.
    pub fn new(tenant_id: &str, client_id: &str, client_secret: SecretString) -> Self {
        Self {
            base_url: default_base_url(),
            authority: default_authority(),
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            scope: default_scope(),
            group_id: None,
            push_chunk_rows: MAX_PUSH_ROWS,
            history_top: DEFAULT_HISTORY_TOP,
            poll: PollSettings::default(),
            http: HttpOptions::default(),
        }
    }

    /// Checks the settings; an error names the setting that is wrong.
    pub fn check(&self) -> Result<()> {
        self.api_url()?;
        self.token_url()?;
        if self.client_id.trim().is_empty() {
            return Err(invalid("`client_id` must not be empty"));
        }
        if self.scope.trim().is_empty() {
            return Err(invalid("`scope` must not be empty"));
        }
        if !(1..=MAX_PUSH_ROWS).contains(&self.push_chunk_rows) {
            return Err(invalid(format!(
                "`push_chunk_rows` must be from 1 to {MAX_PUSH_ROWS} (Power BI's limit per request), not {}",
                self.push_chunk_rows
            )));
        }
        if !(1..=MAX_HISTORY_TOP).contains(&self.history_top) {
            return Err(invalid(format!(
                "`history_top` must be from 1 to {MAX_HISTORY_TOP}, not {}",
                self.history_top
            )));
        }
        Ok(())
    }

    /// The API's base URL.
    pub fn api_url(&self) -> Result<Url> {
        parse_url("base_url", &self.base_url)
    }

    /// The token endpoint, `{authority}/{tenant_id}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> Result<Url> {
        let tenant = self.tenant_id.trim();
        if tenant.is_empty()
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(invalid(format!(
                "`tenant_id` must be a directory id or domain (letters, digits, `-`, `.`), not `{}`",
                self.tenant_id
            )));
        }
        let authority = parse_url("authority", &self.authority)?;
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            authority.as_str().trim_end_matches('/')
        );
        parse_url("authority", &url)
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PowerBiSettings {
        PowerBiSettings::new(
            "contoso.onmicrosoft.com",
            "app",
            SecretString::from("s3cret"),
        )
    }

    #[test]
    fn the_token_url_joins_authority_and_tenant() {
        let url = settings().token_url().map(|u| u.to_string());
        assert_eq!(
            url.ok().as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let mut s = settings();
        s.tenant_id = "a/b".into();
        let err = s
            .check()
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(err.contains("tenant_id"), "{err}");
        let mut s = settings();
        s.push_chunk_rows = MAX_PUSH_ROWS + 1;
        let err = s
            .check()
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(err.contains("push_chunk_rows"), "{err}");
        assert!(!format!("{:?}", settings()).contains("s3cret"));
    }
}
