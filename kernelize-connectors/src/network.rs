//! The network-grant check every connector that reaches a server makes, with one wording
//! for its denial.

use kernelize_core::{Error, ErrorKind, Permission, PermissionGuard, Result};

/// Checks that `guard` grants `permission` (network access to `host`); a denial says which
/// host to grant to reach `server` ("the NATS server") and carries the redacted URL as the
/// `key` context. Permanent: retrying does not grant it.
pub(crate) fn check_network(
    permission: &Permission,
    host: &str,
    redacted: &str,
    guard: &PermissionGuard,
    server: &str,
    key: &'static str,
) -> Result<()> {
    guard.check(permission).map_err(|e| {
        Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{}; grant network access to `{host}` to reach {server}",
                e.message()
            ),
        )
        .with_context(key, redacted)
        .set_permanent()
    })
}
