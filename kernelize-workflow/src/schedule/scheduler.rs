//! The scheduler: one pass over the registered schedules ([`Scheduler::tick`]) and the loop
//! that repeats it ([`Scheduler::run`]), under the store's `scheduler` lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kernelize_core::{Error, Result};
use tokio_util::sync::CancellationToken;

use super::overlap::{ScheduleState, admit, state_key};
use super::plan::{ScheduledTrigger, rfc3339};
use crate::definition::{Overlap, WorkflowFile};
use crate::engine::{Engine, RegisteredWorkflow, RunOptions, default_owner};

/// The name of the store lock the active scheduler holds.
pub const SCHEDULER_LOCK: &str = "scheduler";

/// How long the scheduler lock lasts without renewal unless [`Scheduler::with_lock_ttl`]
/// says otherwise.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(30);

/// The longest [`Scheduler::run`] sleeps between passes unless
/// [`Scheduler::with_max_interval`] says otherwise.
pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the runs of the schedules registered with an engine. See the
/// [module docs](super).
#[derive(Debug, Clone)]
pub struct Scheduler {
    engine: Engine,
    owner: String,
    lock_ttl: Duration,
    max_interval: Duration,
    holding: Arc<AtomicBool>,
}

impl Scheduler {
    /// A scheduler over `engine`: it queues runs in the engine's store with
    /// [`Engine::submit`], for workers to execute, and ticks the schedules registered with
    /// the engine or any of its clones. Its owner name (for the lock) is new: host, process
    /// id and a random part.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            owner: default_owner(),
            lock_ttl: DEFAULT_LOCK_TTL,
            max_interval: DEFAULT_MAX_INTERVAL,
            holding: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Names this scheduler in the `scheduler` lock.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// How long the lock lasts without renewal (30 s by default; at least 300 ms). The
    /// holder renews it at every pass, at least every third of it; when the holder dies,
    /// another scheduler takes over once it has passed.
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// The longest [`Scheduler::run`] sleeps between passes when no tick is due sooner (5 s
    /// by default; at least 10 ms): how soon a waiting run starts once the run before it
    /// ended, and how often a scheduler without the lock tries to take it.
    pub fn with_max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The engine runs are queued through.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The name this scheduler holds the lock under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether this scheduler held the `scheduler` lock at its last pass (false after
    /// [`Scheduler::release`]).
    pub fn is_active(&self) -> bool {
        self.holding.load(Ordering::SeqCst)
    }

    /// Registers the workflows of `file` that have triggers ([`Engine::register`]): their
    /// schedules are ticked from the next pass on, their webhooks answer
    /// [`Engine::trigger`].
    pub fn register(&self, file: &WorkflowFile) -> Result<()> {
        self.engine.register(file)
    }

    /// One pass at `now`: takes (or renews) the `scheduler` lock, and when this scheduler
    /// holds it, plans every registered schedule, applies its overlap policy, records its
    /// state and queues the runs to start. Returns the ids of the runs queued, in order; none
    /// when another scheduler holds the lock.
    ///
    /// A trigger whose pass fails (the store did not answer) does not stop the others; the
    /// first failure is returned after all were tried. A trigger's state is recorded before
    /// its runs are queued, so a tick is started at most once: a run whose queueing fails
    /// is lost (and logged), never started twice.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let store = self.engine.store();
        if !store
            .try_lock(SCHEDULER_LOCK, &self.owner, self.lock_ttl)
            .await
            .map_err(|e| e.with_context("scheduler", &self.owner))?
        {
            if self.holding.swap(false, Ordering::SeqCst) {
                tracing::warn!(owner = %self.owner, "scheduler lost its lock to another scheduler");
            }
            return Ok(Vec::new());
        }
        if !self.holding.swap(true, Ordering::SeqCst) {
            tracing::info!(owner = %self.owner, "scheduler holds the lock; this process schedules");
        }
        let mut started = Vec::new();
        let mut first_error: Option<Error> = None;
        for workflow in self.engine.registered() {
            for trigger in &workflow.schedules {
                match self.pass(&workflow, trigger, now).await {
                    Ok(ids) => started.extend(ids),
                    Err(e) => {
                        let e = e
                            .with_context("workflow", &workflow.name)
                            .with_context("trigger", trigger.name());
                        tracing::error!(error = %e, "scheduler pass failed");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(started),
        }
    }

    /// One trigger's pass.
    async fn pass(
        &self,
        workflow: &RegisteredWorkflow,
        trigger: &ScheduledTrigger,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let store = self.engine.store();
        let name = trigger.name();
        let key = state_key(&workflow.name, &name);
        let state = self.read_state(&key).await?;
        let plan = trigger.plan(state.last_tick, state.checked_at, now);
        if let Some(range) = plan.forgotten {
            tracing::warn!(
                workflow = %workflow.name,
                trigger = %name,
                first = %rfc3339(range.first),
                last = %rfc3339(range.last),
                "missed ticks forgotten (missed policy, catch-up window or bound)"
            );
        }
        let mut waiting = state.waiting;
        let active = if trigger.overlap() == Overlap::Allow
            || (plan.runs.is_empty() && waiting.is_empty())
        {
            0
        } else {
            store.active_runs(&workflow.name, &name).await?
        };
        let admission = admit(
            trigger.overlap(),
            &mut waiting,
            plan.runs,
            active,
            trigger.max_catch_up(),
        );
        for run in &admission.dropped {
            tracing::info!(
                workflow = %workflow.name,
                trigger = %name,
                scheduled_at = %rfc3339(run.scheduled_at),
                "tick dropped: a run of this trigger is still queued or running"
            );
        }
        let next = ScheduleState {
            last_tick: plan.last_tick,
            checked_at: Some(now).max(state.checked_at),
            waiting,
        };
        store.set_mark(&key, &serde_json::to_value(&next)?).await?;
        let mut ids = Vec::with_capacity(admission.start.len());
        for run in admission.start {
            let id = self
                .engine
                .submit(
                    &workflow.file,
                    &workflow.name,
                    RunOptions {
                        params: run.params(),
                        trigger: Some(name.clone()),
                        ..RunOptions::default()
                    },
                )
                .await
                .map_err(|e| e.with_context("scheduled_at", rfc3339(run.scheduled_at)))?;
            tracing::info!(
                workflow = %workflow.name,
                trigger = %name,
                run = %id,
                scheduled_at = %rfc3339(run.scheduled_at),
                "scheduled run queued"
            );
            ids.push(id);
        }
        Ok(ids)
    }

    async fn read_state(&self, key: &str) -> Result<ScheduleState> {
        let Some(value) = self.engine.store().mark(key).await? else {
            return Ok(ScheduleState::default());
        };
        Ok(serde_json::from_value(value).unwrap_or_else(|e| {
            // Counting from now is the safe reading: nothing is started twice, and no
            // history is taken for missed ticks.
            tracing::warn!(key, error = %e, "unreadable schedule state; the schedule counts from now");
            ScheduleState::default()
        }))
    }

    /// The stored state of a registered schedule trigger (`trigger` is its name,
    /// `schedule:...`); `None` before a scheduler first looked at it.
    pub async fn state(&self, workflow: &str, trigger: &str) -> Result<Option<ScheduleState>> {
        match self
            .engine
            .store()
            .mark(&state_key(workflow, trigger))
            .await?
        {
            Some(value) => Ok(Some(serde_json::from_value(value)?)),
            None => Ok(None),
        }
    }

    /// The first tick after `now` among the registered schedules.
    pub fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.engine
            .registered()
            .iter()
            .flat_map(|w| w.schedules.iter())
            .filter_map(|s| s.schedule().next_after(now))
            .min()
    }

    /// Passes until `cancel` fires: each pass at the next due tick, or after the max
    /// interval (or a third of the lock's TTL, if shorter) when none is due sooner. A
    /// failed pass is logged and the loop goes on. When cancelled, the lock is given up so
    /// that another scheduler takes over at once. Runs are queued, never awaited: a long
    /// run never delays a tick.
    pub async fn run(&self, cancel: CancellationToken) -> Result<()> {
        let longest = self.max_interval.min(self.lock_ttl / 3);
        while !cancel.is_cancelled() {
            if let Err(e) = self.tick(Utc::now()).await {
                tracing::warn!(error = %e, "scheduler pass failed; trying again at the next");
            }
            let now = Utc::now();
            let wait = self
                .next_tick(now)
                .and_then(|next| (next - now).to_std().ok())
                // A few milliseconds late rather than early: the tick is then due.
                .map_or(longest, |until| {
                    longest.min(until + Duration::from_millis(5))
                });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => {}
            }
        }
        self.release().await
    }

    /// Gives the `scheduler` lock up, if this scheduler holds it.
    pub async fn release(&self) -> Result<()> {
        self.holding.store(false, Ordering::SeqCst);
        self.engine
            .store()
            .unlock(SCHEDULER_LOCK, &self.owner)
            .await
    }
}
