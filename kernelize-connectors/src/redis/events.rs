//! Redis Streams as an event source ([`RedisEventSource`]: a consumer of a consumer group)
//! and an event sink ([`RedisEventSink`]: `XADD`), for event pipelines.
//!
//! An entry's body is one field (`payload_field`, `"payload"` by default); its other fields
//! are the event's headers, its `key` (or `message_id`) field the event's key, its
//! `content_type` field the body's media type. The sink writes the same shape, so what one
//! pipeline writes another reads back unchanged.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::event::Settle;
use kernelize_core::payload::{MEDIA_JSON, MEDIA_OCTET_STREAM};
use kernelize_core::{
    AckHandle, Delivery, Error, ErrorKind, Event, EventSink, EventSource, Payload, Result,
    Settlement, WriteReport,
};
use redis::Value;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cache::has_code;
use super::config::{MAX_BATCH, MAX_BLOCK};
use super::streams::{ConsumeOptions, PendingQuery, RedisStreams, StreamMessage};

/// The field naming an entry's media type.
pub const CONTENT_TYPE_FIELD: &str = "content_type";

/// The field holding an event's key (`message_id` is read too).
pub const KEY_FIELD: &str = "key";

/// The longest pause between two attempts while Redis does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn default_batch() -> usize {
    100
}

fn default_block_ms() -> u64 {
    5_000
}

fn default_true() -> bool {
    true
}

fn default_group_start() -> String {
    "0".into()
}

fn default_claim_idle_ms() -> u64 {
    60_000
}

fn default_content_type() -> String {
    MEDIA_OCTET_STREAM.to_string()
}

fn default_payload_field() -> String {
    "payload".into()
}

/// Options of the `redis-connector`'s event source (a pipeline's `source:` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSourceOptions {
    /// The stream (the plugin's `key_prefix` goes in front).
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// This consumer's name in the group; give each running source its own.
    pub consumer: String,
    /// The most entries read (and held) at once (1 to 10,000; 100).
    #[serde(default = "default_batch")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch: usize,
    /// How long one read waits for new entries, in milliseconds (1 to 300,000; 5,000).
    #[serde(default = "default_block_ms")]
    #[schemars(range(min = 1, max = 300000))]
    pub block_ms: u64,
    /// Create the group (and the stream) when missing (true); an existing group is kept.
    #[serde(default = "default_true")]
    pub create_group: bool,
    /// Where a group created here starts: `0` (the whole stream, the default) or `$` (only
    /// entries added from now on).
    #[serde(default = "default_group_start")]
    pub group_start: String,
    /// Entries pending (delivered, not acknowledged) longer than this, in milliseconds, are
    /// claimed (`XAUTOCLAIM`) and delivered again: those of crashed consumers, and this
    /// source's own retried ones (60,000; 0 turns claiming off).
    #[serde(default = "default_claim_idle_ms")]
    pub claim_idle_ms: u64,
    /// The media type of bodies whose entry has no `content_type` field
    /// (`application/octet-stream`).
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The field holding the body (`payload`); entries without it give a JSON object of
    /// all their fields.
    #[serde(default = "default_payload_field")]
    pub payload_field: String,
}

impl RedisSourceOptions {
    /// Options for consumer `consumer` of `group` on `stream`, with every default.
    pub fn new(stream: &str, group: &str, consumer: &str) -> Self {
        RedisSourceOptions {
            stream: stream.into(),
            group: group.into(),
            consumer: consumer.into(),
            batch: default_batch(),
            block_ms: default_block_ms(),
            create_group: true,
            group_start: default_group_start(),
            claim_idle_ms: default_claim_idle_ms(),
            content_type: default_content_type(),
            payload_field: default_payload_field(),
        }
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        for (name, value) in [
            ("stream", &self.stream),
            ("group", &self.group),
            ("consumer", &self.consumer),
            ("payload_field", &self.payload_field),
            ("content_type", &self.content_type),
        ] {
            if value.trim().is_empty() {
                return invalid(format!("`{name}` is empty"));
            }
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return invalid(format!("`batch` is between 1 and {MAX_BATCH}"));
        }
        if self.block_ms == 0 || Duration::from_millis(self.block_ms) > MAX_BLOCK {
            return invalid(format!(
                "`block_ms` is between 1 and {}",
                MAX_BLOCK.as_millis()
            ));
        }
        Ok(())
    }

