//! Audit events and the sinks that keep them.
//!
//! Every permission grant and denial, and every install, activation, deactivation, update and
//! rollback of a plugin is an [`AuditEvent`]: when, who, what, on what, and how it ended.
//! Events go to an [`AuditSink`]: a JSON lines file ([`JsonLinesAuditSink`]), memory
//! ([`MemoryAuditSink`], for tests and the gateway), the tracing log ([`TracingAuditSink`]),
//! or several at once ([`FanOutAuditSink`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was attempted and failed.
    Failure,
    /// It was refused for lack of permission.
    Denied,
}

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// Who did it: a plugin id, a user, or `host` for the embedding application.
    pub actor: String,
    /// What was done, as `area.verb`: `plugin.install`, `plugin.activate`, `permission.grant`, ...
    pub action: String,
    /// What it was done to: a plugin label, a permission, a file.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// More about it, such as the error of a failure. Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event happening now.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        AuditEvent {
            timestamp: Utc::now(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            outcome,
            detail: None,
        }
    }

    /// Adds a detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Where audit events go.
///
/// `record` must not fail the audited operation: a sink that cannot write reports the
/// problem through `tracing` and carries on.
pub trait AuditSink: Send + Sync + 'static {
    /// Keeps one event.
    fn record(&self, event: &AuditEvent);
}

/// Keeps events in memory; [`MemoryAuditSink::events`] returns them.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The events whose action is `action`.
    pub fn events_of(&self, action: &str) -> Vec<AuditEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: &AuditEvent) {
        match self.events.lock() {
            Ok(mut events) => events.push(event.clone()),
            Err(poisoned) => poisoned.into_inner().push(event.clone()),
        }
    }
}

/// Writes each event as one JSON line to a file, appending.
#[derive(Debug)]
pub struct JsonLinesAuditSink {
    path: PathBuf,
    file: Mutex<File>,
}

impl JsonLinesAuditSink {
    /// Opens (creating if needed) the file at `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::from(e).with_context("audit_log", path.display()))?;
        Ok(JsonLinesAuditSink {
            path,
            file: Mutex::new(file),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AuditSink for JsonLinesAuditSink {
    fn record(&self, event: &AuditEvent) {
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "audit event does not serialize");
                return;
            }
        };
        line.push(b'\n');
        let mut file = match self.file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        // One write call per line, so concurrent processes appending to the same file do not
        // interleave within a line.
        if let Err(e) = file.write_all(&line).and_then(|_| file.flush()) {
            tracing::error!(error = %e, path = %self.path.display(), "cannot write audit event");
        }
    }
}

/// Logs each event through `tracing` at info level, target `kernelize::audit`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn record(&self, event: &AuditEvent) {
        tracing::info!(
            target: "kernelize::audit",
            actor = %event.actor,
            action = %event.action,
            target_name = %event.target,
            outcome = ?event.outcome,
            detail = event.detail.as_deref().unwrap_or(""),
            "audit"
        );
    }
}

/// Sends each event to several sinks.
#[derive(Default, Clone)]
pub struct FanOutAuditSink {
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl std::fmt::Debug for FanOutAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOutAuditSink")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl FanOutAuditSink {
    /// Sends to every sink in `sinks`.
    pub fn new(sinks: Vec<Arc<dyn AuditSink>>) -> Self {
        FanOutAuditSink { sinks }
    }
}

impl AuditSink for FanOutAuditSink {
    fn record(&self, event: &AuditEvent) {
        for sink in &self.sinks {
            sink.record(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_sink_appends_one_parsable_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let sink = JsonLinesAuditSink::open(&path).unwrap();
        sink.record(&AuditEvent::new(
            "host",
            "plugin.install",
            "file 0.1.0",
            Outcome::Success,
        ));
        sink.record(
            &AuditEvent::new("file", "permission.deny", "file-read:/etc", Outcome::Denied)
                .with_detail("not granted"),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let events: Vec<AuditEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].action, "plugin.install");
        assert_eq!(events[1].outcome, Outcome::Denied);
        assert_eq!(events[1].detail.as_deref(), Some("not granted"));
    }

    #[test]
    fn fan_out_reaches_every_sink() {
        let a = Arc::new(MemoryAuditSink::new());
        let b = Arc::new(MemoryAuditSink::new());
        let fan = FanOutAuditSink::new(vec![a.clone(), b.clone()]);
        fan.record(&AuditEvent::new("host", "x.y", "t", Outcome::Success));
        assert_eq!(a.events().len(), 1);
        assert_eq!(b.events().len(), 1);
    }
}
