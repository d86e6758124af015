//! The `looker-connector`'s settings: the instance, the API credentials, and polling.

use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::saas::{HttpOptions, PollSettings, parse_url};

/// The API version path every call goes under.
pub const API_PATH: &str = "api/4.0";

fn default_margin() -> Duration {
    Duration::from_secs(60)
}

/// Settings of the `looker-connector` plugin.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LookerSettings {
    /// The instance: `https://mycompany.cloud.looker.com` (the API root
    /// `https://mycompany.cloud.looker.com/api/4.0` is derived), or the API root itself; a
    /// legacy self-hosted instance serves the API on port 19999
    /// (`https://looker.example.com:19999`).
    pub base_url: String,
    /// The API key's client id (Admin → Users → Edit keys).
    pub client_id: String,
    /// The API key's client secret (`${secret:LOOKER_CLIENT_SECRET}`).
    #[schemars(with = "String")]
    pub client_secret: SecretString,
    /// Log in again this long before the access token expires (60 s; at most half its
    /// lifetime).
    #[serde(default = "default_margin", with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub refresh_margin: Duration,
    /// How long and how often to poll async query tasks.
    #[serde(default)]
    pub poll: PollSettings,
    /// Retry, timeouts, rate limit and concurrency of the HTTP client.
    #[serde(default)]
    pub http: HttpOptions,
}

impl std::fmt::Debug for LookerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookerSettings")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl LookerSettings {
    /// Settings for the instance at `base_url` with an API key, everything else default.
    pub fn new(base_url: &str, client_id: &str, client_secret: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            refresh_margin: default_margin(),
            poll: PollSettings::default(),
            http: HttpOptions::default(),
        }
    }

    /// The API root (`…/api/4.0/`), from `base_url` with or without the API path.
    pub fn api_root(&self) -> Result<Url> {
        let mut url = parse_url("base_url", &self.base_url)?;
        let path = url.path().trim_end_matches('/').to_string();
        if path.ends_with("/api/4.0") {
            url.set_path(&format!("{path}/"));
        } else if path.contains("/api/") {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`base_url` names API path `{path}`; this connector speaks API 4.0 (`…/api/4.0`)"
                ),
            ));
        } else {
            url.set_path(&format!("{path}/{API_PATH}/"));
        }
        Ok(url)
    }

    /// Checks the credentials.
    pub(crate) fn check(&self) -> Result<()> {
        if self.client_id.trim().is_empty() || self.client_secret.expose_secret().is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "Looker needs `client_id` and `client_secret` (an API key: Admin → Users → Edit keys)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(base: &str) -> Result<String> {
        LookerSettings::new(base, "id", SecretString::from("s".to_string()))
            .api_root()
            .map(|u| u.to_string())
    }

    #[test]
    fn the_api_root_is_derived_from_the_instance() {
        assert_eq!(
            root("https://co.cloud.looker.com").unwrap(),
            "https://co.cloud.looker.com/api/4.0/"
        );
        assert_eq!(
            root("https://looker.example.com:19999/api/4.0/").unwrap(),
            "https://looker.example.com:19999/api/4.0/"
        );
        assert_eq!(
            root("http://127.0.0.1:9/prefix").unwrap(),
            "http://127.0.0.1:9/prefix/api/4.0/"
        );
        assert!(root("https://co.cloud.looker.com/api/3.1").is_err());
        assert!(root("not a url").is_err());
    }
}
