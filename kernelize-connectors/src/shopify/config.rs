//! The `shopify-connector`'s settings.

use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::saas::{HttpOptions, parse_url};

/// The Admin API version used when the settings name none: a stable release (Shopify
/// supports each for at least twelve months; change it with `api_version`).
pub const DEFAULT_API_VERSION: &str = "2026-07";

/// The most records one REST page holds (`limit`), and the most nodes one GraphQL page
/// asks for (`first`).
pub const MAX_PAGE_SIZE: u32 = 250;

/// The default cap on pages one list action fetches.
pub const DEFAULT_MAX_PAGES: usize = 200;

/// Which of Shopify's two Admin APIs an action uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// The REST Admin API (legacy since 2024-10-01, still served).
    #[default]
    Rest,
    /// The GraphQL Admin API.
    Graphql,
}

/// How the REST leaky bucket is paced on our side ([`CallLimitPacer`](super::CallLimitPacer)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RestBucket {
    /// Requests per second the shop's bucket drains: 2 (Standard), 4 (Advanced), 20
    /// (Plus). The bucket's size comes from `X-Shopify-Shop-Api-Call-Limit`.
    pub leak_per_second: f64,
    /// Slots kept free: a request waits until the bucket, as last reported and drained
    /// since, has more than this many free slots (0 to fill it completely).
    pub reserve: u32,
}

impl Default for RestBucket {
    fn default() -> Self {
        Self {
            leak_per_second: 2.0,
            reserve: 2,
        }
    }
}

/// How GraphQL calls are paced by the cost bucket
/// ([`GraphqlCostPacer`](super::GraphqlCostPacer)), when `graphql_pacing` is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlBucket {
    /// The points assumed for a query text not answered yet; once answered, its
    /// `requestedQueryCost` is used instead.
    pub default_cost: f64,
    /// The longest wait before one request; a request the bucket would not cover by then
    /// goes anyway, and a THROTTLED answer is waited out by the retries.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub max_wait: Duration,
}

impl Default for GraphqlBucket {
    fn default() -> Self {
        Self {
            default_cost: DEFAULT_GRAPHQL_COST,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// The cost assumed for a GraphQL query text not answered yet (Shopify's single-query
/// ceiling is 1,000 points; simple queries cost a few).
pub const DEFAULT_GRAPHQL_COST: f64 = 50.0;

/// Settings of the `shopify-connector` plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopifySettings {
    /// The shop: `my-store` or `my-store.myshopify.com`. Needed unless `base_url` is set.
    #[serde(default)]
    pub shop: Option<String>,
    /// The Admin API version, `YYYY-MM` (or `unstable`).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The Admin API access token (`shpat_…`), sent as `X-Shopify-Access-Token`; write it
    /// as `${secret:NAME}`.
    #[schemars(with = "String")]
    pub access_token: SecretString,
    /// The API base, `https://{shop}.myshopify.com/admin/api/{api_version}/` by default. A
    /// URL without `/admin/api/` in its path is taken as the shop's origin, and
    /// `admin/api/{api_version}/` is added.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API the actions use unless their config says otherwise.
    #[serde(default)]
    pub api: Api,
    /// Pacing of the REST leaky bucket.
    #[serde(default)]
    pub rest_bucket: RestBucket,
    /// Pace GraphQL calls by the cost extension's points bucket before Shopify throttles
    /// them (a THROTTLED answer is retried either way).
    #[serde(default = "yes")]
    pub graphql_pacing: bool,
    /// How GraphQL calls are paced.
    #[serde(default)]
    pub graphql_bucket: GraphqlBucket,
    /// The most pages one list action fetches (200); a longer walk stops there and the
    /// records say nothing more (raise it, or narrow the filters).
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Retry, timeouts, client-side rate limit, concurrency.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

fn yes() -> bool {
    true
}

fn default_max_pages() -> usize {
    DEFAULT_MAX_PAGES
}

impl ShopifySettings {
    /// Settings for `shop` with `access_token` and every default.
    pub fn new(shop: &str, access_token: SecretString) -> Self {
        Self {
            shop: Some(shop.to_string()),
            api_version: default_api_version(),
            access_token,
            base_url: None,
            api: Api::Rest,
            rest_bucket: RestBucket::default(),
            graphql_pacing: true,
            graphql_bucket: GraphqlBucket::default(),
            max_pages: DEFAULT_MAX_PAGES,
            http: HttpOptions::default(),
        }
    }

    /// Checks the settings and gives the API base URL (ending in `/`).
    pub fn api_base(&self) -> Result<String> {
        check_version(&self.api_version)?;
        if self.max_pages == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`max_pages` must be at least 1",
            ));
        }
        if !(self.rest_bucket.leak_per_second > 0.0 && self.rest_bucket.leak_per_second.is_finite())
        {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`rest_bucket.leak_per_second` must be a positive number",
            ));
        }
        let cost = self.graphql_bucket.default_cost;
        if !(cost.is_finite() && cost >= 0.0) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "`graphql_bucket.default_cost` must be a number of points, 0 or more",
            ));
        }
        let base = match (&self.base_url, &self.shop) {
            (Some(url), _) => {
                let mut parsed = parse_url("base_url", url)?;
                if !parsed.path().contains("/admin/api/") {
                    let path = format!(
                        "{}/admin/api/{}/",
                        parsed.path().trim_end_matches('/'),
                        self.api_version
                    );
                    parsed.set_path(&path);
                }
                parsed.to_string()
            }
            (None, Some(shop)) => {
                let host = shop_host(shop)?;
                format!("https://{host}/admin/api/{}/", self.api_version)
            }
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "set `shop` (`my-store` or `my-store.myshopify.com`) or `base_url`",
                ));
            }
        };
        Ok(if base.ends_with('/') {
            base
        } else {
            format!("{base}/")
        })
    }
}

