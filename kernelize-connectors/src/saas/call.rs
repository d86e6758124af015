//! [`within`]: one piece of a call's work, bounded by the call's deadline and cancellation;
//! [`answer_error`]: a vendor's failed answer as an error.

use std::future::Future;

use kernelize_core::plugin::ActionContext;
use kernelize_core::{Error, ErrorKind, Result};

use crate::http::Response;

/// Runs `work` bounded by `ctx`'s deadline and cancellation: a `cancelled` error when the
/// call is cancelled first, a `timeout` error when its deadline passes first (both naming
/// the `vendor`, `"the Shopify call was cancelled"`), else `work`'s own result.
pub async fn within<T>(
    ctx: &ActionContext,
    vendor: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let deadline = ctx.deadline.map(tokio::time::Instant::from_std);
    tokio::select! {
        _ = ctx.cancel.cancelled() => Err(Error::new(
            ErrorKind::Cancelled,
            format!("the {vendor} call was cancelled"),
        )),
        _ = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending::<()>().await,
            }
        } => Err(Error::new(
            ErrorKind::Timeout,
            format!("the {vendor} call passed its deadline"),
        )),
        out = work => out,
    }
}

/// The error of a failed `response`, of `kind` with `message` (what the vendor said):
/// with its status, temporary after 408, 429 and 5xx (permanent otherwise, as
/// [`Response::error_for_status`] has it), and with the answer's `Retry-After`.
pub fn answer_error(response: &Response, kind: ErrorKind, message: String) -> Error {
    let status = response.status.as_u16();
    let error = Error::new(kind, message).with_status(status);
    let error = if status == 408 || status == 429 || response.status.is_server_error() {
        error.set_temporary()
    } else {
        error.set_permanent()
    };
    match response.retry_after() {
        Some(after) => error.with_retry_after(after),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use kernelize_core::PermissionGuard;
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn ctx(deadline: Option<Instant>, cancel: CancellationToken) -> ActionContext {
        ActionContext {
            action: "list".into(),
            deadline,
            cancel,
            idempotency_key: None,
            vars: BTreeMap::new(),
            permissions: PermissionGuard::none(),
        }
    }

    #[tokio::test]
    async fn work_that_ends_in_time_gives_its_result() {
        let out = within(&ctx(None, CancellationToken::new()), "Shopify", async {
            Ok(7)
        })
        .await;
        assert_eq!(out.ok(), Some(7));
    }

    #[tokio::test]
    async fn a_passed_deadline_is_a_timeout_naming_the_vendor() {
        let deadline = Instant::now() + Duration::from_millis(20);
        let err = within(
            &ctx(Some(deadline), CancellationToken::new()),
            "Drupal",
            std::future::pending::<Result<()>>(),
        )
        .await
        .err();
        let err = err.map(|e| (e.kind(), e.message().to_string()));
        assert_eq!(
            err,
            Some((
                ErrorKind::Timeout,
                "the Drupal call passed its deadline".to_string()
            ))
        );
    }

    #[tokio::test]
    async fn cancellation_ends_the_work() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let err = within(
            &ctx(None, cancel),
            "WordPress",
            std::future::pending::<Result<()>>(),
        )
        .await
        .err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Cancelled));
    }
}
