//! The `nats-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;
use std::time::Duration;

use kernelize_core::{Action, Payload, Permission};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::jetstream::{
    ConsumerSummary, DeliverPolicy, FetchedMessage, Published, Storage, StreamSummary,
};

fn network() -> Vec<Permission> {
    vec![Permission::Network { host: "*".into() }]
}

fn default_batch() -> usize {
    100
}

fn default_max_bytes() -> usize {
    16 * 1024 * 1024
}

/// A list of durations, each written as the settings write one (`"1s"`, `"250ms"`).
mod duration_list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Written(#[serde(with = "kernelize_core::config::duration")] Duration);

    pub(super) fn serialize<S: Serializer>(value: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        value
            .iter()
            .map(|d| Written(*d))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<Written>::deserialize(d)?
            .into_iter()
            .map(|w| w.0)
            .collect())
    }
}

/// Config of `publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The subject (no wildcards); a stream must take it.
    pub subject: String,
    /// The `Nats-Msg-Id`: the stream keeps one message per id within its duplicate window.
    /// With several messages (records), row `n` gets `{msg_id}-{n}` (from 0).
    #[serde(default)]
    pub msg_id: Option<String>,
    /// Headers of every message.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PublishOutcome {
    /// The stream's acknowledgement of each message, in input order.
    pub messages: Vec<Published>,
}

/// Config of `create_stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStreamConfig {
    /// The stream's name (no spaces, `.`, `*`, `>`, `/`).
    pub name: String,
    /// The subjects it stores (wildcards allowed: `orders.*`, `orders.>`).
    pub subjects: Vec<String>,
    /// How long messages are kept (`"24h"`); for ever when absent.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub max_age: Option<Duration>,
    /// How long a `Nats-Msg-Id` is remembered for de-duplication (`"2m"`, the server's
    /// default when absent).
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub duplicate_window: Option<Duration>,
    /// `file` (the default) or `memory`.
    #[serde(default)]
    pub storage: Storage,
}

/// Config of `delete_stream` and `stream_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's name.
    pub name: String,
}

/// What `delete_stream` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamDeleted {
    /// `false` when there was no such stream.
    pub deleted: bool,
}

/// Config of `create_consumer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConsumerConfig {
    /// The stream it reads.
    pub stream: String,
    /// Its durable name.
    pub durable: String,
    /// Only messages of these subjects (wildcards allowed); all of the stream's when absent.
    #[serde(default)]
    pub filter_subject: Option<String>,
    /// How long a delivered message may stay unacknowledged before it is delivered again
    /// (`"30s"`, the server's default when absent).
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub ack_wait: Option<Duration>,
    /// How many times one message is delivered at most; without limit when absent.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_deliver: Option<i64>,
    /// How many deliveries may wait for their acknowledgement at once; the server stops
    /// delivering at that many (its default, 1,000, when absent).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_ack_pending: Option<i64>,
    /// Waits before each redelivery after an `ack_wait` expiry (`["1s", "5s", "30s"]`);
    /// `max_deliver` must be more than their number.
    #[serde(default, with = "duration_list")]
    #[schemars(with = "Vec<String>")]
    pub backoff: Vec<Duration>,
    /// `all` (the default), `last`, `new`, `last_per_subject` or `by_start_sequence`.
    #[serde(default)]
    pub deliver_policy: DeliverPolicy,
    /// The first stream sequence, with `deliver_policy: by_start_sequence`.
    #[serde(default)]
    pub start_sequence: Option<u64>,
}

/// Config of `consumer_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// The stream.
    pub stream: String,
    /// The consumer's durable name.
    pub durable: String,
}

/// Config of `fetch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// The stream.
    pub stream: String,
    /// The consumer's durable name.
    pub durable: String,
    /// The most messages (1 to 10,000; 100 when absent).
    #[serde(default = "default_batch")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch: usize,
    /// How long to wait for `batch` messages (at most `"5m"`); without it, only the messages
    /// waiting now are returned.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub expires: Option<Duration>,
    /// The most body bytes in all (16 MiB when absent); a single larger message is an error.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: usize,
}