    /// How often pending entries are scanned for claiming; `None` when claiming is off.
    fn claim_every(&self) -> Option<Duration> {
        (self.claim_idle_ms > 0).then(|| {
            (Duration::from_millis(self.claim_idle_ms) / 2)
                .clamp(Duration::from_millis(100), Duration::from_secs(30))
        })
    }
}

/// Options of the `redis-connector`'s event sink (a pipeline sink's settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkOptions {
    /// The stream (the plugin's `key_prefix` goes in front).
    pub stream: String,
    /// Cap the stream at about this many entries (`MAXLEN ~`).
    #[serde(default)]
    pub maxlen: Option<u64>,
    /// The field the body goes in (`payload`).
    #[serde(default = "default_payload_field")]
    pub payload_field: String,
}

impl RedisSinkOptions {
    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        for (name, value) in [
            ("stream", &self.stream),
            ("payload_field", &self.payload_field),
        ] {
            if value.trim().is_empty() {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("`{name}` is empty"),
                ));
            }
        }
        if self.payload_field == KEY_FIELD || self.payload_field == CONTENT_TYPE_FIELD {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!(
                    "`payload_field` cannot be `{}`: that field carries the event's {}",
                    self.payload_field,
                    if self.payload_field == KEY_FIELD {
                        "key"
                    } else {
                        "media type"
                    }
                ),
            ));
        }
        Ok(())
    }
}

/// An entry read, with how many times the group delivered it.
#[derive(Debug)]
struct Entry {
    message: StreamMessage,
    attempt: u32,
}

/// An [`EventSource`] of a Redis stream, read as one consumer of a consumer group.
///
/// Reads (`XREADGROUP >`) at most `batch` entries at a time, and only when the previous
/// ones were all handed out; every `claim_idle_ms / 2` (between 100 ms and 30 s) it claims
/// (`XAUTOCLAIM`) entries pending longer than `claim_idle_ms` and hands them out with their
/// delivery count as `attempt`. While Redis does not answer, reads are retried with backoff
/// (100 ms to 5 s) until the receive is cancelled; a group that vanished (Redis restarted
/// without persistence) is created again when `create_group` is on.
///
/// Settling: `Ack` and `Reject` are `XACK`; `Retry` leaves the entry pending, and it comes
/// back through the claim once `claim_idle_ms` passed, which stands for the retry's delay. A
/// delivery dropped unsettled comes back the same way. Entries stay pending across
/// reconnects (the group, not the connection, holds them), so settling after Redis came
/// back works; while it is down, settling fails with a temporary error and the entry stays
/// pending.
pub struct RedisEventSource {
    streams: RedisStreams,
    options: RedisSourceOptions,
    buffer: VecDeque<Entry>,
    claim_every: Option<Duration>,
    next_claim: Instant,
    claim_cursor: String,
    failures: u32,
}

