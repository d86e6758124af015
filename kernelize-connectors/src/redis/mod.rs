//! `redis-connector`: Redis as a cache of JSON values (for plugin response caching) and
//! Redis Streams with consumer groups (for event pipelines), on one reconnecting connection.
//!
//! ## Client
//!
//! The [`redis`](https://crates.io/crates/redis) crate (redis-rs), async on tokio, with its
//! `ConnectionManager`: one multiplexed connection that pipelines concurrent commands and
//! reconnects with backoff after a drop. It is the maintained, widely used Rust client and
//! speaks every stream command we need. `fred` was the alternative: also async, with pools
//! and reconnection policies built in, but larger (its own runtime abstractions, many
//! features) for what two families of commands need, and less common in the ecosystem this
//! SDK builds on. TLS (`rediss://`) is not built in yet and is refused with a clear error.
//!
//! ## Settings ([`RedisSettings`])
//!
//! | setting           | default | meaning |
//! |-------------------|---------|---------|
//! | `url`             | —       | `redis://[user][:password@]host[:port][/db]`; write the password as `${secret:NAME}` |
//! | `key_prefix`      | none    | a namespace put in front of every key and stream name (`"orders:"`) |
//! | `default_ttl`     | none    | how long a cached value lives when `set` names no `ttl`; for ever when absent |
//! | `command_timeout` | `"5s"`  | how long one command may take (a blocking `consume` gets `block_ms` on top) |
//! | `max_value_bytes` | 16 MiB  | the largest cached value `get` returns and `set` stores |
//!
//! The URL's password never appears in `Debug` output, serialized settings or error
//! messages ([`RedisUrl`]). Unknown settings are refused.
//!
//! ## Permissions
//!
//! `network` to the URL's host, checked at activation and again at every call; without it a
//! call fails with `permission denied` naming the host.
//!
//! ## Cache actions
//!
//! Values are stored as JSON text: a Redis string holding `{"status":200}`. Any client can
//! read them; bytes of another media type are not stored as such (give them as JSON, or
//! base64 them first). A `null` value is refused: it could not be told apart from a miss.
//!
//! - `get` `{key}` → the JSON value, or `null` when the key is absent or expired. A key
//!   holding a stream or a list is an `invalid input` error naming its type; a value larger
//!   than `max_value_bytes` is an `invalid input` error (no more than that is transferred);
//!   text that is not JSON is a `corrupt data` error.
//! - `set` `{key, value?, ttl?, only_if_absent?}` → `{stored}`. The input is the value when
//!   `value` is absent. `ttl` (`"30s"`) falls back to `default_ttl`; `only_if_absent` is
//!   `SET NX` and answers `stored: false` when the key existed.
//! - `delete` `{keys}` → `{deleted}`: how many existed.
//!
//! The same cache is [`RedisCache`] for Rust code.
//!
//! ## Stream actions
//!
//! Entries' fields are text ([`streams`] module). Delivery is at least once: a consumed
//! message is pending until acknowledged.
//!
//! - `publish` `{stream, fields?, maxlen?, exact_maxlen?}` → `{ids}`: one entry of `fields`,
//!   or one per input JSON object or record row (`XADD`, `MAXLEN ~ n` when `maxlen`).
//! - `consume` `{stream, group, consumer, count, block_ms?, create_group?, group_start?}` →
//!   `{messages: [{id, fields}]}` (`XREADGROUP ... >`). `create_group` runs
//!   `XGROUP CREATE ... MKSTREAM` first, starting at `group_start` (`0`), and keeps an
//!   existing group. A blocking read runs on a connection of its own.
//! - `ack` `{stream, group, ids?}` → `{acknowledged}` (`XACK`); without `ids`, the input's
//!   `messages` (the output of `consume`) are acknowledged.
//! - `claim_stuck` `{stream, group, consumer, min_idle_ms, count, cursor?}` →
//!   `{messages, next_cursor, deleted_ids}` (`XAUTOCLAIM`): messages another consumer left
//!   unacknowledged, now owned by `consumer`.
//! - `pending` `{stream, group, count?, consumer?, min_idle_ms?}` →
//!   `{count, smallest_id, greatest_id, consumers, messages}` (`XPENDING`).
//!
//! The same operations are [`RedisStreams`] for Rust code.
//!
//! ## Event source and sink ([`events`] module)
//!
//! The plugin is an event source and sink for event pipelines
//! ([`PluginManager::open_source`](kernelize_core::PluginManager::open_source) /
//! `open_sink`).
//!
//! - Source ([`RedisEventSource`], options [`RedisSourceOptions`]): `{stream, group,
//!   consumer, batch (100, at most 10,000), block_ms (5,000), create_group (true),
//!   group_start ("0"), claim_idle_ms (60,000; 0 for no claiming), content_type
//!   ("application/octet-stream"), payload_field ("payload")}`. It reads `XREADGROUP >` at
//!   most `batch` entries at a time (only once the previous were handed out) and every
//!   `claim_idle_ms / 2` claims (`XAUTOCLAIM`) entries pending longer than `claim_idle_ms` —
//!   those of crashed consumers, and its own retried ones — and hands them out again.
//! - Events: `id` the entry id, `subject` the stream, `payload` the `payload_field` as bytes
//!   of the entry's `content_type` field (else the option's), or, for an entry without that
//!   field, a JSON object of all its fields; `key` the `key` (else `message_id`) field;
//!   `headers` the other fields; `attempt` 1 for a new entry and the group's delivery count
//!   (`XPENDING`) for a claimed one.
//! - Settling: `ack` is `XACK`; `reject` is `XACK` too (the pipeline dead-lettered it);
//!   `retry` leaves the entry pending, and it comes back through the claim after
//!   `claim_idle_ms` — that stands for the retry's `delay`, which Redis cannot schedule. A
//!   delivery dropped unsettled comes back the same way. A delivery taking longer than
//!   `claim_idle_ms` may be claimed and delivered again meanwhile: keep it above the time a
//!   message takes to process.
//! - Failures: the connection manager reconnects after a drop; reads that fail while Redis
//!   does not answer are retried with backoff (100 ms to 5 s, jitter) until the receive is
//!   cancelled, and a group that vanished (Redis restarted without persistence) is created
//!   again when `create_group` is on. Entries pending in the group survive reconnects, so
//!   settling works again once Redis is back; while it is down, settling fails with a
//!   temporary error and the entry stays pending (at least once, never lost).
//! - Sink ([`RedisEventSink`], options [`RedisSinkOptions`]): `{stream, maxlen?,
//!   payload_field ("payload")}`: one `XADD` per event (per row for records), all of a batch
//!   in one pipeline, with the body in `payload_field`, its media type in `content_type`,
//!   `key` from the event's key and the event's headers as fields, so the source reads them
//!   back unchanged. Bodies are text: JSON as its text, UTF-8 bytes as they are; other bytes
//!   are refused for that event (base64 them first). Events that fail are named in the
//!   `WriteReport`; a batch none of which was written (Redis down) fails as a whole with a
//!   temporary error. Streams do not de-duplicate: a retried write may append twice.
//!
//! ## Limits and failures
//!
//! `count`, `keys`, `ids` and published entries are at most 10,000 per call; `block_ms` at
//! most 300,000. Every command is bounded by `command_timeout` and by the call's deadline
//! and cancellation. A dropped connection fails the command in flight with a temporary
//! error (retry policies retry it) and is re-opened for the next. A missing group is a
//! `not found` error that says to set `create_group`.