/// What `fetch` got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Fetched {
    /// The messages, in delivery order; empty when none came. Each stays pending until
    /// settled with its `ack_token` (or redelivered after the consumer's `ack_wait`).
    pub messages: Vec<FetchedMessage>,
}

/// Config of `ack` and `term`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleConfig {
    /// The stream the messages came from.
    pub stream: String,
    /// The consumer they were delivered to.
    pub durable: String,
    /// The `ack_token`s of the deliveries (at most 10,000); when absent, those of the input's
    /// `messages` (the output of `fetch`).
    #[serde(default)]
    pub ack_tokens: Option<Vec<String>>,
    /// Settle only the input's messages of these stream sequences.
    #[serde(default)]
    pub sequences: Option<Vec<u64>>,
}

/// Config of `nak`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NakConfig {
    /// The stream the messages came from.
    pub stream: String,
    /// The consumer they were delivered to.
    pub durable: String,
    /// The `ack_token`s of the deliveries (at most 10,000); when absent, those of the input's
    /// `messages` (the output of `fetch`).
    #[serde(default)]
    pub ack_tokens: Option<Vec<String>>,
    /// Nak only the input's messages of these stream sequences.
    #[serde(default)]
    pub sequences: Option<Vec<u64>>,
    /// How long the server waits before delivering them again (`"10s"`); at once when absent.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub delay: Option<Duration>,
}

/// What `ack`, `nak` or `term` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Settled {
    /// How many deliveries the server confirmed settling.
    pub settled: usize,
    /// Their stream sequences.
    pub sequences: Vec<u64>,
}

macro_rules! nats_action {
    ($(#[$doc:meta])* $name:ident, $text:literal, $config:ty, $output:ty, $description:literal) => {
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

nats_action!(
    /// Action `publish`.
    Publish, "publish", PublishConfig, PublishOutcome,
    "Publish the input to a subject with JetStream and wait for the stream's acknowledgement (JSON as one message, bytes as they are, records one message per row); returns stream, sequence and duplicate per message."
);
nats_action!(
    /// Action `create_stream`.
    CreateStream, "create_stream", CreateStreamConfig, StreamSummary,
    "Create a JetStream stream of subjects (an existing stream of the same configuration is kept); returns its summary."
);
nats_action!(
    /// Action `delete_stream`.
    DeleteStream, "delete_stream", StreamConfig, StreamDeleted,
    "Delete a stream with its messages and consumers; `deleted: false` when there was none."
);
nats_action!(
    /// Action `stream_info`.
    StreamInfo, "stream_info", StreamConfig, StreamSummary,
    "Read a stream's configuration and how many messages and bytes it holds."
);
nats_action!(
    /// Action `create_consumer`.
    CreateConsumer, "create_consumer", CreateConsumerConfig, ConsumerSummary,
    "Create a durable pull consumer with explicit acknowledgements on a stream (filter, ack wait, max deliveries, backoff, deliver policy)."
);
nats_action!(
    /// Action `consumer_info`.
    ConsumerInfo, "consumer_info", ConsumerConfig, ConsumerSummary,
    "Read a consumer's configuration and progress (messages pending, awaiting acknowledgement, redelivered)."
);
nats_action!(
    /// Action `fetch`.
    Fetch, "fetch", FetchConfig, Fetched,
    "Fetch up to `batch` messages from a durable pull consumer; each comes with an `ack_token` to give back to ack, nak or term."
);
nats_action!(
    /// Action `ack`.
    AckMessages, "ack", SettleConfig, Settled,
    "Acknowledge fetched messages (by `ack_tokens`, or the input's fetched messages, optionally only some `sequences`) and wait for the server to confirm."
);
nats_action!(
    /// Action `nak`.
    NakMessages, "nak", NakConfig, Settled,
    "Have fetched messages delivered again, after `delay` when given."
);
nats_action!(
    /// Action `term`.
    TermMessages, "term", SettleConfig, Settled,
    "Stop delivering fetched messages for good (after dead-lettering them, or when they can never succeed)."
);
