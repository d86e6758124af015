//! The `wordpress-connector`'s settings.

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::saas::{HttpOptions, parse_url};

/// The default cap on pages one `list` call reads.
pub const DEFAULT_MAX_PAGES: usize = 100;

/// One WordPress site.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    /// The name actions use to pick the site (`site: blog`).
    pub name: String,
    /// The site's root (`https://example.com` or `https://example.com/blog`); the API is
    /// at `{base_url}/wp-json/wp/v2/`. A URL already ending in `/wp-json` or
    /// `/wp-json/wp/v2` is taken as it is.
    pub base_url: String,
    /// The WordPress user the application password belongs to.
    pub user: String,
    /// The application password (Users → Profile → Application Passwords), spaces
    /// allowed; write it as `${secret:NAME}`.
    #[schemars(with = "String")]
    pub application_password: SecretString,
}

impl SiteSettings {
    /// The REST base of the site (`…/wp-json/wp/v2/`).
    pub fn api_base(&self) -> Result<String> {
        let url = parse_url(&format!("sites[{}].base_url", self.name), &self.base_url)?;
        let path = url.path().trim_end_matches('/');
        let api_path = if path.ends_with("/wp-json/wp/v2") {
            format!("{path}/")
        } else if path.ends_with("/wp-json") {
            format!("{path}/wp/v2/")
        } else {
            format!("{path}/wp-json/wp/v2/")
        };
        let mut url = url;
        url.set_path(&api_path);
        url.set_query(None);
        Ok(url.to_string())
    }
}

/// The post meta keys the SEO fields are written to. A WordPress site only accepts meta
/// keys registered with `show_in_rest` (see the docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SeoKeys {
    /// The key of the SEO title (`_yoast_wpseo_title`; Rank Math: `rank_math_title`).
    pub title: String,
    /// The key of the meta description (`_yoast_wpseo_metadesc`; Rank Math:
    /// `rank_math_description`).
    pub description: String,
}

impl Default for SeoKeys {
    fn default() -> Self {
        Self {
            title: "_yoast_wpseo_title".into(),
            description: "_yoast_wpseo_metadesc".into(),
        }
    }
}

fn default_max_pages() -> usize {
    DEFAULT_MAX_PAGES
}

/// Settings of the `wordpress-connector` plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WordPressSettings {
    /// The sites (at least one); actions pick one by `site`, the first by default.
    pub sites: Vec<SiteSettings>,
    /// Where `seo.title` and `seo.description` go in post meta.
    #[serde(default)]
    pub seo_keys: SeoKeys,
    /// The most pages one `list` call reads (100); the walk stops there.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Retry, timeouts, client-side rate limit, concurrency.
    #[serde(default)]
    pub http: HttpOptions,
}

impl WordPressSettings {
    /// Checks the settings: at least one site, unique names, usable URLs and credentials.
    pub fn check(&self) -> Result<()> {
        if self.sites.is_empty() {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`sites` needs at least one site ({name, base_url, user, application_password})",
            ));
        }
        if self.max_pages == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`max_pages` must be at least 1",
            ));
        }
        for (i, site) in self.sites.iter().enumerate() {
            if site.name.trim().is_empty() {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("sites[{i}] has an empty `name`"),
                ));
            }
            if self.sites[..i].iter().any(|s| s.name == site.name) {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("two sites are named `{}`", site.name),
                ));
            }
            if site.user.is_empty() || site.application_password.expose_secret().trim().is_empty() {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "site `{}` needs a `user` and an `application_password`",
                        site.name
                    ),
                ));
            }
            if site.user.contains(':') {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!(
                        "site `{}`: a user name cannot contain `:` (HTTP Basic)",
                        site.name
                    ),
                ));
            }
            site.api_base()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(base: &str) -> SiteSettings {
        SiteSettings {
            name: "main".into(),
            base_url: base.into(),
            user: "admin".into(),
            application_password: SecretString::from("abcd efgh"),
        }
    }

    #[test]
    fn the_api_is_under_wp_json_of_the_site_root() {
        assert_eq!(
            site("https://example.com").api_base().unwrap(),
            "https://example.com/wp-json/wp/v2/"
        );
        assert_eq!(
            site("https://example.com/blog/").api_base().unwrap(),
            "https://example.com/blog/wp-json/wp/v2/"
        );
        assert_eq!(
            site("https://example.com/wp-json").api_base().unwrap(),
            "https://example.com/wp-json/wp/v2/"
        );
        assert_eq!(
            site("https://example.com/wp-json/wp/v2")
                .api_base()
                .unwrap(),
            "https://example.com/wp-json/wp/v2/"
        );
        assert!(site("ftp://example.com").api_base().is_err());
    }

    #[test]
    fn sites_are_checked() {
        let mut s = WordPressSettings {
            sites: vec![],
            seo_keys: SeoKeys::default(),
            max_pages: 1,
            http: HttpOptions::default(),
        };
        assert!(
            s.check()
                .unwrap_err()
                .message()
                .contains("at least one site")
        );
        s.sites = vec![site("https://a.example"), site("https://b.example")];
        assert!(
            s.check()
                .unwrap_err()
                .message()
                .contains("two sites are named `main`")
        );
    }
}