mod actions;
mod cache;
mod client;
mod config;
pub mod events;
pub mod streams;

use std::sync::LazyLock;

use async_trait::async_trait;
use kernelize_core::plugin::{
    ActionContext, ActionRouter, Call, Category, Handler, HealthReport, InitContext, Plugin,
    PluginMetadata,
};
use kernelize_core::{
    Error, ErrorKind, EventSink, EventSource, Payload, Permission, PermissionGuard, PluginFactory,
    Result,
};
use serde_json::Value;

pub use actions::{
    Ack, AckConfig, Acknowledged, ClaimStuck, ClaimStuckConfig, Consume, ConsumeConfig, Consumed,
    Delete, DeleteConfig, DeleteOutcome, Get, GetConfig, Pending, PendingConfig, Publish,
    PublishConfig, Published, Set, SetConfig, SetOutcome,
};
pub use cache::{RedisCache, SetOptions};
pub use client::{REDIS_CODE, RedisClient};
pub use config::{DEFAULT_PORT, MAX_BATCH, MAX_BLOCK, RedisSettings, RedisUrl};
pub use events::{RedisEventSink, RedisEventSource, RedisSinkOptions, RedisSourceOptions};
pub use streams::{
    ClaimedMessages, ConsumeOptions, ConsumerPending, MaxLen, PendingMessage, PendingQuery,
    PendingSummary, RedisStreams, StreamMessage,
};

use client::within_call;

/// The plugin's id.
pub const ID: &str = "redis-connector";

static ROUTER: LazyLock<ActionRouter<RedisConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Get>()
        .action::<Set>()
        .action::<Delete>()
        .action::<Publish>()
        .action::<Consume>()
        .action::<Ack>()
        .action::<ClaimStuck>()
        .action::<Pending>()
});

/// The `redis-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(RedisConnector::new()))
}

/// The `redis-connector` plugin. Made by [`factory`] and connected by the manager's
/// `initialize`, or connected directly with [`RedisConnector::connect`].
#[derive(Debug, Default)]
pub struct RedisConnector {
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    cache: RedisCache,
    streams: RedisStreams,
    /// The grants of activation, checked when a source or sink is opened.
    permissions: PermissionGuard,
}

