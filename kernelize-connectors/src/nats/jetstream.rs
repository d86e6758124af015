//! [`NatsJetStream`]: the JetStream operations of the connector — publish with
//! acknowledgements, streams, durable pull consumers, fetch and settlement by ack token —
//! for the plugin's actions, its event source and sink, and Rust code.
//!
//! Stream and consumer management goes through JetStream's JSON API (`$JS.API.*`) with the
//! `async-nats` types for its configs and answers; pulls are requests of our own on
//! `$JS.API.CONSUMER.MSG.NEXT`, so that every status the server answers with (no messages,
//! request expired, consumer deleted, too large) is handled here rather than ending a
//! batch silently.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_nats::jetstream::consumer;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream;
use async_nats::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use kernelize_core::{Error, ErrorKind, Result, Settlement};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{CONSUMER_NOT_FOUND, NatsClient, STREAM_NOT_FOUND, duration_text};
use super::config::{MAX_BATCH, MAX_EXPIRES};

/// The JetStream API's subject prefix.
const API: &str = "$JS.API";

/// How many messages are published before their acknowledgements are awaited. Below the
/// driver's 5,000 acknowledgements in flight, so publishing never waits on itself.
const PUBLISH_WAVE: usize = 1_000;

/// How long past a pull request's expiry its answer may still come before the pull is given
/// up on (a request lost with a server restart never gets one).
const PULL_GRACE: Duration = Duration::from_secs(5);

/// The longest subject, stream or consumer name taken.
const MAX_NAME: usize = 255;
const MAX_SUBJECT: usize = 2_048;

/// The header a message's media type travels in.
pub const CONTENT_TYPE: &str = "Content-Type";

/// The header JetStream de-duplicates by.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// On disk: kept across server restarts (the default).
    #[default]
    File,
    /// In memory: lost when the server stops.
    Memory,
}

/// Which messages a new consumer starts with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    /// Every message of the stream (the default).
    #[default]
    All,
    /// The last message only, then new ones.
    Last,
    /// Only messages published from now on.
    New,
    /// The last message of each subject, then new ones.
    LastPerSubject,
    /// From the stream sequence `start_sequence` on.
    ByStartSequence,
}

/// A stream to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamSpec {
    /// Its name.
    pub name: String,
    /// The subjects it stores (wildcards allowed).
    pub subjects: Vec<String>,
    /// How long messages are kept; for ever when absent.
    pub max_age: Option<Duration>,
    /// How long a `Nats-Msg-Id` is remembered for de-duplication (the server's 2 minutes
    /// when absent).
    pub duplicate_window: Option<Duration>,
    /// Where the messages are kept.
    pub storage: Storage,
}

/// A durable pull consumer to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerSpec {
    /// Its durable name.
    pub durable: String,
    /// Only messages of these subjects (wildcards allowed); all of the stream's when absent.
    pub filter_subject: Option<String>,
    /// How long a delivered message may stay unacknowledged before it is delivered again
    /// (the server's 30 seconds when absent).
    pub ack_wait: Option<Duration>,
    /// How many times a message is delivered at most; without limit when absent.
    pub max_deliver: Option<i64>,
    /// How many delivered messages may wait for their acknowledgement at once; the server
    /// stops delivering at that many (its default, 1,000, when absent).
    pub max_ack_pending: Option<i64>,
    /// Waits before each redelivery after an `ack_wait` expiry, instead of `ack_wait`.
    pub backoff: Vec<Duration>,
    /// Which messages it starts with.
    pub deliver_policy: DeliverPolicy,
    /// The first stream sequence, with [`DeliverPolicy::ByStartSequence`].
    pub start_sequence: Option<u64>,
}

/// What a stream holds and how it is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamSummary {
    /// Its name.
    pub name: String,
    /// The subjects it stores.
    pub subjects: Vec<String>,
    /// Where it keeps messages.
    pub storage: Storage,
    /// How long messages are kept (`"1h"`); `null` for ever.
    pub max_age: Option<String>,
    /// How long a message id is remembered for de-duplication.
    pub duplicate_window: Option<String>,
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Sequence of the oldest message.
    pub first_sequence: u64,
    /// Sequence of the newest message.
    pub last_sequence: u64,
    /// Consumers of the stream.
    pub consumers: usize,
}

