//! `nats-connector`: NATS JetStream — publish with acknowledgements and de-duplication,
//! streams, durable pull consumers (fetch, ack, nak, term) — and an event source and sink
//! for event pipelines, on one reconnecting connection.
//!
//! ## Client
//!
//! [`async-nats`](https://crates.io/crates/async-nats), the NATS maintainers' own async
//! client, on tokio: one connection that multiplexes every publish, request and
//! subscription, and reconnects by itself (with backoff, for ever) after a drop, buffering
//! commands meanwhile. Only its `jetstream` feature is built (no WebSocket, key-value, object
//! store or service API), without the `server_2_10`+ features, so the requests it makes are
//! understood by servers from 2.9 on. The alternative weighed was the older synchronous
//! [`nats`](https://crates.io/crates/nats) crate: deprecated by the same maintainers, and
//! blocking, so every call would have needed `spawn_blocking`. Stream and consumer requests
//! go through JetStream's JSON API with the crate's config and info types; pulls are requests
//! of our own on `$JS.API.CONSUMER.MSG.NEXT`, so that each status the server answers a pull
//! with (no messages, expired, consumer deleted, message larger than `max_bytes`) becomes
//! the right outcome rather than a silently ended batch. TLS (`tls://`) and WebSockets are
//! not built in yet and are refused with a clear error.
//!
//! ## Settings ([`NatsSettings`])
//!
//! | setting           | default       | meaning |
//! |-------------------|---------------|---------|
//! | `url`             | —             | `nats://[user:password@\|token@]host[:port]` (port 4222 when absent); write credentials as `${secret:NAME}` |
//! | `user`            | none          | the user to log in as, with `password`, when the URL has no credentials |
//! | `password`        | none          | the user's password, a secret |
//! | `token`           | none          | a token to log in with instead, a secret |
//! | `connect_timeout` | `"5s"`        | how long connecting may take |
//! | `request_timeout` | `"5s"`        | how long a JetStream request, a publish acknowledgement or a message acknowledgement may take |
//! | `connection_name` | `"kernelize"` | the connection's name in the server's monitoring |
//!
//! Credentials are taken out of the URL before it reaches the client; they never appear in
//! `Debug` output, serialized settings or error messages ([`NatsUrl`]). Credentials given
//! both in the URL and as settings, a user without a password, or a user and a token
//! together are refused. Unknown settings are refused.
//!
//! ## Permissions
//!
//! `network` to the URL's host, checked at activation, at every call and when a source or
//! sink is opened; without it the call fails with `permission denied` naming the host. The
//! client connects to that server only: servers a cluster announces are ignored, so that the
//! grant covers every connection it makes.
//!
//! ## Actions
//!
//! - `publish` `{subject, msg_id?, headers?}` → `{messages: [{stream, sequence,
//!   duplicate}]}`. The input is the body: JSON serialized as one message
//!   (`Content-Type: application/json`), bytes as they are (their media type as
//!   `Content-Type`), records one JSON message per row (at most 10,000). Each message is
//!   published with JetStream and its acknowledgement awaited. `msg_id` becomes
//!   `Nats-Msg-Id` (`{msg_id}-{n}` for row `n`): the stream stores one message per id
//!   within its duplicate window and answers `duplicate: true` for the others. A subject no
//!   stream takes is a `not found` error.
//! - `create_stream` `{name, subjects, max_age?, duplicate_window?, storage?}` → the stream's
//!   summary `{name, subjects, storage, max_age, duplicate_window, messages, bytes,
//!   first_sequence, last_sequence, consumers}`. An existing stream of the same
//!   configuration is fine; one of another configuration is an `invalid input` error.
//! - `delete_stream` `{name}` → `{deleted}` (`false` when there was none).
//! - `stream_info` `{name}` → the summary; a missing stream is `not found` naming it.
//! - `create_consumer` `{stream, durable, filter_subject?, ack_wait?, max_deliver?,
//!   max_ack_pending?, backoff?, deliver_policy?, start_sequence?}` → the consumer's summary
//!   `{stream, durable, filter_subject, ack_wait, max_deliver, max_ack_pending, backoff,
//!   deliver_policy, num_pending,
//!   num_ack_pending, num_redelivered, num_waiting, delivered_sequence,
//!   ack_floor_sequence}`: a durable pull consumer with explicit acknowledgements. An
//!   existing consumer of that name is updated where the server allows the change.
//! - `consumer_info` `{stream, durable}` → the summary.
//! - `fetch` `{stream, durable, batch, expires?, max_bytes?}` → `{messages: [{sequence,
//!   subject, headers, data, base64, delivered, msg_id?, ack_token}]}`. `data` is the body's
//!   JSON value when it parses as JSON, else the body in base64 with `base64: true`. Without
//!   `expires` only the messages waiting now come; with it, the fetch waits that long for
//!   `batch` messages. Fetched messages stay pending until settled, or until the consumer's
//!   `ack_wait` passes and they are delivered again.
//! - `ack`, `term` `{stream, durable, ack_tokens?, sequences?}` and `nak` `{..., delay?}` →
//!   `{settled, sequences}`. The `ack_token` of a fetched message is its JetStream reply
//!   subject, opaque to the user: give the tokens, or give the output of `fetch` as the input
//!   (with `sequences` to settle only the messages of those stream sequences). Each is sent
//!   as a request and counts once the server confirmed it (JetStream's double ack). A token
//!   of another stream or consumer is refused. `ack` is done; `nak` delivers again (after
//!   `delay`); `term` never again.
//!
//! ```sh
//! kernelize exec nats-connector fetch --json --plugin-config "$NATS" \
//!   --config '{"stream": "ORDERS", "durable": "billing", "batch": 10}' > fetched.json
//! kernelize exec nats-connector ack --json --plugin-config "$NATS" \
//!   --config '{"stream": "ORDERS", "durable": "billing", "sequences": [41, 42]}' \
//!   --input fetched.json
//! ```
//!
//! The same operations are [`NatsJetStream`] for Rust code.
//!
//! ## Event source ([`NatsSourceOptions`], [`NatsSource`])
//!
//! `{stream, durable, filter_subject?, batch (100), expires ("5s"), ack_wait ("30s"),
//! max_deliver?, max_ack_pending?, confirm_acks (true), create (false), subjects?,
//! content_type ("application/octet-stream"), max_bytes?}`. A durable pull consumer: each pull asks for
//! up to `batch` messages (the most the source ever holds) and waits up to `expires`;
//! `receive` hands them out one at a time. With `create`, a missing stream (of `subjects`,
//! else `filter_subject`) and consumer (with `ack_wait`, `max_deliver`, `max_ack_pending`)
//! are created; without it, they must exist.
//!
//! The server delivers no more than the consumer's `max_ack_pending` messages (1,000 unless
//! set) before some are acknowledged. A pipeline whose sink batches more events than that,
//! or whose `max_in_flight` is larger, waits on it: set `max_ack_pending` to at least the
//! pipeline's `max_in_flight`.
//!
//! Each settlement waits for the server's confirmation (a double ack) unless
//! `confirm_acks: false`; then settlements go out without a round trip, as most NATS
//! clients send them, and one lost with a dropped connection means a redelivery after
//! `ack_wait`, never a loss. A NATS → PostgreSQL pipeline went from about 25 k to about
//! 40 k rows/s with it on a two-core machine (`kernelize-workflow/BENCHMARKS.md`).
//!
//! A message becomes an [`Event`](kernelize_core::Event): `id` its stream sequence, `key`
//! its `Nats-Msg-Id`, `subject` its subject, `headers` its headers, `payload` its body as
//! bytes of its `Content-Type` (else `content_type`), `attempt` the server's delivery count.
//! Settling: `Ack` → `+ACK` as a request, returning once the server confirmed it; `Retry
//! {delay}` → `-NAK` with the delay; `Reject` → `+TERM`. A delivery dropped unsettled is
//! delivered again after `ack_wait`.
//!
//! After a connection loss the pull in flight is abandoned with the messages it still had
//! buffered (they could not be settled; the server delivers them again after `ack_wait`),
//! and a new one is sent once the client has reconnected; failures meanwhile are logged and
//! retried with backoff (100 ms doubling to 5 s, jittered) until the cancel token fires. Only a missing stream or consumer
//! and invalid options end `receive` with an error. A delivery settled after a reconnect is
//! still settled: JetStream's ack subjects name the stream sequence, not the connection, and
//! the server confirms the settlement; when the server cannot be reached, settling fails
//! with a temporary error and the server delivers the message again after `ack_wait`.
//!
//! ## Event sink ([`NatsSinkOptions`], [`NatsSink`])
//!
//! `{subject?, copy_headers (true)}`. `subject` may hold `{key}` (`orders.{key}`); without
//! it each event goes to its own subject. Bytes are published as they are, JSON serialized,
//! records one message per row; the event's key is the `Nats-Msg-Id` (`{key}-{row}` for
//! rows), and its headers are copied (not `Nats-*` ones). A batch is published whole (in
//! waves of 1,000), then all acknowledgements are awaited together: events whose messages
//! were not all acknowledged are the [`WriteReport`](kernelize_core::WriteReport)'s
//! failures; when none was written the write is an error, temporary when the server could
//! not be reached. A message whose acknowledgement timed out may still be stored (the
//! client sends what it buffered once reconnected): give events a key, so that the stream
//! drops the copy when the write is retried within its duplicate window.
//!
//! ## Limits and failures
//!
//! `batch`, published rows and settled tokens are at most 10,000 per call; `expires` at most
//! 5 minutes; a fetch returns at most `max_bytes` (16 MiB) of bodies; a message larger than
//! the server's `max_payload` is refused before it is sent. Every request is bounded by
//! `request_timeout` and by the call's deadline and cancellation. A server that cannot be
//! reached fails calls with temporary errors (retry policies retry them): while the client
//! is disconnected, publishes, fetches and settlements fail at once rather than wait in the
//! client's buffer for the next connection, where they would take effect after their caller
//! was told they failed. A missing stream or consumer is `not found` naming it, with a hint.

