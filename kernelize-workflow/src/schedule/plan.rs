//! Planning: which ticks of a schedule to start now, given what was handled before. Pure
//! functions of their arguments (no clock, no store), so every policy is tested with
//! fixed dates.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use kernelize_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cron::Schedule;
use crate::definition::{MissedRuns, Overlap, Trigger};

/// How far back `missed: catch_up` looks when a trigger does not say.
pub const DEFAULT_CATCH_UP_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Most runs `missed: catch_up` starts for one gap when a trigger does not say.
pub const DEFAULT_MAX_CATCH_UP: u32 = 10;

/// A schedule trigger of a workflow, read and checked: its [`Schedule`] and its policies
/// for missed ticks and overlapping runs.
#[derive(Debug, Clone)]
pub struct ScheduledTrigger {
    schedule: Schedule,
    missed: MissedRuns,
    catch_up_window: Duration,
    max_catch_up: u32,
    overlap: Overlap,
}

impl ScheduledTrigger {
    /// Reads a trigger of a workflow file. A trigger without `schedule`, a bad expression
    /// or an unknown time zone is a `ConfigInvalid` error.
    pub fn from_trigger(trigger: &Trigger) -> Result<Self> {
        let expression = trigger.schedule.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "this trigger has no `schedule` (it is a webhook trigger)",
            )
        })?;
        Ok(Self {
            schedule: Schedule::parse(expression, trigger.timezone.as_deref())?,
            missed: trigger.missed,
            catch_up_window: trigger.catch_up_window.unwrap_or(DEFAULT_CATCH_UP_WINDOW),
            max_catch_up: trigger.max_catch_up.unwrap_or(DEFAULT_MAX_CATCH_UP).max(1),
            overlap: trigger.overlap,
        })
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// What happens to ticks missed while no scheduler ran.
    pub fn missed(&self) -> MissedRuns {
        self.missed
    }

    /// How far back `catch_up` looks (a day by default).
    pub fn catch_up_window(&self) -> Duration {
        self.catch_up_window
    }

    /// Most runs `catch_up` starts for one gap (10 by default, at least 1).
    pub fn max_catch_up(&self) -> u32 {
        self.max_catch_up
    }

    /// What happens to a tick while a run of this trigger is queued or running.
    pub fn overlap(&self) -> Overlap {
        self.overlap
    }

    /// The trigger name its runs carry: `schedule:EXPR`, or `schedule:EXPR (ZONE)` when the
    /// trigger names a time zone. Stable while the trigger is unchanged: overlap counts
    /// the active runs under this name.
    pub fn name(&self) -> String {
        match self.schedule.timezone() {
            Some(zone) => format!("schedule:{} ({zone})", self.schedule.expression()),
            None => format!("schedule:{}", self.schedule.expression()),
        }
    }

    /// What to start at `now`, given the last tick handled (`last_tick`) and when the
    /// scheduler last looked (`last_checked`). See [`plan`].
    pub fn plan(
        &self,
        last_tick: Option<DateTime<Utc>>,
        last_checked: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Plan {
        // First start: history before now is not "missed"; only what comes from now on.
        let Some(from) = last_tick.max(last_checked) else {
            return Plan::nothing(None);
        };
        let Some(latest) = self.schedule.latest_until(now).filter(|t| *t > from) else {
            return Plan::nothing(last_tick);
        };
        // Exists and is at most `latest`, since `latest` is a tick after `from`.
        let first_due = self.schedule.next_after(from).unwrap_or(latest);
        let (runs, oldest_started) = match self.missed {
            MissedRuns::Skip => (vec![PlannedRun::at(latest)], latest),
            MissedRuns::RunOnce => (
                vec![PlannedRun {
                    scheduled_at: latest,
                    covers_from: Some(first_due),
                }],
                first_due,
            ),
            MissedRuns::CatchUp => {
                let window = TimeDelta::from_std(self.catch_up_window).unwrap_or(TimeDelta::MAX);
                let window_start = now.checked_sub_signed(window);
                let mut ticks = vec![latest];
                // Walk back from the newest tick: the work is bounded by `max_catch_up`
                // however long the gap was.
                while ticks.len() < self.max_catch_up as usize {
                    let Some(earlier) =
                        ticks.last().and_then(|t| self.schedule.previous_before(*t))
                    else {
                        break;
                    };
                    if earlier <= from || window_start.is_some_and(|w| earlier < w) {
                        break;
                    }
                    ticks.push(earlier);
                }
                ticks.reverse();
                let oldest = ticks[0];
                (ticks.into_iter().map(PlannedRun::at).collect(), oldest)
            }
        };
        let forgotten = (first_due < oldest_started).then(|| TickRange {
            first: first_due,
            last: self
                .schedule
                .previous_before(oldest_started)
                .unwrap_or(first_due),
        });
        Plan {
            runs,
            last_tick: Some(latest),
            forgotten,
        }
    }
}