/// A consumer's configuration and progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsumerSummary {
    /// The stream it reads.
    pub stream: String,
    /// Its durable name.
    pub durable: String,
    /// The subjects it takes; `null` for all of the stream's.
    pub filter_subject: Option<String>,
    /// How long a delivery may stay unacknowledged (`"30s"`).
    pub ack_wait: String,
    /// The most deliveries of one message; `null` without limit.
    pub max_deliver: Option<i64>,
    /// The most deliveries waiting for their acknowledgement at once.
    pub max_ack_pending: i64,
    /// Waits before redeliveries after `ack_wait` expiries.
    pub backoff: Vec<String>,
    /// Which messages it started with.
    pub deliver_policy: DeliverPolicy,
    /// Messages of the stream not delivered yet.
    pub num_pending: u64,
    /// Messages delivered and not acknowledged yet.
    pub num_ack_pending: usize,
    /// Messages delivered more than once and not acknowledged yet.
    pub num_redelivered: usize,
    /// Pull requests waiting on the server.
    pub num_waiting: usize,
    /// The stream sequence of the last delivered message.
    pub delivered_sequence: u64,
    /// The stream sequence below which every message is acknowledged.
    pub ack_floor_sequence: u64,
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    /// Its subject (no wildcards).
    pub subject: String,
    /// Its body.
    pub body: Bytes,
    /// Its headers.
    pub headers: BTreeMap<String, String>,
    /// Its `Nats-Msg-Id`: the stream stores one message per id within its duplicate window.
    pub msg_id: Option<String>,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
}

/// The stream's acknowledgement of one published message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Published {
    /// The stream that stored it.
    pub stream: String,
    /// Its stream sequence (the stored one's, for a duplicate).
    pub sequence: u64,
    /// Whether the stream already had a message of this `Nats-Msg-Id` and dropped this one.
    pub duplicate: bool,
}

/// How many messages to fetch and how long to wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// The most messages (1 to 10,000).
    pub batch: usize,
    /// How long to wait for `batch` messages; without, only what is waiting now comes.
    pub expires: Option<Duration>,
    /// The most body bytes in all (the server stops before the message that passes it).
    pub max_bytes: Option<usize>,
}

/// One fetched message, as the `fetch` action returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FetchedMessage {
    /// Its stream sequence.
    pub sequence: u64,
    /// Its subject.
    pub subject: String,
    /// Its headers (several values of one name joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// Its body: the JSON value when the body is JSON, else the body in base64.
    pub data: Value,
    /// Whether `data` is base64 text (the body is not JSON).
    pub base64: bool,
    /// How many times it has been delivered, this time included.
    pub delivered: u64,
    /// Its `Nats-Msg-Id`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// Give it back to `ack`, `nak` or `term` to settle this delivery (the JetStream reply
    /// subject).
    pub ack_token: String,
}

/// A delivery's JetStream reply subject (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream
/// seq>...`), through which it is settled.
#[derive(Clone, PartialEq, Eq)]
pub struct AckToken {
    subject: String,
    stream: String,
    consumer: String,
    delivered: u64,
    sequence: u64,
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckToken")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .field("sequence", &self.sequence)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl AckToken {
    /// Reads a reply subject of either format JetStream uses (ADR-15: 9 tokens, or 11 and
    /// more with a domain and an account hash).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidInput,
                "not a JetStream ack token (the `ack_token` of a fetched message, `$JS.ACK.<stream>.<consumer>...`)",
            )
        };
        if text.len() > MAX_SUBJECT || text.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let rest = text.strip_prefix("$JS.ACK.").ok_or_else(bad)?;
        let tokens: Vec<&str> = rest.split('.').collect();
        let at = match tokens.len() {
            7 => 0,
            n if n >= 9 => 2,
            _ => return Err(bad()),
        };
        let number = |i: usize| tokens.get(at + i).and_then(|t| t.parse::<u64>().ok());
        let (Some(delivered), Some(sequence)) = (number(2), number(3)) else {
            return Err(bad());
        };
        let (stream, consumer) = (tokens[at], tokens[at + 1]);
        if stream.is_empty() || consumer.is_empty() {
            return Err(bad());
        }
        Ok(AckToken {
            subject: text.to_string(),
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            delivered,
            sequence,
        })
    }

    /// The stream the delivery came from.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The consumer it was delivered to.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Its stream sequence.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// How many times it had been delivered.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The reply subject itself.
    pub fn as_str(&self) -> &str {
        &self.subject
    }
}

