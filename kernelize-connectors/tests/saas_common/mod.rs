//! What the SaaS connectors' tests share: a plugin manager with one connector configured
//! the way a host configures it (its settings, its secrets, the network grant for the
//! in-process fakes on 127.0.0.1), calls by action name with JSON config, as a workflow
//! makes them, and reading their answers.
//!
//! Each test file includes it with `mod saas_common;` and uses a part of it.

#![allow(dead_code)]

use std::sync::Arc;

use kernelize_core::config::MapSecretStore;
use kernelize_core::{
    Call, Payload, Permission, PluginConfig, PluginFactory, PluginManager, Records, Result,
};
use kernelize_fakes::{Fake, Seen};
use serde_json::Value;

/// The grant that lets a connector reach the in-process fakes.
pub(crate) fn fake_network() -> Permission {
    Permission::Network {
        host: "127.0.0.1".into(),
    }
}

/// A manager with `factory`'s plugin installed and configured (not activated: for tests of
/// activation errors) with `settings`, the fakes' network grant and `grants`. `secrets`
/// (name, value) answer `${secret:NAME}`; without any, the manager's default store does.
pub(crate) fn configured(
    factory: PluginFactory,
    settings: Value,
    secrets: &[(&str, &str)],
    grants: Vec<Permission>,
) -> PluginManager {
    let manager = if secrets.is_empty() {
        PluginManager::new()
    } else {
        let store = secrets
            .iter()
            .fold(MapSecretStore::new(), |store, (name, value)| {
                store.with(*name, *value)
            });
        PluginManager::builder().secrets(Arc::new(store)).build()
    };
    let id = factory.metadata().id.clone();
    manager.install(factory).unwrap();
    let config = grants.into_iter().fold(
        PluginConfig::with_settings(settings).grant(fake_network()),
        PluginConfig::grant,
    );
    manager.configure(&id, config);
    manager
}

/// As [`configured`], and activated.
pub(crate) async fn activated(
    factory: PluginFactory,
    settings: Value,
    secrets: &[(&str, &str)],
    grants: Vec<Permission>,
) -> PluginManager {
    let id = factory.metadata().id.clone();
    let manager = configured(factory, settings, secrets, grants);
    manager.activate(&id).await.unwrap();
    manager
}

/// Calls plugin `id`'s `action` with `config` and `input`, as a workflow step does.
pub(crate) async fn call(
    manager: &PluginManager,
    id: &str,
    action: &str,
    config: Value,
    input: Payload,
) -> Result<Payload> {
    manager
        .call(id, Call::new(action, input).with_config(config))
        .await
}

/// The records of an answer (a test failure, naming what came, when it is not records).
pub(crate) fn records(payload: Payload) -> Records {
    match payload {
        Payload::Records(r) => r,
        other => panic!("expected records, got {}", other.kind_name()),
    }
}

/// The rows of an answer that must be records, as JSON objects.
pub(crate) fn json_rows(payload: Payload) -> Vec<Value> {
    payload.into_records().unwrap().to_json_rows().unwrap()
}

/// The requests `fake` saw with `method` whose path contains `part`.
pub(crate) fn sent(fake: &Fake, method: &str, part: &str) -> Vec<Seen> {
    fake.requests()
        .into_iter()
        .filter(|s| s.method == method && s.path.contains(part))
        .collect()
}

/// `base` (an object) with `extra`'s fields set over it; a null in `extra` removes the field.
pub(crate) fn overlaid(mut base: Value, extra: Value) -> Value {
    if let (Some(fields), Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (key, value) in extra {
            if value.is_null() {
                fields.remove(&key);
            } else {
                fields.insert(key, value);
            }
        }
    }
    base
}
