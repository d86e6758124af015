//! Circuit breaker: after enough failures in a row, stop calling for a while, then let one
//! probe through to find out whether the service is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Result};

use super::layer::{Layer, Next};
use super::request::{Request, Response};

/// When the breaker opens and for how long.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting a probe through.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// The breaker's state, as [`CircuitBreaker::state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; this many failures in a row so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Calls fail fast until the instant.
    Open {
        /// When a probe may go.
        until: Instant,
    },
    /// One probe is out; other calls fail fast until it answers.
    HalfOpen,
}

/// The circuit breaker layer. Place it outside the retry layer, so that one call (with its
/// retries) counts once, and an open breaker stops the retries too.
///
/// A failure is an error marked temporary (timeouts, refused connections) or a 5xx
/// answer; 4xx answers are the caller's problem and count as successes of the service.
#[derive(Debug)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
            .lock()
            .map(|s| *s)
            .unwrap_or(BreakerState::Closed { failures: 0 })
    }

    /// Lets a call through (`Ok(is_probe)`) or refuses it.
    fn admit(&self, describe: &str) -> Result<bool> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let now = Instant::now();
        match *state {
            BreakerState::Closed { .. } => Ok(false),
            BreakerState::Open { until } if now >= until => {
                *state = BreakerState::HalfOpen;
                gauge(1.0);
                Ok(true)
            }
            BreakerState::Open { until } => Err(open_error(describe, until - now)),
            BreakerState::HalfOpen => Err(open_error(describe, Duration::ZERO)),
        }
    }

    fn record(&self, failed: bool, probe: bool) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let open = BreakerState::Open {
            until: Instant::now() + self.settings.open_for,
        };
        *state = match (*state, failed) {
            (_, false) if probe => BreakerState::Closed { failures: 0 },
            (_, true) if probe => open,
            (BreakerState::Closed { .. }, false) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, true) => {
                let failures = failures + 1;
                if failures >= self.settings.failure_threshold {
                    tracing::warn!(failures, "circuit breaker opened");
                    open
                } else {
                    BreakerState::Closed { failures }
                }
            }
            // A call admitted before the breaker opened: its outcome changes nothing now.
            (other, _) => other,
        };
        gauge(match *state {
            BreakerState::Closed { .. } => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open { .. } => 2.0,
        });
    }
}

fn gauge(value: f64) {
    metrics::gauge!("kernelize_http_breaker_state").set(value);
}

fn poisoned() -> Error {
    Error::new(
        ErrorKind::Unexpected,
        "the circuit breaker's state is poisoned",
    )
}

fn open_error(describe: &str, wait: Duration) -> Error {
    Error::new(
        ErrorKind::Remote,
        format!("{describe} not sent: the circuit breaker is open after repeated failures"),
    )
    .with_retry_after(wait)
    .set_temporary()
}

#[async_trait]
impl Layer for CircuitBreaker {
    fn name(&self) -> &'static str {
        "circuit-breaker"
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let probe = self.admit(&request.describe())?;
        let outcome = next.run(request).await;
        let failed = match &outcome {
            Ok(response) => response.status.is_server_error(),
            Err(e) => e.is_temporary(),
        };
        self.record(failed, probe);
        outcome
    }
}