/// The JetStream operations of one connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NatsJetStream {
    client: NatsClient,
}

impl NatsJetStream {
    /// Operations on `client`'s server.
    pub fn new(client: NatsClient) -> Self {
        NatsJetStream { client }
    }

    /// The connection.
    pub fn client(&self) -> &NatsClient {
        &self.client
    }

    /// A JetStream API request, its error answer mapped.
    async fn api<T>(&self, doing: &str, subject: String, body: &Value) -> Result<T>
    where
        T: serde::de::DeserializeOwned,
    {
        self.client.ensure_connected(doing)?;
        let answer = self
            .client
            .jetstream()
            .request::<_, _, Response<T>>(subject, body)
            .await
            .map_err(|e| self.client.request_error(doing, &e))?;
        match answer {
            Response::Ok(value) => Ok(value),
            Response::Err { error } => Err(self.client.api_error(doing, &error)),
        }
    }

    /// Creates a stream; an existing stream of the same configuration is fine, one of another
    /// configuration is an `invalid input` error.
    pub async fn create_stream(&self, spec: &StreamSpec) -> Result<StreamSummary> {
        check_name("stream", &spec.name)?;
        if spec.subjects.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a stream needs at least one subject in `subjects`",
            )
            .with_context("stream", &spec.name));
        }
        for subject in &spec.subjects {
            check_subject(subject, true)?;
        }
        let config = stream::Config {
            name: spec.name.clone(),
            subjects: spec.subjects.clone(),
            max_age: spec.max_age.unwrap_or_default(),
            duplicate_window: spec.duplicate_window.unwrap_or_default(),
            storage: match spec.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: 1,
            ..Default::default()
        };
        let body = serde_json::to_value(&config).map_err(unexpected)?;
        let info: stream::Info = self
            .api(
                &format!("create stream `{}`", spec.name),
                format!("STREAM.CREATE.{}", spec.name),
                &body,
            )
            .await
            .map_err(|e| e.with_context("stream", &spec.name))?;
        Ok(stream_summary(&info))
    }

    /// Deletes a stream with its messages and consumers; `false` when there was none.
    pub async fn delete_stream(&self, name: &str) -> Result<bool> {
        check_name("stream", name)?;
        #[derive(Deserialize)]
        struct Deleted {
            success: bool,
        }
        let answer: Result<Deleted> = self
            .api(
                &format!("delete stream `{name}`"),
                format!("STREAM.DELETE.{name}"),
                &json!({}),
            )
            .await;
        match answer {
            Ok(d) => Ok(d.success),
            Err(e) if is_code(&e, STREAM_NOT_FOUND) => Ok(false),
            Err(e) => Err(e.with_context("stream", name)),
        }
    }

    /// What a stream holds; `not found` naming it when there is none.
    pub async fn stream_info(&self, name: &str) -> Result<StreamSummary> {
        check_name("stream", name)?;
        let info: stream::Info = self
            .api(
                &format!("read stream `{name}`"),
                format!("STREAM.INFO.{name}"),
                &json!({}),
            )
            .await
            .map_err(|e| e.with_context("stream", name))?;
        Ok(stream_summary(&info))
    }

    /// Creates a durable pull consumer with explicit acknowledgements. An existing consumer
    /// of that name is kept, updated where the server allows the change (`ack_wait`,
    /// `max_deliver`, `backoff`), and an error where it does not.
    pub async fn create_consumer(
        &self,
        stream: &str,
        spec: &ConsumerSpec,
    ) -> Result<ConsumerSummary> {
        check_name("stream", stream)?;
        check_name("consumer", &spec.durable)?;
        if let Some(filter) = &spec.filter_subject {
            check_subject(filter, true)?;
        }
        let invalid = |why: String| {
            Err(Error::new(ErrorKind::InvalidInput, why)
                .with_context("stream", stream)
                .with_context("consumer", &spec.durable))
        };
        if spec.max_deliver.is_some_and(|n| n < 1) {
            return invalid("`max_deliver` must be at least 1 (leave it out for no limit)".into());
        }
        if spec.max_ack_pending.is_some_and(|n| n < 1) {
            return invalid(
                "`max_ack_pending` must be at least 1 (leave it out for the server's default)"
                    .into(),
            );
        }
        if spec.ack_wait.is_some_and(|d| d.is_zero()) {
            return invalid("`ack_wait` must be more than zero".into());
        }
        if spec.backoff.len() > 100 || spec.backoff.iter().any(Duration::is_zero) {
            return invalid("`backoff` takes at most 100 waits, each more than zero".into());
        }
        let deliver_policy = match (spec.deliver_policy, spec.start_sequence) {
            (DeliverPolicy::ByStartSequence, Some(start)) if start > 0 => {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                }
            }
            (DeliverPolicy::ByStartSequence, _) => {
                return invalid(
                    "`deliver_policy: by_start_sequence` needs `start_sequence` (1 or more)".into(),
                );
            }
            (_, Some(_)) => {
                return invalid(
                    "`start_sequence` goes with `deliver_policy: by_start_sequence`".into(),
                );
            }
            (DeliverPolicy::All, None) => consumer::DeliverPolicy::All,
            (DeliverPolicy::Last, None) => consumer::DeliverPolicy::Last,
            (DeliverPolicy::New, None) => consumer::DeliverPolicy::New,
            (DeliverPolicy::LastPerSubject, None) => consumer::DeliverPolicy::LastPerSubject,
        };
        let config = consumer::Config {
            durable_name: Some(spec.durable.clone()),
            deliver_policy,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: spec.ack_wait.unwrap_or_default(),
            max_deliver: spec.max_deliver.unwrap_or_default(),
            max_ack_pending: spec.max_ack_pending.unwrap_or_default(),
            filter_subject: spec.filter_subject.clone().unwrap_or_default(),
            backoff: spec.backoff.clone(),
            ..Default::default()
        };
        let body = json!({"stream_name": stream, "config": config});
        let info: consumer::Info = self
            .api(
                &format!("create consumer `{}` of stream `{stream}`", spec.durable),
                format!("CONSUMER.CREATE.{stream}.{}", spec.durable),
                &body,
            )
            .await
            .map_err(|e| {
                e.with_context("stream", stream)
                    .with_context("consumer", &spec.durable)
            })?;
        Ok(consumer_summary(&info))
    }

    /// A consumer's configuration and progress; `not found` naming the stream or the
    /// consumer when either is missing.
    pub async fn consumer_info(&self, stream: &str, durable: &str) -> Result<ConsumerSummary> {
        check_name("stream", stream)?;
        check_name("consumer", durable)?;
        let info: consumer::Info = self
            .api(
                &format!("read consumer `{durable}` of stream `{stream}`"),
                format!("CONSUMER.INFO.{stream}.{durable}"),
                &json!({}),
            )
            .await
            .map_err(|e| {
                e.with_context("stream", stream)
                    .with_context("consumer", durable)
            })?;
        Ok(consumer_summary(&info))
    }

    /// Deletes a consumer; `false` when there was none.
    pub async fn delete_consumer(&self, stream: &str, durable: &str) -> Result<bool> {
        check_name("stream", stream)?;
        check_name("consumer", durable)?;
        #[derive(Deserialize)]
        struct Deleted {
            success: bool,
        }
        let answer: Result<Deleted> = self
            .api(
                &format!("delete consumer `{durable}` of stream `{stream}`"),
                format!("CONSUMER.DELETE.{stream}.{durable}"),
                &json!({}),
            )
            .await;
        match answer {
            Ok(d) => Ok(d.success),
            Err(e) if is_code(&e, CONSUMER_NOT_FOUND) || is_code(&e, STREAM_NOT_FOUND) => Ok(false),
            Err(e) => Err(e
                .with_context("stream", stream)
                .with_context("consumer", durable)),
        }
    }

    /// Publishes messages with JetStream and waits for each one's acknowledgement: up to
    /// 1,000 are sent before their acknowledgements are awaited together. One result per
    /// message, in order.
    pub async fn publish(&self, messages: &[OutgoingMessage]) -> Vec<Result<Published>> {
        let mut results = Vec::with_capacity(messages.len());
        for wave in messages.chunks(PUBLISH_WAVE) {
            let mut sent = Vec::with_capacity(wave.len());
            for message in wave {
                sent.push(self.send(message).await);
            }
            let acks = sent
                .into_iter()
                .zip(wave)
                .map(|(sent, message)| async move {
                    let future = sent?;
                    let ack = future
                        .await
                        .map_err(|e| self.client.publish_error(&message.subject, &e))?;
                    Ok(Published {
                        stream: ack.stream,
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    })
                });
            results.extend(futures::future::join_all(acks).await);
        }
        results
    }

    /// Sends one message; its acknowledgement is the returned future.
    async fn send(&self, message: &OutgoingMessage) -> Result<PublishAckFuture> {
        check_subject(&message.subject, false)?;
        let headers = header_map(message)?;
        self.client
            .ensure_connected(&format!("publish to `{}`", message.subject))?;
        self.client
            .jetstream()
            .publish_with_headers(message.subject.clone(), headers, message.body.clone())
            .await
            .map_err(|e| self.client.publish_error(&message.subject, &e))
    }

    /// Fetches up to `options.batch` messages from a durable pull consumer. They stay
    /// pending until settled with their [`AckToken`]s (or until the consumer's `ack_wait`
    /// passes, when they are delivered again).
    pub async fn fetch(
        &self,
        stream: &str,
        durable: &str,
        options: &FetchOptions,
    ) -> Result<Vec<FetchedMessage>> {
        // A pull to a missing consumer is only "no responders"; ask first, for a clear error.
        self.consumer_info(stream, durable).await?;
        let mut pull = self.start_pull(stream, durable, options).await?;
        let mut out = Vec::new();
        while let Some(message) = pull.next().await? {
            out.push(fetched_message(message)?);
        }
        Ok(out)
    }

    /// Starts a pull request; its messages come from [`PullBatch::next`].
    pub(crate) async fn start_pull(
        &self,
        stream: &str,
        durable: &str,
        options: &FetchOptions,
    ) -> Result<PullBatch> {
        check_name("stream", stream)?;
        check_name("consumer", durable)?;
        if options.batch == 0 || options.batch > MAX_BATCH {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("`batch` must be 1 to {MAX_BATCH}"),
            ));
        }
        if options.expires.is_some_and(|e| e > MAX_EXPIRES) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "`expires` must be at most 5 minutes",
            ));
        }
        let mut request = serde_json::Map::new();
        request.insert("batch".into(), json!(options.batch));
        match options.expires.filter(|e| !e.is_zero()) {
            Some(expires) => {
                let nanos = u64::try_from(expires.as_nanos()).unwrap_or(u64::MAX);
                request.insert("expires".into(), json!(nanos));
            }
            None => {
                request.insert("no_wait".into(), json!(true));
            }
        }
        if let Some(max_bytes) = options.max_bytes.filter(|b| *b > 0) {
            request.insert("max_bytes".into(), json!(max_bytes));
        }
        let body = serde_json::to_vec(&request).map_err(unexpected)?;
        let driver = self.client.driver();
        let inbox = driver.new_inbox();
        let doing = format!("pull from consumer `{durable}` of stream `{stream}`");
        self.client.ensure_connected(&doing)?;
        let subscriber = driver.subscribe(inbox.clone()).await.map_err(|e| {
            self.client
                .unreachable(&format!("nats could not {doing}: {e}"))
        })?;
        driver
            .publish_with_reply(
                format!("{API}.CONSUMER.MSG.NEXT.{stream}.{durable}"),
                inbox,
                Bytes::from(body),
            )
            .await
            .map_err(|e| {
                self.client
                    .unreachable(&format!("nats could not {doing}: {e}"))
            })?;
        let wait = options
            .expires
            .map_or(self.client.request_timeout(), |e| e + PULL_GRACE);
        Ok(PullBatch {
            subscriber,
            remaining: options.batch,
            deadline: tokio::time::Instant::now() + wait,
            stream: stream.to_string(),
            durable: durable.to_string(),
        })
    }

    /// Settles one delivery and waits for the server to confirm it: `Ack` is JetStream's
    /// `+ACK`, `Retry` its `-NAK` (with the delay), `Reject` its `+TERM`. A delivery no longer
    /// pending (settled already, or redelivered after `ack_wait`) is confirmed all the same.
    pub async fn settle(&self, token: &AckToken, settlement: Settlement) -> Result<()> {
        self.settle_as(token, settlement, true).await
    }

    /// Settles a pulled message like [`NatsJetStream::settle`] without waiting for the
    /// server's confirmation (what most NATS clients do by default): one message out, no
    /// round trip. A settlement lost with a dropped connection leaves the message to be
    /// delivered again after `ack_wait`; it is never lost.
    pub async fn settle_unconfirmed(&self, token: &AckToken, settlement: Settlement) -> Result<()> {
        self.settle_as(token, settlement, false).await
    }

    async fn settle_as(
        &self,
        token: &AckToken,
        settlement: Settlement,
        confirm: bool,
    ) -> Result<()> {
        let (body, doing) = match settlement {
            Settlement::Ack => (Bytes::from_static(b"+ACK"), "acknowledge"),
            Settlement::Retry { delay: None } => (Bytes::from_static(b"-NAK"), "nak"),
            Settlement::Retry { delay: Some(d) } => (
                Bytes::from(format!(r#"-NAK {{"delay":{}}}"#, d.as_nanos())),
                "nak",
            ),
            Settlement::Reject => (Bytes::from_static(b"+TERM"), "terminate"),
        };
        let doing = format!(
            "{doing} message {} of stream `{}`",
            token.sequence, token.stream
        );
        let context = |e: Error| {
            e.with_context("stream", &token.stream)
                .with_context("consumer", &token.consumer)
                .with_context("sequence", token.sequence)
        };
        // A settlement queued while disconnected would reach the server after its caller
        // was told it failed; refuse it now instead (the server delivers the message again).
        self.client.ensure_connected(&doing).map_err(context)?;
        let driver = self.client.driver();
        if !confirm {
            return driver
                .publish(token.subject.clone(), body)
                .await
                .map_err(|e| {
                    context(
                        self.client
                            .unreachable(&format!("nats could not {doing}: {e}")),
                    )
                });
        }
        match driver.request(token.subject.clone(), body).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = async_nats::jetstream::context::RequestError::from(e);
                Err(context(self.client.request_error(&doing, &e)))
            }
        }
    }
}

