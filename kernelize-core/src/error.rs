//! The one error type every Kernelize crate returns.
//!
//! An [`Error`] carries a [`ErrorKind`] (what went wrong, for callers that branch on it), a
//! message (for people), a temporary/permanent flag (for the retry layer, so retryability
//! lives in the error and not in each caller), optional retry-after and remote status, and
//! context pairs (which plugin, which action, which URL). Errors are built by chaining:
//!
//! ```
//! use kernelize_core::{Error, ErrorKind};
//! use std::time::Duration;
//!
//! let err = Error::new(ErrorKind::RateLimited, "slack answered 429")
//!     .with_context("channel", "#ops")
//!     .with_retry_after(Duration::from_secs(3))
//!     .set_temporary();
//! assert!(err.is_temporary());
//! assert_eq!(err.to_string(), "rate limited: slack answered 429 (channel: #ops)");
//! ```
//!
//! Secrets never belong in an error: messages and context are shown to people and written to
//! logs. Code that may echo a configuration value redacts it first
//! (see [`crate::config::Redactor`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong, coarsely, so callers can decide what to do about it.
///
/// New kinds may be added in minor releases; match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Configuration is missing, malformed, or references something that does not exist.
    ConfigInvalid,
    /// Input given to a call is malformed (bad JSON, a CSV row that does not parse, ...).
    InvalidInput,
    /// A plugin, action, file, record or remote object does not exist.
    NotFound,
    /// A permission the operation needs was not granted.
    PermissionDenied,
    /// Plugin dependencies cannot be satisfied: missing, conflicting, cyclic or inactive.
    Dependency,
    /// An operation did not finish before its deadline.
    Timeout,
    /// A limit was hit (remote rate limit, or local concurrency limit); see `retry_after`.
    RateLimited,
    /// A remote system answered with an error; see `status`.
    Remote,
    /// Data is corrupt or truncated (a frame, a file, a response body).
    CorruptData,
    /// The operation was cancelled by its caller.
    Cancelled,
    /// The operation is not supported by this plugin, codec or build.
    Unsupported,
    /// A plugin is in the wrong state for the operation (not initialized, shutting down).
    InvalidState,
    /// Anything else; usually a bug or an unexpected answer.
    Unexpected,
}

impl ErrorKind {
    /// A short lower-case name, as used in messages and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConfigInvalid => "config invalid",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Dependency => "dependency error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Remote => "remote error",
            ErrorKind::CorruptData => "corrupt data",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidState => "invalid state",
            ErrorKind::Unexpected => "unexpected error",
        }
    }

    /// Whether errors of this kind are usually temporary, used as the default of
    /// [`Error::is_temporary`] until a builder sets it explicitly.
    fn temporary_by_default(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::RateLimited | ErrorKind::Remote
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of Kernelize.
///
/// Cheap to clone (the source is shared), so a workflow can keep the error of each attempt.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    temporary: Option<bool>,
    retry_after: Option<Duration>,
    status: Option<u16>,
    context: Vec<(&'static str, String)>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Creates an error of `kind` with a message meant for people.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            temporary: None,
            retry_after: None,
            status: None,
            context: Vec::new(),
            source: None,
        }
    }

    /// Adds a context pair, such as `("plugin", "file")` or `("row", "7")`.
    ///
    /// A key given twice keeps the first value: the innermost code knows best.
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        if !self.context.iter().any(|(k, _)| *k == key) {
            self.context.push((key, value.to_string()));
        }
        self
    }

    /// Marks the error as temporary: retrying the same operation later may succeed.
    pub fn set_temporary(mut self) -> Self {
        self.temporary = Some(true);
        self
    }

    /// Marks the error as permanent: retrying the same operation will fail the same way.
    pub fn set_permanent(mut self) -> Self {
        self.temporary = Some(false);
        self
    }

    /// Records how long the remote side asked us to wait before trying again.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Records the status a remote system answered with (an HTTP status, for example).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Attaches the underlying error.
    pub fn set_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without kind or context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a retry may succeed. Defaults by kind (timeouts, rate limits and remote
    /// errors are temporary) unless [`Error::set_temporary`] or [`Error::set_permanent`]
    /// said otherwise.
    pub fn is_temporary(&self) -> bool {
        self.temporary
            .unwrap_or_else(|| self.kind.temporary_by_default())
    }

    /// How long the remote side asked to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The remote status, if a remote system answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The context pairs, innermost first.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The value of one context key.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The error and its chain of causes, one line each, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut lines = vec![self.to_string()];
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            lines.push(cause.to_string());
            next = cause.source();
        }
        lines
    }

    /// The error as a JSON object, for `--json` output and audit trails.
    pub fn to_json(&self) -> serde_json::Value {
        let context: serde_json::Map<String, serde_json::Value> = self
            .context
            .iter()
            .map(|(k, v)| ((*k).to_string(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::json!({
            "kind": self.kind,
            "message": self.message,
            "temporary": self.is_temporary(),
            "retry_after_ms": self.retry_after.map(|d| d.as_millis() as u64),
            "status": self.status,
            "context": context,
            "causes": self.chain().into_iter().skip(1).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(status) = self.status {
            write!(f, " [status {status}]")?;
        }
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("message", &self.message)
            .field("temporary", &self.is_temporary());
        if let Some(after) = self.retry_after {
            d.field("retry_after", &after);
        }
        if let Some(status) = self.status {
            d.field("status", &status);
        }
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        if err.is_io() {
            return Error::new(
                ErrorKind::Unexpected,
                format!("cannot read or write JSON: {err}"),
            );
        }
        Error::new(ErrorKind::InvalidInput, format!("invalid JSON: {err}"))
            .with_context("line", err.line())
            .with_context("column", err.column())
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                ErrorKind::CorruptData
            }
            std::io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            _ => ErrorKind::Unexpected,
        };
        Error::new(kind, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_kind_message_status_and_context() {
        let err = Error::new(ErrorKind::Remote, "snowflake refused the statement")
            .with_status(422)
            .with_context("plugin", "snowflake-connector")
            .with_context("action", "query");
        assert_eq!(
            err.to_string(),
            "remote error: snowflake refused the statement [status 422] (plugin: snowflake-connector, action: query)"
        );
    }

    #[test]
    fn temporary_defaults_by_kind_and_builders_override() {
        assert!(Error::new(ErrorKind::Timeout, "t").is_temporary());
        assert!(!Error::new(ErrorKind::InvalidInput, "i").is_temporary());
        assert!(
            !Error::new(ErrorKind::Remote, "r")
                .set_permanent()
                .is_temporary()
        );
        assert!(
            Error::new(ErrorKind::NotFound, "n")
                .set_temporary()
                .is_temporary()
        );
    }

    #[test]
    fn first_context_value_wins() {
        let err = Error::new(ErrorKind::Unexpected, "x")
            .with_context("row", 3)
            .with_context("row", 9);
        assert_eq!(err.context_value("row"), Some("3"));
    }

    #[test]
    fn chain_lists_causes() {
        let io = std::io::Error::other("disk on fire");
        let err = Error::new(ErrorKind::Unexpected, "could not save").set_source(io);
        assert_eq!(
            err.chain(),
            vec!["unexpected error: could not save", "disk on fire"]
        );
        assert_eq!(err.to_json()["causes"][0], "disk on fire");
    }
}
