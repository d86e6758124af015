#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::ActionRouter;
use kernelize_core::{Permission, PluginFactory, Result};
use url::Url;

pub use actions::{
    ExportViewImage, ExportViewImageConfig, GetJob, GetJobConfig, ListViews, ListViewsConfig,
    ListWorkbooks, ListWorkbooksConfig, PublishDatasource, PublishDatasourceConfig, RefreshExtract,
    RefreshExtractConfig, SignIn, SignInConfig, SignOut, SignOutConfig, SignedOut,
};
pub use client::{
    AUTH_HEADER, DATASOURCE_TYPES, DatasourceFile, ImageOptions, Job, ListQuery, PublishMode,
    PublishOptions, PublishOutcome, SessionInfo, TableauClient, TableauSession, api_error,
};
pub use config::{
    DEFAULT_API_VERSION, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD, DEFAULT_MAX_ITEMS,
    DEFAULT_PAGE_SIZE, MAX_CHUNK_SIZE, MAX_PAGE_SIZE, TableauSettings,
};

use crate::saas::{Connector, PollSettings};

/// The plugin's id.
pub const ID: &str = "tableau-connector";

static ROUTER: LazyLock<ActionRouter<TableauConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<SignIn>()
        .action::<SignOut>()
        .action::<PublishDatasource>()
        .action::<RefreshExtract>()
        .action::<GetJob>()
        .action::<ListWorkbooks>()
        .action::<ListViews>()
        .action::<ExportViewImage>()
});

/// The `tableau-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<TableauConnector>()
}

/// The Tableau connector: a [`TableauClient`] and how jobs are polled.
#[derive(Debug)]
pub struct TableauConnector {
    client: TableauClient,
    poll: PollSettings,
    hosts: Vec<Url>,
}

impl TableauConnector {
    /// The typed client, for Rust code.
    pub fn client(&self) -> &TableauClient {
        &self.client
    }

    /// How jobs are polled.
    pub fn poll(&self) -> &PollSettings {
        &self.poll
    }
}

#[async_trait]
impl Connector for TableauConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Tableau";
    const DESCRIPTION: &'static str = "Tableau Server and Tableau Cloud REST API: personal-access-token sessions, data source publishing (chunked uploads), extract refresh jobs, workbooks, views and view images.";
    type Settings = TableauSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    /// Network access, and reading the files `publish_datasource` publishes (`path`).
    fn permissions() -> Vec<Permission> {
        crate::saas::network_and_file_read()
    }

    async fn connect(settings: TableauSettings) -> Result<Self> {
        let client = TableauClient::new(&settings)?;
        let hosts = vec![settings.api_url()?];
        Ok(Self {
            client,
            poll: settings.poll,
            hosts,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        self.hosts.clone()
    }

    /// Signs out of the session, if one is open.
    async fn shutdown(&self) -> Result<()> {
        self.client.sign_out().await.map(|_| ())
    }
}