/// The messages of one pull request, as they come.
pub(crate) struct PullBatch {
    subscriber: async_nats::Subscriber,
    remaining: usize,
    deadline: tokio::time::Instant,
    stream: String,
    durable: String,
}

impl PullBatch {
    /// The next message; `None` once the request is done (its batch delivered, or it expired
    /// with fewer messages), or its answer is overdue. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<Option<async_nats::Message>> {
        loop {
            if self.remaining == 0 {
                return Ok(None);
            }
            let message = tokio::select! {
                m = self.subscriber.next() => m,
                () = tokio::time::sleep_until(self.deadline) => None,
            };
            let Some(message) = message else {
                self.remaining = 0;
                return Ok(None);
            };
            match message.status {
                None | Some(StatusCode::OK) => {
                    self.remaining -= 1;
                    return Ok(Some(message));
                }
                Some(StatusCode::IDLE_HEARTBEAT) => continue,
                // No messages (no_wait), or the request expired.
                Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => {
                    self.remaining = 0;
                    return Ok(None);
                }
                Some(status) => {
                    self.remaining = 0;
                    return Err(self.status_error(status, message.description.as_deref()));
                }
            }
        }
    }

    fn status_error(&self, status: StatusCode, description: Option<&str>) -> Error {
        let description = description.unwrap_or("").trim();
        let what = format!("consumer `{}` of stream `{}`", self.durable, self.stream);
        let lower = description.to_ascii_lowercase();
        let error = if status == StatusCode::NO_RESPONDERS {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "nothing answers a pull from {what}: the stream or the consumer does not exist"
                ),
            )
            .set_permanent()
        } else if lower.contains("consumer deleted") {
            Error::new(
                ErrorKind::NotFound,
                format!("{what} was deleted while pulling"),
            )
            .set_permanent()
        } else if lower.contains("exceeds maxbytes") {
            Error::new(
                ErrorKind::InvalidInput,
                format!("a message of {what} is larger than `max_bytes` ({description})"),
            )
            .set_permanent()
        } else if lower.contains("exceeded max") || lower.contains("bad request") {
            Error::new(
                ErrorKind::InvalidInput,
                format!("the server refused a pull from {what}: {description}"),
            )
            .set_permanent()
        } else {
            Error::new(
                ErrorKind::Remote,
                format!(
                    "the server ended a pull from {what} with status {}: {description}",
                    status.as_u16()
                ),
            )
            .set_temporary()
        };
        error
            .with_status(status.as_u16())
            .with_context("stream", &self.stream)
            .with_context("consumer", &self.durable)
    }
}

