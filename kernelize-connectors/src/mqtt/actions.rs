//! The `mqtt-connector`'s typed actions: their names, per-call configs and outputs.

use std::time::Duration;

use kernelize_core::{Action, Payload, Permission};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{Qos, TopicFilter};

fn network() -> Vec<Permission> {
    vec![Permission::Network { host: "*".into() }]
}

fn default_max_messages() -> usize {
    100
}

fn default_wait() -> Duration {
    Duration::from_secs(5)
}

/// Config of `publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The topic (no wildcards).
    pub topic: String,
    /// The quality of service: 0, 1 (the default) or 2.
    #[serde(default)]
    pub qos: Qos,
    /// Publish as a retained message (the broker keeps the last one per topic for new
    /// subscribers; an empty input clears it).
    #[serde(default)]
    pub retain: bool,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Published {
    /// How many messages the broker confirmed (one per record row for records).
    pub published: usize,
    /// The topic they went to.
    pub topic: String,
}

/// Config of `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeConfig {
    /// The subscriptions (1 to 100).
    pub topics: Vec<TopicFilter>,
    /// Stop after this many messages (1 to 10,000; 100 when absent).
    #[serde(default = "default_max_messages")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_messages: usize,
    /// How long to collect messages (`"5s"` when absent; at most `"5m"`); the call's
    /// deadline ends it earlier.
    #[serde(default = "default_wait", with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub wait: Duration,
}

/// One message `subscribe` collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReceivedMessage {
    /// The topic it was published to.
    pub topic: String,
    /// The QoS it was delivered with.
    pub qos: Qos,
    /// Whether it is the broker's retained message for the topic.
    pub retain: bool,
    /// The body: its JSON value when it parses as JSON, else its bytes in base64.
    pub payload: Value,
    /// Whether `payload` is base64 text (the body was not JSON).
    pub base64: bool,
    /// The packet id it came with (0 at QoS 0).
    pub pkid: u16,
}

/// What `subscribe` collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Subscribed {
    /// The messages, in the order they arrived.
    pub messages: Vec<ReceivedMessage>,
}

/// Action `publish`.
#[derive(Debug)]
pub struct Publish;

impl Action for Publish {
    const NAME: &'static str = "publish";
    const DESCRIPTION: &'static str = "Publish the input to a topic (JSON as its text, bytes as they are, one message per record row) and wait for the broker's confirmation (PUBACK at QoS 1, PUBCOMP at QoS 2).";
    type Config = PublishConfig;
    type Input = Payload;
    type Output = Published;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `subscribe`.
#[derive(Debug)]
pub struct Subscribe;

impl Action for Subscribe {
    const NAME: &'static str = "subscribe";
    const DESCRIPTION: &'static str = "Subscribe to topic filters, collect messages until `max_messages` or `wait`, acknowledge them and return them.";
    type Config = SubscribeConfig;
    type Input = Payload;
    type Output = Subscribed;

    fn permissions() -> Vec<Permission> {
        network()
    }
}
