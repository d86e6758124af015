//! [`NatsSource`]: a durable JetStream pull consumer as an event source for pipelines.

use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::event::Settle;
use kernelize_core::{
    AckHandle, Delivery, Error, ErrorKind, Event, EventSource, Payload, Result, Settlement,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::Link;
use super::config::{MAX_BATCH, MAX_EXPIRES};
use super::jetstream::{
    AckToken, CONTENT_TYPE, ConsumerSpec, FetchOptions, MSG_ID, NatsJetStream, PullBatch,
    StreamSpec, check_name, check_subject, header_value, headers_of,
};

fn default_true() -> bool {
    true
}

fn default_batch() -> usize {
    100
}

fn default_expires() -> Duration {
    Duration::from_secs(5)
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}

fn default_content_type() -> String {
    kernelize_core::payload::MEDIA_OCTET_STREAM.to_string()
}

/// The first wait after a failed pull; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between attempts while the server cannot be reached.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Options of the `nats-connector` event source (a pipeline's `source:` settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceOptions {
    /// The stream to read.
    pub stream: String,
    /// The durable pull consumer to read it through.
    pub durable: String,
    /// The subjects the consumer takes (wildcards allowed); all of the stream's when absent.
    /// A consumer that exists with another filter is refused.
    #[serde(default)]
    pub filter_subject: Option<String>,
    /// The most messages one pull asks for, and so the most the source holds before handing
    /// them out (1 to 10,000; 100 when absent).
    #[serde(default = "default_batch")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch: usize,
    /// How long one pull waits for messages before the next is sent (`"5s"`; at most `"5m"`).
    #[serde(default = "default_expires", with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub expires: Duration,
    /// How long a delivery may stay unsettled before the server delivers it again (`"30s"`);
    /// used when the source creates the consumer.
    #[serde(
        default = "default_ack_wait",
        with = "kernelize_core::config::duration"
    )]
    #[schemars(with = "String")]
    pub ack_wait: Duration,
    /// How many times one message is delivered at most; without limit when absent. Used when
    /// the source creates the consumer.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_deliver: Option<i64>,
    /// How many deliveries may wait for their acknowledgement at once (the server's 1,000
    /// when absent); used when the source creates the consumer. The server delivers no more
    /// until some are settled, so set it to at least the pipeline's `max_in_flight` when a
    /// sink batches more events than 1,000.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_ack_pending: Option<i64>,
    /// Wait for the server to confirm each settlement (a JetStream double ack), `true` when
    /// absent. `false` sends settlements without waiting, as most NATS clients do: no round
    /// trip per message, and a settlement lost with a dropped connection only means the
    /// message comes again after `ack_wait` (it is never lost). A pipeline's `acked`
    /// counter then counts settlements sent, not settlements the server confirmed.
    #[serde(default = "default_true")]
    pub confirm_acks: bool,
    /// Create the stream (of `subjects`) and the consumer when missing.
    #[serde(default)]
    pub create: bool,
    /// The subjects of a stream created here; `filter_subject` when absent.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The media type of messages without a `Content-Type` header
    /// (`application/octet-stream` when absent).
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The most body bytes one pull asks for; the server's limit when absent.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<usize>,
}