/// A delivered message as `fetch` returns it.
fn fetched_message(message: async_nats::Message) -> Result<FetchedMessage> {
    let token = message
        .reply
        .as_ref()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                "a pulled message came without its ack subject",
            )
        })
        .and_then(|r| AckToken::parse(r.as_str()))?;
    let headers = headers_of(message.headers.as_ref());
    let msg_id = header_value(message.headers.as_ref(), MSG_ID);
    let (data, base64) = match serde_json::from_slice::<Value>(&message.payload) {
        Ok(value) => (value, false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(&message.payload)),
            true,
        ),
    };
    Ok(FetchedMessage {
        sequence: token.sequence,
        subject: message.subject.to_string(),
        headers,
        data,
        base64,
        delivered: token.delivered,
        msg_id,
        ack_token: token.subject,
    })
}

/// A message's headers as text, several values of one name joined with `, `.
pub(crate) fn headers_of(headers: Option<&HeaderMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(headers) = headers {
        for (name, values) in headers.iter() {
            let joined = values
                .iter()
                .map(HeaderValue::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            out.insert(name.to_string(), joined);
        }
    }
    out
}

/// The first value of the header `name` (compared without case), if there is one.
pub(crate) fn header_value(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers?.iter().find_map(|(n, values)| {
        n.to_string()
            .eq_ignore_ascii_case(name)
            .then(|| values.first().map(|v| v.as_str().to_string()))
            .flatten()
    })
}

/// The driver's headers of a message, each name and value checked.
fn header_map(message: &OutgoingMessage) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    let mut put = |name: &str, value: &str| -> Result<()> {
        let bad = |what: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("header `{}`: {what}", name.escape_debug()),
            )
            .with_context("subject", &message.subject)
        };
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(bad("a header name must be 1 to 255 characters"));
        }
        let name = HeaderName::from_str(name)
            .map_err(|_| bad("a header name takes visible ASCII characters other than `:` only"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| bad("a header value cannot contain line breaks"))?;
        map.insert(name, value);
        Ok(())
    };
    for (name, value) in &message.headers {
        put(name, value)?;
    }
    if let Some(content_type) = &message.content_type {
        put(CONTENT_TYPE, content_type)?;
    }
    if let Some(id) = &message.msg_id {
        if id.is_empty() {
            return Err(
                Error::new(ErrorKind::InvalidInput, "a message id cannot be empty")
                    .with_context("subject", &message.subject),
            );
        }
        put(MSG_ID, id)?;
    }
    Ok(map)
}

