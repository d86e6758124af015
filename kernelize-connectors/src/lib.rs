#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod graphql;
pub mod http;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "_sql")]
pub mod sql;
pub mod ws;

/// Factories of this crate's registry plugins: `http`, `sqlite-connector` with the `sqlite`
/// feature, `postgres-connector` with the `postgres` feature and `redis-connector` with the
/// `redis` feature.
pub fn factories() -> Vec<kernelize_core::PluginFactory> {
    #[allow(unused_mut)]
    let mut all = vec![http::plugin::factory()];
    #[cfg(feature = "sqlite")]
    all.push(sql::sqlite::factory());
    #[cfg(feature = "postgres")]
    all.push(sql::postgres::factory());
    #[cfg(feature = "redis")]
    all.push(redis::factory());
    all
}
