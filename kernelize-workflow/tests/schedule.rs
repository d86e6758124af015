//! Schedules and webhooks: planning under each missed-run policy, cron ticks across the 2026
//! clock changes, overlap policies and a single active scheduler on every store (memory,
//! SQLite, PostgreSQL), and webhook triggers.

#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kernelize_core::{ErrorKind, PluginManager};
use kernelize_workflow::definition::{self, MissedRuns, Trigger, WorkflowFile};
use kernelize_workflow::schedule::{
    Plan, PlannedRun, Schedule, ScheduledTrigger, Scheduler, TickRange, plan,
};
use kernelize_workflow::store::{Claim, RunFilter, Store};
use kernelize_workflow::{Engine, RunStatus};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn ats(list: &[&str]) -> Vec<DateTime<Utc>> {
    list.iter().map(|s| at(s)).collect()
}

fn every(expression: &str, missed: MissedRuns) -> Trigger {
    Trigger {
        schedule: Some(expression.to_string()),
        missed,
        ..Trigger::default()
    }
}

fn scheduled(runs: &[PlannedRun]) -> Vec<DateTime<Utc>> {
    runs.iter().map(|r| r.scheduled_at).collect()
}

// ---------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------

#[test]
fn a_first_start_takes_no_history_for_missed_ticks() {
    let trigger = every("* * * * *", MissedRuns::CatchUp);
    let now = at("2026-05-01T10:00:30Z");
    let first = plan(&trigger, None, None, now).unwrap();
    assert_eq!(
        first,
        Plan {
            runs: vec![],
            last_tick: None,
            forgotten: None
        }
    );
    // The next look counts from the first one.
    let next = plan(&trigger, None, Some(now), at("2026-05-01T10:01:10Z")).unwrap();
    assert_eq!(scheduled(&next.runs), ats(&["2026-05-01T10:01:00Z"]));
    assert_eq!(next.last_tick, Some(at("2026-05-01T10:01:00Z")));
}

#[test]
fn nothing_is_due_between_two_ticks() {
    let trigger = every("0 * * * *", MissedRuns::Skip);
    let last = Some(at("2026-05-01T10:00:00Z"));
    let p = plan(
        &trigger,
        last,
        Some(at("2026-05-01T10:00:01Z")),
        at("2026-05-01T10:59:59Z"),
    )
    .unwrap();
    assert!(p.runs.is_empty());
    assert_eq!(p.last_tick, last);
    // A tick exactly at now is due.
    let p = plan(&trigger, last, None, at("2026-05-01T11:00:00Z")).unwrap();
    assert_eq!(scheduled(&p.runs), ats(&["2026-05-01T11:00:00Z"]));
}

#[test]
fn skip_runs_the_newest_due_tick_and_forgets_the_older_ones() {
    let trigger = every("0 * * * *", MissedRuns::Skip);
    let p = plan(
        &trigger,
        Some(at("2026-05-01T07:00:00Z")),
        Some(at("2026-05-01T07:00:02Z")),
        at("2026-05-01T10:30:00Z"),
    )
    .unwrap();
    assert_eq!(p.runs, vec![PlannedRun::at(at("2026-05-01T10:00:00Z"))]);
    assert_eq!(p.last_tick, Some(at("2026-05-01T10:00:00Z")));
    assert_eq!(
        p.forgotten,
        Some(TickRange {
            first: at("2026-05-01T08:00:00Z"),
            last: at("2026-05-01T09:00:00Z"),
        })
    );
    let params = p.runs[0].params();
    assert_eq!(params["scheduled_at"], json!("2026-05-01T10:00:00Z"));
    assert!(!params.contains_key("covers_from"));
}

#[test]
fn run_once_covers_the_whole_gap_with_one_run() {
    let trigger = every("0 * * * *", MissedRuns::RunOnce);
    let p = plan(
        &trigger,
        Some(at("2026-05-01T07:00:00Z")),
        None,
        at("2026-05-01T10:30:00Z"),
    )
    .unwrap();
    assert_eq!(p.runs.len(), 1);
    assert_eq!(p.runs[0].scheduled_at, at("2026-05-01T10:00:00Z"));
    assert_eq!(p.runs[0].covers_from, Some(at("2026-05-01T08:00:00Z")));
    assert_eq!(p.forgotten, None);
    let params = p.runs[0].params();
    assert_eq!(params["scheduled_at"], json!("2026-05-01T10:00:00Z"));
    assert_eq!(params["covers_from"], json!("2026-05-01T08:00:00Z"));

    // Without a gap, a run covers its own tick.
    let p = plan(
        &trigger,
        Some(at("2026-05-01T10:00:00Z")),
        None,
        at("2026-05-01T11:00:05Z"),
    )
    .unwrap();
    assert_eq!(p.runs[0].covers_from, Some(at("2026-05-01T11:00:00Z")));
}

