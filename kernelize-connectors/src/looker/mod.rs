#![doc = include_str!("docs.md")]

mod actions;
mod auth;
mod client;
mod config;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use kernelize_core::plugin::ActionRouter;
use kernelize_core::{PluginFactory, Result};
use url::Url;

pub use actions::{
    CreateEmbedUrl, EmbedUrl, GetModel, GetModelConfig, ListModels, ListModelsConfig, Login,
    LoginConfig, RunInlineQuery, RunInlineQueryConfig, RunLook, RunLookConfig,
};
pub use auth::LookerAuth;
pub use client::{
    DEFAULT_MAX_MODELS, EmbedParams, InlineQuery, LoginInfo, LookerClient, ResultFormat,
    RunOptions, api_error, json_records, result_payload,
};
pub use config::{API_PATH, LookerSettings};

use crate::http::Layer;
use crate::saas::{Connector, build_client};

/// The plugin's id.
pub const ID: &str = "looker-connector";

static ROUTER: LazyLock<ActionRouter<LookerConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Login>()
        .action::<RunInlineQuery>()
        .action::<RunLook>()
        .action::<ListModels>()
        .action::<GetModel>()
        .action::<CreateEmbedUrl>()
});

/// The `looker-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<LookerConnector>()
}

/// The Looker connector: a [`LookerClient`] and the host it reaches.
#[derive(Debug)]
pub struct LookerConnector {
    client: LookerClient,
    host: Url,
}

impl LookerConnector {
    /// The API client, for use from Rust.
    pub fn client(&self) -> &LookerClient {
        &self.client
    }
}

#[async_trait]
impl Connector for LookerConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Looker";
    const DESCRIPTION: &'static str = "Runs Looker queries and Looks (records, JSON or rendered bytes), lists LookML models and creates signed embed URLs over the Looker API 4.0, logging in with an API key.";
    type Settings = LookerSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: LookerSettings) -> Result<Self> {
        settings.check()?;
        let root = settings.api_root()?;
        let auth = Arc::new(LookerAuth::new(
            &root,
            &settings.client_id,
            settings.client_secret.clone(),
            settings.refresh_margin,
        )?);
        let layer: Arc<dyn Layer> = auth.clone();
        // Looker's 429 carries no Retry-After: the default classification backs off.
        let http = build_client(root.as_str(), &settings.http, None, vec![layer])?;
        let client = LookerClient::new(http, auth).with_poll(settings.poll.clone());
        Ok(Self { client, host: root })
    }

    fn hosts(&self) -> Vec<Url> {
        vec![self.host.clone()]
    }

    async fn shutdown(&self) -> Result<()> {
        // Ending the session is courtesy: a failure here must not fail the shutdown.
        if let Err(e) = self.client.logout().await {
            tracing::warn!(error = %e, "could not log out of Looker");
        }
        Ok(())
    }
}
