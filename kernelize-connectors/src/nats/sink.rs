//! [`NatsSink`]: JetStream publishing as an event sink for pipelines.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kernelize_core::payload::MEDIA_JSON;
use kernelize_core::{Error, ErrorKind, Event, EventSink, Payload, Result, WriteReport};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::jetstream::{CONTENT_TYPE, NatsJetStream, OutgoingMessage, check_subject};

/// The placeholder of a subject template that stands for the event's key.
const KEY: &str = "{key}";

fn yes() -> bool {
    true
}

/// Options of the `nats-connector` event sink (a pipeline sink's settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkOptions {
    /// The subject to publish to; `{key}` in it stands for the event's key
    /// (`orders.{key}`). When absent, each event goes to its own subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Copy the event's headers onto the message (`true` when absent). Headers starting
    /// with `Nats-` are never copied: they steer JetStream.
    #[serde(default = "yes")]
    pub copy_headers: bool,
}

impl NatsSinkOptions {
    /// Options publishing every event to `subject`.
    pub fn to_subject(subject: impl Into<String>) -> Self {
        NatsSinkOptions {
            subject: Some(subject.into()),
            copy_headers: true,
        }
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        if let Some(subject) = &self.subject {
            check_subject(&subject.replace(KEY, "key"), false)
                .map_err(|e| Error::new(ErrorKind::ConfigInvalid, e.message().to_string()))?;
        }
        Ok(())
    }
}

/// JetStream publishing as an [`EventSink`].
///
/// Each event becomes one message: bytes as they are (`Content-Type` from the media type),
/// JSON serialized (`application/json`), nothing as an empty body; records become one JSON
/// message per row. The event's key is the message's `Nats-Msg-Id` (`{key}-{row}` for
/// rows), so the stream drops a message it already stored when a batch is written again.
/// A batch is published whole, then every acknowledgement is awaited together; the events
/// whose messages were not all acknowledged are the report's failures.
#[derive(Debug, Clone)]
pub struct NatsSink {
    jetstream: NatsJetStream,
    options: NatsSinkOptions,
}

impl NatsSink {
    /// A sink publishing on `jetstream` as `options` say (checked here).
    pub fn new(jetstream: NatsJetStream, options: NatsSinkOptions) -> Result<Self> {
        options.check()?;
        Ok(NatsSink { jetstream, options })
    }

    /// The messages one event becomes.
    fn messages_of(&self, event: &Event) -> Result<Vec<OutgoingMessage>> {
        let subject = match &self.options.subject {
            Some(template) if template.contains(KEY) => {
                let key = event.key.as_deref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the sink's subject `{template}` needs the event's key, and it has none"
                        ),
                    )
                })?;
                template.replace(KEY, key)
            }
            Some(subject) => subject.clone(),
            None => event.subject.clone().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "the event has no subject and the sink names none (set `subject`)",
                )
            })?,
        };
        check_subject(&subject, false)?;
        let headers: BTreeMap<String, String> = if self.options.copy_headers {
            event
                .headers
                .iter()
                .filter(|(name, _)| {
                    !name.to_ascii_lowercase().starts_with("nats-")
                        && !name.eq_ignore_ascii_case(CONTENT_TYPE)
                })
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let message = |body: bytes::Bytes, content_type: Option<String>, msg_id| OutgoingMessage {
            subject: subject.clone(),
            body,
            headers: headers.clone(),
            msg_id,
            content_type,
        };
        Ok(match &event.payload {
            Payload::Empty => vec![message(bytes::Bytes::new(), None, event.key.clone())],
            Payload::Bytes(blob) => vec![message(
                blob.data.clone(),
                Some(blob.media_type.clone()),
                event.key.clone(),
            )],
            Payload::Json(value) => vec![message(
                serde_json::to_vec(value)?.into(),
                Some(MEDIA_JSON.into()),
                event.key.clone(),
            )],
            Payload::Records(records) => records
                .to_json_rows()?
                .iter()
                .enumerate()
                .map(|(n, row)| {
                    Ok(message(
                        serde_json::to_vec(row)?.into(),
                        Some(MEDIA_JSON.into()),
                        event.key.as_ref().map(|k| format!("{k}-{n}")),
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
        })
    }
}

#[async_trait]
impl EventSink for NatsSink {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        let mut failed: BTreeMap<usize, Error> = BTreeMap::new();
        let mut owners = Vec::new();
        let mut outgoing = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match self.messages_of(event) {
                Ok(messages) => {
                    owners.extend(std::iter::repeat_n(i, messages.len()));
                    outgoing.extend(messages);
                }
                Err(e) => {
                    failed.insert(i, e.with_context("event", &event.id));
                }
            }
        }
        let results = self.jetstream.publish(&outgoing).await;
        for (result, i) in results.into_iter().zip(owners) {
            if let Err(e) = result {
                failed
                    .entry(i)
                    .or_insert_with(|| e.with_context("event", &events[i].id));
            }
        }
        if !events.is_empty() && failed.len() == events.len() {
            let count = events.len();
            let errors: Vec<Error> = failed.into_values().collect();
            let pick = errors
                .iter()
                .position(Error::is_temporary)
                .unwrap_or_default();
            let first = errors
                .into_iter()
                .nth(pick)
                .unwrap_or_else(|| Error::new(ErrorKind::Unexpected, "no event was written"));
            let message = format!(
                "none of the {count} events was written to NATS: {}",
                first.message()
            );
            let mut error = Error::new(first.kind(), message);
            for (key, value) in first.context() {
                error = error.with_context(key, value);
            }
            return Err(if first.is_temporary() {
                error.set_temporary()
            } else {
                error.set_permanent()
            });
        }
        Ok(WriteReport {
            failed: failed.into_iter().collect(),
        })
    }
}
