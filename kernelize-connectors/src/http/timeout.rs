//! Timeouts: per attempt (inside retry) or per whole call (outside it).

use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Result};

use super::layer::{Layer, Next};
use super::request::{Request, Response};

/// Where a [`TimeoutLayer`] sits, which decides what it bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutScope {
    /// Bounds one attempt; goes inside the retry layer, so a slow attempt is retried.
    Attempt,
    /// Bounds the whole call, retries and their waits included; goes outside the retry
    /// layer. A request's own [`Request::timeout`] replaces this one's duration.
    Call,
}

/// Ends a request that takes longer than its duration with a temporary timeout error.
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    duration: Duration,
    scope: TimeoutScope,
}

impl TimeoutLayer {
    /// A per-attempt timeout.
    pub fn per_attempt(duration: Duration) -> Self {
        Self {
            duration,
            scope: TimeoutScope::Attempt,
        }
    }

    /// A whole-call timeout.
    pub fn per_call(duration: Duration) -> Self {
        Self {
            duration,
            scope: TimeoutScope::Call,
        }
    }
}

#[async_trait]
impl Layer for TimeoutLayer {
    fn name(&self) -> &'static str {
        match self.scope {
            TimeoutScope::Attempt => "attempt-timeout",
            TimeoutScope::Call => "call-timeout",
        }
    }

    async fn handle(&self, request: Request, next: Next<'_>) -> Result<Response> {
        let duration = match self.scope {
            TimeoutScope::Call => request.timeout.unwrap_or(self.duration),
            TimeoutScope::Attempt => self.duration,
        };
        let describe = request.describe();
        match tokio::time::timeout(duration, next.run(request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{describe} took longer than {} ({})",
                    humanize(duration),
                    match self.scope {
                        TimeoutScope::Attempt => "one attempt",
                        TimeoutScope::Call => "the whole call",
                    }
                ),
            )
            .set_temporary()),
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