#[test]
fn catch_up_starts_one_run_per_missed_tick_oldest_first() {
    let trigger = every("0 * * * *", MissedRuns::CatchUp);
    let p = plan(
        &trigger,
        Some(at("2026-05-01T07:00:00Z")),
        None,
        at("2026-05-01T10:30:00Z"),
    )
    .unwrap();
    assert_eq!(
        scheduled(&p.runs),
        ats(&[
            "2026-05-01T08:00:00Z",
            "2026-05-01T09:00:00Z",
            "2026-05-01T10:00:00Z"
        ])
    );
    assert_eq!(p.last_tick, Some(at("2026-05-01T10:00:00Z")));
    assert_eq!(p.forgotten, None);
    assert!(p.runs.iter().all(|r| r.covers_from.is_none()));
}

#[test]
fn catch_up_keeps_the_newest_ticks_up_to_its_bound_and_forgets_the_rest() {
    let mut trigger = every("* * * * *", MissedRuns::CatchUp);
    trigger.max_catch_up = Some(5);
    let p = plan(
        &trigger,
        Some(at("2026-05-01T10:00:00Z")),
        None,
        at("2026-05-01T10:30:20Z"),
    )
    .unwrap();
    assert_eq!(
        scheduled(&p.runs),
        ats(&[
            "2026-05-01T10:26:00Z",
            "2026-05-01T10:27:00Z",
            "2026-05-01T10:28:00Z",
            "2026-05-01T10:29:00Z",
            "2026-05-01T10:30:00Z"
        ])
    );
    assert_eq!(
        p.forgotten,
        Some(TickRange {
            first: at("2026-05-01T10:01:00Z"),
            last: at("2026-05-01T10:25:00Z"),
        })
    );
    // Forgotten means forgotten: the next pass does not go back for them.
    let again = plan(&trigger, p.last_tick, None, at("2026-05-01T10:30:50Z")).unwrap();
    assert!(again.runs.is_empty());
}

#[test]
fn catch_up_forgets_ticks_older_than_its_window() {
    let mut trigger = every("0 * * * *", MissedRuns::CatchUp);
    trigger.catch_up_window = Some(Duration::from_secs(2 * 3600));
    let p = plan(
        &trigger,
        Some(at("2026-04-29T10:00:00Z")),
        None,
        at("2026-05-01T10:30:00Z"),
    )
    .unwrap();
    assert_eq!(
        scheduled(&p.runs),
        ats(&["2026-05-01T09:00:00Z", "2026-05-01T10:00:00Z"])
    );
    assert_eq!(
        p.forgotten,
        Some(TickRange {
            first: at("2026-04-29T11:00:00Z"),
            last: at("2026-05-01T08:00:00Z"),
        })
    );
}

#[test]
fn catch_up_defaults_to_one_day_and_ten_runs() {
    // Every four hours, three days missed: the window (a day) keeps six ticks.
    let four_hourly = every("0 */4 * * *", MissedRuns::CatchUp);
    let p = plan(
        &four_hourly,
        Some(at("2026-04-28T00:00:00Z")),
        None,
        at("2026-05-01T10:30:00Z"),
    )
    .unwrap();
    assert_eq!(
        scheduled(&p.runs),
        ats(&[
            "2026-04-30T12:00:00Z",
            "2026-04-30T16:00:00Z",
            "2026-04-30T20:00:00Z",
            "2026-05-01T00:00:00Z",
            "2026-05-01T04:00:00Z",
            "2026-05-01T08:00:00Z"
        ])
    );
    // Every second, an hour missed: the bound (10) keeps the last ten seconds.
    let secondly = every("* * * * * *", MissedRuns::CatchUp);
    let p = plan(
        &secondly,
        Some(at("2026-05-01T09:30:00Z")),
        None,
        at("2026-05-01T10:30:00.400Z"),
    )
    .unwrap();
    assert_eq!(p.runs.len(), 10);
    assert_eq!(p.runs[0].scheduled_at, at("2026-05-01T10:29:51Z"));
    assert_eq!(p.runs[9].scheduled_at, at("2026-05-01T10:30:00Z"));
}

