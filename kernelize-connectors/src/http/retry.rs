//! Retry with exponential backoff and full jitter, honouring `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::layer::{Layer, Next};
use super::request::{Request, Response};

/// What a response means for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done: hand the response up (success or a failure that retrying will not fix).
    Done,
    /// Worth another attempt, after `after` when the server said so — if the request may be
    /// sent again ([`Request::is_idempotent`]).
    Retry {
        /// The server's own wait (`Retry-After`), if any.
        after: Option<Duration>,
    },
    /// The server refused the request without acting on it (a 429, a GraphQL throttle):
    /// worth another attempt whatever the method, after `after` when the server said so.
    Refused {
        /// The server's own wait, if any.
        after: Option<Duration>,
    },
}

/// Decides whether a response is worth another attempt. Connectors plug in their vendor's
/// habits (a 200 with `"ok": false`, a 403 whose reason is `rateLimitExceeded`).
pub type Classifier = Arc<dyn Fn(&Response) -> Verdict + Send + Sync>;

/// The default classification: a 429 is a refusal and a 503 worth retrying, both after
/// their `Retry-After` (or the backoff); 408, 500, 502 and 504 retry after the backoff;
/// everything else is done.
pub fn default_verdict(response: &Response) -> Verdict {
    match response.status.as_u16() {
        429 => Verdict::Refused {
            after: response.retry_after(),
        },
        503 => Verdict::Retry {
            after: response.retry_after(),
        },
        408 | 500 | 502 | 504 => Verdict::Retry { after: None },
        _ => Verdict::Done,
    }
}

/// How to retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retrying off.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles each retry.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub max_delay: Duration,
    /// The longest `Retry-After` waited out; a server asking for more ends the call with a
    /// rate-limited error carrying its wait, so the caller can decide.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff before retry number `retry` (1 for the first): a uniformly random wait
    /// between zero and `min(max_delay, base_delay × 2^(retry-1))` ("full jitter"), so that
    /// many clients that failed together do not come back together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// The retry layer. Place it outside the per-attempt timeout and inside the whole-call
/// timeout (see the crate docs for the full order).
///
/// Only idempotent requests are retried ([`Request::is_idempotent`]): a POST or PATCH
/// without an idempotency key is sent once since the server may have acted on it before
/// the failure — except after a [`Verdict::Refused`] (a 429 by default; a vendor's
/// classifier may say so of other answers), which is retried whatever the method. Errors
/// are retried when they are temporary ([`Error::is_temporary`]); responses when the
/// classifier says so.
#[derive(Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
    classifier: Classifier,
}

impl std::fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RetryLayer {
    /// A retry layer with the default classification.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            classifier: Arc::new(default_verdict),
        }
    }

    /// Replaces the classification of responses.
    pub fn classify(
        mut self,
        classifier: impl Fn(&Response) -> Verdict + Send + Sync + 'static,
    ) -> Self {
        self.classifier = Arc::new(classifier);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

#[async_trait]
impl Layer for RetryLayer {
    fn name(&self) -> &'static str {
        "retry"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let idempotent = request.is_idempotent();
        let max_attempts = self.policy.max_attempts.max(1);
        let host = request.url.host_str().unwrap_or("").to_string();
        let mut attempt = 1;
        loop {
            let outcome = next.run(request.clone()).await;
            let (wait, refused) = match &outcome {
                Ok(response) => match (self.classifier)(response) {
                    Verdict::Done => return outcome,
                    Verdict::Retry { after } => (after, false),
                    Verdict::Refused { after } => (after, true),
                },
                Err(e) if e.is_temporary() => (e.retry_after(), false),
                Err(_) => return outcome,
            };
            if attempt >= max_attempts || !(idempotent || refused) {
                return outcome;
            }
            let wait = match wait {
                Some(after) if after > self.policy.max_retry_after => {
                    return Err(Error::new(
                        ErrorKind::RateLimited,
                        format!(
                            "{} asked to wait {} s, more than the {} s this client waits",
                            request.describe(),
                            after.as_secs(),
                            self.policy.max_retry_after.as_secs()
                        ),
                    )
                    .with_retry_after(after)
                    .set_temporary());
                }
                Some(after) => after,
                None => self.policy.backoff(attempt),
            };
            let reason = match &outcome {
                Ok(r) => r.status.as_u16().to_string(),
                Err(e) => e.kind().as_str().to_string(),
            };
            tracing::debug!(
                request = %request.describe(),
                attempt,
                reason = %reason,
                wait_ms = wait.as_millis() as u64,
                "retrying"
            );
            metrics::counter!("kernelize_http_retries_total", "host" => host.clone(), "reason" => reason)
                .increment(1);
            tokio::time::sleep(wait).await;
            attempt += 1;
            // The request's span (opened by `HttpClient::send`) shows the attempt in flight.
            tracing::Span::current().record("attempt", attempt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_a_doubling_ceiling_capped_at_max_delay() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for (retry, ceiling) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(retry)).collect();
            let max = waits.iter().max().copied().unwrap_or_default();
            assert!(
                max <= Duration::from_millis(ceiling),
                "retry {retry}: {max:?}"
            );
            // Full jitter spreads the waits over the whole range.
            assert!(
                max > Duration::from_millis(ceiling / 2),
                "retry {retry}: {max:?}"
            );
            assert!(
                waits
                    .iter()
                    .any(|w| *w < Duration::from_millis(ceiling / 2))
            );
        }
    }

    #[test]
    fn policy_reads_durations_as_text() {
        let policy: RetryPolicy =
            serde_json::from_value(serde_json::json!({"max_attempts": 2, "base_delay": "250ms"}))
                .unwrap_or_default();
        assert_eq!(policy.max_attempts, 2);
        assert_eq!(policy.base_delay, Duration::from_millis(250));
        assert_eq!(policy.max_delay, RetryPolicy::default().max_delay);
    }
}
