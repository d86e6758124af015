#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

#[cfg(feature = "airflow")]
pub mod airflow;
#[cfg(feature = "bigquery")]
pub mod bigquery;
#[cfg(feature = "databricks")]
pub mod databricks;
#[cfg(feature = "drupal")]
pub mod drupal;
pub mod graphql;
pub mod http;
#[cfg(feature = "looker")]
pub mod looker;
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
    feature = "mysql",
    feature = "_saas"
))]
mod network;
#[cfg(feature = "power-automate")]
pub mod power_automate;
#[cfg(feature = "powerbi")]
pub mod powerbi;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "_saas")]
pub mod saas;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "rabbitmq",
    feature = "mqtt"
))]
mod secret_url;
#[cfg(feature = "shopify")]
pub mod shopify;
#[cfg(feature = "slack")]
pub mod slack;
#[cfg(feature = "snowflake")]
pub mod snowflake;
#[cfg(feature = "_sql")]
pub mod sql;
#[cfg(feature = "tableau")]
pub mod tableau;
#[cfg(feature = "wordpress")]
pub mod wordpress;
pub mod ws;
#[cfg(feature = "zapier")]
pub mod zapier;

/// Factories of this crate's registry plugins: `http`, `sqlite-connector` with the `sqlite`
/// feature, `postgres-connector` with `postgres`, `mysql-connector` with `mysql`,
/// `redis-connector` with `redis`, `rabbitmq-connector` with `rabbitmq`, `nats-connector`
/// with `nats`, `mqtt-connector` with `mqtt`, and each SaaS connector with its feature
/// (`snowflake-connector` with `snowflake`, ..., `slack-notifier` with `slack`).
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
    #[cfg(feature = "snowflake")]
    all.push(snowflake::factory());
    #[cfg(feature = "databricks")]
    all.push(databricks::factory());
    #[cfg(feature = "bigquery")]
    all.push(bigquery::factory());
    #[cfg(feature = "tableau")]
    all.push(tableau::factory());
    #[cfg(feature = "powerbi")]
    all.push(powerbi::factory());
    #[cfg(feature = "looker")]
    all.push(looker::factory());
    #[cfg(feature = "zapier")]
    all.push(zapier::factory());
    #[cfg(feature = "power-automate")]
    all.push(power_automate::factory());
    #[cfg(feature = "airflow")]
    all.push(airflow::factory());
    #[cfg(feature = "wordpress")]
    all.push(wordpress::factory());
    #[cfg(feature = "drupal")]
    all.push(drupal::factory());
    #[cfg(feature = "shopify")]
    all.push(shopify::factory());
    #[cfg(feature = "slack")]
    all.push(slack::factory());
    all
}