/// Checks a stream or consumer name as JetStream takes it.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`{}` is not a valid {what} name: 1 to 255 characters, without spaces, `.`, `*`, `>`, `/` or `\\`",
                name.escape_debug()
            ),
        ))
    }
}

/// Checks a subject: dot-separated tokens, none empty, no spaces; with `wildcards`, `*` and a
/// final `>` may stand as whole tokens.
pub(crate) fn check_subject(subject: &str, wildcards: bool) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("`{}` is not a valid subject: {why}", subject.escape_debug()),
        ))
    };
    if subject.is_empty() || subject.len() > MAX_SUBJECT {
        return bad("a subject is 1 to 2048 characters");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("a subject has no spaces or control characters");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return bad("its tokens between dots cannot be empty");
        }
        let wild = token.contains('*') || token.contains('>');
        if !wild {
            continue;
        }
        if !wildcards {
            return bad("a message's subject cannot hold the wildcards `*` or `>`");
        }
        let whole = *token == "*" || (*token == ">" && i + 1 == tokens.len());
        if !whole {
            return bad("`*` stands for a whole token, and `>` for the last tokens only");
        }
    }
    Ok(())
}

fn stream_summary(info: &stream::Info) -> StreamSummary {
    let config = &info.config;
    StreamSummary {
        name: config.name.clone(),
        subjects: config.subjects.clone(),
        storage: match config.storage {
            stream::StorageType::Memory => Storage::Memory,
            stream::StorageType::File => Storage::File,
        },
        max_age: (!config.max_age.is_zero()).then(|| humantime_text(config.max_age)),
        duplicate_window: (!config.duplicate_window.is_zero())
            .then(|| humantime_text(config.duplicate_window)),
        messages: info.state.messages,
        bytes: info.state.bytes,
        first_sequence: info.state.first_sequence,
        last_sequence: info.state.last_sequence,
        consumers: info.state.consumer_count,
    }
}