/// What to start at `now` for `trigger`, given the last tick handled and when the scheduler
/// last looked. The ticks due are those after both, up to `now` included:
///
/// - none known (`last_tick` and `last_checked` both `None`): a first start. Nothing runs;
///   the schedule counts from `now`, so past ticks are never treated as missed.
/// - `skip`: the newest due tick runs (however late); older due ticks are forgotten.
/// - `run_once`: one run for the newest due tick, whose `covers_from` is the oldest due
///   tick: it covers the whole gap.
/// - `catch_up`: one run per due tick, oldest first, among the ticks no older than
///   `catch_up_window` before `now`, and at most `max_catch_up` of them, the newest kept.
///   The newest due tick always runs, even when it is older than the window. Ticks beyond
///   the window or the bound are forgotten: they are reported in [`Plan::forgotten`] and
///   never started later.
///
/// Every due tick is handled by the plan ([`Plan::last_tick`] moves to the newest), so no
/// tick is planned twice.
pub fn plan(
    trigger: &Trigger,
    last_tick: Option<DateTime<Utc>>,
    last_checked: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Plan> {
    Ok(ScheduledTrigger::from_trigger(trigger)?.plan(last_tick, last_checked, now))
}

/// What a planning pass decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Runs to start, oldest tick first.
    pub runs: Vec<PlannedRun>,
    /// The newest tick handled once this plan is carried out (the one before when no tick
    /// was due; `None` while the schedule has not ticked since it started counting).
    pub last_tick: Option<DateTime<Utc>>,
    /// Due ticks that no run covers: the first and last of them.
    pub forgotten: Option<TickRange>,
}

impl Plan {
    fn nothing(last_tick: Option<DateTime<Utc>>) -> Self {
        Self {
            runs: Vec::new(),
            last_tick,
            forgotten: None,
        }
    }
}

/// The first and last of a range of ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickRange {
    /// The oldest tick.
    pub first: DateTime<Utc>,
    /// The newest tick.
    pub last: DateTime<Utc>,
}

/// One run a plan starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// The tick it is for.
    pub scheduled_at: DateTime<Utc>,
    /// With `missed: run_once`, the oldest tick it covers (its own tick when there was no
    /// gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers_from: Option<DateTime<Utc>>,
}

impl PlannedRun {
    /// A run for one tick.
    pub fn at(scheduled_at: DateTime<Utc>) -> Self {
        Self {
            scheduled_at,
            covers_from: None,
        }
    }

    /// The parameters the run gets, over the workflow's defaults: `scheduled_at` (RFC 3339,
    /// UTC, whole seconds), and `covers_from` for a `run_once` run.
    pub fn params(&self) -> BTreeMap<String, Value> {
        let mut params = BTreeMap::new();
        params.insert(
            "scheduled_at".to_string(),
            Value::String(rfc3339(self.scheduled_at)),
        );
        if let Some(from) = self.covers_from {
            params.insert("covers_from".to_string(), Value::String(rfc3339(from)));
        }
        params
    }
}

/// RFC 3339 in UTC with whole seconds: `2026-03-29T01:00:00Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
