//! Running a workflow: its steps as a DAG through a [`PluginManager`], independent steps in
//! parallel under a concurrency bound, with retries, timeouts, conditions, trigger rules,
//! failure handlers and compensation.
//!
//! Every state change of a run and its steps is written to a [`Store`] before the engine
//! goes on, so a run survives its process: [`Engine::resume`] (or a worker, when the lease
//! expires) continues it, skipping the steps that completed and running an interrupted
//! attempt again under the same idempotency key.

mod resolve;
mod triggers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use kernelize_core::{
    Call, Error, ErrorKind, Payload, PluginConfig, PluginManager, Result, SecretStore,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::definition::{OnFailure, RetrySpec, StepDef, TriggerRule, WorkflowDef, WorkflowFile};
use crate::store::{
    Claim, LeaseState, MemoryStore, Millis, NewRun, RunRecord, StepRecord, Store, now_ms,
};
use resolve::Scope;
pub use triggers::RegisteredWorkflow;

/// How a step ended (or where it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Running.
    Running,
    /// Finished with an output.
    Succeeded,
    /// Failed after its attempts.
    Failed,
    /// Waiting to try again.
    Retrying,
    /// Not run: its condition was false, or its trigger rule did not hold.
    Skipped,
    /// Its compensation is running.
    Compensating,
    /// Succeeded, then undone by its compensation.
    Compensated,
    /// Stopped because the run was cancelled or ran out of time.
    Cancelled,
}

impl StepStatus {
    /// The lower-case name, as in reports and `${steps.NAME.status}`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Retrying => "retrying",
            StepStatus::Skipped => "skipped",
            StepStatus::Compensating => "compensating",
            StepStatus::Compensated => "compensated",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the step has ended (succeeded, failed, skipped, compensated, cancelled).
    pub fn is_done(self) -> bool {
        !matches!(
            self,
            StepStatus::Pending | StepStatus::Running | StepStatus::Retrying
        )
    }
}

/// Where a run is, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Owned by a worker, or by an engine running it in place.
    Running,
    /// Every step that had to run succeeded (or failed with `on_failure: continue`).
    Succeeded,
    /// A step failed the run.
    Failed,
    /// Cancelled, or out of time.
    Cancelled,
}

