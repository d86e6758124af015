//! The `tableau-connector`'s settings.

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::saas::{HttpOptions, PollSettings, parse_url};

/// The REST API version used when the settings name none (Tableau Server 2024.2, and
/// Tableau Cloud, speak it).
pub const DEFAULT_API_VERSION: &str = "3.22";
/// Files larger than this are published through a chunked file upload: 64 MiB, the most
/// Tableau takes in one request.
pub const DEFAULT_CHUNK_THRESHOLD: u64 = 64 * 1024 * 1024;
/// The size of one chunk of a file upload: 50 MiB, as Tableau's Python client sends.
pub const DEFAULT_CHUNK_SIZE: u64 = 50 * 1024 * 1024;
/// The largest chunk (and single-request file) Tableau accepts.
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;
/// Items asked for per page when listing.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page Tableau serves.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The most items one list call collects unless the settings say otherwise.
pub const DEFAULT_MAX_ITEMS: usize = 100_000;

fn default_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

fn default_chunk_threshold() -> u64 {
    DEFAULT_CHUNK_THRESHOLD
}

fn default_chunk_size() -> u64 {
    DEFAULT_CHUNK_SIZE
}

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

fn default_max_items() -> usize {
    DEFAULT_MAX_ITEMS
}

/// Settings of the `tableau-connector` (see the module docs for a table).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableauSettings {
    /// The server: `https://tableau.example.com` for Tableau Server, the pod URL
    /// (`https://10ax.online.tableau.com`) for Tableau Cloud. There is no default: every
    /// customer has their own. The API lives under `{base_url}/api/{api_version}/`.
    pub base_url: String,
    /// The REST API version (`3.22`).
    #[serde(default = "default_version")]
    pub api_version: String,
    /// The site's `contentUrl` (the name in the site's URL); empty for the default site.
    #[serde(default)]
    pub site: String,
    /// The personal access token's name.
    pub token_name: String,
    /// The personal access token's secret; write it as `${secret:NAME}`.
    #[schemars(with = "String")]
    pub token_secret: SecretString,
    /// Files larger than this many bytes are published in chunks (64 MiB).
    #[serde(default = "default_chunk_threshold")]
    pub chunk_threshold: u64,
    /// The size of one chunk, in bytes (50 MiB; at most 64 MiB).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u64,
    /// Items per page when listing (100; 1 to 1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The most items one list call collects (100,000); more is an error that says so.
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    /// How jobs (extract refreshes, publishing as a job) are polled.
    #[serde(default)]
    pub poll: PollSettings,
    /// Retry, timeouts, rate limit and concurrency of the HTTP client.
    #[serde(default)]
    pub http: HttpOptions,
}

impl TableauSettings {
    /// Settings for `base_url` with a personal access token and everything else default.
    pub fn new(base_url: &str, token_name: &str, token_secret: SecretString) -> Self {
        Self {
            base_url: base_url.to_string(),
            api_version: default_version(),
            site: String::new(),
            token_name: token_name.to_string(),
            token_secret,
            chunk_threshold: DEFAULT_CHUNK_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
            page_size: DEFAULT_PAGE_SIZE,
            max_items: DEFAULT_MAX_ITEMS,
            poll: PollSettings::default(),
            http: HttpOptions::default(),
        }
    }

    /// Checks the settings; an error names the setting that is wrong.
    pub fn check(&self) -> Result<()> {
        self.api_url()?;
        if self.token_name.trim().is_empty() {
            return Err(invalid("`token_name` must not be empty"));
        }
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(invalid(format!(
                "`chunk_size` must be from 1 to {MAX_CHUNK_SIZE} bytes (64 MiB), not {}",
                self.chunk_size
            )));
        }
        if self.chunk_threshold > MAX_CHUNK_SIZE {
            return Err(invalid(format!(
                "`chunk_threshold` must be at most {MAX_CHUNK_SIZE} bytes (64 MiB, the most \
                 Tableau takes in one request), not {}",
                self.chunk_threshold
            )));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(invalid(format!(
                "`page_size` must be from 1 to {MAX_PAGE_SIZE}, not {}",
                self.page_size
            )));
        }
        if self.max_items == 0 {
            return Err(invalid("`max_items` must be at least 1"));
        }
        Ok(())
    }

    /// The API's root, `{base_url}/api/{api_version}/`.
    pub fn api_url(&self) -> Result<Url> {
        let version_ok = {
            let mut parts = self.api_version.split('.');
            let major = parts.next().is_some_and(|p| p.parse::<u32>().is_ok());
            let minor = parts.next().is_some_and(|p| p.parse::<u32>().is_ok());
            major && minor && parts.next().is_none()
        };
        if !version_ok {
            return Err(invalid(format!(
                "`api_version` must look like `3.22`, not `{}`",
                self.api_version
            )));
        }
        let base = parse_url("base_url", &self.base_url)?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(format!(
                "`base_url` must be the server's URL without a query, not `{}`",
                self.base_url
            )));
        }
        let root = format!(
            "{}/api/{}/",
            base.as_str().trim_end_matches('/'),
            self.api_version
        );
        parse_url("base_url", &root)
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TableauSettings {
        TableauSettings::new(
            "https://tableau.example.com/",
            "pat",
            SecretString::from("s3cret"),
        )
    }

    #[test]
    fn the_api_root_joins_base_and_version() {
        let url = settings().api_url().map(|u| u.to_string());
        assert_eq!(
            url.ok().as_deref(),
            Some("https://tableau.example.com/api/3.22/")
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let mut s = settings();
        s.api_version = "latest".into();
        let err = s
            .check()
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(err.contains("api_version"), "{err}");
        let mut s = settings();
        s.chunk_size = MAX_CHUNK_SIZE + 1;
        let err = s
            .check()
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(err.contains("chunk_size"), "{err}");
        let mut s = settings();
        s.page_size = 0;
        assert!(s.check().is_err());
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        assert!(!format!("{:?}", settings()).contains("s3cret"));
    }
}