#[test]
fn the_newest_due_tick_runs_even_when_older_than_the_catch_up_window() {
    let mut trigger = every("0 9 * * *", MissedRuns::CatchUp);
    trigger.catch_up_window = Some(Duration::from_secs(3600));
    let p = plan(
        &trigger,
        Some(at("2026-04-28T09:00:00Z")),
        None,
        at("2026-05-01T12:00:00Z"),
    )
    .unwrap();
    assert_eq!(scheduled(&p.runs), ats(&["2026-05-01T09:00:00Z"]));
    assert_eq!(
        p.forgotten,
        Some(TickRange {
            first: at("2026-04-29T09:00:00Z"),
            last: at("2026-04-30T09:00:00Z"),
        })
    );
}

#[test]
fn ticks_before_the_last_look_are_not_due_again() {
    let trigger = every("0 * * * *", MissedRuns::CatchUp);
    let p = plan(
        &trigger,
        None,
        Some(at("2026-05-01T10:05:00Z")),
        at("2026-05-01T10:30:00Z"),
    )
    .unwrap();
    assert!(p.runs.is_empty());
    assert_eq!(p.last_tick, None);
}

#[test]
fn a_webhook_trigger_cannot_be_planned() {
    let trigger = Trigger {
        webhook: Some("/x".into()),
        ..Trigger::default()
    };
    let e = plan(&trigger, None, None, Utc::now()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("no `schedule`"), "{e}");
}

#[test]
fn trigger_names_are_the_expression_and_the_zone_when_one_is_named() {
    let utc = ScheduledTrigger::from_trigger(&every("0 * * * *", MissedRuns::Skip)).unwrap();
    assert_eq!(utc.name(), "schedule:0 * * * *");
    let mut paris = every("30 2 * * *", MissedRuns::Skip);
    paris.timezone = Some("Europe/Paris".into());
    let paris = ScheduledTrigger::from_trigger(&paris).unwrap();
    assert_eq!(paris.name(), "schedule:30 2 * * * (Europe/Paris)");
    assert_eq!(paris.max_catch_up(), 10);
    assert_eq!(paris.catch_up_window(), Duration::from_secs(86_400));
}

// ---------------------------------------------------------------------------------------
// Clock changes (2026: Europe/Paris 29 March and 25 October; America/New_York 8 March and
// 1 November)
// ---------------------------------------------------------------------------------------

fn ticks(expression: &str, zone: &str, after: &str, n: usize) -> Vec<DateTime<Utc>> {
    let schedule = Schedule::parse(expression, Some(zone)).unwrap();
    let forward: Vec<DateTime<Utc>> = schedule.ticks_after(at(after)).take(n).collect();
    // Walking back from the last tick finds the same ticks (missed ticks are found so).
    let mut backward = vec![*forward.last().unwrap()];
    while backward.len() < n {
        let t = schedule.previous_before(*backward.last().unwrap()).unwrap();
        backward.push(t);
    }
    backward.reverse();
    assert_eq!(forward, backward, "{expression} in {zone}");
    forward
}