impl RunStatus {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Reads a name written by [`RunStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Its name.
    pub name: String,
    /// How it ended.
    pub status: StepStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Time from its first attempt to its end, waits between attempts included.
    pub duration_ms: u64,
    /// The last error, if it failed (or was cancelled).
    pub error: Option<String>,
    /// Rows in its output, when the output is records or a JSON array.
    pub rows: Option<usize>,
    /// Bytes in its output, when the output is bytes.
    pub bytes: Option<usize>,
}

/// What happened to a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// How it ended.
    pub status: RunStatus,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Its duration.
    pub duration_ms: u64,
    /// Its steps, in the order the workflow lists them.
    pub steps: Vec<StepReport>,
    /// The outputs of the steps that succeeded, by step name.
    #[serde(skip)]
    pub outputs: BTreeMap<String, Payload>,
}

impl RunReport {
    /// The report of the step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Parameter values over the workflow's defaults.
    pub params: BTreeMap<String, Value>,
    /// Cancels the run from outside.
    pub cancel: CancellationToken,
    /// What started it (`manual` when `None`): `schedule:...`, `webhook:...`.
    pub trigger: Option<String>,
    /// The run's id, when the caller picks it (to follow the run in the store while it
    /// goes); a new time-ordered id when `None`. See [`new_run_id`].
    pub run_id: Option<String>,
}

type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How long a lease lasts unless [`Engine::with_lease`] says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Runs workflows through a plugin manager, recording them in a store.
#[derive(Clone)]
pub struct Engine {
    manager: PluginManager,
    secrets: Arc<dyn SecretStore>,
    env: EnvLookup,
    store: Arc<dyn Store>,
    owner: String,
    lease: Duration,
    /// Workflows registered for their triggers, shared by clones ([`Engine::register`]).
    triggers: triggers::SharedRegistry,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("manager", &self.manager)
            .field("store", &self.store.backend())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// An owner name for this process: host, process id and a random part.
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_string());
    format!(
        "{host}:{}:{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

impl Engine {
    /// An engine over `manager` (its plugins installed; the engine configures and
    /// activates the ones a file names), keeping runs in memory until
    /// [`Engine::with_store`] gives a store. `${secret:..}` in step configs read no secrets
    /// until [`Engine::secrets`] gives a store.
    pub fn new(manager: PluginManager) -> Self {
        Self {
            manager,
            secrets: Arc::new(kernelize_core::config::MapSecretStore::default()),
            env: Arc::new(|name| std::env::var(name).ok()),
            store: Arc::new(MemoryStore::new()),
            owner: default_owner(),
            lease: DEFAULT_LEASE,
            triggers: triggers::SharedRegistry::default(),
        }
    }

    /// The store `${secret:NAME}` in step configs reads (give the manager the same one for
    /// plugin settings).
    pub fn secrets(mut self, store: Arc<dyn SecretStore>) -> Self {
        self.secrets = store;
        self
    }

    /// How `${env:NAME}` in step configs is looked up (the process environment by default).
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Records runs in `store`.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = store;
        self
    }

    /// Holds runs with leases of this length (30 s by default), renewed every third of it.
    /// A run whose owner dies is taken over once its lease expires.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Names this engine in leases (host, pid and a random part by default).
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The manager.
    pub fn manager(&self) -> &PluginManager {
        &self.manager
    }

    /// The store runs are recorded in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The name this engine holds leases under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Configures and activates the plugins `file` uses: each `plugins:` instance with its
    /// settings, permissions and limits (an instance named apart from its plugin becomes a
    /// plugin of its own, so one plugin may serve under several names), then every plugin a
    /// step or compensation names.
    pub async fn prepare(&self, file: &WorkflowFile, workflow: &str) -> Result<()> {
        let def = workflow_def(file, workflow)?;
        let mut needed = BTreeSet::new();
        for step in &def.steps {
            needed.insert(step.plugin.clone());
            if let Some(c) = &step.compensate {
                needed.insert(c.plugin.clone());
            }
        }
        prepare_plugins(&self.manager, file, needed)
            .await
            .map_err(|e| e.with_context("workflow", workflow))
    }

    /// Runs `workflow` of `file` in place, to its end ([`Engine::prepare`] first), recording
    /// it in the store. A failed run is a report with status `failed`, not an `Err`; `Err`
    /// means the run could not start, or could not be recorded (it can then be resumed).
    pub async fn run(
        &self,
        file: &WorkflowFile,
        workflow: &str,
        options: RunOptions,
    ) -> Result<RunReport> {
        self.prepare(file, workflow).await?;
        let def = workflow_def(file, workflow)?;
        let mut params = def.params.clone();
        params.extend(options.params);
        let id = options.run_id.unwrap_or_else(new_run_id);
        self.store
            .create_run(NewRun {
                id: id.clone(),
                workflow: workflow.to_string(),
                definition: serde_json::to_value(file)?,
                params: params.clone(),
                trigger: options.trigger.unwrap_or_else(|| "manual".to_string()),
                owner: Some((self.owner.clone(), self.lease)),
            })
            .await?;
        let record = self.store.run(&id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Unexpected,
                format!("run {id} vanished from the store"),
            )
        })?;
        self.drive(file, &record, options.cancel).await
    }

    /// Queues a run of `workflow` for a worker ([`Engine::work`]); returns its id. The
    /// whole file travels with the run, so any worker can execute it.
    pub async fn submit(
        &self,
        file: &WorkflowFile,
        workflow: &str,
        options: RunOptions,
    ) -> Result<String> {
        let def = workflow_def(file, workflow)?;
        let mut params = def.params.clone();
        params.extend(options.params);
        let id = options.run_id.clone().unwrap_or_else(new_run_id);
        self.store
            .create_run(NewRun {
                id: id.clone(),
                workflow: workflow.to_string(),
                definition: serde_json::to_value(file)?,
                params,
                trigger: options.trigger.unwrap_or_else(|| "manual".to_string()),
                owner: None,
            })
            .await?;
        Ok(id)
    }

    /// Continues run `run_id`: queued, or interrupted (its lease expired). With `force`, it
    /// is taken from an owner whose lease still holds (that owner must be gone). Steps that
    /// completed are not run again; an interrupted attempt runs again with its idempotency
    /// key.
    pub async fn resume(&self, run_id: &str, force: bool) -> Result<RunReport> {
        let Some(record) = self
            .store
            .claim(
                &self.owner,
                self.lease,
                Claim::Run {
                    id: run_id.to_string(),
                    force,
                },
            )
            .await?
        else {
            return Err(match self.store.run(run_id).await? {
                None => Error::new(ErrorKind::NotFound, format!("no run {run_id} in the store")),
                Some(r) if r.status.is_final() => Error::new(
                    ErrorKind::InvalidState,
                    format!("run {run_id} has ended ({})", r.status.as_str()),
                ),
                Some(r) => Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "run {run_id} is held by {} until its lease expires{}",
                        r.lease_owner.as_deref().unwrap_or("another owner"),
                        r.lease_expires_at
                            .map(|t| format!(" in {} ms", (t - now_ms()).max(0)))
                            .unwrap_or_default()
                    ),
                ),
            });
        };
        self.execute_claimed(record, CancellationToken::new()).await
    }

    /// Claims the oldest queued (or abandoned) run and executes it; `None` when there is
    /// none.
    pub async fn work_once(&self, cancel: &CancellationToken) -> Result<Option<RunReport>> {
        match self
            .store
            .claim(&self.owner, self.lease, Claim::Next)
            .await?
        {
            Some(record) => self
                .execute_claimed(record, cancel.child_token())
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Executes queued and abandoned runs until `cancel` fires, waiting for new ones in
    /// between (woken by the store's notifications, or every `poll`).
    pub async fn work(&self, cancel: CancellationToken, poll: Duration) -> Result<()> {
        while !cancel.is_cancelled() {
            match self.work_once(&cancel).await {
                Ok(Some(report)) => {
                    tracing::info!(run = %report.id, status = report.status.as_str(), "worker finished a run");
                    continue;
                }
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::InvalidState => {
                    tracing::warn!(error = %e, "worker lost a run");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "worker could not execute a run");
                }
            }
            tokio::select! {
                _ = self.store.wait_for_work(poll) => {}
                _ = cancel.cancelled() => {}
            }
        }
        Ok(())
    }

    /// Executes a run this engine has claimed: the workflow file it carries is prepared,
    /// then the run continues from its recorded steps.
    async fn execute_claimed(
        &self,
        record: RunRecord,
        cancel: CancellationToken,
    ) -> Result<RunReport> {
        let file: WorkflowFile = match serde_json::from_value(record.definition.clone()) {
            Ok(file) => file,
            Err(e) => {
                let msg = format!("the run's stored workflow file does not read: {e}");
                self.store
                    .finish_run(&record.id, &self.owner, RunStatus::Failed, Some(&msg))
                    .await?;
                return Err(Error::new(ErrorKind::CorruptData, msg));
            }
        };
        if let Err(e) = self.prepare(&file, &record.workflow).await {
            // Not this run's fault: another worker may have the plugin. Give it back.
            self.store.release(&record.id, &self.owner).await?;
            return Err(e);
        }
        self.drive(&file, &record, cancel).await
    }

    /// Runs a claimed run to its end under a lease that a background task renews.
    async fn drive(
        &self,
        file: &WorkflowFile,
        record: &RunRecord,
        cancel: CancellationToken,
    ) -> Result<RunReport> {
        let def = workflow_def(file, &record.workflow)?;
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = tokio::spawn(keep_lease(
            self.store.clone(),
            record.id.clone(),
            self.owner.clone(),
            self.lease,
            cancel.clone(),
            lost.clone(),
        ));
        let _stop_keeper = AbortOnDrop(keeper);
        let span =
            tracing::info_span!("workflow_run", workflow = %record.workflow, run = %record.id);
        let mut run = Run::new(self, &record.workflow, def, record, cancel)?;
        async {
            run.load().await?;
            run.execute().await
        }
        .instrument(span)
        .await
        .map_err(|e| {
            if lost.load(Ordering::SeqCst) || crate::store::is_lease_lost(&e) {
                Error::new(
                    ErrorKind::InvalidState,
                    format!(
                        "run {} was taken over by another owner (this one's lease expired): {e}",
                        record.id
                    ),
                )
            } else {
                e
            }
        })
    }

    /// The report of a stored run, as far as it has come.
    pub async fn report(&self, run_id: &str) -> Result<RunReport> {
        report_from_store(&*self.store, run_id).await
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews a run's lease every third of its length; cancels the run when cancellation is
/// asked for, or when the lease is lost.
async fn keep_lease(
    store: Arc<dyn Store>,
    run_id: String,
    owner: String,
    lease: Duration,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(lease / 3).await;
        match store.renew(&run_id, &owner, lease).await {
            Ok(LeaseState::Held) => {}
            Ok(LeaseState::CancelRequested) => cancel.cancel(),
            Ok(LeaseState::Lost) => {
                tracing::error!(run = %run_id, "lease lost; stopping the run here");
                lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) => tracing::warn!(run = %run_id, error = %e, "cannot renew the run's lease"),
        }
    }
}

/// A stored run's report: its steps in the workflow's order, pending where nothing is
/// recorded yet.
pub async fn report_from_store(store: &dyn Store, run_id: &str) -> Result<RunReport> {
    let record = store
        .run(run_id)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no run {run_id} in the store")))?;
    let recorded = store.steps(run_id).await?;
    let names: Vec<String> = serde_json::from_value::<WorkflowFile>(record.definition.clone())
        .ok()
        .and_then(|f| f.workflows.get(&record.workflow).cloned())
        .map(|d| d.steps.into_iter().map(|s| s.name).collect())
        .unwrap_or_else(|| recorded.iter().map(|s| s.name.clone()).collect());
    let steps = names
        .iter()
        .map(|name| match recorded.iter().find(|s| &s.name == name) {
            Some(s) => StepReport {
                name: s.name.clone(),
                status: s.status,
                attempts: s.attempts,
                duration_ms: span_ms(s.started_at, s.finished_at),
                error: s.error.clone(),
                rows: s.rows.and_then(|r| usize::try_from(r).ok()),
                bytes: s.bytes.and_then(|b| usize::try_from(b).ok()),
            },
            None => StepReport {
                name: name.clone(),
                status: StepStatus::Pending,
                attempts: 0,
                duration_ms: 0,
                error: None,
                rows: None,
                bytes: None,
            },
        })
        .collect();
    Ok(RunReport {
        id: record.id,
        workflow: record.workflow,
        status: record.status,
        started_at: rfc3339_millis(record.started_at.unwrap_or(record.created_at)),
        duration_ms: span_ms(record.started_at, record.finished_at.or(Some(now_ms()))),
        steps,
        outputs: BTreeMap::new(),
    })
}

fn span_ms(start: Option<Millis>, end: Option<Millis>) -> u64 {
    match (start, end) {
        (Some(s), Some(e)) => u64::try_from(e - s).unwrap_or(0),
        _ => 0,
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-11-27T03:25:00.123Z`).
pub fn rfc3339_millis(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn workflow_def<'a>(file: &'a WorkflowFile, name: &str) -> Result<&'a WorkflowDef> {
    file.workflows.get(name).ok_or_else(|| {
        let known: Vec<&str> = file.workflows.keys().map(String::as_str).collect();
        Error::new(
            ErrorKind::NotFound,
            format!(
                "no workflow `{name}` in the file; it has: {}",
                known.join(", ")
            ),
        )
    })
}

