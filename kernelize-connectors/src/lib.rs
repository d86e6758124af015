#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod graphql;
pub mod http;
#[cfg(feature = "_sql")]
pub mod sql;
pub mod ws;

/// Factories of this crate's registry plugins: `http`, and `sqlite-connector` with the
/// `sqlite` feature.
pub fn factories() -> Vec<kernelize_core::PluginFactory> {
    #[allow(unused_mut)]
    let mut all = vec![http::plugin::factory()];
    #[cfg(feature = "sqlite")]
    all.push(sql::sqlite::factory());
    all
}