impl std::fmt::Debug for RedisEventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEventSource")
            .field("options", &self.options)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl RedisEventSource {
    /// A source on `streams` as `options` say (checked here): creates the group when asked,
    /// else checks that it exists.
    pub async fn open(streams: RedisStreams, options: RedisSourceOptions) -> Result<Self> {
        options.check()?;
        if options.create_group {
            streams
                .create_group(&options.stream, &options.group, &options.group_start)
                .await?;
        } else {
            streams
                .pending(&options.stream, &options.group, &PendingQuery::default())
                .await?;
        }
        let claim_every = options.claim_every();
        Ok(RedisEventSource {
            streams,
            buffer: VecDeque::new(),
            claim_every,
            // Claim once at the start: a crashed consumer's entries need not wait.
            next_claim: Instant::now(),
            claim_cursor: "0-0".into(),
            failures: 0,
            options,
        })
    }

    /// Entries read and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Fills the buffer: claimed entries when a claim is due, else new ones (waiting up to
    /// `block_ms`, or until the next claim).
    async fn fill(&mut self) -> Result<()> {
        let now = Instant::now();
        if self.claim_every.is_some() && now >= self.next_claim {
            self.claim().await?;
            if !self.buffer.is_empty() {
                return Ok(());
            }
        }
        let mut block = Duration::from_millis(self.options.block_ms);
        if self.claim_every.is_some() {
            block = block.min(self.next_claim.saturating_duration_since(Instant::now()));
        }
        let options = ConsumeOptions {
            group: self.options.group.clone(),
            consumer: self.options.consumer.clone(),
            count: self.options.batch,
            block: Some(block.max(Duration::from_millis(1))),
        };
        let messages = self.streams.consume(&self.options.stream, &options).await?;
        self.buffer
            .extend(messages.into_iter().map(|message| Entry {
                message,
                attempt: 1,
            }));
        Ok(())
    }

    /// Claims entries pending longer than `claim_idle_ms` (one `XAUTOCLAIM` page), with
    /// their delivery counts.
    async fn claim(&mut self) -> Result<()> {
        let claimed = self
            .streams
            .claim_stuck(
                &self.options.stream,
                &self.options.group,
                &self.options.consumer,
                Duration::from_millis(self.options.claim_idle_ms),
                self.options.batch,
                &self.claim_cursor,
            )
            .await?;
        if !claimed.deleted_ids.is_empty() {
            tracing::warn!(
                stream = %self.options.stream,
                deleted = claimed.deleted_ids.len(),
                "redis: pending entries were deleted from the stream before they were acknowledged"
            );
        }
        // A full scan done: wait for the next; else go on with the next page soon.
        if claimed.next_cursor == "0-0" {
            self.next_claim = Instant::now() + self.claim_every.unwrap_or(MAX_BACKOFF);
        }
        self.claim_cursor = claimed.next_cursor;
        if claimed.messages.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = claimed.messages.iter().map(|m| m.id.as_str()).collect();
        let counts = self.delivery_counts(&ids).await?;
        self.buffer
            .extend(claimed.messages.into_iter().map(|message| {
                Entry {
                    attempt: counts
                        .get(&message.id)
                        .map(|n| u32::try_from(*n).unwrap_or(u32::MAX))
                        .unwrap_or(2)
                        .max(1),
                    message,
                }
            }));
        Ok(())
    }

    /// How many times each of `ids` was delivered (`XPENDING` of each, in one pipeline).
    async fn delivery_counts(&self, ids: &[&str]) -> Result<HashMap<String, u64>> {
        let client = self.streams.client();
        let name = client.key(&self.options.stream);
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(&name)
                .arg(&self.options.group)
                .arg(*id)
                .arg(*id)
                .arg(1);
        }
        let answers = client
            .run_pipeline(
                &pipe,
                &format!("read delivery counts of stream `{}`", self.options.stream),
            )
            .await?;
        let mut counts = HashMap::new();
        for answer in answers {
            // [[id, consumer, idle, deliveries]], or [] when it was acknowledged meanwhile.
            let Value::Array(rows) = answer else { continue };
            for row in rows {
                if let Value::Array(cols) = row
                    && let [id, _, _, Value::Int(deliveries)] = cols.as_slice()
                    && let Value::BulkString(id) = id
                {
                    counts.insert(
                        String::from_utf8_lossy(id).into_owned(),
                        u64::try_from(*deliveries).unwrap_or(0),
                    );
                }
            }
        }
        Ok(counts)
    }

    fn delivery(&self, entry: Entry) -> Delivery {
        let Entry {
            mut message,
            attempt,
        } = entry;
        let payload_field = &self.options.payload_field;
        let content_type = message
            .fields
            .get(CONTENT_TYPE_FIELD)
            .filter(|t| !t.trim().is_empty())
            .cloned();
        let key = message
            .fields
            .get(KEY_FIELD)
            .or_else(|| message.fields.get("message_id"))
            .cloned();
        let payload = match message.fields.remove(payload_field) {
            Some(body) => Payload::bytes(
                body.into_bytes(),
                content_type.unwrap_or_else(|| self.options.content_type.clone()),
            ),
            None => Payload::Json(serde_json::Value::Object(
                message
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            )),
        };
        let headers: BTreeMap<String, String> = message
            .fields
            .into_iter()
            .filter(|(name, _)| name != KEY_FIELD && name != CONTENT_TYPE_FIELD)
            .collect();
        let mut event = Event::new(message.id.clone(), payload).with_subject(&self.options.stream);
        event.key = key;
        event.headers = headers;
        event.attempt = attempt;
        let ack = AckHandle::new(
            message.id.clone(),
            RedisAck {
                streams: self.streams.clone(),
                stream: self.options.stream.clone(),
                group: self.options.group.clone(),
                id: message.id,
            },
        );
        Delivery { event, ack }
    }

    /// What to do after a failed read: wait and try again (temporary), create the group
    /// again (it vanished), or give up.
    async fn recover(&mut self, error: Error, cancel: &CancellationToken) -> Result<bool> {
        if has_code(&error, "NOGROUP") && self.options.create_group {
            tracing::warn!(stream = %self.options.stream, group = %self.options.group, "redis: the consumer group is gone; creating it again");
            self.claim_cursor = "0-0".into();
            match self
                .streams
                .create_group(
                    &self.options.stream,
                    &self.options.group,
                    &self.options.group_start,
                )
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if e.is_temporary() => return self.wait_after(e, cancel).await,
                Err(e) => return Err(e),
            }
        }
        if !error.is_temporary() {
            return Err(error);
        }
        self.wait_after(error, cancel).await
    }

    /// Sleeps the backoff after a temporary failure; `false` when cancelled meanwhile.
    async fn wait_after(&mut self, error: Error, cancel: &CancellationToken) -> Result<bool> {
        self.failures = self.failures.saturating_add(1);
        let ceiling = Duration::from_millis(100)
            .saturating_mul(1u32 << self.failures.min(10))
            .min(MAX_BACKOFF);
        let pause = ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        tracing::warn!(stream = %self.options.stream, error = %error.message(), retry_in_ms = pause.as_millis() as u64, "redis: reading the stream failed; retrying");
        tokio::select! {
            () = tokio::time::sleep(pause) => Ok(true),
            () = cancel.cancelled() => Ok(false),
        }
    }
}

