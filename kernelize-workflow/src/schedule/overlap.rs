//! A schedule trigger's stored state, and the overlap policy that decides which planned
//! runs start now, which wait for the run before them to end, and which are dropped.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plan::PlannedRun;
use crate::definition::Overlap;

/// What the scheduler keeps about one schedule trigger, in the store's marks (as JSON,
/// under [`state_key`]), so that a restarted scheduler, or another process taking over,
/// goes on where it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The newest tick handled: started, waiting, dropped or forgotten.
    #[serde(default)]
    pub last_tick: Option<DateTime<Utc>>,
    /// When a scheduler last looked at this trigger.
    #[serde(default)]
    pub checked_at: Option<DateTime<Utc>>,
    /// Runs waiting for the trigger's active run to end, oldest first.
    #[serde(default)]
    pub waiting: Vec<WaitingRun>,
}

/// A planned run that waits for the run before it to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRun {
    /// The run.
    #[serde(flatten)]
    pub run: PlannedRun,
    /// Whether it is one of the ticks of a catch-up (which always wait their turn),
    /// rather than the one tick `overlap: buffer_one` keeps.
    #[serde(default)]
    pub catch_up: bool,
}

/// The key of a trigger's [`ScheduleState`] in the store's marks:
/// `schedule/WORKFLOW/TRIGGER` (the trigger name without its `schedule:` prefix).
pub fn state_key(workflow: &str, trigger_name: &str) -> String {
    let trigger = trigger_name
        .strip_prefix("schedule:")
        .unwrap_or(trigger_name);
    format!("schedule/{workflow}/{trigger}")
}

/// What [`admit`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Start these now, in this order.
    pub start: Vec<PlannedRun>,
    /// Never started: the policy dropped them.
    pub dropped: Vec<PlannedRun>,
}

/// Applies the overlap policy to the runs a plan wants to start (`planned`, oldest first),
/// given the runs already `waiting` (updated in place) and how many runs of the trigger
/// are `active` (queued or running):
///
/// - `allow`: everything starts now, waiting runs first.
/// - `skip` and `buffer_one`: runs of the trigger never overlap. At most one run starts,
///   and only when none is active: the oldest waiting run. Of the planned runs,
///   - the runs of a catch-up (a plan with several runs) all wait their turn, oldest
///     first; at most `max_catch_up` of them wait at once, the oldest dropped beyond;
///   - a single planned run starts when nothing is active and nothing waits; otherwise
///     `skip` drops it, and `buffer_one` keeps it waiting unless another single run
///     already waits (the first one kept; later ones are dropped).
pub fn admit(
    overlap: Overlap,
    waiting: &mut Vec<WaitingRun>,
    planned: Vec<PlannedRun>,
    active: u64,
    max_catch_up: u32,
) -> Admission {
    let mut admission = Admission::default();
    if overlap == Overlap::Allow {
        admission.start = waiting.drain(..).map(|w| w.run).collect();
        admission.start.extend(planned);
        return admission;
    }
    if planned.len() > 1 {
        waiting.extend(planned.into_iter().map(|run| WaitingRun {
            run,
            catch_up: true,
        }));
        let max = max_catch_up.max(1) as usize;
        let mut excess = waiting
            .iter()
            .filter(|w| w.catch_up)
            .count()
            .saturating_sub(max);
        waiting.retain(|w| {
            if w.catch_up && excess > 0 {
                excess -= 1;
                admission.dropped.push(w.run.clone());
                false
            } else {
                true
            }
        });
    } else if let Some(run) = planned.into_iter().next() {
        let busy = active > 0 || !waiting.is_empty();
        let buffered = waiting.iter().any(|w| !w.catch_up);
        if !busy || (overlap == Overlap::BufferOne && !buffered) {
            waiting.push(WaitingRun {
                run,
                catch_up: false,
            });
        } else {
            admission.dropped.push(run);
        }
    }
    if active == 0 && !waiting.is_empty() {
        admission.start.push(waiting.remove(0).run);
    }
    admission
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn run(minute: u32) -> PlannedRun {
        PlannedRun::at(format!("2026-01-01T10:{minute:02}:00Z").parse().unwrap())
    }

    #[test]
    fn state_keys_name_the_workflow_and_the_trigger() {
        assert_eq!(
            state_key("sync", "schedule:0 * * * * (Europe/Paris)"),
            "schedule/sync/0 * * * * (Europe/Paris)"
        );
    }

    #[test]
    fn the_state_reads_back_from_json() {
        let state = ScheduleState {
            last_tick: Some("2026-01-01T10:00:00Z".parse().unwrap()),
            checked_at: Some("2026-01-01T10:00:00.250Z".parse().unwrap()),
            waiting: vec![WaitingRun {
                run: run(1),
                catch_up: true,
            }],
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["waiting"][0]["scheduled_at"], "2026-01-01T10:01:00Z");
        assert_eq!(
            serde_json::from_value::<ScheduleState>(json).unwrap(),
            state
        );
    }

    #[test]
    fn catch_up_runs_wait_their_turn_under_skip() {
        let mut waiting = Vec::new();
        let a = admit(
            Overlap::Skip,
            &mut waiting,
            vec![run(1), run(2), run(3)],
            0,
            10,
        );
        assert_eq!(a.start, vec![run(1)]);
        assert_eq!(waiting.len(), 2);
        // A new single tick while the backlog drains is dropped under skip.
        let a = admit(Overlap::Skip, &mut waiting, vec![run(4)], 1, 10);
        assert_eq!(a.dropped, vec![run(4)]);
        assert!(a.start.is_empty());
        let a = admit(Overlap::Skip, &mut waiting, vec![], 0, 10);
        assert_eq!(a.start, vec![run(2)]);
        let a = admit(Overlap::Skip, &mut waiting, vec![], 0, 10);
        assert_eq!(a.start, vec![run(3)]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn waiting_catch_up_runs_are_bounded() {
        let mut waiting = Vec::new();
        admit(
            Overlap::Skip,
            &mut waiting,
            vec![run(1), run(2), run(3)],
            1,
            3,
        );
        let a = admit(Overlap::Skip, &mut waiting, vec![run(4), run(5)], 1, 3);
        assert_eq!(a.dropped, vec![run(1), run(2)]);
        let kept: Vec<PlannedRun> = waiting.iter().map(|w| w.run.clone()).collect();
        assert_eq!(kept, vec![run(3), run(4), run(5)]);
    }

    #[test]
    fn buffer_one_keeps_the_first_single_tick_behind_a_backlog() {
        let mut waiting = Vec::new();
        admit(
            Overlap::BufferOne,
            &mut waiting,
            vec![run(1), run(2)],
            1,
            10,
        );
        let a = admit(Overlap::BufferOne, &mut waiting, vec![run(3)], 1, 10);
        assert!(a.dropped.is_empty());
        let a = admit(Overlap::BufferOne, &mut waiting, vec![run(4)], 1, 10);
        assert_eq!(a.dropped, vec![run(4)]);
        assert_eq!(waiting.len(), 3);
    }

    #[test]
    fn allow_starts_everything_waiting_first() {
        let mut waiting = vec![WaitingRun {
            run: run(1),
            catch_up: false,
        }];
        let a = admit(Overlap::Allow, &mut waiting, vec![run(2), run(3)], 5, 10);
        assert_eq!(a.start, vec![run(1), run(2), run(3)]);
        assert!(waiting.is_empty());
    }
}
