#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod graphql;
pub mod http;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "rabbitmq",
    feature = "mqtt",
    feature = "postgres",
    feature = "mysql"
))]
mod network;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "rabbitmq",
    feature = "mqtt"
))]
mod secret_url;
#[cfg(feature = "_sql")]
pub mod sql;
pub mod ws;

/// Factories of this crate's registry plugins: `http`, `sqlite-connector` with the `sqlite`
/// feature, `postgres-connector` with `postgres`, `mysql-connector` with `mysql`,
/// `redis-connector` with `redis`, `rabbitmq-connector` with `rabbitmq`, `nats-connector`
/// with `nats` and `mqtt-connector` with `mqtt`.
pub fn factories() -> Vec<kernelize_core::PluginFactory> {
    #[allow(unused_mut)]
    let mut all = vec![http::plugin::factory()];
    #[cfg(feature = "sqlite")]
    all.push(sql::sqlite::factory());
    #[cfg(feature = "postgres")]
    all.push(sql::postgres::factory());
    #[cfg(feature = "mysql")]
    all.push(sql::mysql::factory());
    #[cfg(feature = "redis")]
    all.push(redis::factory());
    #[cfg(feature = "rabbitmq")]
    all.push(rabbitmq::factory());
    #[cfg(feature = "nats")]
    all.push(nats::factory());
    #[cfg(feature = "mqtt")]
    all.push(mqtt::factory());
    all
}
