//! Where runs live: every run, every step state change, outputs and scheduler state.
//!
//! [`Store`] is one trait with three implementations that pass the same behavioural tests
//! (`tests/store.rs`):
//!
//! - [`MemoryStore`]: in the process, gone when it ends; the engine's default.
//! - [`SqlStore`] over SQLite (feature `sqlite`): a file, the embedded default of the
//!   command line, so that `kernelize run` keeps history on a fresh machine.
//! - [`SqlStore`] over PostgreSQL (feature `postgres`): shared by workers on any number of
//!   machines, which claim runs with `FOR UPDATE SKIP LOCKED` and are woken by
//!   `LISTEN`/`NOTIFY`.
//!
//! Ownership is a lease: a run is executed by the one owner whose lease has not expired;
//! the owner renews it while it works, and every write of a run's state names the owner,
//! so a process that lost its lease (it stalled, and another worker took the run over)
//! cannot overwrite what the new owner records.

mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::{Payload, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::engine::RunStatus;
use crate::engine::StepStatus;

pub use memory::MemoryStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{INLINE_OUTPUT_LIMIT, SqlStore};

/// The context key of the error a store returns when the writer's lease is lost
/// (`lease: lost`); see [`is_lease_lost`].
pub const LEASE_CONTEXT: &str = "lease";

/// Whether `error` says the writer no longer holds the run.
pub fn is_lease_lost(error: &kernelize_core::Error) -> bool {
    error.context_value(LEASE_CONTEXT) == Some("lost")
}

/// The error of a write by an owner that no longer holds the run.
pub(crate) fn lost(run_id: &str, owner: &str) -> kernelize_core::Error {
    kernelize_core::Error::new(
        kernelize_core::ErrorKind::InvalidState,
        format!(
            "run {run_id} is no longer held by {owner}: its lease expired and another owner took it, or it ended"
        ),
    )
    .with_context(LEASE_CONTEXT, "lost")
}

/// Milliseconds since the Unix epoch, the time unit of stored records.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn parse_step_status(s: &str) -> Option<StepStatus> {
    Some(match s {
        "pending" => StepStatus::Pending,
        "running" => StepStatus::Running,
        "succeeded" => StepStatus::Succeeded,
        "failed" => StepStatus::Failed,
        "retrying" => StepStatus::Retrying,
        "skipped" => StepStatus::Skipped,
        "compensating" => StepStatus::Compensating,
        "compensated" => StepStatus::Compensated,
        "cancelled" => StepStatus::Cancelled,
        _ => return None,
    })
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Its id (time-ordered).
    pub id: String,
    /// The workflow's name in `definition`.
    pub workflow: String,
    /// The whole workflow file (JSON of [`crate::definition::WorkflowFile`]), so that any
    /// worker can execute the run without the file.
    pub definition: Value,
    /// Its parameters, defaults and overrides merged.
    pub params: BTreeMap<String, Value>,
    /// What started it: `manual`, `schedule:EXPR`, `webhook:PATH`, ...
    pub trigger: String,
    /// The owner that starts it in place, with its lease; `None` queues it for a worker.
    pub owner: Option<(String, Duration)>,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its id.
    pub id: String,
    /// Its workflow's name.
    pub workflow: String,
    /// Where it is.
    pub status: RunStatus,
    /// What started it.
    pub trigger: String,
    /// The workflow file it runs (JSON).
    pub definition: Value,
    /// Its parameters.
    pub params: BTreeMap<String, Value>,
    /// When it was created.
    pub created_at: Millis,
    /// When it first started executing.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Option<Millis>,
    /// Who holds it.
    pub lease_owner: Option<String>,
    /// Until when.
    pub lease_expires_at: Option<Millis>,
    /// How many times an owner claimed it (more than one after a takeover).
    pub claims: u32,
    /// Whether cancellation was asked for.
    pub cancel_requested: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// A run in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Its id.
    pub id: String,
    /// Its workflow's name.
    pub workflow: String,
    /// Where it is.
    pub status: RunStatus,
    /// What started it.
    pub trigger: String,
    /// When it was created.
    pub created_at: Millis,
    /// When it started executing.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Option<Millis>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this workflow's.
    pub workflow: Option<String>,
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// At most this many (100 when `None`).
    pub limit: Option<u32>,
}

/// The stored state of one step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Its name.
    pub name: String,
    /// Its position in the workflow's list.
    pub position: u32,
    /// Where it is.
    pub status: StepStatus,
    /// Attempts started; while running, the number of the current attempt.
    pub attempts: u32,
    /// When its first attempt started.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Option<Millis>,
    /// Its last error.
    pub error: Option<String>,
    /// Rows in its output.
    pub rows: Option<u64>,
    /// Bytes in its output.
    pub bytes: Option<u64>,
    /// Whether an output is stored.
    pub has_output: bool,
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: Millis,
    /// The step; `None` for a change of the run itself.
    pub step: Option<String>,
    /// The new state's name (a step status or a run state).
    pub status: String,
    /// The attempt it concerns.
    pub attempt: Option<u32>,
    /// The error that came with it.
    pub error: Option<String>,
}

/// Which run [`Store::claim`] takes.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The oldest queued run, or the oldest running one whose lease expired.
    Next,
    /// This run, when it is queued or its lease expired; with `force`, also when another
    /// owner's lease still holds (the caller knows that owner is gone).
    Run {
        /// The run's id.
        id: String,
        /// Take it even from a live lease.
        force: bool,
    },
}

