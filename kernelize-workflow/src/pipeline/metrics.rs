//! Counters of a running pipeline, per stage and per sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Live counters of one stage, sink or the source.
#[derive(Debug, Default)]
pub(crate) struct StageCounters {
    received: AtomicU64,
    sent: AtomicU64,
    errors: AtomicU64,
    discarded: AtomicU64,
    dead_lettered: AtomicU64,
    latency_ns: AtomicU64,
    latency_count: AtomicU64,
    latency_max_ns: AtomicU64,
}

impl StageCounters {
    pub(crate) fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn error(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn discarded(&self, n: u64) {
        self.discarded.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn dead_lettered(&self, n: u64) {
        self.dead_lettered.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn latency(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns.fetch_add(ns, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    fn snapshot(&self, name: &str, kind: &str) -> StageMetrics {
        let count = self.latency_count.load(Ordering::Relaxed);
        let total = self.latency_ns.load(Ordering::Relaxed);
        StageMetrics {
            name: name.to_string(),
            kind: kind.to_string(),
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            latency_mean_us: if count == 0 {
                0.0
            } else {
                total as f64 / count as f64 / 1000.0
            },
            latency_max_us: self.latency_max_ns.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// Counters of one part of a pipeline at one moment.
///
/// For a stage, `received` events came in, `sent` went on, `discarded` were dropped on
/// purpose (filtered, duplicates, unmatched with `drop`), `dead_lettered` were rejected to
/// the dead letter sink, `errors` counts failures (a rejected event, a failed write attempt).
/// For a sink, `sent` events were written. For the source, `received` counts deliveries
/// (redeliveries included) and `errors` failed receives and settlements. Latency is the time
/// an event spent in the stage (for a sink: per write call).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageMetrics {
    /// The stage's, sink's or source's name.
    pub name: String,
    /// `source`, `filter`, `route`, `transform`, `dedupe`, `sink` or `dead_letter`.
    pub kind: String,
    /// Events in.
    pub received: u64,
    /// Events passed on (or, for sinks, written).
    pub sent: u64,
    /// Failures.
    pub errors: u64,
    /// Events dropped on purpose.
    pub discarded: u64,
    /// Events sent to the dead letter sink.
    pub dead_lettered: u64,
    /// Mean time per event (per write for sinks), in microseconds.
    pub latency_mean_us: f64,
    /// Longest time, in microseconds.
    pub latency_max_us: f64,
}

/// How source deliveries were settled.
#[derive(Debug, Default)]
pub(crate) struct SettleCounters {
    acked: AtomicU64,
    rejected: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

impl SettleCounters {
    pub(crate) fn acked(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every counter of a pipeline at one moment ([`super::PipelineHandle::metrics`], and the
/// report of a finished run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineMetrics {
    /// The pipeline's name.
    pub pipeline: String,
    /// The source, the stages in order, the sinks, then the dead letter sink.
    pub stages: Vec<StageMetrics>,
    /// Deliveries acknowledged (written, filtered or duplicates).
    pub acked: u64,
    /// Deliveries rejected after being dead-lettered.
    pub rejected: u64,
    /// Deliveries handed back to the source to come again (a sink and the dead letter sink
    /// both failed, a key in flight elsewhere, a stop before they were written).
    pub retried: u64,
    /// Settlements the source refused (its connection was lost: it delivers them again).
    pub settle_errors: u64,
}

impl PipelineMetrics {
    /// The counters of the part named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageMetrics> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// The counters of a whole pipeline, shared by its tasks.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) pipeline: String,
    pub(crate) parts: Vec<(String, &'static str, Arc<StageCounters>)>,
    pub(crate) settled: SettleCounters,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> PipelineMetrics {
        PipelineMetrics {
            pipeline: self.pipeline.clone(),
            stages: self
                .parts
                .iter()
                .map(|(name, kind, c)| c.snapshot(name, kind))
                .collect(),
            acked: self.settled.acked.load(Ordering::Relaxed),
            rejected: self.settled.rejected.load(Ordering::Relaxed),
            retried: self.settled.retried.load(Ordering::Relaxed),
            settle_errors: self.settled.failed.load(Ordering::Relaxed),
        }
    }
}