mod actions;
mod client;
mod config;
mod jetstream;
mod sink;
mod source;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use kernelize_core::plugin::{
    ActionContext, ActionRouter, Call, Category, Handler, HealthReport, InitContext, Plugin,
    PluginMetadata,
};
use kernelize_core::{
    Error, ErrorKind, EventSink, EventSource, Payload, Permission, PermissionGuard, PluginFactory,
    Result, Settlement,
};
use serde_json::Value;

pub use actions::{
    AckMessages, ConsumerConfig, ConsumerInfo, CreateConsumer, CreateConsumerConfig, CreateStream,
    CreateStreamConfig, DeleteStream, Fetch, FetchConfig, Fetched, NakConfig, NakMessages, Publish,
    PublishConfig, PublishOutcome, SettleConfig, Settled, StreamConfig, StreamDeleted, StreamInfo,
    TermMessages,
};
pub use client::{NATS_CODE, NatsClient};
pub use config::{DEFAULT_PORT, MAX_BATCH, MAX_EXPIRES, MAX_TIMEOUT, NatsSettings, NatsUrl};
pub use jetstream::{
    AckToken, CONTENT_TYPE, ConsumerSpec, ConsumerSummary, DeliverPolicy, FetchOptions,
    FetchedMessage, MSG_ID, NatsJetStream, OutgoingMessage, Published, Storage, StreamSpec,
    StreamSummary,
};
pub use sink::{NatsSink, NatsSinkOptions};
pub use source::{NatsSource, NatsSourceOptions};

