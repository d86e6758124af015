//! Exchanges, queues and bindings: how they are described (the `declare` action, a source's
//! `declare`), turned into AMQP arguments, and declared.

use std::collections::BTreeMap;
use std::time::Duration;

use kernelize_core::{Error, ErrorKind, Result};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{RabbitClient, short};
use super::fields::field_table;

fn yes() -> bool {
    true
}

/// How an exchange routes messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeType {
    /// To the queues bound with exactly the message's routing key.
    #[default]
    Direct,
    /// To the queues whose binding pattern (`orders.*`, `#.eu`) matches the routing key.
    Topic,
    /// To every bound queue.
    Fanout,
    /// To the queues whose binding arguments match the message's headers.
    Headers,
}

impl ExchangeType {
    fn kind(self) -> ExchangeKind {
        match self {
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Fanout => ExchangeKind::Fanout,
            ExchangeType::Headers => ExchangeKind::Headers,
        }
    }
}

/// An exchange to declare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSpec {
    /// Its name (at most 255 bytes; `amq.` names are the broker's).
    pub name: String,
    /// How it routes (`direct` when absent).
    #[serde(default)]
    pub kind: ExchangeType,
    /// Whether it survives a broker restart (true when absent).
    #[serde(default = "yes")]
    pub durable: bool,
    /// Whether the broker deletes it once its last binding is gone.
    #[serde(default)]
    pub auto_delete: bool,
    /// Whether only other exchanges may publish to it.
    #[serde(default)]
    pub internal: bool,
    /// Further `x-` arguments (`alternate-exchange`, ...).
    #[serde(default)]
    pub arguments: BTreeMap<String, Value>,
}

/// Which kind of queue the broker keeps (`x-queue-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueType {
    /// The classic queue.
    Classic,
    /// A replicated Raft queue; it counts deliveries (`x-delivery-count`).
    Quorum,
    /// An append-only log (consumed with offsets; not through this connector's source).
    Stream,
}

impl QueueType {
    fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }
}

/// A queue to declare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// Its name (at most 255 bytes). Empty in a `declare` asks the broker to name it (the
    /// output says the name); in a source's `declare`, the source's `queue` when empty.
    #[serde(default)]
    pub name: String,
    /// Whether it survives a broker restart (true when absent).
    #[serde(default = "yes")]
    pub durable: bool,
    /// Whether only the declaring connection may use it; it is deleted with that
    /// connection.
    #[serde(default)]
    pub exclusive: bool,
    /// Whether the broker deletes it once its last consumer is gone.
    #[serde(default)]
    pub auto_delete: bool,
    /// The queue type (`x-queue-type`): the broker's default (classic) when absent.
    #[serde(default)]
    pub queue_type: Option<QueueType>,
    /// Where rejected and expired messages go (`x-dead-letter-exchange`; `""` is the
    /// default exchange).
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
    /// The routing key dead-lettered messages get (`x-dead-letter-routing-key`); their own
    /// when absent.
    #[serde(default)]
    pub dead_letter_routing_key: Option<String>,
    /// How long a message may wait in the queue (`x-message-ttl`), such as `"30s"`.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub message_ttl: Option<Duration>,
    /// The most messages the queue holds (`x-max-length`); the oldest are dropped (or
    /// dead-lettered) beyond it.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Further `x-` arguments, as JSON (strings, numbers, booleans).
    #[serde(default)]
    pub arguments: BTreeMap<String, Value>,
}

impl QueueSpec {
    /// A durable queue named `name` with no arguments.
    pub fn named(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            durable: true,
            exclusive: false,
            auto_delete: false,
            queue_type: None,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            message_ttl: None,
            max_length: None,
            arguments: BTreeMap::new(),
        }
    }

    /// The queue's arguments: `arguments` with the typed settings added; a setting given
    /// both ways is refused.
    pub(crate) fn argument_table(&self) -> Result<FieldTable> {
        let mut table = field_table(&self.arguments)?;
        let mut add = |key: &str, value: AMQPValue| -> Result<()> {
            if self.arguments.contains_key(key) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "queue `{}` sets `{key}` twice: in `arguments` and as its own setting; keep one",
                        self.name
                    ),
                ));
            }
            table.insert(key.into(), value);
            Ok(())
        };
        if let Some(kind) = self.queue_type {
            add("x-queue-type", AMQPValue::LongString(kind.as_str().into()))?;
        }
        if let Some(exchange) = &self.dead_letter_exchange {
            short("`dead_letter_exchange`", exchange)?;
            add(
                "x-dead-letter-exchange",
                AMQPValue::LongString(LongString::from(exchange.as_str())),
            )?;
        }
        if let Some(key) = &self.dead_letter_routing_key {
            short("`dead_letter_routing_key`", key)?;
            add(
                "x-dead-letter-routing-key",
                AMQPValue::LongString(LongString::from(key.as_str())),
            )?;
        }
        if let Some(ttl) = self.message_ttl {
            let ms = i64::try_from(ttl.as_millis())
                .map_err(|_| Error::new(ErrorKind::InvalidInput, "`message_ttl` is too long"))?;
            add("x-message-ttl", AMQPValue::LongLongInt(ms))?;
        }
        if let Some(max) = self.max_length {
            let max = i64::try_from(max)
                .map_err(|_| Error::new(ErrorKind::InvalidInput, "`max_length` is too large"))?;
            add("x-max-length", AMQPValue::LongLongInt(max))?;
        }
        Ok(table)
    }
}