fn consumer_summary(info: &consumer::Info) -> ConsumerSummary {
    let config = &info.config;
    ConsumerSummary {
        stream: info.stream_name.clone(),
        durable: info.name.clone(),
        filter_subject: (!config.filter_subject.is_empty()).then(|| config.filter_subject.clone()),
        ack_wait: humantime_text(config.ack_wait),
        max_deliver: (config.max_deliver > 0).then_some(config.max_deliver),
        max_ack_pending: config.max_ack_pending,
        backoff: config.backoff.iter().map(|d| humantime_text(*d)).collect(),
        deliver_policy: match config.deliver_policy {
            consumer::DeliverPolicy::Last => DeliverPolicy::Last,
            consumer::DeliverPolicy::New => DeliverPolicy::New,
            consumer::DeliverPolicy::LastPerSubject => DeliverPolicy::LastPerSubject,
            consumer::DeliverPolicy::ByStartSequence { .. } => DeliverPolicy::ByStartSequence,
            _ => DeliverPolicy::All,
        },
        num_pending: info.num_pending,
        num_ack_pending: info.num_ack_pending,
        num_redelivered: info.num_redelivered,
        num_waiting: info.num_waiting,
        delivered_sequence: info.delivered.stream_sequence,
        ack_floor_sequence: info.ack_floor.stream_sequence,
    }
}