use client::within_call;

/// The plugin's id.
pub const ID: &str = "nats-connector";

/// How many settlements are awaited at once.
const SETTLE_WAVE: usize = 1_000;

static ROUTER: LazyLock<ActionRouter<NatsConnector>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Publish>()
        .action::<CreateStream>()
        .action::<DeleteStream>()
        .action::<StreamInfo>()
        .action::<CreateConsumer>()
        .action::<ConsumerInfo>()
        .action::<Fetch>()
        .action::<AckMessages>()
        .action::<NakMessages>()
        .action::<TermMessages>()
});

/// The `nats-connector` plugin's factory, for a registry or a manager.
pub fn factory() -> PluginFactory {
    PluginFactory::new(|| Box::new(NatsConnector::new()))
}

/// The `nats-connector` plugin. Made by [`factory`] and connected by the manager's
/// `initialize`, or connected directly with [`NatsConnector::connect`].
#[derive(Debug, Default)]
pub struct NatsConnector {
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    jetstream: NatsJetStream,
    /// The grants of activation, for opening sources and sinks (which get none of their own).
    permissions: PermissionGuard,
}

impl NatsConnector {
    /// A connector not yet connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `settings` and the network grant in `permissions` (each call's grants are
    /// checked too), then connects.
    pub async fn connect(settings: NatsSettings, permissions: &PermissionGuard) -> Result<Self> {
        settings.check()?;
        check_network(&settings.url, permissions)?;
        let client = NatsClient::connect(&settings).await?;
        Ok(NatsConnector {
            open: Some(Open {
                jetstream: NatsJetStream::new(client),
                permissions: permissions.clone(),
            }),
        })
    }

