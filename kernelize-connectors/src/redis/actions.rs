//! The `redis-connector`'s typed actions: their names, per-call configs and outputs.

use std::collections::BTreeMap;
use std::time::Duration;

use kernelize_core::{Action, Payload, Permission};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::streams::{ClaimedMessages, PendingSummary, StreamMessage};

fn network() -> Vec<Permission> {
    vec![Permission::Network { host: "*".into() }]
}

fn default_count() -> usize {
    100
}

fn default_group_start() -> String {
    "0".into()
}

fn default_cursor() -> String {
    "0-0".into()
}

/// Config of `get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConfig {
    /// The key (the plugin's `key_prefix` goes in front).
    pub key: String,
}

/// Config of `set`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// The key (the plugin's `key_prefix` goes in front).
    pub key: String,
    /// The value to store; the call's input when absent.
    #[serde(default)]
    pub value: Option<Value>,
    /// How long the value lives (`"30s"`, `"5m"`); the plugin's `default_ttl` when absent.
    #[serde(default, with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub ttl: Option<Duration>,
    /// Store only when the key does not exist yet.
    #[serde(default)]
    pub only_if_absent: bool,
}

/// What `set` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SetOutcome {
    /// `false` when `only_if_absent` was asked and the key existed, so nothing was written.
    pub stored: bool,
}

/// Config of `delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteConfig {
    /// The keys (at most 10,000; the plugin's `key_prefix` goes in front of each).
    pub keys: Vec<String>,
}

/// What `delete` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteOutcome {
    /// How many of the keys existed.
    pub deleted: u64,
}

/// Config of `publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The stream (the plugin's `key_prefix` goes in front).
    pub stream: String,
    /// One entry's fields; when absent, the input gives the entries: a JSON object (one
    /// entry), an array of objects, or records (one entry per row).
    #[serde(default)]
    pub fields: Option<BTreeMap<String, Value>>,
    /// Cap the stream at about this many entries (`MAXLEN ~`).
    #[serde(default)]
    pub maxlen: Option<u64>,
    /// Trim exactly to `maxlen` (`MAXLEN =`), which costs more.
    #[serde(default)]
    pub exact_maxlen: bool,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Published {
    /// The new entries' ids, in input order.
    pub ids: Vec<String>,
}

/// Config of `consume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumeConfig {
    /// The stream.
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// This consumer's name in the group.
    pub consumer: String,
    /// The most messages to read (1 to 10,000; 100 when absent).
    #[serde(default = "default_count")]
    #[schemars(range(min = 1, max = 10000))]
    pub count: usize,
    /// How long to wait for a message when none is waiting, in milliseconds (at most
    /// 300,000); no wait when absent or 0.
    #[serde(default)]
    pub block_ms: Option<u64>,
    /// Create the group (and the stream) when missing; an existing group is kept.
    #[serde(default)]
    pub create_group: bool,
    /// Where a group created here starts: `0` (the whole stream, the default) or `$` (only
    /// entries added from now on).
    #[serde(default = "default_group_start")]
    pub group_start: String,
}

/// What `consume` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Consumed {
    /// The messages, oldest first; empty when none came.
    pub messages: Vec<StreamMessage>,
}

/// Config of `ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckConfig {
    /// The stream.
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// The message ids (at most 10,000); when absent, the ids of the input's `messages`
    /// (the output of `consume` or `claim_stuck`).
    #[serde(default)]
    pub ids: Option<Vec<String>>,
}

/// What `ack` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Acknowledged {
    /// How many of the ids were pending (and are not any more).
    pub acknowledged: u64,
}

/// Config of `claim_stuck`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimStuckConfig {
    /// The stream.
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// The consumer that takes the messages over.
    pub consumer: String,
    /// Only messages idle (delivered and not acknowledged) at least this long.
    pub min_idle_ms: u64,
    /// The most messages to claim (1 to 10,000; 100 when absent).
    #[serde(default = "default_count")]
    #[schemars(range(min = 1, max = 10000))]
    pub count: usize,
    /// Where the scan of the pending list starts: `0-0` (the default), or the
    /// `next_cursor` of the previous call.
    #[serde(default = "default_cursor")]
    pub cursor: String,
}

/// Config of `pending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingConfig {
    /// The stream.
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// Also list up to this many pending messages, oldest first (at most 10,000).
    #[serde(default)]
    pub count: Option<usize>,
    /// List only this consumer's messages (needs `count`).
    #[serde(default)]
    pub consumer: Option<String>,
    /// List only messages idle at least this long (needs `count`).
    #[serde(default)]
    pub min_idle_ms: Option<u64>,
}

/// Action `get`.
#[derive(Debug)]
pub struct Get;

impl Action for Get {
    const NAME: &'static str = "get";
    const DESCRIPTION: &'static str =
        "Read the JSON value cached under a key; null when the key is absent or expired.";
    type Config = GetConfig;
    type Input = Payload;
    type Output = Value;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `set`.
#[derive(Debug)]
pub struct Set;

impl Action for Set {
    const NAME: &'static str = "set";
    const DESCRIPTION: &'static str = "Cache a JSON value (the config's `value`, else the input) under a key, with a TTL, optionally only when absent.";
    type Config = SetConfig;
    type Input = Payload;
    type Output = SetOutcome;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `delete`.
#[derive(Debug)]
pub struct Delete;

impl Action for Delete {
    const NAME: &'static str = "delete";
    const DESCRIPTION: &'static str = "Delete cached keys; returns how many existed.";
    type Config = DeleteConfig;
    type Input = Payload;
    type Output = DeleteOutcome;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `publish`.
#[derive(Debug)]
pub struct Publish;

impl Action for Publish {
    const NAME: &'static str = "publish";
    const DESCRIPTION: &'static str = "Append entries to a stream (XADD): the config's `fields`, or one per input object or record row; returns their ids.";
    type Config = PublishConfig;
    type Input = Payload;
    type Output = Published;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `consume`.
#[derive(Debug)]
pub struct Consume;

impl Action for Consume {
    const NAME: &'static str = "consume";
    const DESCRIPTION: &'static str = "Read new messages of a stream as a consumer of a group (XREADGROUP >); they stay pending until acknowledged.";
    type Config = ConsumeConfig;
    type Input = Payload;
    type Output = Consumed;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `ack`.
#[derive(Debug)]
pub struct Ack;

impl Action for Ack {
    const NAME: &'static str = "ack";
    const DESCRIPTION: &'static str =
        "Acknowledge messages of a consumer group (XACK); returns how many were pending.";
    type Config = AckConfig;
    type Input = Payload;
    type Output = Acknowledged;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `claim_stuck`.
#[derive(Debug)]
pub struct ClaimStuck;

impl Action for ClaimStuck {
    const NAME: &'static str = "claim_stuck";
    const DESCRIPTION: &'static str = "Take over messages another consumer left unacknowledged for at least `min_idle_ms` (XAUTOCLAIM).";
    type Config = ClaimStuckConfig;
    type Input = Payload;
    type Output = ClaimedMessages;

    fn permissions() -> Vec<Permission> {
        network()
    }
}

/// Action `pending`.
#[derive(Debug)]
pub struct Pending;

impl Action for Pending {
    const NAME: &'static str = "pending";
    const DESCRIPTION: &'static str =
        "Summarize a consumer group's unacknowledged messages (XPENDING), optionally listing them.";
    type Config = PendingConfig;
    type Input = Payload;
    type Output = PendingSummary;

    fn permissions() -> Vec<Permission> {
        network()
    }
}
