//! [`MqttSink`]: an [`EventSink`] that publishes each event on the plugin's connection and
//! counts it written once the broker confirmed it; and how payloads become message bodies.

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use kernelize_core::{Error, ErrorKind, Event, EventSink, Payload, Result, WriteReport};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::client::MqttPublisher;
use super::config::{Qos, check_topic};

/// Options of the `mqtt-connector`'s event sink (a pipeline sink's settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkOptions {
    /// The topic every event goes to; when absent, each event's `subject`.
    #[serde(default)]
    pub topic: Option<String>,
    /// The QoS messages are published with (1 unless given).
    #[serde(default)]
    pub qos: Qos,
    /// Publish as retained messages.
    #[serde(default)]
    pub retain: bool,
}

impl MqttSinkOptions {
    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        if let Some(topic) = &self.topic {
            check_topic(topic)?;
        }
        Ok(())
    }
}

/// The message bodies of a payload: bytes as they are, JSON as its text, records one JSON
/// object per row, nothing as one empty body (which clears a retained message).
pub fn bodies_of(payload: &Payload) -> Result<Vec<Bytes>> {
    match payload {
        Payload::Empty => Ok(vec![Bytes::new()]),
        Payload::Bytes(blob) => Ok(vec![blob.data.clone()]),
        Payload::Json(value) => Ok(vec![Bytes::from(serde_json::to_vec(value)?)]),
        Payload::Records(records) => records
            .to_json_rows()?
            .iter()
            .map(|row| Ok(Bytes::from(serde_json::to_vec(row)?)))
            .collect(),
    }
}

/// Publishes events to an MQTT topic. MQTT 3.1.1 messages have no headers, content type
/// or message id: an event's `headers` and `key` are not carried, and the broker does not
/// de-duplicate.
#[derive(Debug, Clone)]
pub struct MqttSink {
    publisher: MqttPublisher,
    options: MqttSinkOptions,
}

impl MqttSink {
    /// A sink on `publisher`'s connection; `options` are checked here.
    pub fn new(publisher: MqttPublisher, options: MqttSinkOptions) -> Result<Self> {
        options.check()?;
        Ok(MqttSink { publisher, options })
    }

    async fn write_one(&self, event: &Event) -> Result<()> {
        let topic = match (&self.options.topic, &event.subject) {
            (Some(topic), _) => topic.as_str(),
            (None, Some(subject)) => subject.as_str(),
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "the event has no subject and the sink no `topic`; give the sink a `topic`",
                )
                .with_context("event", &event.id));
            }
        };
        let bodies = bodies_of(&event.payload).map_err(|e| e.with_context("event", &event.id))?;
        let sent = join_all(bodies.into_iter().map(|body| {
            self.publisher
                .publish(topic, self.options.qos, self.options.retain, body)
        }))
        .await;
        sent.into_iter()
            .collect::<Result<Vec<()>>>()
            .map(drop)
            .map_err(|e| e.with_context("event", &event.id))
    }
}

#[async_trait]
impl EventSink for MqttSink {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        let outcomes = join_all(events.iter().map(|event| self.write_one(event))).await;
        let failed: Vec<(usize, Error)> = outcomes
            .into_iter()
            .enumerate()
            .filter_map(|(i, outcome)| outcome.err().map(|e| (i, e)))
            .collect();
        if failed.len() == events.len()
            && let Some((_, first)) = failed.first()
        {
            // Nothing was written: the batch fails as a whole (temporary while the broker
            // is down).
            return Err(first.clone().with_context("failed_events", failed.len()));
        }
        Ok(WriteReport { failed })
    }
}
