#![doc = include_str!("docs.md")]

mod actions;
mod client;
mod config;
pub mod subscriptions;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::ActionRouter;
use kernelize_core::{Permission, PluginFactory, Result};
use url::Url;

pub use actions::{
    DELIVERY_CONCURRENCY, FailedDelivery, ListSubscriptions, ListSubscriptionsConfig, MAX_ROWS,
    Notify, NotifyConfig, NotifyOutput, RowsMode, Subscribe, SubscribeConfig, Trigger,
    TriggerConfig, TriggerOutput, Unsubscribe, UnsubscribeConfig, Unsubscribed,
};
pub use client::{Delivery, HookAnswer, HookBody, HookMethod, RECURSE_PARSE, ZapierClient};
pub use config::{HOOKS_HOST, HookUrl, ZapierHook, ZapierSettings};
pub use subscriptions::{MAX_SUBSCRIPTIONS, Subscription, SubscriptionStore};

use crate::saas::Connector;

/// The plugin's id.
pub const ID: &str = "zapier-connector";

/// The `zapier-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    crate::saas::factory::<ZapierConnector>()
}

static ROUTER: LazyLock<ActionRouter<ZapierConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Trigger>()
        .action::<Subscribe>()
        .action::<Unsubscribe>()
        .action::<ListSubscriptions>()
        .action::<Notify>()
});

/// The Zapier connector: a [`ZapierClient`], the default catch hook and the REST Hook
/// subscriptions.
#[derive(Debug)]
pub struct ZapierConnector {
    client: ZapierClient,
    hook_url: Option<HookUrl>,
    store: Option<SubscriptionStore>,
    hosts: Vec<Url>,
}

impl ZapierConnector {
    /// The client, for Rust code.
    pub fn client(&self) -> &ZapierClient {
        &self.client
    }

    /// The subscriptions, when `subscriptions_file` is set.
    pub fn subscriptions(&self) -> Option<&SubscriptionStore> {
        self.store.as_ref()
    }
}

#[async_trait]
impl Connector for ZapierConnector {
    const ID: &'static str = ID;
    const NAME: &'static str = "Zapier";
    const DESCRIPTION: &'static str = "Zapier: start Zaps through catch hooks, and serve REST Hook subscriptions (subscribe, unsubscribe, notify) for a Zapier app.";
    type Settings = ZapierSettings;

    fn router() -> &'static ActionRouter<Self> {
        &ROUTER
    }

    /// Besides the network, the file access the REST Hook actions need (a host grants it
    /// for the subscriptions file; each call checks it).
    fn permissions() -> Vec<Permission> {
        vec![
            Permission::Network { host: "*".into() },
            Permission::FileWrite { path: "/".into() },
        ]
    }

    async fn connect(settings: ZapierSettings) -> Result<Self> {
        let client = ZapierClient::new(&settings.http)?;
        let mut hosts = Vec::new();
        if let Some(hook) = &settings.hook_url {
            hosts.push(crate::saas::origin(&hook.url()?));
        }
        Ok(Self {
            client,
            hook_url: settings.hook_url,
            store: settings.subscriptions_file.map(SubscriptionStore::new),
            hosts,
        })
    }

    fn hosts(&self) -> Vec<Url> {
        self.hosts.clone()
    }
}