impl RedisConnector {
    /// A connector not yet connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `settings` and the network grant in `permissions` (each call's grants are
    /// checked too), then connects.
    pub async fn connect(settings: RedisSettings, permissions: &PermissionGuard) -> Result<Self> {
        settings.check()?;
        check_network(&settings.url, permissions)?;
        let client = RedisClient::connect(&settings).await?;
        Ok(RedisConnector {
            open: Some(Open {
                cache: RedisCache::new(client.clone()),
                streams: RedisStreams::new(client),
                permissions: permissions.clone(),
            }),
        })
    }

    /// The connection, after checking the call's grants.
    fn open(&self, ctx: &ActionContext) -> Result<&Open> {
        let open = self.open.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "the redis-connector is not initialized",
            )
        })?;
        check_network(open.cache.client().url(), &ctx.permissions)?;
        Ok(open)
    }

    /// Opens an event source with `options` (see the module docs).
    pub async fn source(&self, options: RedisSourceOptions) -> Result<RedisEventSource> {
        let open = self.open_for_events()?;
        RedisEventSource::open(open.streams.clone(), options).await
    }

    /// Opens an event sink with `options` (see the module docs).
    pub fn sink(&self, options: RedisSinkOptions) -> Result<RedisEventSink> {
        let open = self.open_for_events()?;
        RedisEventSink::new(open.streams.clone(), options)
    }

    /// The connection, after checking the grants of activation.
    fn open_for_events(&self) -> Result<&Open> {
        let open = self.open.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "the redis-connector is not initialized",
            )
        })?;
        check_network(open.cache.client().url(), &open.permissions)?;
        Ok(open)
    }
}

/// Reads a source's or sink's options.
fn event_options<T: serde::de::DeserializeOwned>(options: Value, role: &str) -> Result<T> {
    serde_json::from_value(options).map_err(|e| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("the redis-connector's {role} options are not valid: {e}"),
        )
    })
}

/// Checks the grant of network access to the server's host.
fn check_network(url: &RedisUrl, guard: &PermissionGuard) -> Result<()> {
    crate::network::check_network(
        &url.permission(),
        url.host(),
        url.redacted(),
        guard,
        "the Redis server",
        "redis",
    )
}

#[async_trait]
impl Plugin for RedisConnector {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(ID, "Redis", semver::Version::new(0, 1, 0), Category::Connector)
            .description(
                "Caches JSON values with a TTL and publishes and consumes Redis Streams with consumer groups (ack, claim of stuck messages, pending lists).",
            )
            .author("Kernelize")
            .needs(Permission::Network { host: "*".into() })
            .config_type::<RedisSettings>()
            .actions(ROUTER.descriptors())
            .event_source::<RedisSourceOptions>()
            .event_sink::<RedisSinkOptions>()
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: RedisSettings = ctx.config.parse()?;
        *self = RedisConnector::connect(settings, &ctx.permissions)
            .await
            .map_err(|e| ctx.config.redactor().redact_error(e))?;
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }

    async fn health(&self) -> HealthReport {
        match &self.open {
            None => HealthReport::unhealthy("not initialized"),
            Some(open) => match open.cache.client().ping().await {
                Ok(()) => HealthReport::healthy(),
                Err(e) => HealthReport::unhealthy(e.message().to_string()),
            },
        }
    }

    async fn open_source(&self, options: Value) -> Result<Box<dyn EventSource>> {
        let options: RedisSourceOptions = event_options(options, "source")?;
        Ok(Box::new(self.source(options).await?))
    }

    async fn open_sink(&self, options: Value) -> Result<std::sync::Arc<dyn EventSink>> {
        let options: RedisSinkOptions = event_options(options, "sink")?;
        Ok(std::sync::Arc::new(self.sink(options)?))
    }
}

#[async_trait]
impl Handler<Get> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: GetConfig,
        _input: Payload,
    ) -> Result<Value> {
        let open = self.open(&ctx)?;
        let value = within_call(&ctx, open.cache.get_json(&config.key)).await?;
        Ok(value.unwrap_or(Value::Null))
    }
}

#[async_trait]
impl Handler<Set> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SetConfig,
        input: Payload,
    ) -> Result<SetOutcome> {
        let open = self.open(&ctx)?;
        let value = match config.value {
            Some(v) => v,
            None => input.into_json()?,
        };
        if value.is_null() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "nothing to cache: give `value` or an input (null is refused, it reads back like a miss)",
            )
            .with_context("key", &config.key));
        }
        let options = SetOptions {
            ttl: config.ttl,
            only_if_absent: config.only_if_absent,
        };
        let stored = within_call(&ctx, open.cache.set(&config.key, &value, options)).await?;
        Ok(SetOutcome { stored })
    }
}

