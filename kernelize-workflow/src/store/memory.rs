//! The in-process store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::{Error, ErrorKind, Payload, Result};
use serde_json::Value;
use tokio::sync::Notify;

use super::{
    Claim, Event, KeyClaim, LeaseState, Millis, NewRun, RunFilter, RunRecord, RunStatus,
    RunSummary, StepRecord, Store, lost, now_ms,
};

#[derive(Default)]
struct State {
    runs: BTreeMap<String, RunRecord>,
    steps: HashMap<String, BTreeMap<u32, (StepRecord, Option<Payload>)>>,
    events: HashMap<String, Vec<Event>>,
    locks: HashMap<String, (String, Millis)>,
    marks: HashMap<String, Value>,
    keys: HashMap<(String, String), DedupeKey>,
}

struct DedupeKey {
    owner: String,
    done: bool,
    expires_at: Millis,
}

/// Runs kept in the process: nothing survives it. The engine's default store; fast enough
/// that its cost per step is the engine's own (see BENCHMARKS.md).
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    queued: Notify,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn held_by(run: &RunRecord, owner: &str) -> bool {
    run.status == RunStatus::Running && run.lease_owner.as_deref() == Some(owner)
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

fn push_event(state: &mut State, run_id: &str, event: Event) {
    state
        .events
        .entry(run_id.to_string())
        .or_default()
        .push(event);
}

fn summary(r: &RunRecord) -> RunSummary {
    RunSummary {
        id: r.id.clone(),
        workflow: r.workflow.clone(),
        status: r.status,
        trigger: r.trigger.clone(),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn create_run(&self, run: NewRun) -> Result<()> {
        let now = now_ms();
        let mut state = self.lock();
        if state.runs.contains_key(&run.id) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("run {} exists already", run.id),
            ));
        }
        let (status, owner, expires, claims, started) = match &run.owner {
            Some((owner, lease)) => (
                RunStatus::Running,
                Some(owner.clone()),
                Some(now + millis(*lease)),
                1,
                Some(now),
            ),
            None => (RunStatus::Queued, None, None, 0, None),
        };
        push_event(
            &mut state,
            &run.id,
            Event {
                at: now,
                step: None,
                status: status.as_str().to_string(),
                attempt: None,
                error: None,
            },
        );
        state.runs.insert(
            run.id.clone(),
            RunRecord {
                id: run.id,
                workflow: run.workflow,
                status,
                trigger: run.trigger,
                definition: run.definition,
                params: run.params,
                created_at: now,
                started_at: started,
                finished_at: None,
                lease_owner: owner,
                lease_expires_at: expires,
                claims,
                cancel_requested: false,
                error: None,
            },
        );
        drop(state);
        if status == RunStatus::Queued {
            self.queued.notify_waiters();
        }
        Ok(())
    }

    async fn claim(&self, owner: &str, lease: Duration, which: Claim) -> Result<Option<RunRecord>> {
        let now = now_ms();
        let mut state = self.lock();
        let claimable = |r: &RunRecord, force: bool| match r.status {
            RunStatus::Queued => true,
            RunStatus::Running => force || r.lease_expires_at.is_none_or(|t| t < now),
            _ => false,
        };
        let id = match which {
            Claim::Next => state
                .runs
                .values()
                .filter(|r| claimable(r, false))
                .min_by_key(|r| (r.created_at, r.id.clone()))
                .map(|r| r.id.clone()),
            Claim::Run { id, force } => state
                .runs
                .get(&id)
                .filter(|r| claimable(r, force))
                .map(|r| r.id.clone()),
        };
        let Some(id) = id else { return Ok(None) };
        let Some(run) = state.runs.get_mut(&id) else {
            return Ok(None);
        };
        run.status = RunStatus::Running;
        run.lease_owner = Some(owner.to_string());
        run.lease_expires_at = Some(now + millis(lease));
        run.claims += 1;
        run.started_at.get_or_insert(now);
        let record = run.clone();
        push_event(
            &mut state,
            &id,
            Event {
                at: now,
                step: None,
                status: "claimed".to_string(),
                attempt: Some(record.claims),
                error: None,
            },
        );
        Ok(Some(record))
    }

    async fn renew(&self, run_id: &str, owner: &str, lease: Duration) -> Result<LeaseState> {
        let mut state = self.lock();
        match state.runs.get_mut(run_id) {
            Some(run) if held_by(run, owner) => {
                run.lease_expires_at = Some(now_ms() + millis(lease));
                Ok(if run.cancel_requested {
                    LeaseState::CancelRequested
                } else {
                    LeaseState::Held
                })
            }
            _ => Ok(LeaseState::Lost),
        }
    }

    async fn record_step(
        &self,
        run_id: &str,
        owner: &str,
        step: &StepRecord,
        output: Option<&Payload>,
    ) -> Result<()> {
        let mut state = self.lock();
        match state.runs.get(run_id) {
            Some(run) if held_by(run, owner) => {}
            _ => return Err(lost(run_id, owner)),
        }
        let steps = state.steps.entry(run_id.to_string()).or_default();
        let kept = steps.remove(&step.position).and_then(|(_, o)| o);
        let output = output.cloned().or(kept);
        let mut record = step.clone();
        record.has_output = output.is_some();
        steps.insert(step.position, (record, output));
        push_event(
            &mut state,
            run_id,
            Event {
                at: now_ms(),
                step: Some(step.name.clone()),
                status: step.status.as_str().to_string(),
                attempt: Some(step.attempts),
                error: step.error.clone(),
            },
        );
        Ok(())
    }

    async fn finish_run(
        &self,
        run_id: &str,
        owner: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<()> {
        let now = now_ms();
        let mut state = self.lock();
        let run = match state.runs.get_mut(run_id) {
            Some(run) if held_by(run, owner) => run,
            _ => return Err(lost(run_id, owner)),
        };
        run.status = status;
        run.finished_at = Some(now);
        run.lease_owner = None;
        run.lease_expires_at = None;
        run.error = error.map(str::to_string);
        push_event(
            &mut state,
            run_id,
            Event {
                at: now,
                step: None,
                status: status.as_str().to_string(),
                attempt: None,
                error: error.map(str::to_string),
            },
        );
        Ok(())
    }

    async fn release(&self, run_id: &str, owner: &str) -> Result<()> {
        let mut state = self.lock();
        if let Some(run) = state.runs.get_mut(run_id)
            && held_by(run, owner)
        {
            run.status = RunStatus::Queued;
            run.lease_owner = None;
            run.lease_expires_at = None;
            drop(state);
            self.queued.notify_waiters();
        }
        Ok(())
    }

    async fn request_cancel(&self, run_id: &str) -> Result<bool> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(run) = state.runs.get_mut(run_id) else {
            return Err(Error::new(ErrorKind::NotFound, format!("no run {run_id}")));
        };
        match run.status {
            RunStatus::Queued => {
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(now);
                push_event(
                    &mut state,
                    run_id,
                    Event {
                        at: now,
                        step: None,
                        status: "cancelled".to_string(),
                        attempt: None,
                        error: None,
                    },
                );
                Ok(true)
            }
            RunStatus::Running => {
                run.cancel_requested = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        Ok(self.lock().runs.get(run_id).cloned())
    }

    async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        Ok(self
            .lock()
            .steps
            .get(run_id)
            .map(|s| s.values().map(|(r, _)| r.clone()).collect())
            .unwrap_or_default())
    }

    async fn output(&self, run_id: &str, step: &str) -> Result<Option<Payload>> {
        Ok(self.lock().steps.get(run_id).and_then(|s| {
            s.values()
                .find(|(r, _)| r.name == step)
                .and_then(|(_, o)| o.clone())
        }))
    }

    async fn events(&self, run_id: &str) -> Result<Vec<Event>> {
        Ok(self.lock().events.get(run_id).cloned().unwrap_or_default())
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let state = self.lock();
        let mut runs: Vec<&RunRecord> = state
            .runs
            .values()
            .filter(|r| filter.workflow.as_ref().is_none_or(|w| &r.workflow == w))
            .filter(|r| filter.status.is_none_or(|s| r.status == s))
            .collect();
        runs.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(runs
            .into_iter()
            .take(filter.limit.unwrap_or(100) as usize)
            .map(summary)
            .collect())
    }

    async fn last_success(&self, workflow: &str) -> Result<Option<Millis>> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|r| r.workflow == workflow && r.status == RunStatus::Succeeded)
            .filter_map(|r| r.started_at)
            .max())
    }

    async fn active_runs(&self, workflow: &str, trigger: &str) -> Result<u64> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|r| r.workflow == workflow && r.trigger == trigger && !r.status.is_final())
            .count() as u64)
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = now_ms();
        let mut state = self.lock();
        match state.locks.get(name) {
            Some((holder, expires)) if holder != owner && *expires >= now => Ok(false),
            _ => {
                state
                    .locks
                    .insert(name.to_string(), (owner.to_string(), now + millis(ttl)));
                Ok(true)
            }
        }
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        let mut state = self.lock();
        if state.locks.get(name).is_some_and(|(h, _)| h == owner) {
            state.locks.remove(name);
        }
        Ok(())
    }

    async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<KeyClaim> {
        let now = now_ms();
        let mut state = self.lock();
        let id = (scope.to_string(), key.to_string());
        match state.keys.get(&id) {
            Some(k) if k.expires_at >= now && k.done => Ok(KeyClaim::Done),
            Some(k) if k.expires_at >= now => Ok(KeyClaim::Pending),
            _ => {
                state.keys.insert(
                    id,
                    DedupeKey {
                        owner: owner.to_string(),
                        done: false,
                        expires_at: now + millis(lease),
                    },
                );
                Ok(KeyClaim::New)
            }
        }
    }

    async fn settle_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        window: Option<Duration>,
    ) -> Result<()> {
        let mut state = self.lock();
        let id = (scope.to_string(), key.to_string());
        if state.keys.get(&id).is_some_and(|k| k.owner == owner) {
            match window {
                Some(w) => {
                    if let Some(k) = state.keys.get_mut(&id) {
                        k.done = true;
                        k.expires_at = now_ms() + millis(w);
                    }
                }
                None => {
                    state.keys.remove(&id);
                }
            }
        }
        Ok(())
    }

    async fn purge_keys(&self, scope: &str) -> Result<u64> {
        let now = now_ms();
        let mut state = self.lock();
        let before = state.keys.len();
        state
            .keys
            .retain(|(s, _), k| s != scope || k.expires_at >= now);
        Ok((before - state.keys.len()) as u64)
    }

    async fn mark(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.lock().marks.get(key).cloned())
    }

    async fn set_mark(&self, key: &str, value: &Value) -> Result<()> {
        self.lock().marks.insert(key.to_string(), value.clone());
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.queued.notified()).await;
    }
}
