//! Running a workflow: its steps as a DAG through a [`PluginManager`], independent steps in
//! parallel under a concurrency bound, with retries, timeouts, conditions, trigger rules,
//! failure handlers and compensation.
//!
//! This engine keeps its run in memory and returns a [`RunReport`]; durable stores,
//! resumption, the scheduler and distributed workers build on it.

mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
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
use resolve::Scope;

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

    fn is_done(self) -> bool {
        !matches!(
            self,
            StepStatus::Pending | StepStatus::Running | StepStatus::Retrying
        )
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every step that had to run succeeded (or failed with `on_failure: continue`).
    Succeeded,
    /// A step failed the run.
    Failed,
    /// Cancelled, or out of time.
    Cancelled,
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
}

type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Runs workflows through a plugin manager.
#[derive(Clone)]
pub struct Engine {
    manager: PluginManager,
    secrets: Arc<dyn SecretStore>,
    env: EnvLookup,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `manager` (its plugins installed; the engine configures and
    /// activates the ones a file names). `${secret:..}` in step configs read no secrets
    /// until [`Engine::secrets`] gives a store.
    pub fn new(manager: PluginManager) -> Self {
        Self {
            manager,
            secrets: Arc::new(kernelize_core::config::MapSecretStore::default()),
            env: Arc::new(|name| std::env::var(name).ok()),
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

    /// The manager.
    pub fn manager(&self) -> &PluginManager {
        &self.manager
    }

    /// Configures and activates the plugins `file` uses: each `plugins:` instance with its
    /// settings, permissions and limits, then every plugin a step or compensation names.
    pub async fn prepare(&self, file: &WorkflowFile, workflow: &str) -> Result<()> {
        let def = workflow_def(file, workflow)?;
        let mut instance_of: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, instance) in &file.plugins {
            let id = instance.plugin.as_deref().unwrap_or(name);
            if instance_of.values().any(|i| *i == id) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "plugin `{id}` is configured under two instance names; one instance per plugin id is supported so far"
                    ),
                ));
            }
            instance_of.insert(name, id);
            self.manager.configure(
                id,
                PluginConfig {
                    settings: instance.settings.clone(),
                    permissions: instance.permissions.clone(),
                    limits: instance.limits,
                },
            );
        }
        let mut needed = BTreeSet::new();
        for step in &def.steps {
            needed.insert(plugin_id(file, &step.plugin));
            if let Some(c) = &step.compensate {
                needed.insert(plugin_id(file, &c.plugin));
            }
        }
        for id in needed {
            if self.manager.active_version(&id).is_none() {
                self.manager
                    .activate(&id)
                    .await
                    .map_err(|e| e.with_context("workflow", workflow))?;
            }
        }
        Ok(())
    }

    /// Runs `workflow` of `file` to its end ([`Engine::prepare`] first). A failed run is a
    /// report with status `failed`, not an `Err`; `Err` means the run could not start.
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
        let span = tracing::info_span!("workflow_run", workflow);
        Run::new(self, file, workflow, def, params, options.cancel)?
            .execute()
            .instrument(span)
            .await
    }
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

/// The plugin id a step's `plugin` names: an instance's plugin, or the id itself.
fn plugin_id(file: &WorkflowFile, name: &str) -> String {
    file.plugins
        .get(name)
        .and_then(|i| i.plugin.clone())
        .unwrap_or_else(|| name.to_string())
}

struct StepState {
    status: StepStatus,
    attempts: u32,
    started: Option<Instant>,
    duration: Duration,
    error: Option<String>,
}

