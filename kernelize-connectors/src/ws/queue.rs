//! [`OutboundQueue`]: the bounded queue of messages waiting for a live connection.
//!
//! Senders push at the back under the [`OverflowPolicy`]; the one writer of the current
//! connection takes a batch from the front and writes and flushes its messages one by one,
//! removing each only once its flush has succeeded. A message whose write fails stays
//! where it is and goes first on the next connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kernelize_core::{Error, ErrorKind, Result};
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite;

use super::config::OverflowPolicy;
use super::message::Message;
use super::state::Telemetry;

/// Most messages taken from the queue at once (the lock is not taken per message).
const MAX_BATCH: usize = 64;
/// Most bytes taken at once (a single bigger message still goes alone).
const MAX_BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug)]
struct Inner {
    /// Waiting messages; the first `in_flight` are being written.
    items: VecDeque<tungstenite::Message>,
    in_flight: usize,
    /// Messages of the batch being written that `DropOldest` pushed out of the queue
    /// before their turn came: they are the batch's next ones (eviction takes the front),
    /// sent if their write succeeds, dropped if not.
    evicted_in_flight: usize,
    /// Why sends are refused, once the connector is closing or closed.
    closed: Option<Error>,
}

/// The outbound queue, shared by the senders and the connection task.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    capacity: usize,
    policy: OverflowPolicy,
    max_message_size: usize,
    endpoint: String,
    inner: Mutex<Inner>,
    /// Free slots, used by [`OverflowPolicy::Wait`] so waiting senders queue up fairly.
    slots: Semaphore,
    /// Wakes the writer when a message arrives.
    work: Notify,
    telemetry: Arc<Telemetry>,
}

impl OutboundQueue {
    pub(crate) fn new(
        capacity: usize,
        policy: OverflowPolicy,
        max_message_size: usize,
        endpoint: String,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            capacity,
            policy,
            max_message_size,
            endpoint,
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity.min(1024)),
                in_flight: 0,
                evicted_in_flight: 0,
                closed: None,
            }),
            slots: Semaphore::new(capacity),
            work: Notify::new(),
            telemetry,
        }
    }

    /// The queue's state. A panic while it was held cannot leave it half-updated (every
    /// critical section is a few plain assignments), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self, message: &Message) -> Result<()> {
        if message.len() > self.max_message_size {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "a {}-byte message is larger than max_message_size ({} bytes)",
                    message.len(),
                    self.max_message_size
                ),
            )
            .with_context("endpoint", &self.endpoint));
        }
        Ok(())
    }

    fn closed_error(&self, cause: &Error) -> Error {
        Error::new(
            ErrorKind::InvalidState,
            format!("the WebSocket connector is closed: {}", cause.message()),
        )
        .with_context("endpoint", &self.endpoint)
        .set_permanent()
    }

    fn full_error(&self) -> Error {
        Error::new(
            ErrorKind::RateLimited,
            format!(
                "the outbound queue is full (capacity {} messages)",
                self.capacity
            ),
        )
        .with_context("endpoint", &self.endpoint)
        .set_temporary()
    }

    /// Queues `message` under the overflow policy; with `wait` false the `Wait` policy
    /// fails instead of waiting.
    pub(crate) async fn push(&self, message: Message, wait: bool) -> Result<()> {
        self.check(&message)?;
        let frame = message.into_frame();
        if self.policy == OverflowPolicy::Wait {
            let permit = if wait {
                self.slots.acquire().await.ok()
            } else {
                match self.slots.try_acquire() {
                    Ok(permit) => Some(permit),
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        return Err(self.full_error());
                    }
                    Err(tokio::sync::TryAcquireError::Closed) => None,
                }
            };
            let mut inner = self.lock();
            if let Some(cause) = &inner.closed {
                return Err(self.closed_error(cause));
            }
            let Some(permit) = permit else {
                return Err(self.closed_error(&Error::new(ErrorKind::InvalidState, "closed")));
            };
            // The slot now belongs to the queued message; `finish_batch` gives it back.
            permit.forget();
            inner.items.push_back(frame);
        } else {
            let mut inner = self.lock();
            if let Some(cause) = &inner.closed {
                return Err(self.closed_error(cause));
            }
            if inner.items.len() >= self.capacity {
                if self.policy == OverflowPolicy::Reject {
                    return Err(self.full_error());
                }
                inner.items.pop_front();
                if inner.in_flight > 0 {
                    inner.in_flight -= 1;
                    inner.evicted_in_flight += 1;
                } else {
                    self.telemetry.dropped(1, "overflow");
                }
            }
            inner.items.push_back(frame);
        }
        self.work.notify_one();
        Ok(())
    }

    /// Waits until a message may be waiting (a push since the last call, or one already
    /// there when this is called for the first time).
    pub(crate) async fn work(&self) {
        self.work.notified().await;
    }

    /// Wakes the writer without a new message (to look at the closing flag again).
    pub(crate) fn nudge(&self) {
        self.work.notify_one();
    }

    /// Marks the front of the queue as being written and returns copies of it (cheap: the
    /// payloads are reference counted). Empty when nothing is waiting. What the batch does
    /// not [`commit`](Batch::commit) stays in the queue.
    pub(crate) fn begin_batch(&self) -> Batch<'_> {
        let mut inner = self.lock();
        let mut bytes = 0;
        let mut frames = Vec::new();
        for item in &inner.items {
            let len = item.len();
            if !frames.is_empty() && (frames.len() >= MAX_BATCH || bytes + len > MAX_BATCH_BYTES) {
                break;
            }
            bytes += len;
            frames.push(item.clone());
        }
        inner.in_flight = frames.len();
        inner.evicted_in_flight = 0;
        Batch {
            queue: self,
            frames,
        }
    }

    /// The batch's next message was written and flushed: it leaves the queue.
    fn commit_one(&self) {
        let mut inner = self.lock();
        if inner.evicted_in_flight > 0 {
            // Already pushed out of the queue, yet it went out.
            inner.evicted_in_flight -= 1;
        } else if inner.in_flight > 0 {
            inner.in_flight -= 1;
            inner.items.pop_front();
            drop(inner);
            if self.policy == OverflowPolicy::Wait {
                self.slots.add_permits(1);
            }
        } else {
            return;
        }
        self.telemetry.sent(1);
    }

    /// The batch ends: what it did not commit stays queued, except what `DropOldest`
    /// pushed out meanwhile, which is now dropped.
    fn end_batch(&self) {
        let mut inner = self.lock();
        let evicted = std::mem::take(&mut inner.evicted_in_flight);
        inner.in_flight = 0;
        drop(inner);
        self.telemetry.dropped(evicted as u64, "overflow");
    }

    /// Messages waiting (being written included).
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Refuses further sends with `cause` (senders waiting for room get the error too).
    pub(crate) fn close(&self, cause: Error) {
        let mut inner = self.lock();
        if inner.closed.is_none() {
            inner.closed = Some(cause);
        }
        drop(inner);
        self.slots.close();
    }

    /// Empties the queue for good, counting what was left as dropped; returns that count.
    pub(crate) fn discard(&self) -> usize {
        let mut inner = self.lock();
        let left = inner.items.len();
        inner.items.clear();
        inner.in_flight = 0;
        let evicted = std::mem::take(&mut inner.evicted_in_flight);
        drop(inner);
        self.telemetry.dropped(left as u64, "closed");
        self.telemetry.dropped(evicted as u64, "overflow");
        left
    }
}

