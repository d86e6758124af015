#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub use kernelize_core::*;

/// The plugin model crate, by its own name.
pub use kernelize_core as core;

/// Compression codecs (with any codec feature: `zstd`, `lz4`, `snappy`, `brotli`, `gzip`,
/// `png`, `jpeg`, `webp`, `avif`, or `images` for the four image codecs).
#[cfg(any(
    feature = "zstd",
    feature = "lz4",
    feature = "snappy",
    feature = "brotli",
    feature = "gzip",
    feature = "png",
    feature = "jpeg",
    feature = "webp",
    feature = "avif"
))]
pub use kernelize_compress as compress;

/// Connectors: the HTTP foundation, GraphQL and WebSocket (feature `http`), SQL databases
/// (`sqlite`, `postgres`, `mysql`), brokers (`redis`, `nats`, `rabbitmq`, `mqtt`) and the
/// SaaS connectors (`snowflake`, ..., `slack`, or `saas` for all); any of these features
/// turns it on.
#[cfg(feature = "_connectors")]
pub use kernelize_connectors as connectors;

/// The workflow engine (feature `workflow`).
#[cfg(feature = "workflow")]
pub use kernelize_workflow as workflow;

/// Factories of every built-in plugin this build includes.
///
/// The `kernelize-core` built-ins (`data-transformer`, `file`, `log-notifier`), then one
/// plugin per enabled codec (`none` and the codecs the features name, `image-*` for the image
/// codecs), then `http` with the `http` feature, `sqlite-connector` with the `sqlite`
/// feature, `postgres-connector` with the `postgres` feature, `redis-connector` with the
/// `redis` feature, `mysql-connector`, `nats-connector`, `rabbitmq-connector` and
/// `mqtt-connector` with the features of those names.
pub fn builtin_factories() -> Vec<PluginFactory> {
    #[allow(unused_mut)]
    let mut all = kernelize_core::builtins::factories();
    #[cfg(any(
        feature = "zstd",
        feature = "lz4",
        feature = "snappy",
        feature = "brotli",
        feature = "gzip",
        feature = "png",
        feature = "jpeg",
        feature = "webp",
        feature = "avif"
    ))]
    all.extend(kernelize_compress::factories());
    // The connectors crate registers what its features turn on (the `http` plugin always).
    #[cfg(feature = "_connectors")]
    all.extend(kernelize_connectors::factories());
    all
}

/// A [`PluginManager`] with default options and every built-in plugin installed (not yet
/// activated).
pub fn manager() -> Result<PluginManager> {
    with_builtins(PluginManager::new())
}

/// Installs every built-in plugin into `manager` and returns it.
pub fn with_builtins(manager: PluginManager) -> Result<PluginManager> {
    manager.install_all(builtin_factories())?;
    Ok(manager)
}

/// The names most programs need, for `use kernelize::prelude::*`.
pub mod prelude {
    pub use kernelize_core::{
        Action, ActionContext, Call, Category, Error, ErrorKind, Handler, InitContext, Payload,
        Plugin, PluginConfig, PluginFactory, PluginManager, PluginMetadata, Records, Result,
        async_trait,
    };
}
