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

pub mod channel {
    //! An in-memory event channel: a bounded queue with acknowledgements, the source for
    //! pipelines fed from Rust (and for tests of everything downstream).
    //!
    //! A delivery that is retried goes back to the queue (after its delay) with its attempt
    //! count raised; one dropped unsettled goes back at once, as a broker would redeliver it;
    //! an acknowledged or rejected one is gone. [`ChannelSender::send`] waits while the
    //! queue is full: backpressure, never unbounded memory.

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use tokio::sync::{Notify, Semaphore};
    use tokio_util::sync::CancellationToken;

    use super::{AckHandle, Delivery, Event, EventSource, Settle, Settlement};
    use crate::error::{Error, ErrorKind, Result};

    struct Shared {
        queue: Mutex<VecDeque<Event>>,
        /// Free places; a place is taken by `send` and given back when a delivery is
        /// acknowledged or rejected (a delivered, unsettled event still holds its place).
        places: Semaphore,
        ready: Notify,
        closed: std::sync::atomic::AtomicBool,
        pending: std::sync::atomic::AtomicUsize,
    }

    impl Shared {
        fn push(&self, event: Event) {
            self.queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(event);
            self.ready.notify_one();
        }
    }

    /// Sends events into a channel.
    #[derive(Clone)]
    pub struct ChannelSender(Arc<Shared>);

    impl std::fmt::Debug for ChannelSender {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ChannelSender").finish_non_exhaustive()
        }
    }

    /// Receives a channel's events, as an [`EventSource`].
    pub struct ChannelSource(Arc<Shared>);

    impl std::fmt::Debug for ChannelSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ChannelSource").finish_non_exhaustive()
        }
    }

    /// A channel holding at most `capacity` events not yet settled.
    pub fn channel(capacity: usize) -> (ChannelSender, ChannelSource) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            places: Semaphore::new(capacity.max(1)),
            ready: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            pending: std::sync::atomic::AtomicUsize::new(0),
        });
        (ChannelSender(shared.clone()), ChannelSource(shared))
    }

    impl ChannelSender {
        /// Queues an event, waiting while the channel is full.
        pub async fn send(&self, event: Event) -> Result<()> {
            if self.0.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::InvalidState, "the channel is closed"));
            }
            let permit = self
                .0
                .places
                .acquire()
                .await
                .map_err(|_| Error::new(ErrorKind::InvalidState, "the channel is closed"))?;
            permit.forget();
            self.0
                .pending
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.push(event);
            Ok(())
        }

        /// Ends the channel: the source ends once every event sent is settled.
        pub fn close(&self) {
            self.0
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.0.ready.notify_waiters();
            self.0.ready.notify_one();
        }

        /// Events sent and not yet acknowledged or rejected.
        pub fn unsettled(&self) -> usize {
            self.0.pending.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    struct ChannelAck {
        shared: Arc<Shared>,
        event: Option<Event>,
    }

    impl ChannelAck {
        fn done(&mut self) {
            self.event = None;
            self.shared
                .pending
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            self.shared.places.add_permits(1);
            self.shared.ready.notify_one();
        }
    }

    #[async_trait]
    impl Settle for ChannelAck {
        async fn settle(mut self: Box<Self>, settlement: Settlement) -> Result<()> {
            match settlement {
                Settlement::Ack | Settlement::Reject => self.done(),
                Settlement::Retry { delay } => {
                    if let Some(mut event) = self.event.take() {
                        event.attempt += 1;
                        let shared = self.shared.clone();
                        match delay {
                            Some(delay) if !delay.is_zero() => {
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    shared.push(event);
                                });
                            }
                            _ => shared.push(event),
                        }
                    }
                }
            }
            Ok(())
        }
    }

    impl Drop for ChannelAck {
        fn drop(&mut self) {
            // Dropped unsettled: delivered again, as a broker would.
            if let Some(mut event) = self.event.take() {
                event.attempt += 1;
                self.shared.push(event);
            }
        }
    }

    #[async_trait]
    impl EventSource for ChannelSource {
        async fn receive(&mut self, cancel: &CancellationToken) -> Result<Option<Delivery>> {
            loop {
                let ready = self.0.ready.notified();
                let next = self
                    .0
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                if let Some(event) = next {
                    let ack = AckHandle::new(
                        event.id.clone(),
                        ChannelAck {
                            shared: self.0.clone(),
                            event: Some(event.clone()),
                        },
                    );
                    return Ok(Some(Delivery { event, ack }));
                }
                if self.0.closed.load(std::sync::atomic::Ordering::SeqCst)
                    && self.0.pending.load(std::sync::atomic::Ordering::SeqCst) == 0
                {
                    return Ok(None);
                }
                tokio::select! {
                    _ = ready => {}
                    _ = cancel.cancelled() => return Ok(None),
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::payload::Payload;
        use std::time::Duration;

        fn event(n: u32) -> Event {
            Event::new(n.to_string(), Payload::Json(serde_json::json!({ "n": n })))
        }

        #[tokio::test]
        async fn retried_and_dropped_deliveries_come_back_and_the_source_ends_when_all_settle() {
            let (tx, mut rx) = channel(8);
            let cancel = CancellationToken::new();
            for n in 1..=3 {
                tx.send(event(n)).await.unwrap();
            }
            tx.close();
            let d1 = rx.receive(&cancel).await.unwrap().unwrap();
            d1.ack.ack().await.unwrap();
            let d2 = rx.receive(&cancel).await.unwrap().unwrap();
            d2.ack.retry(None).await.unwrap();
            let d3 = rx.receive(&cancel).await.unwrap().unwrap();
            drop(d3);
            // 2 then 3 again, each on its second attempt.
            let again = rx.receive(&cancel).await.unwrap().unwrap();
            assert_eq!((again.event.id.as_str(), again.event.attempt), ("2", 2));
            again.ack.reject().await.unwrap();
            let again = rx.receive(&cancel).await.unwrap().unwrap();
            assert_eq!((again.event.id.as_str(), again.event.attempt), ("3", 2));
            assert_eq!(tx.unsettled(), 1);
            again.ack.ack().await.unwrap();
            assert!(rx.receive(&cancel).await.unwrap().is_none());
            assert!(tx.send(event(9)).await.is_err());
        }

        #[tokio::test]
        async fn a_full_channel_holds_the_sender_until_a_delivery_settles() {
            let (tx, mut rx) = channel(2);
            let cancel = CancellationToken::new();
            tx.send(event(1)).await.unwrap();
            tx.send(event(2)).await.unwrap();
            let blocked = tokio::time::timeout(Duration::from_millis(50), tx.send(event(3))).await;
            assert!(blocked.is_err(), "the third send should wait");
            let d = rx.receive(&cancel).await.unwrap().unwrap();
            d.ack.ack().await.unwrap();
            tokio::time::timeout(Duration::from_secs(5), tx.send(event(3)))
                .await
                .unwrap()
                .unwrap();
            // A cancelled receive ends at once.
            let stopped = CancellationToken::new();
            stopped.cancel();
            let (_tx, mut empty) = channel(1);
            assert!(empty.receive(&stopped).await.unwrap().is_none());
        }
    }
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