#[async_trait]
impl EventSource for RedisEventSource {
    async fn receive(&mut self, cancel: &CancellationToken) -> Result<Option<Delivery>> {
        loop {
            if let Some(entry) = self.buffer.pop_front() {
                return Ok(Some(self.delivery(entry)));
            }
            if cancel.is_cancelled() {
                return Ok(None);
            }
            // Dropping a read in flight is safe: what it would have delivered stays pending
            // for this consumer and comes back through the claim.
            let filled = tokio::select! {
                filled = self.fill() => filled,
                () = cancel.cancelled() => return Ok(None),
            };
            match filled {
                Ok(()) => {
                    if self.failures > 0 {
                        tracing::info!(stream = %self.options.stream, "redis: reading the stream again");
                    }
                    self.failures = 0;
                }
                Err(error) => {
                    if !self.recover(error, cancel).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Settles one entry of a [`RedisEventSource`].
struct RedisAck {
    streams: RedisStreams,
    stream: String,
    group: String,
    id: String,
}

#[async_trait]
impl Settle for RedisAck {
    async fn settle(self: Box<Self>, settlement: Settlement) -> Result<()> {
        match settlement {
            // Dead-lettered or done: either way the group forgets it.
            Settlement::Ack | Settlement::Reject => self
                .streams
                .ack(&self.stream, &self.group, &[self.id.as_str()])
                .await
                .map(drop),
            // Left pending: the claim after `claim_idle_ms` delivers it again.
            Settlement::Retry { .. } => Ok(()),
        }
    }
}

/// An [`EventSink`] that appends each event to a Redis stream (`XADD`, all of a batch in
/// one pipeline).
///
/// An entry has the body in `payload_field`, the media type in `content_type`, the event's
/// headers as fields (a header named like one of those is left out) and its key in `key`.
/// Bodies are text: JSON as its text, bytes when they are UTF-8 (others are refused: base64
/// them first), records one entry per row (a JSON object). An event with records is
/// written only when all its rows are.
#[derive(Debug, Clone)]
pub struct RedisEventSink {
    streams: RedisStreams,
    options: RedisSinkOptions,
}

impl RedisEventSink {
    /// A sink on `streams` as `options` say (checked here).
    pub fn new(streams: RedisStreams, options: RedisSinkOptions) -> Result<Self> {
        options.check()?;
        Ok(RedisEventSink { streams, options })
    }

    /// The entries (field lists) of one event.
    fn entries_of(&self, event: &Event) -> Result<Vec<Vec<(String, String)>>> {
        let bodies: Vec<(String, String)> = match &event.payload {
            Payload::Empty => vec![(String::new(), MEDIA_OCTET_STREAM.to_string())],
            Payload::Json(value) => vec![(value.to_string(), MEDIA_JSON.to_string())],
            Payload::Bytes(blob) => {
                let text = std::str::from_utf8(&blob.data).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the event's body ({}) is not UTF-8 text; stream entries hold text here: base64 it first",
                            blob.media_type
                        ),
                    )
                })?;
                vec![(text.to_string(), blob.media_type.clone())]
            }
            Payload::Records(records) => records
                .to_json_rows()?
                .iter()
                .map(|row| (row.to_string(), MEDIA_JSON.to_string()))
                .collect(),
        };
        let payload_field = &self.options.payload_field;
        Ok(bodies
            .into_iter()
            .map(|(body, media_type)| {
                let mut fields = vec![
                    (payload_field.clone(), body),
                    (CONTENT_TYPE_FIELD.to_string(), media_type),
                ];
                if let Some(key) = &event.key {
                    fields.push((KEY_FIELD.to_string(), key.clone()));
                }
                fields.extend(
                    event
                        .headers
                        .iter()
                        .filter(|(name, _)| {
                            *name != payload_field
                                && name.as_str() != CONTENT_TYPE_FIELD
                                && name.as_str() != KEY_FIELD
                        })
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
                fields
            })
            .collect())
    }
}

#[async_trait]
impl EventSink for RedisEventSink {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        let mut failed: Vec<(usize, Error)> = Vec::new();
        // (event position, its entries' positions in the pipeline)
        let mut planned: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        let client = self.streams.client();
        let name = client.key(&self.options.stream);
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        let mut commands = 0usize;
        for (i, event) in events.iter().enumerate() {
            let entries = match self.entries_of(event) {
                Ok(entries) => entries,
                Err(e) => {
                    failed.push((i, e.with_context("event", &event.id)));
                    continue;
                }
            };
            let start = commands;
            for fields in entries {
                let cmd = pipe.cmd("XADD").arg(&name);
                if let Some(len) = self.options.maxlen {
                    cmd.arg("MAXLEN").arg("~").arg(len);
                }
                cmd.arg("*");
                for (field, value) in &fields {
                    cmd.arg(field).arg(value);
                }
                commands += 1;
            }
            planned.push((i, start..commands));
        }
        if commands > 0 {
            let answers = client
                .run_pipeline(
                    &pipe,
                    &format!("append events to stream `{}`", self.options.stream),
                )
                .await?;
            for (i, range) in planned {
                let refused = answers
                    .get(range)
                    .unwrap_or_default()
                    .iter()
                    .find_map(|answer| match answer {
                        Value::ServerError(e) => Some(client.error(
                            &format!("append to stream `{}`", self.options.stream),
                            e.clone().into(),
                        )),
                        _ => None,
                    });
                if let Some(e) = refused {
                    failed.push((i, e.with_context("event", &events[i].id)));
                }
            }
        }
        failed.sort_by_key(|(i, _)| *i);
        if failed.len() == events.len()
            && let Some((_, first)) = failed.first()
        {
            return Err(first.clone().with_context("failed_events", failed.len()));
        }
        Ok(WriteReport { failed })
    }
}
