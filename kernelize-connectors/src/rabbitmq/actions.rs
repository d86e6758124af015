//! The `rabbitmq-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;

use kernelize_core::{Action, Payload, Permission};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::topology::{BindingSpec, ExchangeSpec, QueueInfo, QueueSpec};

fn network() -> Vec<Permission> {
    vec![Permission::Network { host: "*".into() }]
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// Config of `declare`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareConfig {
    /// Exchanges, declared first.
    #[serde(default)]
    pub exchanges: Vec<ExchangeSpec>,
    /// Queues, declared next.
    #[serde(default)]
    pub queues: Vec<QueueSpec>,
    /// Bindings, declared last.
    #[serde(default)]
    pub bindings: Vec<BindingSpec>,
}

/// What `declare` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Declared {
    /// The exchanges declared.
    pub exchanges: Vec<String>,
    /// The queues declared, with what they hold.
    pub queues: Vec<QueueInfo>,
    /// How many bindings were declared.
    pub bindings: usize,
}

/// Config of `publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The exchange; `""` (the default) is the default exchange, which routes to the queue
    /// named by the routing key.
    #[serde(default)]
    pub exchange: String,
    /// The routing key.
    #[serde(default)]
    pub routing_key: String,
    /// Whether the broker writes the messages to disk (delivery mode 2; true when absent).
    #[serde(default = "yes")]
    pub persistent: bool,
    /// Headers of every message (strings, numbers, booleans, arrays, objects).
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// The message id of every message (`message_id` property).
    #[serde(default)]
    pub message_id: Option<String>,
    /// The content type, instead of the input's (`application/json` for JSON input, the
    /// media type of bytes).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Whether a message no queue takes is an error (basic.return) rather than dropped.
    #[serde(default)]
    pub mandatory: bool,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Published {
    /// How many messages the broker confirmed.
    pub published: usize,
    /// The exchange they went to (`""`: the default exchange).
    pub exchange: String,
    /// Their routing key.
    pub routing_key: String,
}

/// Config of `get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConfig {
    /// The queue.
    pub queue: String,
    /// The most messages to take (1 to 10,000; 1 when absent).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10000))]
    pub count: usize,
    /// `true` (the default): the messages are acknowledged, so they leave the queue.
    /// `false`: they are read and put back (basic.nack with requeue), a peek; they come
    /// back marked redelivered.
    #[serde(default = "yes")]
    pub ack: bool,
}

/// One message `get` read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReceivedMessage {
    /// The delivery tag (valid only on the channel of the call, which is closed).
    pub delivery_tag: u64,
    /// The exchange it was published to (`""`: the default exchange).
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Whether it was delivered before.
    pub redelivered: bool,
    /// Its `message_id` property.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Its `content_type` property.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Its `correlation_id` property.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Its `timestamp` property (seconds since 1970).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Whether it was published persistent (delivery mode 2).
    pub persistent: bool,
    /// Its headers, as JSON (`x-death` included for dead-lettered messages).
    pub headers: serde_json::Map<String, Value>,
    /// The body: parsed JSON when the content type is JSON and it parses, else the text
    /// when it is UTF-8, else `null` (see `body_base64`).
    pub body: Value,
    /// The body in base64, when it is not UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// What `get` read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Got {
    /// The messages, oldest first; empty when the queue was empty.
    pub messages: Vec<ReceivedMessage>,
    /// Messages left ready in the queue, as the broker counted at the last read.
    pub remaining: u32,
}

/// Config of `purge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeConfig {
    /// The queue.
    pub queue: String,
}

/// What `purge` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Purged {
    /// How many ready messages were removed (delivered, unacknowledged ones stay).
    pub purged: u32,
}

/// Config of `delete_queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteQueueConfig {
    /// The queue.
    pub queue: String,
    /// Only when it has no consumers (else `PRECONDITION_FAILED`).
    #[serde(default)]
    pub if_unused: bool,
    /// Only when it holds no messages (else `PRECONDITION_FAILED`).
    #[serde(default)]
    pub if_empty: bool,
}

/// What `delete_queue` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueueDeleted {
    /// How many messages the queue held when it was deleted (0 when it did not exist).
    pub messages: u32,
}

/// Config of `delete_exchange`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteExchangeConfig {
    /// The exchange.
    pub exchange: String,
    /// Only when no queue or exchange is bound to it (else `PRECONDITION_FAILED`).
    #[serde(default)]
    pub if_unused: bool,
}

/// What `delete_exchange` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExchangeDeleted {
    /// The exchange named (deleting one that does not exist succeeds too).
    pub exchange: String,
}

/// Config of `queue_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueInfoConfig {
    /// The queue.
    pub queue: String,
}

macro_rules! network_action {
    ($(#[$doc:meta])* $name:ident, $text:literal, $description:literal, $config:ty, $output:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl Action for $name {
            const NAME: &'static str = $text;
            const DESCRIPTION: &'static str = $description;
            type Config = $config;
            type Input = Payload;
            type Output = $output;

            fn permissions() -> Vec<Permission> {
                network()
            }
        }
    };
}

network_action!(
    /// Action `declare`.
    Declare,
    "declare",
    "Declare exchanges, queues (with dead-lettering, TTL, length limit, type) and bindings; a conflicting re-declare is the broker's PRECONDITION_FAILED.",
    DeclareConfig,
    Declared
);

network_action!(
    /// Action `publish`.
    Publish,
    "publish",
    "Publish the input (one message, or one per JSON array item or record row) to an exchange, waiting for every publisher confirm.",
    PublishConfig,
    Published
);

network_action!(
    /// Action `get`.
    Get,
    "get",
    "Read up to `count` messages of a queue (basic.get); acknowledged by default, or put back with `ack: false`.",
    GetConfig,
    Got
);

network_action!(
    /// Action `purge`.
    Purge,
    "purge",
    "Remove every ready message of a queue.",
    PurgeConfig,
    Purged
);

network_action!(
    /// Action `delete_queue`.
    DeleteQueue,
    "delete_queue",
    "Delete a queue and the messages it holds.",
    DeleteQueueConfig,
    QueueDeleted
);

network_action!(
    /// Action `delete_exchange`.
    DeleteExchange,
    "delete_exchange",
    "Delete an exchange and its bindings.",
    DeleteExchangeConfig,
    ExchangeDeleted
);

network_action!(
    /// Action `queue_info`.
    QueueInfoAction,
    "queue_info",
    "Count a queue's ready messages and consumers (a passive declare); not found when it does not exist.",
    QueueInfoConfig,
    QueueInfo
);
