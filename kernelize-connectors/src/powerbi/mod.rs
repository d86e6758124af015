#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::ActionRouter;
use kernelize_core::{PluginFactory, Result};
use url::Url;

pub use actions::{
    CloneReportAction, CloneReportConfig, ListDatasets, ListGatewayDatasources,
    ListGatewayDatasourcesConfig, ListGateways, ListGatewaysConfig, ListRefreshes,
    ListRefreshesConfig, ListReports, PushRows, PushRowsConfig, RebindReport, RebindReportConfig,
    Rebound, RefreshDataset, RefreshDatasetConfig, WorkspaceConfig,
};
pub use client::{
    CloneReport, NotifyOption, PowerBiClient, PushReport, RefreshEntry, RefreshOptions, api_error,
};
pub use config::{
    DEFAULT_AUTHORITY, DEFAULT_BASE_URL, DEFAULT_HISTORY_TOP, DEFAULT_SCOPE, MAX_HISTORY_TOP,
    MAX_PUSH_ROWS, MY_WORKSPACE, PowerBiSettings,
};

use crate::saas::{Connector, PollSettings};

/// The plugin's id.
pub const ID: &str = "powerbi-connector";

static ROUTER: LazyLock<ActionRouter<PowerBiConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<ListDatasets>()
        .action::<ListReports>()
        .action::<ListGateways>()
        .action::<ListGatewayDatasources>()
        .action::<RefreshDataset>()
        .action::<ListRefreshes>()
        .action::<PushRows>()
        .action::<CloneReportAction>()
        .action::<RebindReport>()
});

/// The `powerbi-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<PowerBiConnector>()
}

/// The Power BI connector: a [`PowerBiClient`] and how refreshes are polled.
#[derive(Debug)]
pub struct PowerBiConnector {
    client: PowerBiClient,
    poll: PollSettings,
    hosts: Vec<Url>,
}

impl PowerBiConnector {
    /// The typed client, for Rust code.
    pub fn client(&self) -> &PowerBiClient {
        &self.client
    }

    /// How refreshes are polled.
    pub fn poll(&self) -> &PollSettings {
        &self.poll
    }
}

#[async_trait]
impl Connector for PowerBiConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Power BI";
    const DESCRIPTION: &'static str = "Power BI REST API with an Entra app's client credentials: datasets, dataset refreshes (202, followed in the refresh history), push rows in chunks, report clone and rebind, data gateways.";
    type Settings = PowerBiSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: PowerBiSettings) -> Result<Self> {
        let client = PowerBiClient::new(&settings)?;
        let hosts = vec![settings.api_url()?, settings.token_url()?];
        Ok(Self {
            client,
            poll: settings.poll,
            hosts,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        self.hosts.clone()
    }
}
