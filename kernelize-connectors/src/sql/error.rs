//! Turning sqlx errors into Kernelize errors that say what was being done and whether a retry
//! may help.
//!
//! | sqlx error                         | kind            | temporary |
//! |------------------------------------|-----------------|-----------|
//! | database error, classified by the dialect's [`Dialect::classify_error`] | as classified | as classified |
//! | database error, constraint (unique, not null, check, foreign key) | invalid input | no |
//! | any other database error (syntax, no such table, ...) | invalid input | no |
//! | no free connection in time          | timeout         | yes       |
//! | I/O error, worker crashed           | unexpected      | yes       |
//! | a value that does not decode        | corrupt data    | no        |
//! | pool closed                         | invalid state   | no        |
//! | anything else                       | unexpected      | no        |
//!
//! Messages carry the database's own words and code; bound values never appear in them (they
//! are not in the SQL text).

use kernelize_core::{Error, ErrorKind};

use super::dialect::Dialect;

/// The Kernelize error for `err`, raised while doing `doing` (`run the query`, `open
/// /data/sales.db`).
pub(crate) fn database_error(dialect: &Dialect, doing: &str, err: sqlx::Error) -> Error {
    let name = dialect.name;
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            let class = code.as_deref().and_then(dialect.classify_error);
            let kind = class.map_or(ErrorKind::InvalidInput, |c| c.kind);
            let mut message = format!("{name} could not {doing}: {}", db.message());
            if let Some(hint) = class.and_then(|c| c.hint) {
                message.push_str(" (");
                message.push_str(hint);
                message.push(')');
            }
            let mut out = Error::new(kind, message);
            if let Some(code) = code {
                out = out.with_context("code", code);
            }
            if class.is_some_and(|c| c.temporary) {
                out.set_temporary()
            } else {
                out.set_permanent()
            }
        }
        sqlx::Error::PoolTimedOut => Error::new(
            ErrorKind::Timeout,
            format!("no {name} connection became free in time to {doing}"),
        )
        .set_temporary(),
        sqlx::Error::PoolClosed => Error::new(
            ErrorKind::InvalidState,
            format!("the {name} connection pool is closed; cannot {doing}"),
        ),
        sqlx::Error::Io(e) => Error::new(
            ErrorKind::Unexpected,
            format!("{name} I/O failed while trying to {doing}: {e}"),
        )
        .set_temporary(),
        sqlx::Error::WorkerCrashed => Error::new(
            ErrorKind::Unexpected,
            format!("the {name} worker thread stopped while trying to {doing}"),
        )
        .set_temporary(),
        e @ (sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => Error::new(
            ErrorKind::CorruptData,
            format!("a {name} value does not decode while trying to {doing}: {e}"),
        ),
        other => Error::new(
            ErrorKind::Unexpected,
            format!("{name} failed to {doing}: {other}"),
        ),
    }
}
