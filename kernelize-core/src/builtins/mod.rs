//! Plugins that ship with the SDK, so it does something useful on day one.
//!
//! - [`transformer::DataTransformer`] (`data-transformer`): select, rename, cast, fill
//!   defaults, validate against a JSON Schema, normalize — on records.
//! - [`file::FilePlugin`] (`file`): read and write local CSV, JSON, NDJSON (and Parquet with
//!   the `parquet` feature) as records, within granted paths.
//! - [`log_notifier::LogNotifier`] (`log-notifier`): `send_message` to the log and the audit
//!   sink, with the same action and input as the chat notifiers.

pub mod file;
pub mod log_notifier;
pub mod transformer;

use crate::error::{Error, ErrorKind, Result};
use crate::registry::PluginFactory;

/// Runs blocking work (file IO, parsing, per-row transforms) on tokio's blocking pool, so it
/// never stalls the runtime's worker threads.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::new(
            ErrorKind::Unexpected,
            format!("a blocking worker task failed: {e}"),
        )
    })?
}

/// Factories of every built-in plugin.
pub fn factories() -> Vec<PluginFactory> {
    vec![
        PluginFactory::new(|| Box::new(transformer::DataTransformer::new())),
        PluginFactory::new(|| Box::new(file::FilePlugin::new())),
        PluginFactory::new(|| Box::new(log_notifier::LogNotifier::new())),
    ]
}