/// A duration as humantime text (`"1m 30s"`), as the settings take it.
fn humantime_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 || d >= Duration::from_secs(1) {
        let secs = d.as_secs();
        if d.subsec_millis() == 0 {
            return match (secs / 3600, secs % 3600 / 60, secs % 60) {
                (0, 0, s) => format!("{s}s"),
                (0, m, 0) => format!("{m}m"),
                (0, m, s) => format!("{m}m {s}s"),
                (h, 0, 0) => format!("{h}h"),
                (h, m, s) => format!("{h}h {m}m {s}s"),
            };
        }
    }
    duration_text(d)
}

/// Whether an error carries JetStream error code `code`.
fn is_code(e: &Error, code: u64) -> bool {
    e.context_value(super::client::NATS_CODE) == Some(code.to_string().as_str())
}

fn unexpected(e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Unexpected,
        format!("a JetStream request did not serialize: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_tokens_of_both_formats_parse() {
        let v1 = AckToken::parse("$JS.ACK.ORDERS.billing.2.17.5.1700000000000000000.3").unwrap();
        assert_eq!(
            (v1.stream(), v1.consumer(), v1.delivered(), v1.sequence()),
            ("ORDERS", "billing", 2, 17)
        );
        let v2 =
            AckToken::parse("$JS.ACK._.ACCHASH.ORDERS.billing.1.42.9.1700000000000000000.0.xyz")
                .unwrap();
        assert_eq!(
            (v2.stream(), v2.sequence(), v2.delivered()),
            ("ORDERS", 42, 1)
        );
        for bad in [
            "orders.created",
            "$JS.ACK.ORDERS.billing",
            "$JS.ACK.ORDERS.billing.x.17.5.1.3",
            "$JS.ACK.ORDERS.billing.2.17.5.1 .3",
        ] {
            assert_eq!(
                AckToken::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn subjects_and_names_are_checked() {
        assert!(check_subject("orders.created", false).is_ok());
        assert!(check_subject("orders.*", true).is_ok());
        assert!(check_subject("orders.>", true).is_ok());
        for (bad, wild) in [
            ("orders.*", false),
            ("orders..x", true),
            (".orders", true),
            ("orders.>.x", true),
            ("ord*ers", true),
            ("a b", true),
            ("", true),
        ] {
            assert!(check_subject(bad, wild).is_err(), "{bad}");
        }
        assert!(check_name("stream", "ORDERS_1-a").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "a/b"] {
            assert!(check_name("stream", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_back_as_settings_write_them() {
        assert_eq!(humantime_text(Duration::from_secs(30)), "30s");
        assert_eq!(humantime_text(Duration::from_secs(90)), "1m 30s");
        assert_eq!(humantime_text(Duration::from_secs(7200)), "2h");
        assert_eq!(humantime_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(humantime_text(Duration::from_millis(250)), "250ms");
    }
}
