//! Plugins that ship with the SDK, so it does something useful on day one.
//!
//! - [`transformer::DataTransformer`] (`data-transformer`): select, rename, cast, fill
//!   defaults, validate against a JSON Schema, normalize — on records.
//! - [`file::FilePlugin`] (`file`): read and write local CSV, JSON, NDJSON (and Parquet with
//!   the `parquet` feature) as records, within granted paths.
//! - [`log_notifier::LogNotifier`] (`log-notifier`): `send_message` to the log and the audit
//!   sink, with the same action and input as the chat notifiers.

pub mod log_notifier;

use crate::registry::PluginFactory;

/// Factories of every built-in plugin.
pub fn factories() -> Vec<PluginFactory> {
    vec![
        PluginFactory::new(|| Box::new(log_notifier::LogNotifier::new())),
    ]
}