/// The messages at the front of the queue while they are being written.
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    queue: &'a OutboundQueue,
    frames: Vec<tungstenite::Message>,
}

impl Batch<'_> {
    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames to write, in order.
    pub(crate) fn take_frames(&mut self) -> Vec<tungstenite::Message> {
        std::mem::take(&mut self.frames)
    }

    /// The next frame of the batch was written and flushed.
    pub(crate) fn commit(&self) {
        self.queue.commit_one();
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.queue.end_batch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize, policy: OverflowPolicy) -> OutboundQueue {
        OutboundQueue::new(
            capacity,
            policy,
            1024,
            "ws://test:80".into(),
            Arc::new(Telemetry::new("test".into())),
        )
    }

    fn texts(batch: &[tungstenite::Message]) -> Vec<String> {
        batch
            .iter()
            .map(|m| m.to_text().unwrap_or("?").to_string())
            .collect()
    }

    #[tokio::test]
    async fn only_committed_messages_leave_the_queue() {
        let q = queue(8, OverflowPolicy::Wait);
        for i in 0..4 {
            assert!(q.push(Message::text(i.to_string()), true).await.is_ok());
        }
        let mut batch = q.begin_batch();
        assert_eq!(texts(&batch.take_frames()), ["0", "1", "2", "3"]);
        assert!(q.push(Message::text("4"), true).await.is_ok());
        batch.commit();
        batch.commit();
        drop(batch); // the third write failed
        assert_eq!(q.slots.available_permits(), 5);
        let mut batch = q.begin_batch();
        assert_eq!(texts(&batch.take_frames()), ["2", "3", "4"]);
        for _ in 0..3 {
            batch.commit();
        }
        drop(batch);
        assert_eq!(q.len(), 0);
        assert_eq!(q.telemetry.stats(0).sent, 5);
    }

    #[tokio::test]
    async fn drop_oldest_counts_an_evicted_in_flight_message_by_the_write_outcome() {
        let telemetry = Arc::new(Telemetry::new("t".into()));
        let q = OutboundQueue::new(
            2,
            OverflowPolicy::DropOldest,
            1024,
            "ws://t:80".into(),
            telemetry.clone(),
        );
        for i in 0..2 {
            assert!(q.push(Message::text(i.to_string()), true).await.is_ok());
        }
        let batch = q.begin_batch();
        // "0" is being written when "2" pushes it out; then both writes succeed.
        assert!(q.push(Message::text("2"), true).await.is_ok());
        batch.commit();
        batch.commit();
        drop(batch);
        let stats = telemetry.stats(q.len());
        assert_eq!((stats.sent, stats.dropped, stats.queued), (2, 0, 1));

        assert!(q.push(Message::text("3"), true).await.is_ok());
        let batch = q.begin_batch();
        // "2" is pushed out by "4" and its write fails.
        assert!(q.push(Message::text("4"), true).await.is_ok());
        drop(batch);
        let stats = telemetry.stats(q.len());
        assert_eq!((stats.sent, stats.dropped), (2, 1));
        assert_eq!(texts(&q.begin_batch().take_frames()), ["3", "4"]);
    }

    #[tokio::test]
    async fn wait_policy_try_push_fails_when_full_and_close_wakes_waiters() {
        let q = Arc::new(queue(1, OverflowPolicy::Wait));
        assert!(q.push(Message::text("a"), false).await.is_ok());
        let full = q.push(Message::text("b"), false).await;
        assert!(full.is_err_and(|e| e.kind() == ErrorKind::RateLimited));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.push(Message::text("c"), true).await }
        });
        tokio::task::yield_now().await;
        q.close(Error::new(ErrorKind::InvalidState, "closed by the test"));
        let outcome = waiter.await.ok();
        assert!(
            matches!(outcome, Some(Err(ref e)) if e.kind() == ErrorKind::InvalidState),
            "{outcome:?}"
        );
    }
}