/// `YYYY-MM` or `unstable`.
fn check_version(version: &str) -> Result<()> {
    let b = version.as_bytes();
    let ok = version == "unstable"
        || (b.len() == 7
            && b[4] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[5..].iter().all(u8::is_ascii_digit)
            && matches!(&version[5..], "01" | "04" | "07" | "10"));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "`api_version` must be a Shopify release `YYYY-MM` (quarterly: 01, 04, 07, 10) or `unstable`, not `{version}`"
            ),
        ))
    }
}

/// The shop's host: `name.myshopify.com` from `name` or the full domain.
fn shop_host(shop: &str) -> Result<String> {
    let shop = shop.trim().to_ascii_lowercase();
    let name = shop.strip_suffix(".myshopify.com").unwrap_or(&shop);
    let valid = !name.is_empty()
        && name.len() <= 60
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !valid {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "`shop` must be the shop's name (`my-store`) or `my-store.myshopify.com`, not `{shop}`"
            ),
        ));
    }
    Ok(format!("{name}.myshopify.com"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(shop: Option<&str>, base: Option<&str>) -> ShopifySettings {
        let mut s = ShopifySettings::new("x", SecretString::from("t"));
        s.shop = shop.map(str::to_string);
        s.base_url = base.map(str::to_string);
        s
    }

    #[test]
    fn the_base_url_is_the_shops_versioned_admin_api() {
        let s = settings(Some("My-Store"), None);
        assert_eq!(
            s.api_base().unwrap_or_default(),
            format!("https://my-store.myshopify.com/admin/api/{DEFAULT_API_VERSION}/")
        );
        let s = settings(Some("my-store.myshopify.com"), None);
        assert!(
            s.api_base()
                .unwrap_or_default()
                .starts_with("https://my-store.myshopify.com/")
        );
        let s = settings(None, Some("http://127.0.0.1:9"));
        assert_eq!(
            s.api_base().unwrap_or_default(),
            format!("http://127.0.0.1:9/admin/api/{DEFAULT_API_VERSION}/")
        );
        let s = settings(None, Some("http://127.0.0.1:9/admin/api/2025-01"));
        assert_eq!(
            s.api_base().unwrap_or_default(),
            "http://127.0.0.1:9/admin/api/2025-01/"
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let err = settings(Some("bad shop!"), None).api_base().unwrap_err();
        assert!(err.message().contains("`shop`"), "{err}");
        let err = settings(None, None).api_base().unwrap_err();
        assert!(err.message().contains("base_url"), "{err}");
        let mut s = settings(Some("x"), None);
        s.api_version = "2024-13".into();
        assert!(s.api_base().unwrap_err().message().contains("api_version"));
    }
}