impl NatsSourceOptions {
    /// Options reading `stream` through the durable consumer `durable`, every other option
    /// at its default.
    pub fn new(stream: impl Into<String>, durable: impl Into<String>) -> Self {
        NatsSourceOptions {
            stream: stream.into(),
            durable: durable.into(),
            filter_subject: None,
            batch: default_batch(),
            expires: default_expires(),
            ack_wait: default_ack_wait(),
            max_deliver: None,
            max_ack_pending: None,
            confirm_acks: true,
            create: false,
            subjects: Vec::new(),
            content_type: default_content_type(),
            max_bytes: None,
        }
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::new(ErrorKind::ConfigInvalid, why));
        check_name("stream", &self.stream).map_err(config_error)?;
        check_name("consumer", &self.durable).map_err(config_error)?;
        if let Some(filter) = &self.filter_subject {
            check_subject(filter, true).map_err(config_error)?;
        }
        for subject in &self.subjects {
            check_subject(subject, true).map_err(config_error)?;
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return invalid(format!("`batch` must be 1 to {MAX_BATCH}"));
        }
        if self.expires < Duration::from_millis(100) || self.expires > MAX_EXPIRES {
            return invalid("`expires` must be 100ms to 5 minutes".into());
        }
        if self.ack_wait.is_zero() {
            return invalid("`ack_wait` must be more than zero".into());
        }
        if self.max_deliver.is_some_and(|n| n < 1) {
            return invalid("`max_deliver` must be at least 1 (leave it out for no limit)".into());
        }
        if self.max_ack_pending.is_some_and(|n| n < 1) {
            return invalid(
                "`max_ack_pending` must be at least 1 (leave it out for the server's default)"
                    .into(),
            );
        }
        if self.max_bytes == Some(0) {
            return invalid("`max_bytes` must be at least 1".into());
        }
        if self.content_type.trim().is_empty() {
            return invalid("`content_type` cannot be empty".into());
        }
        if self.create && self.subjects.is_empty() && self.filter_subject.is_none() {
            return invalid(
                "`create: true` needs `subjects` (or `filter_subject`) for the stream it may create"
                    .into(),
            );
        }
        Ok(())
    }
}

fn config_error(e: Error) -> Error {
    Error::new(ErrorKind::ConfigInvalid, e.message().to_string())
}

/// A durable JetStream pull consumer as an [`EventSource`].
///
/// Each pull asks for up to `batch` messages and waits up to `expires` for them; `receive`
/// hands them out one at a time as they arrive, and sends the next pull when one is done. A
/// delivery is settled through its [`AckHandle`]: `Ack` is JetStream's `+ACK` sent as a
/// request, so that it returns only once the server confirmed it; `Retry { delay }` is
/// `-NAK` with the delay; `Reject` is `+TERM`. One dropped unsettled is delivered again
/// after `ack_wait`.
///
/// When the connection drops, the pull in flight is abandoned (it lived on the old
/// connection's server) and a new one is sent once the client has reconnected; failures
/// meanwhile are logged and retried with backoff (100 ms doubling to 5 s, with jitter) until
/// the cancel token fires. Only a missing stream or consumer (without `create`) and invalid
/// options end `receive` with an error.
pub struct NatsSource {
    jetstream: NatsJetStream,
    options: NatsSourceOptions,
    link: watch::Receiver<Link>,
    pull: Option<PullBatch>,
    /// The connection the pull in flight was sent on.
    pull_epoch: u64,
    /// Whether the consumer is known to exist.
    checked: bool,
    failures: u32,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("stream", &self.options.stream)
            .field("durable", &self.options.durable)
            .field("pulling", &self.pull.is_some())
            .finish_non_exhaustive()
    }
}

/// What one wait of `receive` ended with.
enum Step {
    Pulled(Result<Option<async_nats::Message>>),
    LinkChanged(bool),
    Cancelled,
}

impl NatsSource {
    /// Checks `options`, makes sure the stream and the consumer exist (creating them with
    /// `create`), and returns the source; no message is pulled before the first `receive`.
    pub async fn open(jetstream: NatsJetStream, options: NatsSourceOptions) -> Result<Self> {
        options.check()?;
        let link = jetstream.client().link();
        let mut source = NatsSource {
            jetstream,
            options,
            link,
            pull: None,
            pull_epoch: 0,
            checked: false,
            failures: 0,
        };
        source.ensure_consumer().await?;
        source.checked = true;
        Ok(source)
    }

    /// The options the source was opened with.
    pub fn options(&self) -> &NatsSourceOptions {
        &self.options
    }

