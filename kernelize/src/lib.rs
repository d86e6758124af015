#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub use kernelize_core::*;

/// The plugin model crate, by its own name.
pub use kernelize_core as core;

/// Factories of every built-in plugin this build includes.
///
/// Today these are the `kernelize-core` built-ins (`data-transformer`, `file`,
/// `log-notifier`); codecs and connectors join them as their features are enabled.
pub fn builtin_factories() -> Vec<PluginFactory> {
    kernelize_core::builtins::factories()
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