/// A binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// The queue.
    pub queue: String,
    /// The exchange.
    pub exchange: String,
    /// The binding key (a pattern for topic exchanges; ignored by fanout); `""` when
    /// absent.
    #[serde(default)]
    pub routing_key: String,
    /// Binding arguments (for headers exchanges: `x-match` and the headers to match).
    #[serde(default)]
    pub arguments: BTreeMap<String, Value>,
}

/// What a declared queue holds, as the broker answered the declare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueueInfo {
    /// The queue's name (the broker's, for a queue declared without one).
    pub queue: String,
    /// Messages ready for delivery (not those delivered and not yet acknowledged).
    pub messages: u32,
    /// Consumers of the queue.
    pub consumers: u32,
}

/// Declares one exchange on `channel`.
pub(crate) async fn declare_exchange(
    client: &RabbitClient,
    channel: &Channel,
    spec: &ExchangeSpec,
) -> Result<()> {
    if spec.name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an exchange to declare needs a `name` (the default exchange `\"\"` always exists)",
        ));
    }
    let name = short("the exchange name", &spec.name)?;
    let options = ExchangeDeclareOptions {
        passive: false,
        durable: spec.durable,
        auto_delete: spec.auto_delete,
        internal: spec.internal,
        nowait: false,
    };
    let arguments = field_table(&spec.arguments)?;
    client
        .timed(
            "declare the exchange",
            channel.exchange_declare(name, spec.kind.kind(), options, arguments),
        )
        .await
        .map_err(|e| e.with_context("exchange", &spec.name))
}

/// Declares one queue on `channel`.
pub(crate) async fn declare_queue(
    client: &RabbitClient,
    channel: &Channel,
    spec: &QueueSpec,
) -> Result<QueueInfo> {
    let name = short("the queue name", &spec.name)?;
    let options = QueueDeclareOptions {
        passive: false,
        durable: spec.durable,
        exclusive: spec.exclusive,
        auto_delete: spec.auto_delete,
        nowait: false,
    };
    let arguments = spec
        .argument_table()
        .map_err(|e| e.with_context("queue", &spec.name))?;
    let queue = client
        .timed(
            "declare the queue",
            channel.queue_declare(name, options, arguments),
        )
        .await
        .map_err(|e| e.with_context("queue", &spec.name))?;
    Ok(QueueInfo {
        queue: queue.name().as_str().to_string(),
        messages: queue.message_count(),
        consumers: queue.consumer_count(),
    })
}

/// Binds a queue to an exchange on `channel`.
pub(crate) async fn declare_binding(
    client: &RabbitClient,
    channel: &Channel,
    spec: &BindingSpec,
) -> Result<()> {
    let queue = short("the queue name", &spec.queue)?;
    let exchange = short("the exchange name", &spec.exchange)?;
    let key = short("the binding's routing key", &spec.routing_key)?;
    let arguments = field_table(&spec.arguments)?;
    client
        .timed(
            "declare the binding",
            channel.queue_bind(queue, exchange, key, QueueBindOptions::default(), arguments),
        )
        .await
        .map_err(|e| {
            e.with_context("queue", &spec.queue)
                .with_context("exchange", &spec.exchange)
        })
}

/// The message and ready counts of an existing queue (a passive declare); `NotFound` when
/// it does not exist.
pub(crate) async fn inspect_queue(
    client: &RabbitClient,
    channel: &Channel,
    queue: &str,
) -> Result<QueueInfo> {
    let name = short("the queue name", queue)?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let found = client
        .timed(
            "inspect the queue",
            channel.queue_declare(name, options, FieldTable::default()),
        )
        .await
        .map_err(|e| e.with_context("queue", queue))?;
    Ok(QueueInfo {
        queue: found.name().as_str().to_string(),
        messages: found.message_count(),
        consumers: found.consumer_count(),
    })
}

/// Checks that an exchange exists (a passive declare); `NotFound` when it does not. The
/// default exchange `""` always does.
pub(crate) async fn inspect_exchange(
    client: &RabbitClient,
    channel: &Channel,
    exchange: &str,
) -> Result<()> {
    if exchange.is_empty() {
        return Ok(());
    }
    let name = short("the exchange name", exchange)?;
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    client
        .timed(
            "find the exchange",
            channel.exchange_declare(name, ExchangeKind::Direct, options, FieldTable::default()),
        )
        .await
        .map_err(|e| e.with_context("exchange", exchange))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_queue_settings_become_x_arguments() {
        let spec: QueueSpec = serde_json::from_value(json!({
            "name": "orders",
            "queue_type": "quorum",
            "dead_letter_exchange": "dlx",
            "dead_letter_routing_key": "orders.dead",
            "message_ttl": "30s",
            "max_length": 1000,
            "arguments": {"x-overflow": "reject-publish"}
        }))
        .unwrap();
        let table = spec.argument_table().unwrap();
        let get = |k: &str| table.inner().get(k).cloned().unwrap();
        assert_eq!(get("x-queue-type"), AMQPValue::LongString("quorum".into()));
        assert_eq!(
            get("x-dead-letter-exchange"),
            AMQPValue::LongString("dlx".into())
        );
        assert_eq!(get("x-message-ttl"), AMQPValue::LongLongInt(30_000));
        assert_eq!(get("x-max-length"), AMQPValue::LongLongInt(1000));
        assert_eq!(
            get("x-overflow"),
            AMQPValue::LongString("reject-publish".into())
        );
        assert!(spec.durable);
    }

    #[test]
    fn a_setting_given_twice_is_refused() {
        let spec: QueueSpec = serde_json::from_value(json!({
            "name": "q", "max_length": 5, "arguments": {"x-max-length": 6}
        }))
        .unwrap();
        let e = spec.argument_table().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("x-max-length"), "{e}");
    }
}
