#![doc = include_str!("docs.md")]

mod actions;
mod auth;
mod client;
mod config;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::ActionRouter;
use kernelize_core::{PluginFactory, Result};
use url::Url;

pub use actions::{
    DagConfig, DagPaused, DagRunStatus, DagRunStatusConfig, ListDags, ListDagsConfig,
    ListTaskInstances, ListTaskInstancesConfig, Pause, TriggerDag, TriggerDagConfig, TriggeredRun,
    Unpause, dags_as_records, task_instances_as_records,
};
pub use auth::AirflowTokenAuth;
pub use client::{
    AirflowClient, DagFilter, DagRun, MAX_RUN_ID_LEN, TriggerDagRun, Triggered, run_id_for_key,
};
pub use config::{AirflowSettings, ApiVersion, MAX_PAGE_SIZE, MAX_PAGES};

use crate::saas::{Connector, PollSettings, origin};

/// The plugin's id.
pub const ID: &str = "airflow-connector";

/// The `airflow-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<AirflowConnector>()
}

static ROUTER: LazyLock<ActionRouter<AirflowConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<TriggerDag>()
        .action::<DagRunStatus>()
        .action::<ListDags>()
        .action::<Pause>()
        .action::<Unpause>()
        .action::<ListTaskInstances>()
});

/// The Airflow connector: an [`AirflowClient`] and the polling settings of `wait`.
#[derive(Debug)]
pub struct AirflowConnector {
    client: AirflowClient,
    poll: PollSettings,
    hosts: Vec<Url>,
}

impl AirflowConnector {
    /// The client, for calls the actions do not cover.
    pub fn client(&self) -> &AirflowClient {
        &self.client
    }
}

#[async_trait]
impl Connector for AirflowConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Airflow";
    const DESCRIPTION: &'static str = "Apache Airflow 2 (/api/v1, basic auth) and 3 (/api/v2, token): trigger and watch DAG runs, list DAGs and task instances, pause and unpause.";
    type Settings = AirflowSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: AirflowSettings) -> Result<Self> {
        let client = AirflowClient::new(&settings)?;
        let mut hosts = vec![origin(&crate::saas::parse_url(
            "base_url",
            &settings.base_url,
        )?)];
        if settings.api_version == ApiVersion::V2 && settings.access_token.is_none() {
            hosts.push(origin(&AirflowClient::token_url_of(&settings)?));
        }
        hosts.dedup();
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