    /// The JetStream operations, after checking `permissions`.
    fn jetstream(&self, permissions: Option<&PermissionGuard>) -> Result<&NatsJetStream> {
        let open = self.open.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                "the nats-connector is not initialized",
            )
        })?;
        let guard = permissions.unwrap_or(&open.permissions);
        check_network(open.jetstream.client().url(), guard)?;
        Ok(&open.jetstream)
    }

    /// The JetStream operations, after checking the call's grants.
    fn open(&self, ctx: &ActionContext) -> Result<&NatsJetStream> {
        self.jetstream(Some(&ctx.permissions))
    }
}

/// Checks the grant of network access to the server's host.
fn check_network(url: &NatsUrl, guard: &PermissionGuard) -> Result<()> {
    crate::network::check_network(
        &url.permission(),
        url.host(),
        url.redacted(),
        guard,
        "the NATS server",
        "nats",
    )
}

#[async_trait]
impl Plugin for NatsConnector {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(ID, "NATS", semver::Version::new(0, 1, 0), Category::Connector)
            .description(
                "Publishes to NATS JetStream with acknowledgements and de-duplication, manages streams and durable pull consumers, fetches and settles messages (ack, nak with delay, term); an event source and sink for pipelines.",
            )
            .author("Kernelize")
            .needs(Permission::Network { host: "*".into() })
            .config_type::<NatsSettings>()
            .actions(ROUTER.descriptors())
            .event_source::<NatsSourceOptions>()
            .event_sink::<NatsSinkOptions>()
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        let settings: NatsSettings = ctx.config.parse()?;
        *self = NatsConnector::connect(settings, &ctx.permissions)
            .await
            .map_err(|e| ctx.config.redactor().redact_error(e))?;
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }

    async fn shutdown(&self) -> Result<()> {
        if let Some(open) = &self.open {
            // Best effort: what was published is sent before the plugin goes.
            let _ = open.jetstream.client().ping().await;
        }
        Ok(())
    }

    async fn health(&self) -> HealthReport {
        match &self.open {
            None => HealthReport::unhealthy("not initialized"),
            Some(open) => match open.jetstream.client().ping().await {
                Ok(()) => HealthReport::healthy(),
                Err(e) => HealthReport::unhealthy(e.message().to_string()),
            },
        }
    }

    async fn open_source(&self, options: Value) -> Result<Box<dyn EventSource>> {
        let jetstream = self.jetstream(None)?;
        let options: NatsSourceOptions = serde_json::from_value(options).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("invalid nats-connector source options: {e}"),
            )
        })?;
        Ok(Box::new(
            NatsSource::open(jetstream.clone(), options).await?,
        ))
    }

    async fn open_sink(&self, options: Value) -> Result<Arc<dyn EventSink>> {
        let jetstream = self.jetstream(None)?;
        let options: NatsSinkOptions = serde_json::from_value(options).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("invalid nats-connector sink options: {e}"),
            )
        })?;
        Ok(Arc::new(NatsSink::new(jetstream.clone(), options)?))
    }
}

/// The messages a `publish` call's input becomes.
fn messages_of(config: &PublishConfig, input: Payload) -> Result<Vec<OutgoingMessage>> {
    let message =
        |body: bytes::Bytes, content_type: &str, msg_id: Option<String>| OutgoingMessage {
            subject: config.subject.clone(),
            body,
            headers: config.headers.clone(),
            msg_id,
            content_type: Some(content_type.to_string()),
        };
    match input {
        Payload::Empty => Err(Error::new(
            ErrorKind::InvalidInput,
            "`publish` needs an input: the message body (JSON, bytes or records)",
        )),
        Payload::Json(value) => Ok(vec![message(
            serde_json::to_vec(&value)?.into(),
            kernelize_core::payload::MEDIA_JSON,
            config.msg_id.clone(),
        )]),
        Payload::Bytes(blob) => Ok(vec![message(
            blob.data.clone(),
            &blob.media_type,
            config.msg_id.clone(),
        )]),
        Payload::Records(records) => {
            if records.num_rows() > MAX_BATCH {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "`publish` takes at most {MAX_BATCH} rows a call; got {}",
                        records.num_rows()
                    ),
                ));
            }
            records
                .to_json_rows()?
                .iter()
                .enumerate()
                .map(|(n, row)| {
                    Ok(message(
                        serde_json::to_vec(row)?.into(),
                        kernelize_core::payload::MEDIA_JSON,
                        config.msg_id.as_ref().map(|id| format!("{id}-{n}")),
                    ))
                })
                .collect()
        }
    }
}

