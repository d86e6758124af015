//! Dead letters: what is written for an event a stage rejected or a sink could not take,
//! and how dead letters are replayed into a pipeline.
//!
//! A dead letter is one JSON object of scalar fields, so that any sink takes it — a table
//! (one column per field), a stream, a queue:
//!
//! | field | meaning |
//! |---|---|
//! | `pipeline` | the pipeline's name |
//! | `stage` | the stage that rejected the event, or the sink that failed it |
//! | `sink` | the sink's name when a sink failed it, else empty |
//! | `error`, `error_kind` | why, and the error's kind (`invalid_input`, `timeout`, ...) |
//! | `attempts` | how many times the stage or sink tried it (sinks retry); the source's delivery count for a stage |
//! | `event_id`, `key`, `subject` | what the source said about the event (empty when it said nothing) |
//! | `headers` | the event's headers, as JSON text |
//! | `media_type`, `payload`, `payload_encoding` | the original body as received: text (`utf8`), JSON text (`json`) or base64 (`base64`) |
//! | `received_at`, `failed_at` | RFC 3339 UTC timestamps |
//!
//! [`Replay`] reads dead letters back from any source (the dead letter stream or queue
//! itself), keeps those a selector picks, and hands out the original events: a replayed
//! event goes through the pipeline again, or, when a sink had failed it, to that sink only.
//! Settling the replayed event settles the dead letter: acknowledged once written, so it
//! leaves the dead letter store.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use kernelize_core::event::{Delivery, EventSource};
use kernelize_core::{Error, ErrorKind, Event, Payload, Result};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::expr::Expr;

/// The header a replayed event carries naming the sink it is for.
pub const REPLAY_SINK_HEADER: &str = "x-kernelize-replay-sink";
/// The header a replayed event carries naming the dead letter it came from.
pub const REPLAY_OF_HEADER: &str = "x-kernelize-replay-of";

/// Where and why an event failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) stage: String,
    pub(crate) sink: Option<String>,
    pub(crate) error: Error,
    pub(crate) attempts: u32,
}

/// The dead letter of `event` (as received: `original` is its body before any stage).
pub(crate) fn envelope(
    pipeline: &str,
    event: &Event,
    original: &Payload,
    failure: &Failure,
) -> Event {
    let (media_type, payload, encoding) = body_text(original);
    let headers = serde_json::to_string(&event.headers).unwrap_or_else(|_| "{}".into());
    let object = json!({
        "pipeline": pipeline,
        "stage": failure.stage,
        "sink": failure.sink.clone().unwrap_or_default(),
        "error": failure.error.to_string(),
        "error_kind": kind_name(failure.error.kind()),
        "attempts": failure.attempts,
        "event_id": event.id,
        "key": event.key.clone().unwrap_or_default(),
        "subject": event.subject.clone().unwrap_or_default(),
        "headers": headers,
        "media_type": media_type,
        "payload": payload,
        "payload_encoding": encoding,
        "received_at": event.received_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "failed_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let mut dead = Event::new(format!("{pipeline}/{}", event.id), Payload::json(object));
    dead.key = event.key.clone();
    dead.subject = event.subject.clone();
    dead
}

fn body_text(payload: &Payload) -> (String, String, &'static str) {
    match payload {
        Payload::Bytes(blob) => match std::str::from_utf8(&blob.data) {
            Ok(text) => (blob.media_type.clone(), text.to_string(), "utf8"),
            Err(_) => (
                blob.media_type.clone(),
                base64::engine::general_purpose::STANDARD.encode(&blob.data),
                "base64",
            ),
        },
        Payload::Json(v) => ("application/json".into(), v.to_string(), "json"),
        Payload::Empty => ("application/octet-stream".into(), String::new(), "utf8"),
        Payload::Records(r) => match r.to_json_rows() {
            Ok(rows) => (
                "application/json".into(),
                Value::Array(rows).to_string(),
                "json",
            ),
            Err(e) => (
                "text/plain".into(),
                format!("(records not readable: {e})"),
                "utf8",
            ),
        },
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    crate::definition::error_kind_name(kind)
}

/// The fields of a dead letter read back.
fn fields_of(event: &Event) -> Result<Map<String, Value>> {
    let value = match &event.payload {
        Payload::Json(v) => v.clone(),
        Payload::Bytes(blob) => serde_json::from_slice(&blob.data).map_err(|e| {
            Error::new(
                ErrorKind::CorruptData,
                format!("dead letter `{}` is not JSON: {e}", event.id),
            )
        })?,
        other => other.clone().into_json()?,
    };
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::new(
            ErrorKind::CorruptData,
            format!(
                "dead letter `{}` is not a JSON object but {}",
                event.id,
                kernelize_core::payload::json_type_name(&other)
            ),
        )),
    }
}

/// The original event a dead letter holds.
pub fn original_event(dead: &Event) -> Result<Event> {
    let fields = fields_of(dead)?;
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let bad = |what: &str| {
        Error::new(
            ErrorKind::CorruptData,
            format!("dead letter `{}`: {what}", dead.id),
        )
    };
    let payload_text = text("payload").ok_or_else(|| bad("no `payload` field"))?;
    let media_type = text("media_type").unwrap_or_else(|| "application/octet-stream".into());
    let payload = match text("payload_encoding").as_deref().unwrap_or("utf8") {
        "utf8" => Payload::bytes(payload_text.into_bytes(), media_type),
        "json" => Payload::json(
            serde_json::from_str::<Value>(&payload_text)
                .map_err(|e| bad(&format!("`payload` is not JSON: {e}")))?,
        ),
        "base64" => Payload::bytes(
            base64::engine::general_purpose::STANDARD
                .decode(payload_text.as_bytes())
                .map_err(|e| bad(&format!("`payload` is not base64: {e}")))?,
            media_type,
        ),
        other => return Err(bad(&format!("unknown payload_encoding `{other}`"))),
    };
    let mut event = Event::new(text("event_id").unwrap_or_else(|| dead.id.clone()), payload);
    event.key = text("key");
    event.subject = text("subject");
    if let Some(h) = text("headers")
        && let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<String, String>>(&h)
    {
        event.headers = map;
    }
    if let Some(at) = text("received_at").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()) {
        event.received_at = at.with_timezone(&Utc);
    }
    if let Some(sink) = text("sink") {
        event.headers.insert(REPLAY_SINK_HEADER.into(), sink);
    }
    event
        .headers
        .insert(REPLAY_OF_HEADER.into(), dead.id.clone());
    Ok(event)
}

