//! What the SaaS connectors share: connection settings, the client stack, the plugin
//! wrapper, polling of long-running remote work, and tabular answers as records.
//!
//! Each vendor module (Snowflake, Databricks, BigQuery, ...) is a [`Connector`]: typed
//! settings, a connect step that builds its [`HttpClient`] with [`build_client`], and an
//! [`ActionRouter`] of typed actions. [`Hosted`] turns a connector into a registry
//! [`Plugin`], which parses the settings at activation, checks the network grant for the
//! vendor's host before every call, and redacts secrets from errors.
//!
//! ## The client stack
//!
//! Outermost first: an optional concurrency limit, the whole-call timeout, retry (with the
//! vendor's [`Classifier`]: a 200 with `"ok": false`, a 403 whose reason is
//! `rateLimitExceeded`), an optional client-side rate limit, the vendor's authentication
//! layers (inside the retry, so that a refreshed token applies to the next attempt), and
//! the per-attempt timeout. No connector has a retry loop of its own: `Retry-After`, backoff
//! and the vendors' rate-limit answers all go through the [`RetryLayer`].
//!
//! ## Polling
//!
//! Remote work that finishes later (a Snowflake statement answered 202, a Databricks job
//! run, a Power BI refresh) is polled with [`poll_until`]: waits growing from
//! [`PollSettings::initial`] to [`PollSettings::max`], bounded by the call's deadline and
//! cancellation and by [`PollSettings::max_wait`]. Each poll is an ordinary request through
//! the client stack, so a poll answered 429 is retried like any other.

mod action;
mod call;
mod content;
mod ids;
mod poll;
mod rows;
mod table;
mod urls;

use std::sync::Arc;

use async_trait::async_trait;
use kernelize_core::plugin::{
    ActionRouter, Call, Category, HealthReport, InitContext, Plugin, PluginMetadata,
};
use kernelize_core::{
    Error, ErrorKind, Payload, Permission, PermissionGuard, PluginFactory, Result,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http::plugin::{RateLimitSettings, TimeoutSettings};
use crate::http::{
    Classifier, ConcurrencyLimit, HttpClient, Layer, RateLimit, Request, Response, RetryLayer,
    RetryPolicy, TimeoutLayer,
};

#[allow(unused_imports)] // unused in a build with no connector that uses it
pub(crate) use action::saas_action;
pub use call::{answer_error, within};
pub use content::{Batch, OtherFields, max_pages, objects_of, query_pairs, records_of_objects};
pub use ids::{id_segment, uuid_from_bytes, uuid_v4};
pub use poll::{Poll, PollSettings, poll_until};
pub use rows::input_objects;
pub use table::{Column, ColumnType, ItemColumn, records_from_items, records_from_rows};
pub use urls::{CredentialUrl, UrlKind, origin, without_path, without_query};

/// Connection settings every SaaS connector has, under its `http` setting.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Retry policy (429, 503 and the vendor's own rate-limit answers wait and retry).
    pub retry: RetryPolicy,
    /// Timeouts of one call (retries included) and of one attempt.
    pub timeout: TimeoutSettings,
    /// A client-side rate limit, to stay under the vendor's; none when absent.
    pub rate_limit: Option<RateLimitSettings>,
    /// Most requests in flight at once; no limit when absent.
    pub concurrency: Option<usize>,
}

/// Builds the client of a SaaS connector: `base_url`, the layers of `options`, the
/// vendor's `classifier` (the default classification when `None`) and its authentication
/// `auth` layers, in the order the module docs give.
pub fn build_client(
    base_url: &str,
    options: &HttpOptions,
    classifier: Option<Classifier>,
    auth: Vec<Arc<dyn Layer>>,
) -> Result<HttpClient> {
    stack(HttpClient::builder(base_url)?, options, classifier, auth)
}

/// As [`build_client`], on a `reqwest` client of the connector's own (one that does not
/// follow redirects, for an API whose credential is the URL).
pub fn build_client_on(
    client: reqwest::Client,
    base_url: &str,
    options: &HttpOptions,
    classifier: Option<Classifier>,
    auth: Vec<Arc<dyn Layer>>,
) -> Result<HttpClient> {
    let builder = HttpClient::builder(base_url)?.reqwest_client(client);
    stack(builder, options, classifier, auth)
}

fn stack(
    mut builder: crate::http::HttpClientBuilder,
    options: &HttpOptions,
    classifier: Option<Classifier>,
    auth: Vec<Arc<dyn Layer>>,
) -> Result<HttpClient> {
    if let Some(max) = options.concurrency {
        if max == 0 {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "http.concurrency must be at least 1",
            ));
        }
        builder = builder.layer(ConcurrencyLimit::new(max));
    }
    builder = builder.layer(TimeoutLayer::per_call(options.timeout.call));
    let mut retry = RetryLayer::new(options.retry.clone());
    if let Some(classifier) = classifier {
        retry = retry.classify(move |response| classifier(response));
    }
    builder = builder.layer(retry);
    if let Some(limit) = &options.rate_limit {
        builder = builder.layer(RateLimit::new(
            limit.per_second,
            limit.burst.unwrap_or(limit.per_second),
        )?);
    }
    for layer in auth {
        builder = builder.shared_layer(layer);
    }
    builder
        .layer(TimeoutLayer::per_attempt(options.timeout.attempt))
        .build()
}

/// The plain HTTP client an authentication layer fetches tokens with (outside the client
/// stack: a token request is not retried by it): 10 s to connect, and `options`'
/// per-attempt timeout for the whole request.
pub fn token_client(options: &HttpOptions) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(options.timeout.attempt)
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("cannot build the token client: {e}"),
            )
        })
}