#[async_trait]
impl Handler<Publish> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: PublishConfig,
        input: Payload,
    ) -> Result<PublishOutcome> {
        let jetstream = self.open(&ctx)?;
        let messages = messages_of(&config, input)?;
        let results = within_call(&ctx, async { Ok(jetstream.publish(&messages).await) }).await?;
        let total = results.len();
        let mut published = Vec::with_capacity(total);
        for (n, result) in results.into_iter().enumerate() {
            match result {
                Ok(ack) => published.push(ack),
                Err(e) => {
                    let done = published.len();
                    return Err(e
                        .with_context("message", n)
                        .with_context("published", format!("{done} of {total}")));
                }
            }
        }
        Ok(PublishOutcome {
            messages: published,
        })
    }
}

#[async_trait]
impl Handler<CreateStream> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: CreateStreamConfig,
        _input: Payload,
    ) -> Result<StreamSummary> {
        let jetstream = self.open(&ctx)?;
        let spec = StreamSpec {
            name: config.name,
            subjects: config.subjects,
            max_age: config.max_age,
            duplicate_window: config.duplicate_window,
            storage: config.storage,
        };
        within_call(&ctx, jetstream.create_stream(&spec)).await
    }
}

#[async_trait]
impl Handler<DeleteStream> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: StreamConfig,
        _input: Payload,
    ) -> Result<StreamDeleted> {
        let jetstream = self.open(&ctx)?;
        let deleted = within_call(&ctx, jetstream.delete_stream(&config.name)).await?;
        Ok(StreamDeleted { deleted })
    }
}

#[async_trait]
impl Handler<StreamInfo> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: StreamConfig,
        _input: Payload,
    ) -> Result<StreamSummary> {
        let jetstream = self.open(&ctx)?;
        within_call(&ctx, jetstream.stream_info(&config.name)).await
    }
}

#[async_trait]
impl Handler<CreateConsumer> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: CreateConsumerConfig,
        _input: Payload,
    ) -> Result<ConsumerSummary> {
        let jetstream = self.open(&ctx)?;
        let spec = ConsumerSpec {
            durable: config.durable,
            filter_subject: config.filter_subject,
            ack_wait: config.ack_wait,
            max_deliver: config.max_deliver,
            max_ack_pending: config.max_ack_pending,
            backoff: config.backoff,
            deliver_policy: config.deliver_policy,
            start_sequence: config.start_sequence,
        };
        within_call(&ctx, jetstream.create_consumer(&config.stream, &spec)).await
    }
}

#[async_trait]
impl Handler<ConsumerInfo> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: ConsumerConfig,
        _input: Payload,
    ) -> Result<ConsumerSummary> {
        let jetstream = self.open(&ctx)?;
        within_call(
            &ctx,
            jetstream.consumer_info(&config.stream, &config.durable),
        )
        .await
    }
}

#[async_trait]
impl Handler<Fetch> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: FetchConfig,
        _input: Payload,
    ) -> Result<Fetched> {
        let jetstream = self.open(&ctx)?;
        let mut expires = config.expires.filter(|e| !e.is_zero());
        // Never wait past the call's deadline: come back with what came instead.
        if let (Some(e), Some(deadline)) = (expires, ctx.deadline) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let margin = jetstream.client().request_timeout().min(left / 2);
            expires = Some(
                e.min(left.saturating_sub(margin))
                    .max(std::time::Duration::from_millis(1)),
            );
        }
        let options = FetchOptions {
            batch: config.batch,
            expires,
            max_bytes: Some(config.max_bytes),
        };
        let messages = within_call(
            &ctx,
            jetstream.fetch(&config.stream, &config.durable, &options),
        )
        .await?;
        Ok(Fetched { messages })
    }
}

