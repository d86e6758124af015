//! [`poll_until`]: waiting for remote work that finishes later.

use std::future::Future;
use std::time::{Duration, Instant};

use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How often, and for how long, to poll remote work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PollSettings {
    /// The wait before the first poll.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub initial: Duration,
    /// The longest wait between two polls; waits grow by half each poll up to it.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub max: Duration,
    /// How long to wait for the work in all before giving up with a timeout error; the
    /// call's own deadline, if earlier, wins. For ever (until the deadline) when absent.
    #[serde(with = "kernelize_core::config::opt_duration")]
    #[schemars(with = "Option<String>")]
    pub max_wait: Option<Duration>,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
            max_wait: Some(Duration::from_secs(3600)),
        }
    }
}

impl PollSettings {
    /// Settings polling every `every`, with no growth (for tests and tight loops).
    pub fn every(every: Duration) -> Self {
        Self {
            initial: every,
            max: every,
            max_wait: None,
        }
    }
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll<T> {
    /// The work is done (or failed, as the value says).
    Ready(T),
    /// Still running; poll again. The text describes the state (`RUNNING`, `3 of 8 done`).
    Pending(String),
}

/// Polls `check` until it is [`Poll::Ready`], waiting as `settings` say between polls.
///
/// Ends with a `cancelled` error when the call is cancelled and a `timeout` error when the
/// call's deadline or `settings.max_wait` comes first; the timeout names `what` and the
/// last state seen. An error from `check` ends the polling with that error.
pub async fn poll_until<T, F, Fut>(
    ctx: &ActionContext,
    settings: &PollSettings,
    what: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let started = Instant::now();
    let give_up = settings.max_wait.map(|w| started + w);
    let end = match (give_up, ctx.deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut wait = settings.initial;
    let mut last = String::from("not started");
    loop {
        ctx.check_alive()?;
        let now = Instant::now();
        if let Some(end) = end
            && now + wait > end
        {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{what} was still not done after {:.1} s (last state: {last})",
                    started.elapsed().as_secs_f64()
                ),
            ));
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => {
                return Err(Error::new(ErrorKind::Cancelled, format!("cancelled while waiting for {what}")));
            }
            _ = tokio::time::sleep(wait) => {}
        }
        match check().await? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(state) => last = state,
        }
        wait = (wait + wait / 2).min(settings.max).max(settings.initial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelize_core::PermissionGuard;
    use std::collections::BTreeMap;
    use tokio_util::sync::CancellationToken as Token;

    fn ctx(deadline: Option<Instant>, cancel: Token) -> ActionContext {
        ActionContext {
            action: "query".into(),
            deadline,
            cancel,
            permissions: PermissionGuard::none(),
            idempotency_key: None,
            vars: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn polls_until_ready_with_growing_waits() {
        let settings = PollSettings {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            max_wait: None,
        };
        let mut seen = Vec::new();
        let started = Instant::now();
        let value = poll_until(&ctx(None, Token::new()), &settings, "the job", || {
            seen.push(started.elapsed());
            let n = seen.len();
            async move {
                Ok(if n < 5 {
                    Poll::Pending(format!("step {n}"))
                } else {
                    Poll::Ready(n)
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 5);
        // 10 + 15 + 22 + 33 + 40 ms of waits at least.
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    #[tokio::test]
    async fn gives_up_after_max_wait_naming_the_last_state() {
        let settings = PollSettings {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
            max_wait: Some(Duration::from_millis(60)),
        };
        let err = poll_until(
            &ctx(None, Token::new()),
            &settings,
            "statement 01b2",
            || async { Ok(Poll::<()>::Pending("RUNNING".into())) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.message().contains("statement 01b2"), "{err}");
        assert!(err.message().contains("RUNNING"), "{err}");
    }

    #[tokio::test]
    async fn stops_when_cancelled_and_passes_errors_through() {
        let cancel = Token::new();
        let settings = PollSettings::every(Duration::from_secs(30));
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopper.cancel();
        });
        let err = poll_until(&ctx(None, cancel), &settings, "the refresh", || async {
            Ok(Poll::<()>::Pending("Unknown".into()))
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);

        let settings = PollSettings::every(Duration::from_millis(1));
        let err = poll_until(&ctx(None, Token::new()), &settings, "the run", || async {
            Err::<Poll<()>, _>(Error::new(ErrorKind::Remote, "FAILED: boom"))
        })
        .await
        .unwrap_err();
        assert!(err.message().contains("boom"));
    }
}