/// What renewing a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Still ours, renewed.
    Held,
    /// Ours, renewed, and someone asked to cancel the run.
    CancelRequested,
    /// No longer ours: another owner took the run, or it ended.
    Lost,
}

/// Persistence of runs, steps, outputs and scheduler state. See the [module](self) docs.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// A short name of the backend (`memory`, `sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Creates a run: queued, or already owned and running when `run.owner` is set.
    async fn create_run(&self, run: NewRun) -> Result<()>;

    /// Takes a run for `owner` for `lease`: it becomes `running` and its claim count
    /// grows. `None` when there is nothing to claim.
    async fn claim(&self, owner: &str, lease: Duration, which: Claim) -> Result<Option<RunRecord>>;

    /// Extends `owner`'s lease on a run.
    async fn renew(&self, run_id: &str, owner: &str, lease: Duration) -> Result<LeaseState>;

    /// Records a step's state (and appends the change to the run's history), with its
    /// output when it has one. Fails with `InvalidState` when `owner` no longer holds the
    /// run.
    async fn record_step(
        &self,
        run_id: &str,
        owner: &str,
        step: &StepRecord,
        output: Option<&Payload>,
    ) -> Result<()>;

    /// Ends a run held by `owner` (the lease is released).
    async fn finish_run(
        &self,
        run_id: &str,
        owner: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<()>;

    /// Gives a run back to the queue without ending it (a worker shutting down).
    async fn release(&self, run_id: &str, owner: &str) -> Result<()>;

    /// Asks a run to stop: a queued run is cancelled at once; a running one's owner sees
    /// [`LeaseState::CancelRequested`] at its next renewal. False when the run had ended.
    async fn request_cancel(&self, run_id: &str) -> Result<bool>;

    /// A run.
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>>;

    /// A run's steps, in the workflow's order.
    async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>>;

    /// A step's stored output.
    async fn output(&self, run_id: &str, step: &str) -> Result<Option<Payload>>;

    /// A run's history, oldest first.
    async fn events(&self, run_id: &str) -> Result<Vec<Event>>;

    /// Runs, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>>;

    /// When the last successful run of `workflow` started.
    async fn last_success(&self, workflow: &str) -> Result<Option<Millis>>;

    /// How many runs of `workflow` started by `trigger` are queued or running.
    async fn active_runs(&self, workflow: &str, trigger: &str) -> Result<u64>;

    /// Takes or renews the named lock for `owner` for `ttl`; false while another owner
    /// holds it. One scheduler among many processes holds `scheduler` this way.
    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;

    /// Gives the named lock up, if `owner` holds it.
    async fn unlock(&self, name: &str, owner: &str) -> Result<()>;

    /// A stored value (scheduler state: a trigger's last tick).
    async fn mark(&self, key: &str) -> Result<Option<Value>>;

    /// Stores a value under `key`.
    async fn set_mark(&self, key: &str, value: &Value) -> Result<()>;

    /// Claims `key` of de-duplication `scope` for `owner` for `lease`: [`KeyClaim::New`]
    /// when no one saw it (or an earlier claim expired), [`KeyClaim::Done`] when it was
    /// processed within its window, [`KeyClaim::Pending`] while another claim holds it.
    async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<KeyClaim>;

    /// Ends `owner`'s claim of `key`: remembered as processed for `window` when given,
    /// forgotten (so the key may be processed again) when `None`.
    async fn settle_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        window: Option<Duration>,
    ) -> Result<()>;

    /// Forgets keys of `scope` whose window or claim ended; returns how many.
    async fn purge_keys(&self, scope: &str) -> Result<u64>;

    /// Waits until a run may have been queued, or `timeout` passes. PostgreSQL listens for
    /// notifications; the others wake on their own writes or poll.
    async fn wait_for_work(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }
}

/// What [`Store::claim_key`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClaim {
    /// Not seen (or its earlier claim lapsed): the caller now holds it.
    New,
    /// Processed already, within the de-duplication window.
    Done,
    /// Claimed by someone else, not settled yet.
    Pending,
}

/// Opens the store a URL names: `memory:`, `sqlite:PATH` (or `sqlite://PATH`, or a path
/// ending in `.db`/`.sqlite`), `postgres://...` (a `schema` query parameter picks the
/// schema; `kernelize` by default). Migrations run on open.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    use kernelize_core::{Error, ErrorKind};
    if url == "memory:" || url == "memory" {
        return Ok(std::sync::Arc::new(MemoryStore::new()));
    }
    let is_sqlite = url.starts_with("sqlite:") || url.ends_with(".db") || url.ends_with(".sqlite");
    let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if is_sqlite {
        #[cfg(feature = "sqlite")]
        return Ok(std::sync::Arc::new(SqlStore::sqlite(url).await?));
        #[cfg(not(feature = "sqlite"))]
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("store `{url}` needs the `sqlite` feature of kernelize-workflow"),
        ));
    }
    if is_postgres {
        #[cfg(feature = "postgres")]
        return Ok(std::sync::Arc::new(SqlStore::postgres(url).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("store `{url}` needs the `postgres` feature of kernelize-workflow"),
        ));
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "store `{url}` is not a store URL: use memory:, sqlite:PATH or postgres://USER@HOST/DB"
        ),
    ))
}
