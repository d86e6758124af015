//! Client-side limits: a rate limit (GCRA, through `governor`) and a concurrency limit.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kernelize_core::{Error, ErrorKind, Result};
use tokio::sync::Semaphore;

use super::layer::{Layer, Next};
use super::request::{Request, Response};

/// Holds requests back to at most `per_second` a second on average, with bursts of up to
/// `burst`; every clone of the client shares the budget. Place it inside the retry layer, so
/// each attempt spends from it.
///
/// Built on `governor`'s GCRA limiter (rather than a token bucket of our own): waiting
/// requests sleep until their turn, they are never refused.
#[derive(Debug)]
pub struct RateLimit {
    limiter: DefaultDirectRateLimiter,
}

impl RateLimit {
    /// `per_second` requests a second, bursts of `burst`; zero for either is a config
    /// error.
    pub fn new(per_second: u32, burst: u32) -> Result<Self> {
        let nonzero = |n: u32, what: &str| {
            NonZeroU32::new(n).ok_or_else(|| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("a rate limit needs a {what} above zero"),
                )
            })
        };
        let quota =
            Quota::per_second(nonzero(per_second, "rate")?).allow_burst(nonzero(burst, "burst")?);
        Ok(Self {
            limiter: RateLimiter::direct(quota),
        })
    }
}

#[async_trait]
impl Layer for RateLimit {
    fn name(&self) -> &'static str {
        "rate-limit"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        if self.limiter.check().is_err() {
            let started = Instant::now();
            self.limiter.until_ready().await;
            metrics::counter!("kernelize_http_throttled_total").increment(1);
            metrics::histogram!("kernelize_http_throttled_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        next.run(request).await
    }
}

/// At most this many requests in flight through the client at once; the others wait their
/// turn, up to `max_wait` when set. Place it outermost.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    slots: Semaphore,
    max_wait: Option<Duration>,
}

impl ConcurrencyLimit {
    /// At most `max` requests at once (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            slots: Semaphore::new(max.max(1)),
            max_wait: None,
        }
    }

    /// Gives up on a slot after `max_wait` with a temporary error.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }
}

#[async_trait]
impl Layer for ConcurrencyLimit {
    fn name(&self) -> &'static str {
        "concurrency-limit"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let closed = || Error::new(ErrorKind::Unexpected, "the concurrency limit is closed");
        let _slot = match self.max_wait {
            None => self.slots.acquire().await.map_err(|_| closed())?,
            Some(wait) => match tokio::time::timeout(wait, self.slots.acquire()).await {
                Ok(slot) => slot.map_err(|_| closed())?,
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "{} waited {} ms for a free slot of the concurrency limit",
                            request.describe(),
                            wait.as_millis()
                        ),
                    )
                    .set_temporary());
                }
            },
        };
        next.run(request).await
    }
}
