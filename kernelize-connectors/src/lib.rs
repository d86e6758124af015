#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod graphql;
pub mod http;
pub mod ws;

/// Factories of this crate's registry plugins: `http`.
pub fn factories() -> Vec<kernelize_core::PluginFactory> {
    vec![http::plugin::factory()]
}
