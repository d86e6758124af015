#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::plugin::ActionRouter;
use kernelize_core::{Error, ErrorKind, PluginFactory, Result};
use url::Url;

pub use actions::{
    DryRunAction, DryRunConfig, Insert, InsertConfig, ParamSpec, Query, QueryConfig, Schema,
    SchemaConfig, SchemaOperation, SchemaOutcome, TypedParam,
};
pub use client::{
    BigQueryClient, DatasetRef, DryRun, ErrorProto, InsertOptions, InsertReport, InsertRow,
    JobReference, MAX_BATCH_ROWS, MAX_INSERT_BYTES, ParamType, QUOTA_RETRY_AFTER, QueryParameter,
    QueryRequest, QueryResult, RowError, TableFieldSchema, TableInfo, TableRef, api_error,
    classify,
};
pub use config::{
    BigQuerySettings, DEFAULT_BASE_URL, DEFAULT_MAX_PAGES, DEFAULT_MAX_ROWS, DEFAULT_PRICE_PER_TIB,
    DEFAULT_SCOPE, DEFAULT_TOKEN_URL,
};

use crate::http::{
    BearerAuth, JwtBearer, JwtClaims, JwtSigner, Layer, OAuth2JwtBearer, ScopePlacement,
};
use crate::saas::{Connector, build_client, parse_url, token_client};
use config::Credential;

/// The plugin's id.
pub const ID: &str = "bigquery-connector";

static ROUTER: LazyLock<ActionRouter<BigQueryConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Query>()
        .action::<Insert>()
        .action::<Schema>()
        .action::<DryRunAction>()
});

/// The `bigquery-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<BigQueryConnector>()
}

/// The BigQuery connector: a [`BigQueryClient`] and the hosts it reaches.
#[derive(Debug)]
pub struct BigQueryConnector {
    client: BigQueryClient,
    hosts: Vec<Url>,
}

impl BigQueryConnector {
    /// The API client, for use from Rust.
    pub fn client(&self) -> &BigQueryClient {
        &self.client
    }
}

#[async_trait]
impl Connector for BigQueryConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "BigQuery";
    const DESCRIPTION: &'static str = "Runs GoogleSQL queries on BigQuery (polling, paging, typed records), streams rows in with insertAll, evolves table schemas and estimates query cost with dry runs; service-account JWT bearer auth.";
    type Settings = BigQuerySettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: BigQuerySettings) -> Result<Self> {
        let credential = settings.credential()?;
        let base = parse_url("base_url", &settings.base_url)?;
        let mut hosts = vec![base.clone()];
        let (auth, key_project): (Arc<dyn Layer>, Option<String>) = match credential {
            Credential::Token(token) => (Arc::new(BearerAuth::new(token)), None),
            Credential::Key(key) => {
                let token_url = settings
                    .token_url
                    .clone()
                    .or(key.token_uri.clone())
                    .unwrap_or_else(|| config::DEFAULT_TOKEN_URL.into());
                let token_url = parse_url("token_url", &token_url)?;
                if settings.scopes.is_empty() {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        "`scopes` is empty; BigQuery needs https://www.googleapis.com/auth/bigquery (or cloud-platform)",
                    ));
                }
                let mut signer = JwtSigner::rs256_pem(&key.private_key)?;
                if let Some(kid) = &key.private_key_id {
                    signer = signer.with_key_id(kid);
                }
                let token_http = token_client(&settings.http)?;
                hosts.push(token_url.clone());
                let layer = OAuth2JwtBearer::new(
                    JwtBearer {
                        token_url,
                        signer,
                        // `aud` defaults to the token endpoint, as Google requires.
                        claims: JwtClaims::new(&key.client_email),
                        scopes: settings.scopes.clone(),
                        scope_placement: ScopePlacement::Claim,
                        refresh_margin: Duration::from_secs(60),
                    },
                    token_http,
                );
                (Arc::new(layer), key.project_id.clone())
            }
        };
        let project = settings.project_id.clone().or(key_project).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "no project: set `project_id` (the key has none, or an access token is used)",
            )
        })?;
        let http = build_client(
            base.as_str(),
            &settings.http,
            Some(Arc::new(classify)),
            vec![auth],
        )?;
        let client = BigQueryClient::new(http, &project)
            .with_location(settings.location.clone())
            .with_poll(settings.poll.clone())
            .with_limits(settings.max_rows, settings.max_pages)
            .with_price_per_tib(settings.price_per_tib);
        Ok(Self { client, hosts })
    }

    fn hosts(&self) -> Vec<Url> {
        self.hosts.clone()
    }
}