#[async_trait]
impl Handler<Delete> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: DeleteConfig,
        _input: Payload,
    ) -> Result<DeleteOutcome> {
        let open = self.open(&ctx)?;
        let deleted = within_call(&ctx, open.cache.delete(&config.keys)).await?;
        Ok(DeleteOutcome { deleted })
    }
}

/// A JSON value as an entry's fields: strings as they are, null as empty, the rest as
/// JSON text.
fn fields_of(object: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// The entries a `publish` call gives: its `fields`, else its input.
fn entries_of(config: &PublishConfig, input: Payload) -> Result<Vec<Vec<(String, String)>>> {
    if let Some(fields) = &config.fields {
        let object: serde_json::Map<String, Value> =
            fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        return Ok(vec![fields_of(&object)]);
    }
    let not_objects = |what: &str| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("`publish` takes `fields`, or an input of JSON objects or records; got {what}"),
        )
    };
    match input.into_json()? {
        Value::Object(object) => Ok(vec![fields_of(&object)]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(object) => Ok(fields_of(object)),
                other => Err(not_objects(&format!(
                    "item {i}: {}",
                    kernelize_core::payload::json_type_name(other)
                ))),
            })
            .collect(),
        Value::Null => Err(not_objects("nothing")),
        other => Err(not_objects(kernelize_core::payload::json_type_name(&other))),
    }
}

#[async_trait]
impl Handler<Publish> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: PublishConfig,
        input: Payload,
    ) -> Result<Published> {
        let open = self.open(&ctx)?;
        let entries = entries_of(&config, input)?;
        let maxlen = config.maxlen.map(|len| MaxLen {
            len,
            exact: config.exact_maxlen,
        });
        let ids = within_call(&ctx, open.streams.publish(&config.stream, &entries, maxlen)).await?;
        Ok(Published { ids })
    }
}

#[async_trait]
impl Handler<Consume> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ConsumeConfig,
        _input: Payload,
    ) -> Result<Consumed> {
        let open = self.open(&ctx)?;
        if config.create_group {
            within_call(
                &ctx,
                open.streams
                    .create_group(&config.stream, &config.group, &config.group_start),
            )
            .await?;
        }
        let mut block = config
            .block_ms
            .map(std::time::Duration::from_millis)
            .filter(|b| !b.is_zero());
        // Never block past the call's deadline: come back empty instead of timing out.
        if let (Some(b), Some(deadline)) = (block, ctx.deadline) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let margin = open.streams.client().command_timeout().min(left / 2);
            block = Some(
                b.min(left.saturating_sub(margin))
                    .max(std::time::Duration::from_millis(1)),
            );
        }
        let options = ConsumeOptions {
            group: config.group,
            consumer: config.consumer,
            count: config.count,
            block,
        };
        let messages = within_call(&ctx, open.streams.consume(&config.stream, &options)).await?;
        Ok(Consumed { messages })
    }
}

#[async_trait]
impl Handler<Ack> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: AckConfig,
        input: Payload,
    ) -> Result<Acknowledged> {
        let open = self.open(&ctx)?;
        let ids = match config.ids {
            Some(ids) => ids,
            None => ids_of_messages(input)?,
        };
        let acknowledged =
            within_call(&ctx, open.streams.ack(&config.stream, &config.group, &ids)).await?;
        Ok(Acknowledged { acknowledged })
    }
}

/// The ids of an input's `messages` (the output of `consume` or `claim_stuck`).
fn ids_of_messages(input: Payload) -> Result<Vec<String>> {
    let value = input.into_json()?;
    let messages = value
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "`ack` needs `ids`, or an input with `messages` (the output of `consume`)",
            )
        })?;
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("input message {i} has no string `id`"),
                    )
                })
        })
        .collect()
}

#[async_trait]
impl Handler<ClaimStuck> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ClaimStuckConfig,
        _input: Payload,
    ) -> Result<ClaimedMessages> {
        let open = self.open(&ctx)?;
        within_call(
            &ctx,
            open.streams.claim_stuck(
                &config.stream,
                &config.group,
                &config.consumer,
                std::time::Duration::from_millis(config.min_idle_ms),
                config.count,
                &config.cursor,
            ),
        )
        .await
    }
}

#[async_trait]
impl Handler<Pending> for RedisConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: PendingConfig,
        _input: Payload,
    ) -> Result<PendingSummary> {
        let open = self.open(&ctx)?;
        let query = PendingQuery {
            count: config.count,
            consumer: config.consumer,
            min_idle: config.min_idle_ms.map(std::time::Duration::from_millis),
        };
        within_call(
            &ctx,
            open.streams.pending(&config.stream, &config.group, &query),
        )
        .await
    }
}