struct StepState {
    status: StepStatus,
    attempts: u32,
    started_at: Option<Millis>,
    finished_at: Option<Millis>,
    error: Option<String>,
    /// The attempt to start with: past 1 when a resumed run repeats an interrupted attempt.
    next_attempt: u32,
}

struct Run<'a> {
    engine: &'a Engine,
    name: &'a str,
    def: &'a WorkflowDef,
    id: String,
    started_at: Millis,
    deps: Vec<Vec<usize>>,
    params: BTreeMap<String, Value>,
    vars: BTreeMap<String, Value>,
    states: Vec<StepState>,
    outputs: BTreeMap<String, Payload>,
    completed: Vec<usize>,
    cancel: CancellationToken,
    deadline: Option<Instant>,
}

/// What one attempt chain of a step came to.
struct Finished {
    index: usize,
    attempts: u32,
    outcome: Result<Payload>,
}

impl<'a> Run<'a> {
    fn new(
        engine: &'a Engine,
        name: &'a str,
        def: &'a WorkflowDef,
        record: &RunRecord,
        cancel: CancellationToken,
    ) -> Result<Self> {
        let index: BTreeMap<&str, usize> = def
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut deps = Vec::with_capacity(def.steps.len());
        for (i, step) in def.steps.iter().enumerate() {
            let list = match &step.depends_on {
                Some(names) => names
                    .iter()
                    .map(|n| {
                        index.get(n.as_str()).copied().ok_or_else(|| {
                            Error::new(
                                ErrorKind::ConfigInvalid,
                                format!(
                                    "step `{}` depends on `{n}`, which does not exist",
                                    step.name
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
                None if i == 0 => Vec::new(),
                None => vec![i - 1],
            };
            deps.push(list);
        }
        let started_at = record.started_at.unwrap_or_else(now_ms);
        let deadline = def.timeout.map(|t| {
            let left = started_at + i64::try_from(t.as_millis()).unwrap_or(i64::MAX) - now_ms();
            Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0))
        });
        Ok(Self {
            engine,
            name,
            def,
            id: record.id.clone(),
            started_at,
            deps,
            params: record.params.clone(),
            vars: BTreeMap::new(),
            states: def
                .steps
                .iter()
                .map(|_| StepState {
                    status: StepStatus::Pending,
                    attempts: 0,
                    started_at: None,
                    finished_at: None,
                    error: None,
                    next_attempt: 1,
                })
                .collect(),
            outputs: BTreeMap::new(),
            completed: Vec::new(),
            cancel,
            deadline,
        })
    }

    /// Reads what the store holds of this run (steps that completed, with their outputs;
    /// attempts that were interrupted) and the values plugins may bind (`last_sync`).
    async fn load(&mut self) -> Result<()> {
        let store = &self.engine.store;
        let last_sync = match store.last_success(self.name).await? {
            Some(ms) => rfc3339_millis(ms),
            None => match &self.def.initial_last_sync {
                Some(text) => chrono::DateTime::parse_from_rfc3339(text)
                    .map(|t| rfc3339_millis(t.timestamp_millis()))
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::ConfigInvalid,
                            format!("initial_last_sync `{text}` is not an RFC 3339 time: {e}"),
                        )
                    })?,
                None => rfc3339_millis(0),
            },
        };
        self.vars = self.params.clone();
        self.vars
            .insert("last_sync".into(), Value::String(last_sync));
        self.vars
            .insert("run_id".into(), Value::String(self.id.clone()));
        self.vars
            .insert("workflow".into(), Value::String(self.name.to_string()));
        let mut done: Vec<(Millis, usize)> = Vec::new();
        for rec in store.steps(&self.id).await? {
            let Some(i) = self.def.steps.iter().position(|s| s.name == rec.name) else {
                continue;
            };
            let state = &mut self.states[i];
            state.attempts = rec.attempts;
            state.started_at = rec.started_at;
            state.finished_at = rec.finished_at;
            state.error = rec.error.clone();
            state.status = match rec.status {
                // Interrupted: the attempt that was going runs again, under its key.
                StepStatus::Running => {
                    state.next_attempt = rec.attempts.max(1);
                    StepStatus::Pending
                }
                StepStatus::Retrying => {
                    state.next_attempt = rec.attempts + 1;
                    StepStatus::Pending
                }
                StepStatus::Compensating | StepStatus::Compensated | StepStatus::Succeeded => {
                    if let Some(output) = store.output(&self.id, &rec.name).await? {
                        self.outputs.insert(rec.name.clone(), output);
                    }
                    done.push((rec.finished_at.unwrap_or(0), i));
                    if rec.status == StepStatus::Compensated {
                        StepStatus::Compensated
                    } else {
                        StepStatus::Succeeded
                    }
                }
                other => other,
            };
        }
        done.sort();
        self.completed = done.into_iter().map(|(_, i)| i).collect();
        if !self.completed.is_empty() {
            tracing::info!(run = %self.id, completed = self.completed.len(), "resuming run");
        }
        Ok(())
    }

    /// Writes step `i`'s state (and its output, when given) to the store.
    async fn persist(&self, i: usize, output: Option<&Payload>) -> Result<()> {
        let state = &self.states[i];
        let name = &self.def.steps[i].name;
        let out = output.or_else(|| self.outputs.get(name));
        let record = StepRecord {
            name: name.clone(),
            position: u32::try_from(i).unwrap_or(u32::MAX),
            status: state.status,
            attempts: state.attempts,
            started_at: state.started_at,
            finished_at: state.finished_at,
            error: state.error.clone(),
            rows: out.and_then(rows_of).map(|r| r as u64),
            bytes: out.and_then(bytes_of).map(|b| b as u64),
            has_output: out.is_some(),
        };
        self.engine
            .store
            .record_step(&self.id, &self.engine.owner, &record, output)
            .await
    }

    fn scope<'s>(&'s self, statuses: &'s BTreeMap<String, &'static str>) -> Scope<'s> {
        Scope {
            params: &self.params,
            outputs: &self.outputs,
            statuses,
            secrets: &self.engine.secrets,
            env: &*self.engine.env,
        }
    }

    fn statuses(&self) -> BTreeMap<String, &'static str> {
        self.def
            .steps
            .iter()
            .zip(&self.states)
            .map(|(s, st)| (s.name.clone(), st.status.as_str()))
            .collect()
    }

    /// Whether step `i` may start, must be skipped, or must wait.
    fn readiness(&self, i: usize) -> Option<bool> {
        let deps = &self.deps[i];
        if deps.iter().any(|d| !self.states[*d].status.is_done()) {
            return None;
        }
        let ok = |d: &usize| {
            matches!(
                self.states[*d].status,
                StepStatus::Succeeded | StepStatus::Compensated
            )
        };
        let failed = |d: &usize| {
            matches!(
                self.states[*d].status,
                StepStatus::Failed | StepStatus::Cancelled
            )
        };
        let holds = match self.def.steps[i].trigger_rule {
            TriggerRule::AllSuccess => deps.iter().all(ok),
            TriggerRule::AllDone => true,
            TriggerRule::OneSuccess => deps.is_empty() || deps.iter().any(ok),
            TriggerRule::OneFailed => deps.iter().any(failed),
            TriggerRule::NoneFailed => !deps.iter().any(failed),
        };
        Some(holds)
    }

    async fn execute(mut self) -> Result<RunReport> {
        let run_id = self.id.clone();
        tracing::info!(run = %run_id, "workflow run started");
        let limit = self.def.concurrency.unwrap_or(8).max(1);
        let mut running = FuturesUnordered::new();
        let mut failed_run = false;
        let mut handler: Option<usize> = None;
        // A resumed run that had failed goes on failing: its handler, then compensation.
        for i in 0..self.states.len() {
            if self.states[i].status == StepStatus::Failed && !self.is_handler_only(i) {
                failed_run |= self.on_failure(i, &mut handler);
            }
        }
        loop {
            let stopping =
                self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d);
            if !stopping && !failed_run {
                // Start what is ready, in listed order, up to the bound.
                for i in 0..self.def.steps.len() {
                    if running.len() >= limit {
                        break;
                    }
                    if self.states[i].status != StepStatus::Pending || Some(i) == handler {
                        continue;
                    }
                    if self.is_handler_only(i) {
                        continue;
                    }
                    match self.readiness(i) {
                        None => {}
                        Some(false) => {
                            self.states[i].status = StepStatus::Skipped;
                            self.persist(i, None).await?;
                        }
                        Some(true) => {
                            let (cancel, deadline) = (self.cancel.clone(), self.deadline);
                            match self.start(i, cancel, deadline) {
                                Some(chain) => running.push(chain),
                                None => {
                                    self.persist(i, None).await?;
                                    if self.states[i].status == StepStatus::Failed {
                                        failed_run |= self.on_failure(i, &mut handler);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if failed_run
                && let Some(h) = handler
                && self.states[h].status == StepStatus::Pending
            {
                // The handler runs even when the run was cancelled or is out of time.
                match self.start(h, CancellationToken::new(), None) {
                    Some(chain) => running.push(chain),
                    None => self.persist(h, None).await?,
                }
            }
            let Some(done) = running.next().await else {
                break;
            };
            let Finished {
                index,
                attempts,
                outcome,
            } = done;
            let state = &mut self.states[index];
            state.attempts = attempts;
            state.finished_at = Some(now_ms());
            match outcome {
                Ok(output) => {
                    state.status = StepStatus::Succeeded;
                    state.error = None;
                    self.persist(index, Some(&output)).await?;
                    self.outputs
                        .insert(self.def.steps[index].name.clone(), output);
                    self.completed.push(index);
                }
                Err(e) if crate::store::is_lease_lost(&e) => {
                    return Err(e);
                }
                Err(e) => {
                    state.status = if e.kind() == ErrorKind::Cancelled {
                        StepStatus::Cancelled
                    } else {
                        StepStatus::Failed
                    };
                    state.error = Some(e.to_string());
                    tracing::warn!(step = %self.def.steps[index].name, error = %e, "step failed");
                    self.persist(index, None).await?;
                    if Some(index) != handler {
                        failed_run |= self.on_failure(index, &mut handler);
                    }
                }
            }
        }
        let cancelled =
            self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d);
        for i in 0..self.states.len() {
            if self.states[i].status == StepStatus::Pending {
                self.states[i].status = if failed_run || cancelled {
                    StepStatus::Cancelled
                } else {
                    StepStatus::Skipped
                };
                self.persist(i, None).await?;
            }
        }
        let status = if failed_run {
            RunStatus::Failed
        } else if cancelled {
            RunStatus::Cancelled
        } else {
            RunStatus::Succeeded
        };
        if status != RunStatus::Succeeded {
            self.compensate().await?;
        }
        let steps: Vec<StepReport> = self
            .def
            .steps
            .iter()
            .zip(&self.states)
            .map(|(step, state)| {
                let output = self.outputs.get(&step.name);
                StepReport {
                    name: step.name.clone(),
                    status: state.status,
                    attempts: state.attempts,
                    duration_ms: span_ms(state.started_at, state.finished_at),
                    error: state.error.clone(),
                    rows: output.and_then(rows_of),
                    bytes: output.and_then(bytes_of),
                }
            })
            .collect();
        let error = match status {
            RunStatus::Succeeded => None,
            RunStatus::Cancelled if self.cancel.is_cancelled() => Some("cancelled".to_string()),
            RunStatus::Cancelled => Some("the run's deadline passed".to_string()),
            _ => {
                let failed: Vec<&str> = steps
                    .iter()
                    .filter(|s| s.status == StepStatus::Failed)
                    .map(|s| s.name.as_str())
                    .collect();
                Some(format!("failed steps: {}", failed.join(", ")))
            }
        };
        self.engine
            .store
            .finish_run(&run_id, &self.engine.owner, status, error.as_deref())
            .await?;
        tracing::info!(status = status.as_str(), "workflow run finished");
        let finished = now_ms();
        Ok(RunReport {
            id: run_id,
            workflow: self.name.to_string(),
            status,
            started_at: rfc3339_millis(self.started_at),
            duration_ms: u64::try_from(finished - self.started_at).unwrap_or(0),
            steps,
            outputs: self.outputs,
        })
    }

    /// Starts step `i`: its attempt chain, or `None` when its condition skipped it or its
    /// call could not be built (the step is then marked failed, with the error).
    fn start(
        &mut self,
        i: usize,
        cancel: CancellationToken,
        deadline: Option<Instant>,
    ) -> Option<impl std::future::Future<Output = Finished> + use<>> {
        match self.prepare_call(i) {
            Ok(Some((plugin, call))) => {
                let state = &mut self.states[i];
                state.status = StepStatus::Running;
                state.started_at.get_or_insert_with(now_ms);
                let step = &self.def.steps[i];
                Some(attempt_chain(
                    Attempts {
                        manager: self.engine.manager.clone(),
                        recorder: Recorder {
                            store: self.engine.store.clone(),
                            run_id: self.id.clone(),
                            owner: self.engine.owner.clone(),
                            name: step.name.clone(),
                            position: u32::try_from(i).unwrap_or(u32::MAX),
                            started_at: state.started_at,
                        },
                        index: i,
                        plugin,
                        first: state.next_attempt,
                        retry: step.retry.clone(),
                        timeout: step.timeout,
                        cancel,
                        deadline,
                    },
                    call,
                ))
            }
            Ok(None) => {
                self.states[i].status = StepStatus::Skipped;
                None
            }
            Err(e) => {
                let state = &mut self.states[i];
                state.status = StepStatus::Failed;
                state.error = Some(e.to_string());
                state.finished_at = Some(now_ms());
                None
            }
        }
    }

    /// A step that is some step's `on_failure` handler runs only when that failure happens.
    fn is_handler_only(&self, i: usize) -> bool {
        let name = &self.def.steps[i].name;
        self.def
            .steps
            .iter()
            .any(|s| matches!(&s.on_failure, OnFailure::Handler(h) if h == name))
    }

    /// Applies step `i`'s failure policy; true when the run fails.
    fn on_failure(&self, i: usize, handler: &mut Option<usize>) -> bool {
        match &self.def.steps[i].on_failure {
            OnFailure::Continue => false,
            OnFailure::Fail => true,
            OnFailure::Handler(name) => {
                if handler.is_none() {
                    *handler = self.def.steps.iter().position(|s| &s.name == name);
                }
                true
            }
        }
    }

    /// The plugin and call for step `i`, or `None` when its `when` is false.
    fn prepare_call(&self, i: usize) -> Result<Option<(String, Call)>> {
        let step: &StepDef = &self.def.steps[i];
        let statuses = self.statuses();
        let scope = self.scope(&statuses);
        if let Some(when) = &step.when
            && !scope.condition(when)?
        {
            return Ok(None);
        }
        let config = scope
            .resolve(&step.config)
            .map_err(|e| e.with_context("step", &step.name))?;
        let input = match &step.input {
            Some(value) => Payload::Json(scope.resolve(value)?),
            // The output of the one dependency that produced one: the step it follows, or
            // the arm of a branch that ran while the others were skipped.
            None => {
                let mut produced = self.deps[i]
                    .iter()
                    .filter_map(|d| self.outputs.get(&self.def.steps[*d].name));
                match (produced.next(), produced.next()) {
                    (Some(one), None) => one.clone(),
                    _ => Payload::Empty,
                }
            }
        };
        let mut call = Call::new(&step.action, input).with_config(config);
        call.vars = self.vars.clone();
        Ok(Some((step.plugin.clone(), call)))
    }

    /// Runs the compensations of completed steps, in reverse order of completion.
    async fn compensate(&mut self) -> Result<()> {
        let statuses = self.statuses();
        for k in (0..self.completed.len()).rev() {
            let i = self.completed[k];
            let step = &self.def.steps[i];
            let Some(comp) = &step.compensate else {
                continue;
            };
            if self.states[i].status == StepStatus::Compensated {
                continue;
            }
            self.states[i].status = StepStatus::Compensating;
            self.persist(i, None).await?;
            let scope = Scope {
                params: &self.params,
                outputs: &self.outputs,
                statuses: &statuses,
                secrets: &self.engine.secrets,
                env: &*self.engine.env,
            };
            let result = match scope.resolve(&comp.config) {
                Ok(config) => {
                    let input = self.outputs.get(&step.name).cloned().unwrap_or_default();
                    let mut call = Call::new(&comp.action, input)
                        .with_config(config)
                        .with_idempotency_key(format!("{}/{}/compensate", self.id, step.name));
                    call.vars = self.vars.clone();
                    self.engine.manager.call(&comp.plugin, call).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => self.states[i].status = StepStatus::Compensated,
                Err(e) => {
                    tracing::error!(step = %step.name, error = %e, "compensation failed");
                    self.states[i].status = StepStatus::Succeeded;
                    self.states[i].error = Some(format!("compensation failed: {e}"));
                }
            }
            self.persist(i, None).await?;
        }
        Ok(())
    }
}

/// Writes a step's attempts to the store as they happen.
struct Recorder {
    store: Arc<dyn Store>,
    run_id: String,
    owner: String,
    name: String,
    position: u32,
    started_at: Option<Millis>,
}

impl Recorder {
    async fn record(&self, status: StepStatus, attempt: u32, error: Option<String>) -> Result<()> {
        let record = StepRecord {
            name: self.name.clone(),
            position: self.position,
            status,
            attempts: attempt,
            started_at: self.started_at,
            finished_at: None,
            error,
            rows: None,
            bytes: None,
            has_output: false,
        };
        self.store
            .record_step(&self.run_id, &self.owner, &record, None)
            .await
    }
}

/// What an attempt chain needs besides the call.
struct Attempts {
    manager: PluginManager,
    recorder: Recorder,
    index: usize,
    plugin: String,
    first: u32,
    retry: Option<RetrySpec>,
    timeout: Option<Duration>,
    cancel: CancellationToken,
    deadline: Option<Instant>,
}

/// Installs and configures the plugin instances of `file` in `manager`, then activates
/// each of `needed` (instance names or plugin ids) that is not active yet.
pub(crate) async fn prepare_plugins(
    manager: &PluginManager,
    file: &WorkflowFile,
    needed: BTreeSet<String>,
) -> Result<()> {
    for (name, instance) in &file.plugins {
        let id = instance.plugin.as_deref().unwrap_or(name);
        manager
            .install_instance(name, id)
            .map_err(|e| e.with_context("plugin instance", name))?;
        manager.configure(
            name,
            PluginConfig {
                settings: instance.settings.clone(),
                permissions: instance.permissions.clone(),
                limits: instance.limits,
            },
        );
    }
    for id in needed {
        if manager.active_version(&id).is_none() {
            manager.activate(&id).await?;
        }
    }
    Ok(())
}

/// Calls a step's action until it succeeds, its attempts run out, or an error is not
/// worth retrying (permanent, or of a kind the step lists as non-retryable). Each attempt
/// carries the idempotency key `RUN/STEP/ATTEMPT` and is recorded before it starts.
async fn attempt_chain(a: Attempts, call: Call) -> Finished {
    let retry = a.retry.clone().unwrap_or(RetrySpec {
        max_attempts: 1,
        ..RetrySpec::default()
    });
    let name = &a.recorder.name;
    let mut wait = retry.initial_interval;
    for _ in 1..a.first {
        wait = grow(wait, &retry);
    }
    let mut attempt = a.first.max(1) - 1;
    loop {
        attempt += 1;
        if let Err(e) = a.recorder.record(StepStatus::Running, attempt, None).await {
            return Finished {
                index: a.index,
                attempts: attempt,
                outcome: Err(e),
            };
        }
        let mut this = Call::new(&call.action, call.input.clone())
            .with_config(call.config.clone())
            .with_cancel(a.cancel.child_token())
            .with_idempotency_key(format!("{}/{name}/{attempt}", a.recorder.run_id));
        this.vars = call.vars.clone();
        let left = a
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        if let Some(t) = [a.timeout, left].into_iter().flatten().min() {
            this = this.with_timeout(t);
        }
        tracing::debug!(step = %name, attempt, "step attempt");
        let outcome = a.manager.call(&a.plugin, this).await;
        let retryable = match &outcome {
            Ok(_) => false,
            Err(e) => {
                e.is_temporary()
                    && !retry.non_retryable.contains(&e.kind())
                    && e.kind() != ErrorKind::Cancelled
            }
        };
        if !retryable || attempt >= retry.max_attempts.max(1) || a.cancel.is_cancelled() {
            return Finished {
                index: a.index,
                attempts: attempt,
                outcome: outcome.map_err(|e| e.with_context("step", name)),
            };
        }
        let pause = match outcome.as_ref().err().and_then(|e| e.retry_after()) {
            Some(after) => after.max(wait),
            None => wait,
        };
        let error = outcome.err().map(|e| e.to_string());
        if let Err(e) = a
            .recorder
            .record(StepStatus::Retrying, attempt, error)
            .await
        {
            return Finished {
                index: a.index,
                attempts: attempt,
                outcome: Err(e),
            };
        }
        tracing::info!(step = %name, attempt, wait_ms = pause.as_millis() as u64, "step will retry");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = a.cancel.cancelled() => {}
        }
        wait = grow(wait, &retry);
    }
}

fn grow(wait: Duration, retry: &RetrySpec) -> Duration {
    Duration::from_secs_f64(
        (wait.as_secs_f64() * retry.backoff_coefficient.max(1.0))
            .min(retry.max_interval.as_secs_f64()),
    )
}

fn rows_of(payload: &Payload) -> Option<usize> {
    match payload {
        Payload::Records(r) => Some(r.num_rows()),
        Payload::Json(Value::Array(items)) => Some(items.len()),
        _ => None,
    }
}

fn bytes_of(payload: &Payload) -> Option<usize> {
    match payload {
        Payload::Bytes(b) => Some(b.data.len()),
        _ => None,
    }
}

/// A time-ordered run id: milliseconds since the epoch (hex) and a random suffix.
pub fn new_run_id() -> String {
    let millis = chrono::Utc::now().timestamp_millis();
    format!("{millis:013x}-{:08x}", rand::random::<u32>())
}
