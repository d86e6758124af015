//! Events: what brokers deliver and event pipelines move, and the two traits every source
//! and sink implements.
//!
//! A source hands out [`Delivery`]s: an [`Event`] with an [`AckHandle`] that settles it
//! with the broker exactly once — [`AckHandle::ack`] when every sink it was routed to
//! confirmed it, [`AckHandle::retry`] to have it delivered again (after a delay when the
//! broker can), [`AckHandle::reject`] to drop it for good (after it was dead-lettered).
//! A handle dropped unsettled leaves the message with the broker, which delivers it again
//! once its own timeout passes: at-least-once, never lost.
//!
//! A sink writes a batch and says which events of it failed, one by one
//! ([`WriteReport`]), so that only those are retried or dead-lettered, not the batch.
//!
//! How brokers map: NATS JetStream `ack` / `nak(delay)` / `term`; RabbitMQ `basic.ack` /
//! `basic.nack(requeue)` / `basic.reject(requeue = false)`; Redis Streams `XACK` / left
//! pending for `XAUTOCLAIM` / `XACK` after dead-lettering; MQTT QoS 1 and 2 acknowledge
//! after processing.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::payload::Payload;

/// One message, as a source delivered it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The source's id of the message (a stream entry id, a JetStream sequence, a delivery
    /// tag) or one the source made up; unique within the source.
    pub id: String,
    /// A key the message carries (a message id for de-duplication, a partition key).
    pub key: Option<String>,
    /// Where it came from: subject, stream, queue or topic.
    pub subject: Option<String>,
    /// Headers or properties.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub payload: Payload,
    /// How many times the source has delivered it, this time included (1 the first time).
    pub attempt: u32,
    /// When the source received it.
    pub received_at: DateTime<Utc>,
}

impl Event {
    /// An event with `id` and `payload`, first delivery, received now.
    pub fn new(id: impl Into<String>, payload: Payload) -> Self {
        Event {
            id: id.into(),
            key: None,
            subject: None,
            headers: BTreeMap::new(),
            payload,
            attempt: 1,
            received_at: Utc::now(),
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// How a delivery is settled with its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Done: the source forgets it.
    Ack,
    /// Deliver it again, after `delay` when the source supports a delay.
    Retry {
        /// How long the source should wait first.
        delay: Option<Duration>,
    },
    /// Never deliver it again (it was dead-lettered, or cannot ever succeed).
    Reject,
}

/// What a source does to settle one delivery; implemented by each source.
#[async_trait]
pub trait Settle: Send + 'static {
    /// Tells the broker how the delivery ended.
    async fn settle(self: Box<Self>, settlement: Settlement) -> Result<()>;
}

/// Settles one delivery exactly once; see the [module](self) docs.
pub struct AckHandle {
    inner: Option<Box<dyn Settle>>,
    id: String,
}

impl fmt::Debug for AckHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckHandle")
            .field("id", &self.id)
            .field("settled", &self.inner.is_none())
            .finish()
    }
}

impl AckHandle {
    /// A handle that settles delivery `id` through `settle`.
    pub fn new(id: impl Into<String>, settle: impl Settle) -> Self {
        AckHandle {
            inner: Some(Box::new(settle)),
            id: id.into(),
        }
    }

    /// A handle with nothing to tell (a source without acknowledgements).
    pub fn none(id: impl Into<String>) -> Self {
        AckHandle {
            inner: None,
            id: id.into(),
        }
    }

    /// Settles the delivery.
    pub async fn settle(mut self, settlement: Settlement) -> Result<()> {
        match self.inner.take() {
            Some(inner) => inner
                .settle(settlement)
                .await
                .map_err(|e| e.with_context("delivery", &self.id)),
            None => Ok(()),
        }
    }

    /// Acknowledges the delivery.
    pub async fn ack(self) -> Result<()> {
        self.settle(Settlement::Ack).await
    }

    /// Asks for the delivery again, after `delay` when the source can wait.
    pub async fn retry(self, delay: Option<Duration>) -> Result<()> {
        self.settle(Settlement::Retry { delay }).await
    }

    /// Drops the delivery for good.
    pub async fn reject(self) -> Result<()> {
        self.settle(Settlement::Reject).await
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        if self.inner.is_some() {
            tracing::debug!(delivery = %self.id, "delivery dropped unsettled; the source will deliver it again");
        }
    }
}

/// An event and the handle that settles it.
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// Settles it with the source.
    pub ack: AckHandle,
}

/// Where events come from: a broker consumer, a channel, a webhook listener.
#[async_trait]
pub trait EventSource: Send + 'static {
    /// The next delivery: waits for one; `None` when the source has ended (a finite
    /// source) or `cancel` fired.
    async fn receive(&mut self, cancel: &CancellationToken) -> Result<Option<Delivery>>;
}

/// Which events of a batch a sink could not write.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Positions in the batch, with why; every other event was written.
    pub failed: Vec<(usize, Error)>,
}

impl WriteReport {
    /// Every event written.
    pub fn all_written() -> Self {
        Self::default()
    }

    /// Whether every event was written.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Where events go: a table, a stream, a queue, a topic.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Writes a batch. `Err` means nothing of it may be counted as written; a
    /// [`WriteReport`] names the events that failed when the others were written.
    async fn write(&self, events: &[Event]) -> Result<WriteReport>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder(Arc<Mutex<Vec<Settlement>>>);

    #[async_trait]
    impl Settle for Recorder {
        async fn settle(self: Box<Self>, settlement: Settlement) -> Result<()> {
            self.0.lock().unwrap().push(settlement);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_handle_settles_once_with_what_was_asked() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        AckHandle::new("1", Recorder(seen.clone()))
            .ack()
            .await
            .unwrap();
        AckHandle::new("2", Recorder(seen.clone()))
            .retry(Some(Duration::from_secs(1)))
            .await
            .unwrap();
        AckHandle::new("3", Recorder(seen.clone()))
            .reject()
            .await
            .unwrap();
        drop(AckHandle::new("4", Recorder(seen.clone())));
        AckHandle::none("5").ack().await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                Settlement::Ack,
                Settlement::Retry {
                    delay: Some(Duration::from_secs(1))
                },
                Settlement::Reject
            ]
        );
    }

    struct Failing;

    #[async_trait]
    impl Settle for Failing {
        async fn settle(self: Box<Self>, _: Settlement) -> Result<()> {
            Err(Error::new(crate::ErrorKind::Dependency, "broker gone"))
        }
    }

    #[tokio::test]
    async fn a_failed_settlement_names_the_delivery() {
        let e = AckHandle::new("42", Failing).ack().await.unwrap_err();
        assert_eq!(e.context_value("delivery"), Some("42"));
    }
}