/// A source of replayed events: dead letters read from `inner`, those `select` picks
/// turned back into their original events; see the [module](self) docs.
///
/// It ends after `limit` events, when `inner` has nothing for `idle`, or when a dead letter
/// it passed over comes round again. Dead letters not picked are handed back to `inner`
/// (retried) untouched; one that cannot be read is left there too, and counted in
/// [`Replay::unreadable`].
pub struct Replay {
    inner: Box<dyn EventSource>,
    select: Option<Expr>,
    limit: Option<u64>,
    idle: Duration,
    handed: u64,
    passed: HashSet<String>,
    unreadable: u64,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("select", &self.select)
            .field("limit", &self.limit)
            .field("handed", &self.handed)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// Replays the dead letters of `inner`; `select` is an expression over a dead letter's
    /// fields as `event` (`event.stage == "load" and event.error_kind == "timeout"`).
    pub fn new(inner: Box<dyn EventSource>, select: Option<Expr>) -> Self {
        Replay {
            inner,
            select,
            limit: None,
            idle: Duration::from_secs(2),
            handed: 0,
            passed: HashSet::new(),
            unreadable: 0,
        }
    }

    /// Stops after `limit` replayed events.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Stops when nothing came for `idle` (two seconds by default).
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Dead letters that could not be read.
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }
}

#[async_trait]
impl EventSource for Replay {
    async fn receive(&mut self, cancel: &CancellationToken) -> Result<Option<Delivery>> {
        loop {
            if self.limit.is_some_and(|l| self.handed >= l) {
                return Ok(None);
            }
            let next = tokio::time::timeout(self.idle, self.inner.receive(cancel)).await;
            let Ok(next) = next else {
                return Ok(None);
            };
            let Some(delivery) = next? else {
                return Ok(None);
            };
            let Delivery { event: dead, ack } = delivery;
            let original = match original_event(&dead) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(dead_letter = %dead.id, error = %e, "dead letter not readable; left in place");
                    self.unreadable += 1;
                    if !self.passed.insert(dead.id.clone()) {
                        let _ = ack.retry(None).await;
                        return Ok(None);
                    }
                    let _ = ack.retry(None).await;
                    continue;
                }
            };
            let picked = match &self.select {
                None => true,
                Some(select) => {
                    let fields = std::sync::Arc::new(Value::Object(fields_of(&dead)?));
                    select.holds(&fields, &dead).unwrap_or(false)
                }
            };
            if !picked {
                let again = !self.passed.insert(dead.id.clone());
                let _ = ack.retry(None).await;
                if again {
                    return Ok(None);
                }
                continue;
            }
            self.handed += 1;
            return Ok(Some(Delivery {
                event: original,
                ack,
            }));
        }
    }
}