/// Sends `request` through `http`; a non-2xx answer becomes the vendor's error,
/// `api_error(&response, what)` (`what`: the request's description, or what it does).
pub async fn send_checked(
    http: &HttpClient,
    request: Request,
    what: &str,
    api_error: fn(&Response, &str) -> Error,
) -> Result<Response> {
    let response = http.send(request).await?;
    if response.is_success() {
        Ok(response)
    } else {
        Err(api_error(&response, what))
    }
}

/// The permissions of an action that calls the vendor's API: network access (the host is
/// the connector's, checked before every call).
pub fn network() -> Vec<Permission> {
    vec![Permission::Network { host: "*".into() }]
}

/// [`network`], and reading files anywhere the host grants (`file_read` of a directory):
/// the permissions of a connector, or an action, that reads local files (migration
/// scripts, files to publish), checking each path against the call's grants.
pub fn network_and_file_read() -> Vec<Permission> {
    let mut permissions = network();
    permissions.push(Permission::FileRead { path: "/".into() });
    permissions
}

/// Parses a configured URL (a base URL, a token URL), naming the setting when it is bad.
pub fn parse_url(setting: &str, url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("`{setting}` is not a valid URL (`{url}`): {e}"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("`{setting}` must be an http(s) URL with a host, not `{url}`"),
        ));
    }
    Ok(parsed)
}

/// Checks that `guard` grants network access to `url`'s host; a denial names the host and
/// the vendor.
pub fn check_host(url: &Url, guard: &PermissionGuard, vendor: &str) -> Result<()> {
    let host = url.host_str().unwrap_or_default();
    crate::network::check_network(
        &Permission::Network { host: host.into() },
        host,
        url.as_str(),
        guard,
        vendor,
        "url",
    )
}

/// A SaaS connector: its settings, how it connects and the actions it offers. [`Hosted`]
/// makes it a registry plugin.
#[async_trait]
pub trait Connector: Send + Sync + Sized + 'static {
    /// The plugin id (`snowflake-connector`).
    const ID: &'static str;
    /// The display name (`Snowflake`).
    const NAME: &'static str;
    /// What the plugin does, in a sentence.
    const DESCRIPTION: &'static str;
    /// The plugin's settings.
    type Settings: DeserializeOwned + JsonSchema + Send;

    /// The connector's actions.
    fn router() -> &'static ActionRouter<Self>;

    /// The permissions the plugin may be granted: network access by default; a connector
    /// that reads files (migration scripts, files to publish) adds a file grant.
    fn permissions() -> Vec<Permission> {
        network()
    }

    /// Checks `settings` and builds the connector (no network traffic is required here;
    /// a connector that signs in first does it lazily or in [`Connector::connect`]).
    async fn connect(settings: Self::Settings) -> Result<Self>;

    /// The URLs whose hosts every call reaches (base URL, token URL), checked against the
    /// call's network grants before it runs.
    fn hosts(&self) -> Vec<Url>;

    /// The connector's health; healthy by default (a SaaS API is checked by calling it).
    async fn health(&self) -> HealthReport {
        HealthReport::healthy()
    }

    /// Releases remote state (a session to sign out of); nothing by default.
    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }
}

/// A [`Connector`] as a registry plugin (see the module docs).
#[derive(Debug)]
pub struct Hosted<C> {
    connector: Option<C>,
}

impl<C> Default for Hosted<C> {
    fn default() -> Self {
        Self { connector: None }
    }
}

impl<C: Connector> Hosted<C> {
    /// A plugin around an already connected connector, for use without a manager.
    pub fn new(connector: C) -> Self {
        Self {
            connector: Some(connector),
        }
    }

    /// The connector, once initialized.
    pub fn connector(&self) -> Option<&C> {
        self.connector.as_ref()
    }
}

/// The factory of connector `C`'s plugin, for a registry or a manager.
pub fn factory<C: Connector>() -> PluginFactory {
    PluginFactory::new(|| Box::new(Hosted::<C>::default()))
}

#[async_trait]
impl<C: Connector> Plugin for Hosted<C> {
    fn metadata(&self) -> PluginMetadata {
        let mut metadata = PluginMetadata::new(
            C::ID,
            C::NAME,
            semver::Version::new(0, 1, 0),
            Category::Connector,
        )
        .description(C::DESCRIPTION)
        .author("Kernelize")
        .config_type::<C::Settings>()
        .actions(C::router().descriptors());
        for permission in C::permissions() {
            metadata = metadata.needs(permission);
        }
        metadata
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: C::Settings = ctx.config.parse()?;
        let connector = C::connect(settings)
            .await
            .map_err(|e| ctx.config.redactor().redact_error(e))?;
        for url in connector.hosts() {
            check_host(&url, &ctx.permissions, C::NAME)?;
        }
        self.connector = Some(connector);
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        let connector = self.connector.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("the {} is not initialized", C::ID),
            )
        })?;
        for url in connector.hosts() {
            check_host(&url, &call.permissions, C::NAME)?;
        }
        C::router().dispatch(connector, call).await
    }

    async fn health(&self) -> HealthReport {
        match &self.connector {
            None => HealthReport::unhealthy("not initialized"),
            Some(c) => c.health().await,
        }
    }

    async fn shutdown(&self) -> Result<()> {
        match &self.connector {
            None => Ok(()),
            Some(c) => c.shutdown().await,
        }
    }
}