#[test]
fn spring_forward_a_fixed_time_tick_in_the_skipped_hour_runs_right_after_the_gap() {
    assert_eq!(
        ticks("30 2 * * *", "Europe/Paris", "2026-03-27T20:00:00Z", 3),
        ats(&[
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
            "2026-03-30T00:30:00Z", // 02:30 CEST
        ])
    );
    assert_eq!(
        ticks("30 2 * * *", "America/New_York", "2026-03-07T20:00:00Z", 2),
        ats(&[
            "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ])
    );
}

#[test]
fn spring_forward_other_schedules_skip_the_wall_clock_times_that_do_not_exist() {
    assert_eq!(
        ticks("30 * * * *", "Europe/Paris", "2026-03-28T23:00:00Z", 3),
        ats(&[
            "2026-03-28T23:30:00Z", // 00:30 CET
            "2026-03-29T00:30:00Z", // 01:30 CET
            "2026-03-29T01:30:00Z", // 03:30 CEST: 02:30 is skipped
        ])
    );
    // Every half hour in the 2 o'clock hour: no run at all on 29 March.
    assert_eq!(
        ticks("*/30 2 * * *", "Europe/Paris", "2026-03-27T20:00:00Z", 4),
        ats(&[
            "2026-03-28T01:00:00Z",
            "2026-03-28T01:30:00Z",
            "2026-03-30T00:00:00Z",
            "2026-03-30T00:30:00Z",
        ])
    );
}

#[test]
fn fall_back_a_fixed_time_tick_in_the_repeated_hour_runs_once() {
    assert_eq!(
        ticks("30 2 * * *", "Europe/Paris", "2026-10-23T20:00:00Z", 3),
        ats(&[
            "2026-10-24T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // the first 02:30 (CEST); not again at 01:30Z (CET)
            "2026-10-26T01:30:00Z", // 02:30 CET
        ])
    );
    assert_eq!(
        ticks("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
        ats(&[
            "2026-11-01T05:30:00Z", // the first 01:30 (EDT); not again at 06:30Z (EST)
            "2026-11-02T06:30:00Z", // 01:30 EST
        ])
    );
}

#[test]
fn fall_back_other_schedules_run_at_every_occurrence_of_the_repeated_hour() {
    assert_eq!(
        ticks("30 * * * *", "Europe/Paris", "2026-10-24T23:00:00Z", 4),
        ats(&[
            "2026-10-24T23:30:00Z", // 01:30 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:30:00Z", // 02:30 CET
            "2026-10-25T02:30:00Z", // 03:30 CET
        ])
    );
    assert_eq!(
        ticks("*/30 2 * * *", "Europe/Paris", "2026-10-24T20:00:00Z", 5),
        ats(&[
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T01:30:00Z", // 02:30 CET
            "2026-10-26T01:00:00Z", // 02:00 CET, next day
        ])
    );
}

#[test]
fn catch_up_across_a_clock_change_starts_each_real_tick_once() {
    let mut hourly = every("30 * * * *", MissedRuns::CatchUp);
    hourly.timezone = Some("Europe/Paris".into());
    let p = plan(
        &hourly,
        Some(at("2026-10-24T21:30:00Z")),
        None,
        at("2026-10-25T02:45:00Z"),
    )
    .unwrap();
    assert_eq!(
        scheduled(&p.runs),
        ats(&[
            "2026-10-24T22:30:00Z",
            "2026-10-24T23:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:30:00Z"
        ])
    );
    let mut daily = every("30 2 * * *", MissedRuns::CatchUp);
    daily.timezone = Some("Europe/Paris".into());
    daily.catch_up_window = Some(Duration::from_secs(7 * 86_400));
    let p = plan(
        &daily,
        Some(at("2026-03-27T01:30:00Z")),
        None,
        at("2026-03-30T12:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        scheduled(&p.runs),
        ats(&[
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ])
    );
}

// ---------------------------------------------------------------------------------------
// The scheduler against real stores
// ---------------------------------------------------------------------------------------

fn file(expression: &str, missed: &str, overlap: &str, by: &str) -> WorkflowFile {
    let yaml = format!(
        r##"
workflows:
  tick:
    params: {{ by: "{by}", scheduled_at: null }}
    triggers:
      - schedule: "{expression}"
        missed: {missed}
        overlap: {overlap}
    steps:
      - name: say
        plugin: log-notifier
        action: send_message
        config: {{ channel: "#t", text: "tick" }}
"##
    );
    definition::parse("tick.yaml", &yaml).unwrap().file
}

const TRIGGER: &str = "schedule:* * * * *";

/// Long enough that a slow store never lets a lock expire between two passes of a test.
const LOCK_TTL: Duration = Duration::from_secs(3);

fn scheduler(store: &Arc<dyn Store>, owner: &str, file: &WorkflowFile) -> Scheduler {
    let engine = Engine::new(PluginManager::new()).with_store(store.clone());
    let s = Scheduler::new(engine)
        .with_owner(owner)
        .with_lock_ttl(LOCK_TTL);
    s.register(file).unwrap();
    s
}

async fn scheduled_at(store: &dyn Store, id: &str) -> String {
    let run = store.run(id).await.unwrap().unwrap();
    assert_eq!(run.trigger, TRIGGER);
    assert_eq!(run.status, RunStatus::Queued);
    run.params["scheduled_at"].as_str().unwrap().to_string()
}

/// Ends every queued run of the store, as a worker would.
async fn finish_all(store: &dyn Store) {
    while let Some(run) = store
        .claim("worker", Duration::from_secs(30), Claim::Next)
        .await
        .unwrap()
    {
        store
            .finish_run(&run.id, "worker", RunStatus::Succeeded, None)
            .await
            .unwrap();
    }
}

async fn overlap_skip_drops_a_tick_while_a_run_is_active(store: Arc<dyn Store>) {
    let s = scheduler(&store, "a", &file("* * * * *", "skip", "skip", "a"));
    assert!(s.tick(at("2026-05-01T10:00:30Z")).await.unwrap().is_empty());
    let first = s.tick(at("2026-05-01T10:01:00Z")).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        scheduled_at(&*store, &first[0]).await,
        "2026-05-01T10:01:00Z"
    );
    // Still queued: the 10:02 tick is dropped, and not started later either.
    assert!(s.tick(at("2026-05-01T10:02:00Z")).await.unwrap().is_empty());
    finish_all(&*store).await;
    assert!(s.tick(at("2026-05-01T10:02:30Z")).await.unwrap().is_empty());
    let next = s.tick(at("2026-05-01T10:03:00Z")).await.unwrap();
    assert_eq!(
        scheduled_at(&*store, &next[0]).await,
        "2026-05-01T10:03:00Z"
    );
}

async fn overlap_buffer_one_keeps_one_tick_until_the_run_ends(store: Arc<dyn Store>) {
    let s = scheduler(&store, "a", &file("* * * * *", "skip", "buffer_one", "a"));
    s.tick(at("2026-05-01T10:00:30Z")).await.unwrap();
    let first = s.tick(at("2026-05-01T10:01:00Z")).await.unwrap();
    assert_eq!(first.len(), 1);
    // 10:02 waits, 10:03 is dropped: one tick is kept, the first.
    assert!(s.tick(at("2026-05-01T10:02:00Z")).await.unwrap().is_empty());
    assert!(s.tick(at("2026-05-01T10:03:00Z")).await.unwrap().is_empty());
    let state = s.state("tick", TRIGGER).await.unwrap().unwrap();
    assert_eq!(state.waiting.len(), 1, "{state:?}");
    assert_eq!(state.last_tick, Some(at("2026-05-01T10:03:00Z")));
    // Another scheduler (a restart) finds the waiting tick in the store and starts it once
    // the run before it ended.
    s.release().await.unwrap();
    let restarted = scheduler(&store, "b", &file("* * * * *", "skip", "buffer_one", "a"));
    assert!(
        restarted
            .tick(at("2026-05-01T10:03:20Z"))
            .await
            .unwrap()
            .is_empty()
    );
    finish_all(&*store).await;
    let buffered = restarted.tick(at("2026-05-01T10:03:40Z")).await.unwrap();
    assert_eq!(buffered.len(), 1);
    assert_eq!(
        scheduled_at(&*store, &buffered[0]).await,
        "2026-05-01T10:02:00Z"
    );
    let state = restarted.state("tick", TRIGGER).await.unwrap().unwrap();
    assert!(state.waiting.is_empty());
}

async fn overlap_allow_starts_runs_side_by_side(store: Arc<dyn Store>) {
    let s = scheduler(&store, "a", &file("* * * * *", "skip", "allow", "a"));
    s.tick(at("2026-05-01T10:00:30Z")).await.unwrap();
    let a = s.tick(at("2026-05-01T10:01:00Z")).await.unwrap();
    let b = s.tick(at("2026-05-01T10:02:00Z")).await.unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(store.active_runs("tick", TRIGGER).await.unwrap(), 2);
}

async fn a_restarted_scheduler_catches_up_one_run_at_a_time(store: Arc<dyn Store>) {
    let yaml = file("* * * * *", "catch_up", "skip", "a");
    let s = scheduler(&store, "a", &yaml);
    s.tick(at("2026-05-01T10:00:30Z")).await.unwrap();
    s.tick(at("2026-05-01T10:01:00Z")).await.unwrap();
    finish_all(&*store).await;
    s.release().await.unwrap();
    // Down from 10:01 to 10:04:30: three ticks missed, caught up in order, never two
    // runs of the trigger at once.
    let restarted = scheduler(&store, "b", &yaml);
    let mut started = Vec::new();
    for now in [
        "2026-05-01T10:04:30Z",
        "2026-05-01T10:04:40Z",
        "2026-05-01T10:04:50Z",
    ] {
        let ids = restarted.tick(at(now)).await.unwrap();
        assert_eq!(ids.len(), 1, "one run at a time, at {now}");
        assert_eq!(store.active_runs("tick", TRIGGER).await.unwrap(), 1);
        started.push(scheduled_at(&*store, &ids[0]).await);
        finish_all(&*store).await;
    }
    assert_eq!(
        started,
        [
            "2026-05-01T10:02:00Z",
            "2026-05-01T10:03:00Z",
            "2026-05-01T10:04:00Z"
        ]
    );
    assert!(
        restarted
            .tick(at("2026-05-01T10:04:55Z"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn one_scheduler_works_and_another_takes_over_when_it_stops(store: Arc<dyn Store>) {
    let yaml = file("* * * * *", "catch_up", "allow", "a");
    let a = scheduler(&store, "a", &yaml);
    let b = scheduler(&store, "b", &yaml);
    assert!(a.tick(at("2026-05-01T10:00:30Z")).await.unwrap().is_empty());
    assert!(a.is_active());
    assert!(b.tick(at("2026-05-01T10:00:30Z")).await.unwrap().is_empty());
    assert!(!b.is_active());
    assert_eq!(a.tick(at("2026-05-01T10:01:00Z")).await.unwrap().len(), 1);
    assert!(b.tick(at("2026-05-01T10:01:00Z")).await.unwrap().is_empty());
    assert!(b.tick(at("2026-05-01T10:02:00Z")).await.unwrap().is_empty());
    assert!(!b.is_active());

    // A stops: B takes over where A stopped, 10:01 is not started again.
    a.release().await.unwrap();
    let ids = b.tick(at("2026-05-01T10:02:00Z")).await.unwrap();
    assert!(b.is_active());
    assert_eq!(ids.len(), 1);
    assert_eq!(scheduled_at(&*store, &ids[0]).await, "2026-05-01T10:02:00Z");
    assert!(a.tick(at("2026-05-01T10:03:00Z")).await.unwrap().is_empty());
    assert!(!a.is_active());

    // B dies without giving the lock up: A takes over once the lock expires.
    tokio::time::sleep(LOCK_TTL + Duration::from_millis(500)).await;
    let ids = a.tick(at("2026-05-01T10:03:00Z")).await.unwrap();
    assert!(a.is_active());
    assert_eq!(scheduled_at(&*store, &ids[0]).await, "2026-05-01T10:03:00Z");
    assert!(b.tick(at("2026-05-01T10:04:00Z")).await.unwrap().is_empty());

    let runs = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 3, "one run per tick, whoever started it");
}

/// Two running schedulers on one store: runs carry `by` (each scheduler's file says who),
/// so the runs show who started them.
async fn two_running_schedulers_start_each_tick_once(store: Arc<dyn Store>) {
    let every_second = |by: &str| file("* * * * * *", "skip", "allow", by);
    let a = scheduler(&store, "a", &every_second("a")).with_max_interval(Duration::from_millis(50));
    let b = scheduler(&store, "b", &every_second("b")).with_max_interval(Duration::from_millis(50));
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let task_a = tokio::spawn({
        let (a, stop) = (a.clone(), stop_a.clone());
        async move { a.run(stop).await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !a.is_active() {
        assert!(Instant::now() < deadline, "scheduler a never took the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let task_b = tokio::spawn({
        let (b, stop) = (b.clone(), stop_b.clone());
        async move { b.run(stop).await }
    });
    let by = |runs: &[(String, String)], who: &str| runs.iter().filter(|(w, _)| w == who).count();
    let runs_of = |store: Arc<dyn Store>| async move {
        let mut out = Vec::new();
        for r in store
            .list_runs(&RunFilter {
                limit: Some(1000),
                ..RunFilter::default()
            })
            .await
            .unwrap()
        {
            let record = store.run(&r.id).await.unwrap().unwrap();
            out.push((
                record.params["by"].as_str().unwrap().to_string(),
                record.params["scheduled_at"].as_str().unwrap().to_string(),
            ));
        }
        out
    };
    while by(&runs_of(store.clone()).await, "a") < 2 {
        assert!(Instant::now() < deadline, "scheduler a started no runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_a.cancel();
    task_a.await.unwrap().unwrap();
    let before = runs_of(store.clone()).await;
    assert_eq!(by(&before, "b"), 0, "b started runs while a held the lock");
    while by(&runs_of(store.clone()).await, "b") < 2 {
        assert!(Instant::now() < deadline, "scheduler b never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_b.cancel();
    task_b.await.unwrap().unwrap();
    let runs = runs_of(store.clone()).await;
    let mut ticks: Vec<&str> = runs.iter().map(|(_, t)| t.as_str()).collect();
    ticks.sort();
    let count = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), count, "a tick started twice: {runs:?}");
    // Every run that a started came before every run that b started.
    let last_a = runs.iter().filter(|(w, _)| w == "a").map(|(_, t)| t).max();
    let first_b = runs.iter().filter(|(w, _)| w == "b").map(|(_, t)| t).min();
    assert!(last_a < first_b, "{runs:?}");
    // Both gave the lock up when they stopped.
    assert!(
        store
            .try_lock("scheduler", "c", Duration::from_secs(1))
            .await
            .unwrap()
    );
}

macro_rules! suite {
    ($($kind:ident),*) => {$(
        mod $kind {
            use super::*;

            async fn with_store<F, Fut>(test: F)
            where
                F: FnOnce(Arc<dyn Store>) -> Fut,
                Fut: std::future::Future<Output = ()>,
            {
                let s = common::open(stringify!($kind)).await;
                test(s.store.clone()).await;
                s.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn overlap_skip() {
                with_store(overlap_skip_drops_a_tick_while_a_run_is_active).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn overlap_buffer_one() {
                with_store(overlap_buffer_one_keeps_one_tick_until_the_run_ends).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn overlap_allow() {
                with_store(overlap_allow_starts_runs_side_by_side).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn catch_up_after_restart() {
                with_store(a_restarted_scheduler_catches_up_one_run_at_a_time).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single_active_scheduler() {
                with_store(one_scheduler_works_and_another_takes_over_when_it_stops).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_running_schedulers() {
                with_store(two_running_schedulers_start_each_tick_once).await;
            }
        }
    )*};
}

suite!(memory, sqlite, postgres);

// ---------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------

fn hooks(yaml: &str) -> WorkflowFile {
    definition::parse("hooks.yaml", yaml).unwrap().file
}

const SYNC: &str = r##"
workflows:
  sync:
    params: { since: "1970-01-01", limit: 10 }
    triggers:
      - webhook: /hooks/sync
    steps:
      - { name: say, plugin: log-notifier, action: send_message, config: { channel: "#t", text: "x" } }
  report:
    triggers:
      - webhook: /hooks/report
      - schedule: "0 6 * * *"
    steps:
      - { name: say, plugin: log-notifier, action: send_message, config: { channel: "#t", text: "x" } }
  manual_only:
    steps:
      - { name: say, plugin: log-notifier, action: send_message, config: { channel: "#t", text: "x" } }
"##;

#[tokio::test]
async fn a_webhook_queues_its_workflow_with_the_payload_as_params() {
    let engine = Engine::new(PluginManager::new());
    engine.register(&hooks(SYNC)).unwrap();
    assert_eq!(engine.webhook_paths(), ["/hooks/report", "/hooks/sync"]);
    let id = engine
        .trigger("/hooks/sync", json!({ "since": "2026-01-01" }))
        .await
        .unwrap();
    let run = engine.store().run(&id).await.unwrap().unwrap();
    assert_eq!(run.workflow, "sync");
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.trigger, "webhook:/hooks/sync");
    assert_eq!(run.params["since"], json!("2026-01-01"));
    assert_eq!(run.params["limit"], json!(10), "defaults stay");
    // No payload: the defaults.
    let id = engine.trigger("/hooks/report", json!(null)).await.unwrap();
    let run = engine.store().run(&id).await.unwrap().unwrap();
    assert_eq!(run.workflow, "report");
}

#[tokio::test]
async fn a_payload_key_the_workflow_does_not_declare_is_refused() {
    let engine = Engine::new(PluginManager::new());
    engine.register(&hooks(SYNC)).unwrap();
    let e = engine
        .trigger(
            "/hooks/sync",
            json!({ "since": "x", "limt": 5, "extra": 1 }),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let message = e.to_string();
    assert!(
        message.contains("`limt`") && message.contains("`extra`"),
        "{message}"
    );
    assert!(
        message.contains("since, limit") || message.contains("limit, since"),
        "{message}"
    );
    let e = engine
        .trigger("/hooks/sync", json!([1, 2]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("an array"), "{e}");
    let runs = engine
        .store()
        .list_runs(&RunFilter::default())
        .await
        .unwrap();
    assert!(runs.is_empty(), "a refused payload starts nothing");
}

#[tokio::test]
async fn an_unknown_webhook_path_is_not_found_and_lists_the_registered_ones() {
    let engine = Engine::new(PluginManager::new());
    let e = engine.trigger("/hooks/sync", json!({})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("no webhook is registered"), "{e}");
    engine.register(&hooks(SYNC)).unwrap();
    let e = engine.trigger("/hooks/nope", json!({})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("/hooks/report, /hooks/sync"), "{e}");
}

#[tokio::test]
async fn two_workflows_cannot_register_the_same_webhook_path() {
    let engine = Engine::new(PluginManager::new());
    engine.register(&hooks(SYNC)).unwrap();
    let other = hooks(
        r#"
workflows:
  audit:
    triggers: [{ webhook: /hooks/audit }]
    steps: [{ name: s, plugin: log-notifier, action: send_message }]
  copy:
    triggers: [{ webhook: /hooks/sync }]
    steps: [{ name: s, plugin: log-notifier, action: send_message }]
"#,
    );
    let e = engine.register(&other).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().contains(
            "webhook path `/hooks/sync` of workflow `copy` is already registered by workflow `sync`"
        ),
        "{e}"
    );
    // Nothing of the refused file was registered.
    assert_eq!(engine.webhook_paths(), ["/hooks/report", "/hooks/sync"]);
    // The same file again changes nothing; another definition under a known name is refused.
    engine.register(&hooks(SYNC)).unwrap();
    let changed = SYNC.replace("limit: 10", "limit: 20");
    let e = engine.register(&hooks(&changed)).unwrap_err();
    assert!(
        e.to_string().contains("workflow `report`") || e.to_string().contains("workflow `sync`"),
        "{e}"
    );
    assert!(engine.unregister("sync"));
    assert!(engine.unregister("report"));
    engine.register(&hooks(&changed)).unwrap();
    let id = engine.trigger("/hooks/sync", json!({})).await.unwrap();
    let run = engine.store().run(&id).await.unwrap().unwrap();
    assert_eq!(run.params["limit"], json!(20));
}

#[tokio::test]
async fn the_scheduler_and_its_engine_share_registered_triggers() {
    let engine = Engine::new(PluginManager::new());
    let scheduler = Scheduler::new(engine.clone());
    scheduler.register(&hooks(SYNC)).unwrap();
    assert!(engine.trigger("/hooks/report", json!({})).await.is_ok());
    let registered = engine.registered();
    let names: Vec<&str> = registered.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names,
        ["report", "sync"],
        "workflows without triggers stay out"
    );
    assert_eq!(registered[0].schedules[0].name(), "schedule:0 6 * * *");
    assert_eq!(
        scheduler.next_tick(at("2026-05-01T10:00:00Z")),
        Some(at("2026-05-02T06:00:00Z"))
    );
}

#[tokio::test]
async fn a_bad_schedule_is_refused_at_registration_with_where_it_is() {
    let engine = Engine::new(PluginManager::new());
    let e = engine
        .register(&hooks(
            r#"
workflows:
  broken:
    triggers: [{ schedule: "0 * * *" }]
    steps: [{ name: s, plugin: log-notifier, action: send_message }]
"#,
        ))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    let text = e.to_string();
    assert!(
        text.contains("4 fields") && text.contains("workflow: broken"),
        "{text}"
    );
    assert!(text.contains("trigger: 0"), "{text}");
    let twice = engine
        .register(&hooks(
            r#"
workflows:
  twice:
    triggers: [{ schedule: "0 * * * *" }, { schedule: "0 * * * *" }]
    steps: [{ name: s, plugin: log-notifier, action: send_message }]
"#,
        ))
        .unwrap_err();
    assert!(twice.to_string().contains("twice"), "{twice}");
    let never = engine
        .register(&hooks(
            r#"
workflows:
  never:
    triggers: [{ schedule: "0 0 30 2 *" }]
    steps: [{ name: s, plugin: log-notifier, action: send_message }]
"#,
        ))
        .unwrap_err();
    assert_eq!(never.kind(), ErrorKind::ConfigInvalid);
    assert!(never.to_string().contains("never ticks"), "{never}");
    assert!(engine.registered().is_empty());
}