    /// Makes sure the consumer exists, creating it (and its stream) with `create`.
    async fn ensure_consumer(&self) -> Result<()> {
        let o = &self.options;
        let found = self.jetstream.consumer_info(&o.stream, &o.durable).await;
        match found {
            Ok(info) => {
                if o.filter_subject.is_some() && info.filter_subject != o.filter_subject {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        format!(
                            "consumer `{}` of stream `{}` exists with filter_subject {:?}, not {:?}; use another durable name",
                            o.durable,
                            o.stream,
                            info.filter_subject.as_deref().unwrap_or(""),
                            o.filter_subject.as_deref().unwrap_or("")
                        ),
                    )
                    .with_context("stream", &o.stream)
                    .with_context("consumer", &o.durable));
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound && o.create => {
                match self.jetstream.stream_info(&o.stream).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        let subjects = if o.subjects.is_empty() {
                            o.filter_subject.iter().cloned().collect()
                        } else {
                            o.subjects.clone()
                        };
                        let spec = StreamSpec {
                            name: o.stream.clone(),
                            subjects,
                            ..StreamSpec::default()
                        };
                        self.jetstream.create_stream(&spec).await?;
                        tracing::info!(stream = %o.stream, "created the JetStream stream");
                    }
                    Err(e) => return Err(e),
                }
                let spec = ConsumerSpec {
                    durable: o.durable.clone(),
                    filter_subject: o.filter_subject.clone(),
                    ack_wait: Some(o.ack_wait),
                    max_deliver: o.max_deliver,
                    max_ack_pending: o.max_ack_pending,
                    ..ConsumerSpec::default()
                };
                self.jetstream.create_consumer(&o.stream, &spec).await?;
                tracing::info!(stream = %o.stream, consumer = %o.durable, "created the JetStream consumer");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a pull once connected; `Ok(false)` when cancelled first.
    async fn start_pull(&mut self, cancel: &CancellationToken) -> Result<bool> {
        loop {
            loop {
                let link = *self.link.borrow_and_update();
                if link.connected {
                    self.pull_epoch = link.epoch;
                    break;
                }
                tokio::select! {
                    changed = self.link.changed() => if changed.is_err() { return Err(closed()) },
                    () = cancel.cancelled() => return Ok(false),
                }
            }
            if !self.checked {
                match self.ensure_consumer().await {
                    Ok(()) => self.checked = true,
                    Err(e) if is_fatal(&e) => return Err(e),
                    Err(e) => {
                        if !self.pause("check the consumer", &e, cancel).await {
                            return Ok(false);
                        }
                        continue;
                    }
                }
            }
            let o = &self.options;
            let options = FetchOptions {
                batch: o.batch,
                expires: Some(o.expires),
                max_bytes: o.max_bytes,
            };
            match self
                .jetstream
                .start_pull(&o.stream, &o.durable, &options)
                .await
            {
                Ok(pull) => {
                    self.pull = Some(pull);
                    return Ok(true);
                }
                Err(e) => {
                    if !self.pause("send a pull request", &e, cancel).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Logs a failure and waits before the next attempt; `false` when cancelled meanwhile.
    async fn pause(&mut self, doing: &str, error: &Error, cancel: &CancellationToken) -> bool {
        let wait = retry_wait(self.failures);
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(
            stream = %self.options.stream,
            consumer = %self.options.durable,
            error = %error,
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "the NATS source could not {doing}; retrying"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = cancel.cancelled() => false,
        }
    }

    /// The delivery of a pulled message; `None` (logged) for a message that cannot be
    /// settled, which the server delivers again after `ack_wait`.
    fn delivery(&self, message: async_nats::Message) -> Option<Delivery> {
        let token = match message.reply.as_ref().map(|r| AckToken::parse(r.as_str())) {
            Some(Ok(token)) => token,
            _ => {
                tracing::warn!(
                    stream = %self.options.stream,
                    subject = %message.subject,
                    "a pulled message came without a JetStream ack subject; skipped"
                );
                return None;
            }
        };
        let headers = message.headers.as_ref();
        let media_type = header_value(headers, CONTENT_TYPE)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| self.options.content_type.clone());
        let mut event = Event::new(
            token.sequence().to_string(),
            Payload::bytes(message.payload.clone(), media_type),
        )
        .with_subject(message.subject.to_string());
        event.key = header_value(headers, MSG_ID);
        event.headers = headers_of(headers);
        event.attempt = u32::try_from(token.delivered()).unwrap_or(u32::MAX).max(1);
        let ack = AckHandle::new(
            event.id.clone(),
            NatsAck {
                jetstream: self.jetstream.clone(),
                token,
                confirm: self.options.confirm_acks,
            },
        );
        Some(Delivery { event, ack })
    }
}

#[async_trait]
impl EventSource for NatsSource {
    async fn receive(&mut self, cancel: &CancellationToken) -> Result<Option<Delivery>> {
        loop {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            if self.pull.is_none() {
                if !self.start_pull(cancel).await? {
                    return Ok(None);
                }
                continue;
            }
            let step = match self.pull.as_mut() {
                None => continue,
                Some(pull) => {
                    let link = &mut self.link;
                    // A lost connection goes first: messages still buffered from it could
                    // not be settled, and come again after `ack_wait`.
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => Step::Cancelled,
                        changed = link.changed() => Step::LinkChanged(changed.is_err()),
                        next = pull.next() => Step::Pulled(next),
                    }
                }
            };
            match step {
                Step::Cancelled => return Ok(None),
                Step::Pulled(Ok(Some(message))) => {
                    self.failures = 0;
                    if let Some(delivery) = self.delivery(message) {
                        return Ok(Some(delivery));
                    }
                }
                Step::Pulled(Ok(None)) => self.pull = None,
                Step::Pulled(Err(e)) => {
                    self.pull = None;
                    if e.kind() == ErrorKind::NotFound {
                        self.checked = false;
                    } else if is_fatal(&e) {
                        return Err(e);
                    }
                    if !self.pause("pull messages", &e, cancel).await {
                        return Ok(None);
                    }
                }
                Step::LinkChanged(true) => return Err(closed()),
                Step::LinkChanged(false) => {
                    let link = *self.link.borrow_and_update();
                    if !link.connected || link.epoch != self.pull_epoch {
                        // The pull lived on the old connection's server; its messages stay
                        // pending there and come again after `ack_wait`.
                        tracing::debug!(
                            stream = %self.options.stream,
                            consumer = %self.options.durable,
                            "the NATS connection changed; pulling anew"
                        );
                        self.pull = None;
                    }
                }
            }
        }
    }
}

/// Settles one delivery of a [`NatsSource`].
struct NatsAck {
    jetstream: NatsJetStream,
    token: AckToken,
    confirm: bool,
}

#[async_trait]
impl Settle for NatsAck {
    async fn settle(self: Box<Self>, settlement: Settlement) -> Result<()> {
        if self.confirm {
            self.jetstream.settle(&self.token, settlement).await
        } else {
            self.jetstream
                .settle_unconfirmed(&self.token, settlement)
                .await
        }
    }
}

/// Errors that retrying cannot cure: the source stops with them.
fn is_fatal(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound
            | ErrorKind::ConfigInvalid
            | ErrorKind::InvalidInput
            | ErrorKind::PermissionDenied
            | ErrorKind::Unsupported
    )
}

fn closed() -> Error {
    Error::new(ErrorKind::InvalidState, "the NATS connection was closed")
}

/// The wait before attempt `failures + 1`: 100 ms doubling to 5 s, the upper half jittered.
fn retry_wait(failures: u32) -> Duration {
    let full = FIRST_RETRY_WAIT
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(MAX_RETRY_WAIT);
    let half = full / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(0);
    half + Duration::from_millis(rand::random_range(0..=jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_grow_to_the_cap() {
        assert!(retry_wait(0) <= Duration::from_millis(100));
        assert!(retry_wait(0) >= Duration::from_millis(50));
        assert!(retry_wait(3) >= Duration::from_millis(400));
        assert!(retry_wait(40) <= MAX_RETRY_WAIT);
        assert!(retry_wait(40) >= MAX_RETRY_WAIT / 2);
    }

    #[test]
    fn options_are_checked() {
        let ok = NatsSourceOptions::new("ORDERS", "billing");
        assert!(ok.check().is_ok());
        let mut bad = ok.clone();
        bad.batch = 10_001;
        assert_eq!(bad.check().unwrap_err().kind(), ErrorKind::ConfigInvalid);
        let mut bad = ok.clone();
        bad.create = true;
        assert!(bad.check().is_err(), "create needs subjects");
        let mut bad = ok;
        bad.stream = "a.b".into();
        assert_eq!(bad.check().unwrap_err().kind(), ErrorKind::ConfigInvalid);
    }
}