struct Run<'a> {
    engine: &'a Engine,
    file: &'a WorkflowFile,
    name: &'a str,
    def: &'a WorkflowDef,
    deps: Vec<Vec<usize>>,
    params: BTreeMap<String, Value>,
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
        file: &'a WorkflowFile,
        name: &'a str,
        def: &'a WorkflowDef,
        params: BTreeMap<String, Value>,
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
        Ok(Self {
            engine,
            file,
            name,
            def,
            deps,
            params,
            states: def
                .steps
                .iter()
                .map(|_| StepState {
                    status: StepStatus::Pending,
                    attempts: 0,
                    started: None,
                    duration: Duration::ZERO,
                    error: None,
                })
                .collect(),
            outputs: BTreeMap::new(),
            completed: Vec::new(),
            cancel,
            deadline: def.timeout.map(|t| Instant::now() + t),
        })
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
        let ok = |d: &usize| self.states[*d].status == StepStatus::Succeeded;
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
        let run_id = new_run_id();
        let started_at = chrono::Utc::now().to_rfc3339();
        let started = Instant::now();
        tracing::info!(run = %run_id, "workflow run started");
        let limit = self.def.concurrency.unwrap_or(8).max(1);
        let mut running = FuturesUnordered::new();
        let mut failed_run = false;
        let mut handler: Option<usize> = None;
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
                        Some(false) => self.states[i].status = StepStatus::Skipped,
                        Some(true) => {
                            let (cancel, deadline) = (self.cancel.clone(), self.deadline);
                            match self.start(i, cancel, deadline, &run_id) {
                                Some(chain) => running.push(chain),
                                None if self.states[i].status == StepStatus::Failed => {
                                    failed_run |= self.on_failure(i, &mut handler);
                                }
                                None => {}
                            }
                        }
                    }
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
            state.duration = state.started.map_or(Duration::ZERO, |s| s.elapsed());
            match outcome {
                Ok(output) => {
                    state.status = StepStatus::Succeeded;
                    self.outputs
                        .insert(self.def.steps[index].name.clone(), output);
                    self.completed.push(index);
                }
                Err(e) => {
                    state.status = if e.kind() == ErrorKind::Cancelled {
                        StepStatus::Cancelled
                    } else {
                        StepStatus::Failed
                    };
                    state.error = Some(e.to_string());
                    tracing::warn!(step = %self.def.steps[index].name, error = %e, "step failed");
                    if Some(index) != handler {
                        failed_run |= self.on_failure(index, &mut handler);
                    }
                }
            }
            if failed_run
                && let Some(h) = handler
                && self.states[h].status == StepStatus::Pending
            {
                // The handler runs even when the run was cancelled or is out of time.
                if let Some(chain) = self.start(h, CancellationToken::new(), None, &run_id) {
                    running.push(chain);
                }
            }
        }
        let cancelled =
            self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d);
        for state in &mut self.states {
            if state.status == StepStatus::Pending {
                state.status = if failed_run || cancelled {
                    StepStatus::Cancelled
                } else {
                    StepStatus::Skipped
                };
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
            self.compensate().await;
        }
        let steps = self
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
                    duration_ms: state.duration.as_millis() as u64,
                    error: state.error.clone(),
                    rows: output.and_then(rows_of),
                    bytes: output.and_then(bytes_of),
                }
            })
            .collect();
        tracing::info!(status = ?status, "workflow run finished");
        Ok(RunReport {
            id: run_id,
            workflow: self.name.to_string(),
            status,
            started_at,
            duration_ms: started.elapsed().as_millis() as u64,
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
        run_id: &str,
    ) -> Option<impl std::future::Future<Output = Finished> + use<>> {
        match self.prepare_call(i) {
            Ok(Some((plugin, call))) => {
                self.states[i].status = StepStatus::Running;
                self.states[i].started = Some(Instant::now());
                let step = &self.def.steps[i];
                Some(attempt_chain(
                    self.engine.manager.clone(),
                    i,
                    plugin,
                    call,
                    step.retry.clone(),
                    step.timeout,
                    cancel,
                    deadline,
                    step.name.clone(),
                    run_id.to_string(),
                ))
            }
            Ok(None) => {
                self.states[i].status = StepStatus::Skipped;
                None
            }
            Err(e) => {
                self.states[i].status = StepStatus::Failed;
                self.states[i].error = Some(e.to_string());
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
            None => match self.deps[i].as_slice() {
                [one] => self
                    .outputs
                    .get(&self.def.steps[*one].name)
                    .cloned()
                    .unwrap_or(Payload::Empty),
                _ => Payload::Empty,
            },
        };
        let call = Call::new(&step.action, input).with_config(config);
        Ok(Some((plugin_id(self.file, &step.plugin), call)))
    }

    /// Runs the compensations of completed steps, in reverse order of completion.
    async fn compensate(&mut self) {
        let statuses = self.statuses();
        for &i in self.completed.iter().rev() {
            let step = &self.def.steps[i];
            let Some(comp) = &step.compensate else {
                continue;
            };
            self.states[i].status = StepStatus::Compensating;
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
                    let call = Call::new(&comp.action, input).with_config(config);
                    self.engine
                        .manager
                        .call(&plugin_id(self.file, &comp.plugin), call)
                        .await
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
        }
    }
}

/// Calls a step's action until it succeeds, its attempts run out, or an error is not
/// worth retrying (permanent, or of a kind the step lists as non-retryable). Each attempt
/// carries the idempotency key `RUN/STEP/ATTEMPT`.
#[allow(clippy::too_many_arguments)]
async fn attempt_chain(
    manager: PluginManager,
    index: usize,
    plugin: String,
    call: Call,
    retry: Option<RetrySpec>,
    timeout: Option<Duration>,
    cancel: CancellationToken,
    deadline: Option<Instant>,
    name: String,
    run_id: String,
) -> Finished {
    let retry = retry.unwrap_or(RetrySpec {
        max_attempts: 1,
        ..RetrySpec::default()
    });
    let mut wait = retry.initial_interval;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut this = Call::new(&call.action, call.input.clone())
            .with_config(call.config.clone())
            .with_cancel(cancel.child_token())
            .with_idempotency_key(format!("{run_id}/{name}/{attempt}"));
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Some(t) = [timeout, left].into_iter().flatten().min() {
            this = this.with_timeout(t);
        }
        tracing::debug!(step = %name, attempt, "step attempt");
        let outcome = manager.call(&plugin, this).await;
        let retryable = match &outcome {
            Ok(_) => false,
            Err(e) => {
                e.is_temporary()
                    && !retry.non_retryable.contains(&e.kind())
                    && e.kind() != ErrorKind::Cancelled
            }
        };
        if !retryable || attempt >= retry.max_attempts.max(1) || cancel.is_cancelled() {
            return Finished {
                index,
                attempts: attempt,
                outcome: outcome.map_err(|e| e.with_context("step", &name)),
            };
        }
        let pause = match outcome.as_ref().err().and_then(|e| e.retry_after()) {
            Some(after) => after.max(wait),
            None => wait,
        };
        tracing::info!(step = %name, attempt, wait_ms = pause.as_millis() as u64, "step will retry");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => {}
        }
        wait = Duration::from_secs_f64(
            (wait.as_secs_f64() * retry.backoff_coefficient.max(1.0))
                .min(retry.max_interval.as_secs_f64()),
        );
    }
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

/// A time-ordered run id: milliseconds since the epoch and a random suffix.
fn new_run_id() -> String {
    let millis = chrono::Utc::now().timestamp_millis();
    format!("{millis:013x}-{:08x}", rand::random::<u32>())
}