/// The deliveries a settling call names: its `ack_tokens`, else the input's fetched
/// messages; only those of `sequences` when given. Each must be of `stream` and `durable`.
fn tokens_of(
    stream: &str,
    durable: &str,
    ack_tokens: Option<Vec<String>>,
    sequences: Option<&[u64]>,
    input: Payload,
) -> Result<Vec<AckToken>> {
    let texts: Vec<String> = match ack_tokens {
        Some(tokens) => tokens,
        None => {
            let value = input.into_json()?;
            let messages = value
                .get("messages")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        "give `ack_tokens`, or the output of `fetch` (with its `messages`) as the input",
                    )
                })?;
            messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    m.get("ack_token")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::InvalidInput,
                                format!("input message {i} has no string `ack_token`"),
                            )
                        })
                })
                .collect::<Result<_>>()?
        }
    };
    if texts.len() > MAX_BATCH {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("at most {MAX_BATCH} deliveries a call; got {}", texts.len()),
        ));
    }
    let mut tokens = texts
        .iter()
        .map(|t| AckToken::parse(t))
        .collect::<Result<Vec<_>>>()?;
    if let Some(wanted) = sequences {
        if let Some(missing) = wanted
            .iter()
            .find(|s| !tokens.iter().any(|t| t.sequence() == **s))
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("no delivery of stream sequence {missing} is among the ack tokens given"),
            ));
        }
        tokens.retain(|t| wanted.contains(&t.sequence()));
    }
    if let Some(other) = tokens
        .iter()
        .find(|t| t.stream() != stream || t.consumer() != durable)
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the ack token of message {} belongs to consumer `{}` of stream `{}`, not `{durable}` of `{stream}`",
                other.sequence(),
                other.consumer(),
                other.stream()
            ),
        ));
    }
    Ok(tokens)
}

/// Settles every delivery, awaiting up to 1,000 confirmations at once; fails naming the
/// first that failed (and how many were settled) when any did.
async fn settle_all(
    jetstream: &NatsJetStream,
    tokens: &[AckToken],
    settlement: Settlement,
) -> Result<Settled> {
    let mut sequences = Vec::with_capacity(tokens.len());
    for wave in tokens.chunks(SETTLE_WAVE) {
        let results =
            futures::future::join_all(wave.iter().map(|t| jetstream.settle(t, settlement))).await;
        let mut first_error = None;
        for (token, result) in wave.iter().zip(results) {
            match result {
                Ok(()) => sequences.push(token.sequence()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.with_context("settled", sequences.len()));
        }
    }
    Ok(Settled {
        settled: sequences.len(),
        sequences,
    })
}

#[async_trait]
impl Handler<AckMessages> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SettleConfig,
        input: Payload,
    ) -> Result<Settled> {
        let jetstream = self.open(&ctx)?;
        let tokens = tokens_of(
            &config.stream,
            &config.durable,
            config.ack_tokens,
            config.sequences.as_deref(),
            input,
        )?;
        within_call(&ctx, settle_all(jetstream, &tokens, Settlement::Ack)).await
    }
}

#[async_trait]
impl Handler<NakMessages> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: NakConfig,
        input: Payload,
    ) -> Result<Settled> {
        let jetstream = self.open(&ctx)?;
        let tokens = tokens_of(
            &config.stream,
            &config.durable,
            config.ack_tokens,
            config.sequences.as_deref(),
            input,
        )?;
        let settlement = Settlement::Retry {
            delay: config.delay.filter(|d| !d.is_zero()),
        };
        within_call(&ctx, settle_all(jetstream, &tokens, settlement)).await
    }
}

#[async_trait]
impl Handler<TermMessages> for NatsConnector {
    async fn handle(
        &self,
        ctx: ActionContext,
        config: SettleConfig,
        input: Payload,
    ) -> Result<Settled> {
        let jetstream = self.open(&ctx)?;
        let tokens = tokens_of(
            &config.stream,
            &config.durable,
            config.ack_tokens,
            config.sequences.as_deref(),
            input,
        )?;
        within_call(&ctx, settle_all(jetstream, &tokens, Settlement::Reject)).await
    }
}
