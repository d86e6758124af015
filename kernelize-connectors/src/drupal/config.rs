//! The `drupal-connector`'s settings.

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::saas::{HttpOptions, parse_url};

/// The most resources one JSON:API page holds (`OffsetPage::SIZE_MAX`).
pub const MAX_PAGE_LIMIT: u32 = 50;

/// The default cap on pages one `list` call reads.
pub const DEFAULT_MAX_PAGES: usize = 200;

/// How the connector signs in.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DrupalAuth {
    /// HTTP Basic (core's `basic_auth` module).
    Basic {
        /// The Drupal user.
        user: String,
        /// Its password; write it as `${secret:NAME}`.
        #[schemars(with = "String")]
        password: SecretString,
    },
    /// A bearer token (an OAuth access token from `simple_oauth`, or a key module's token).
    Bearer {
        /// The token; write it as `${secret:NAME}`.
        #[schemars(with = "String")]
        token: SecretString,
    },
}

impl std::fmt::Debug for DrupalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrupalAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            DrupalAuth::Bearer { .. } => f.debug_struct("Bearer").finish_non_exhaustive(),
        }
    }
}

fn default_page_limit() -> u32 {
    MAX_PAGE_LIMIT
}

fn default_max_pages() -> usize {
    DEFAULT_MAX_PAGES
}

/// Settings of the `drupal-connector` plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrupalSettings {
    /// The site's root (`https://example.com`); the API is at `{base_url}/jsonapi/`. A URL
    /// already ending in `/jsonapi` is taken as it is.
    pub base_url: String,
    /// How to sign in.
    pub auth: DrupalAuth,
    /// Resources per page, 1 to 50 (50, Drupal's most).
    #[serde(default = "default_page_limit")]
    pub page_limit: u32,
    /// The most pages one `list` call reads (200); the walk stops there.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Retry, timeouts, client-side rate limit, concurrency.
    #[serde(default)]
    pub http: HttpOptions,
}

impl DrupalSettings {
    /// Checks the settings and gives the API base (`…/jsonapi/`).
    pub fn api_base(&self) -> Result<String> {
        check_page_limit(self.page_limit)?;
        if self.max_pages == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`max_pages` must be at least 1",
            ));
        }
        match &self.auth {
            DrupalAuth::Basic { user, password } => {
                if user.is_empty() || user.contains(':') || password.expose_secret().is_empty() {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        "`auth` basic needs a `user` (without `:`) and a `password`",
                    ));
                }
            }
            DrupalAuth::Bearer { token } => {
                if token.expose_secret().trim().is_empty() {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        "`auth` bearer `token` is empty",
                    ));
                }
            }
        }
        let mut url = parse_url("base_url", &self.base_url)?;
        let path = url.path().trim_end_matches('/').to_string();
        let api = if path.ends_with("/jsonapi") {
            format!("{path}/")
        } else {
            format!("{path}/jsonapi/")
        };
        url.set_path(&api);
        url.set_query(None);
        Ok(url.to_string())
    }
}

/// A page limit Drupal accepts.
pub(crate) fn check_page_limit(limit: u32) -> Result<()> {
    if (1..=MAX_PAGE_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "`page_limit` must be between 1 and {MAX_PAGE_LIMIT} (Drupal's most), not {limit}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base: &str) -> DrupalSettings {
        DrupalSettings {
            base_url: base.into(),
            auth: DrupalAuth::Bearer {
                token: SecretString::from("t"),
            },
            page_limit: 50,
            max_pages: 1,
            http: HttpOptions::default(),
        }
    }

    #[test]
    fn the_api_is_under_jsonapi_of_the_site_root() {
        assert_eq!(
            settings("https://example.com").api_base().unwrap(),
            "https://example.com/jsonapi/"
        );
        assert_eq!(
            settings("https://example.com/cms/").api_base().unwrap(),
            "https://example.com/cms/jsonapi/"
        );
        assert_eq!(
            settings("https://example.com/jsonapi").api_base().unwrap(),
            "https://example.com/jsonapi/"
        );
        let mut s = settings("https://example.com");
        s.page_limit = 51;
        assert!(
            s.api_base()
                .unwrap_err()
                .message()
                .contains("between 1 and 50")
        );
    }

    #[test]
    fn debug_output_hides_credentials() {
        let auth = DrupalAuth::Basic {
            user: "admin".into(),
            password: SecretString::from("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
