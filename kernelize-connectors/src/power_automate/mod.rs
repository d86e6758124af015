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
    ApprovalOutcome, FlowAnswer, RequestApproval, RequestApprovalConfig, TriggerFlow,
    TriggerFlowConfig,
};
pub use client::{ApprovalState, FlowResponse, PowerAutomateClient};
pub use config::{
    EntraSettings, FLOW_SCOPE, FlowTrigger, FlowUrl, PowerAutomateSettings, entra_token_url,
};

use crate::saas::{Connector, PollSettings};

/// The plugin's id.
pub const ID: &str = "power-automate-connector";

/// The `power-automate-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<PowerAutomateConnector>()
}

static ROUTER: LazyLock<ActionRouter<PowerAutomateConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<TriggerFlow>()
        .action::<RequestApproval>()
});

/// The Power Automate connector: a [`PowerAutomateClient`], the default flow and the
/// polling settings of approvals.
#[derive(Debug)]
pub struct PowerAutomateConnector {
    client: PowerAutomateClient,
    flow_url: Option<FlowUrl>,
    poll: PollSettings,
    hosts: Vec<Url>,
}

impl PowerAutomateConnector {
    /// The client, for Rust code.
    pub fn client(&self) -> &PowerAutomateClient {
        &self.client
    }
}

#[async_trait]
impl Connector for PowerAutomateConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Power Automate";
    const DESCRIPTION: &'static str = "Power Automate: trigger flows through their HTTP trigger (SAS signature or Entra bearer) and run approvals to their decision.";
    type Settings = PowerAutomateSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    async fn connect(settings: PowerAutomateSettings) -> Result<Self> {
        let client = PowerAutomateClient::new(&settings)?;
        let mut hosts = Vec::new();
        if let Some(flow) = &settings.flow_url {
            hosts.push(crate::saas::origin(&flow.url()?));
        }
        if let Some(entra) = &settings.entra {
            hosts.push(crate::saas::origin(&entra.token_url()?));
        }
        hosts.dedup();
        Ok(Self {
            client,
            flow_url: settings.flow_url,
            poll: settings.poll,
            hosts,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        self.hosts.clone()
    }
}
