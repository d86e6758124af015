//! Schedules and webhooks: what starts a workflow besides a manual run.
//!
//! ```no_run
//! use kernelize_workflow::schedule::Scheduler;
//! use kernelize_workflow::{Engine, definition};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn example(engine: Engine) -> kernelize_core::Result<()> {
//! let loaded = definition::load("flows/data_sync.yaml".as_ref())?;
//! let scheduler = Scheduler::new(engine.clone());
//! scheduler.register(&loaded.file)?; // its schedules, and its webhooks
//! let stop = CancellationToken::new();
//! // Workers execute what the scheduler queues (here in the same process).
//! let worker = engine.work(stop.clone(), std::time::Duration::from_secs(2));
//! let (worked, scheduled) = tokio::join!(worker, scheduler.run(stop.clone()));
//! # worked?; scheduled?; Ok(()) }
//! ```
//!
//! # Schedules
//!
//! A trigger `schedule: EXPR` is a cron expression ([`Schedule`]): 5 fields (minute hour
//! day-of-month month day-of-week), or 6 with seconds first, or a nickname (`@daily`),
//! read by croner 4 in the trigger's `timezone` (an IANA name through chrono-tz; UTC when
//! absent). Every run it starts is queued with [`Engine::submit`](crate::Engine::submit),
//! for workers to execute, so the scheduler never waits for a run. Each run gets the
//! parameter `scheduled_at` (its tick, RFC 3339 in UTC, like `2026-03-29T01:00:00Z`) over the
//! workflow's defaults, and the trigger name `schedule:EXPR` (`schedule:EXPR (ZONE)` when a
//! zone is named), which `kernelize runs list` shows and the overlap policy counts by. A
//! step refers to `${params.scheduled_at}` once the workflow declares it in `params` (a
//! default such as `null` for manual runs).
//!
//! ## Clock changes (DST)
//!
//! Croner reads the fields in wall-clock time of the zone and turns each match into an
//! instant; what happens when a clock change skips or repeats an hour depends on whether
//! the schedule is *fixed-time* (a single value in each of the second, minute and hour
//! fields: `30 2 * * *`, `0 0 9 * * MON`; a 5-field expression has second 0) or not
//! (a `*`, a step `*/N`, a range or a list in any of them: `30 * * * *`, `*/30 2 * * *`).
//! The ticks below are asserted by `tests/schedule.rs`.
//!
//! **Spring forward**, when wall-clock times do not exist (Europe/Paris, 29 March 2026:
//! 02:00 CET becomes 03:00 CEST, at 01:00 UTC):
//!
//! - a fixed-time tick in the skipped hour runs at the first instant after the gap, the
//!   same day: `30 2 * * *` ticks 2026-03-28T01:30:00Z (02:30 CET), 2026-03-29T01:00:00Z
//!   (03:00 CEST), 2026-03-30T00:30:00Z (02:30 CEST). It is not lost, and it does not run
//!   twice.
//! - other schedules skip the wall-clock times that do not exist: `30 * * * *` ticks
//!   2026-03-29T00:30:00Z (01:30 CET) then 2026-03-29T01:30:00Z (03:30 CEST), still an hour
//!   apart in real time; `*/30 2 * * *` does not run at all on 29 March (2026-03-28T01:00:00Z,
//!   2026-03-28T01:30:00Z, then 2026-03-30T00:00:00Z).
//!
//! **Fall back**, when wall-clock times happen twice (Europe/Paris, 25 October 2026: 03:00
//! CEST becomes 02:00 CET, at 01:00 UTC):
//!
//! - a fixed-time tick in the repeated hour runs once, at its first occurrence: `30 2 * * *`
//!   ticks 2026-10-24T00:30:00Z, 2026-10-25T00:30:00Z (02:30 CEST), 2026-10-26T01:30:00Z
//!   (02:30 CET). The same holds in America/New_York: `30 1 * * *` ticks once on 1 November
//!   2026, at 05:30Z (01:30 EDT), not again at 06:30Z (01:30 EST).
//! - other schedules run at every occurrence, in real-time order: `30 * * * *` ticks
//!   2026-10-25T00:30:00Z (02:30 CEST) and 2026-10-25T01:30:00Z (02:30 CET); `*/30 2 * * *`
//!   ticks four times on 25 October (00:00, 00:30, 01:00 and 01:30 UTC).
//!
//! Missed ticks are found by walking back from now; croner gives the same ticks walking
//! back as walking forward, clock changes included.
//!
//! ## Missed ticks
//!
//! Ticks are missed when no scheduler ran (every process was stopped, or the store was
//! unreachable). [`plan`] decides, from the last tick handled, the last time a scheduler
//! looked and now, what to start; the trigger's `missed` policy says how:
//!
//! - `skip` (default): missed ticks are forgotten; the newest due tick runs.
//! - `run_once`: one run covers the gap: it is for the newest due tick (`scheduled_at`) and
//!   carries the oldest in `covers_from`.
//! - `catch_up`: one run per missed tick, oldest first, for the ticks no older than
//!   `catch_up_window` (default `1d`), and never more than `max_catch_up` (default 10) for
//!   one gap: the newest ones are kept. Ticks beyond the window or the bound are forgotten
//!   for good (logged at warn level with their range), never started later: a long outage
//!   never turns into a flood of runs.
//!
//! A schedule that has no state yet (first start, or an expression or zone changed: the
//! state is kept per trigger name) does not take history for missed ticks: it counts from
//! the first time a scheduler looks at it.
//!
//! ## Overlap
//!
//! A tick may come while a run of its trigger is still queued or running
//! ([`Store::active_runs`](crate::Store::active_runs) with the trigger name). The trigger's
//! `overlap` policy decides ([`admit`]):
//!
//! - `skip` (default): the tick is dropped (logged).
//! - `buffer_one`: the tick waits, and starts at the first pass after the active run
//!   ended; while one tick waits, later ones are dropped (the first one is kept).
//! - `allow`: it starts at once, beside the active run.
//!
//! Under `skip` and `buffer_one`, runs of a trigger never overlap, catch-ups included: the
//! runs of a catch-up all wait their turn and start one after another, each at the first
//! pass after the one before it ended; a single tick that comes meanwhile is treated as
//! above. Under `allow`, a catch-up's runs are queued together, oldest first (workers claim
//! the oldest queued run first). A `run_once` run that `skip` drops takes its range with
//! it; the next run covers only from its own tick.
//!
//! ## State and many processes
//!
//! Each schedule trigger keeps its [`ScheduleState`] (last tick handled, when a scheduler
//! last looked, the runs waiting) in the store's marks under
//! `schedule/WORKFLOW/TRIGGER` ([`state_key`]), so a restarted scheduler, or another
//! process, goes on where the last one stopped. Of all the schedulers sharing a store, one
//! works at a time: the one holding the store lock `scheduler`
//! ([`Store::try_lock`](crate::Store::try_lock)), renewed at every pass, at least every
//! third of its TTL. The others do nothing but try to take the lock at each pass, so one
//! of them takes over once the holder stops ([`Scheduler::run`] gives the lock up when it
//! is cancelled) or once its lock expires (it died). The state is written before the runs
//! are queued: a tick is started at most once, even when a stalled holder loses its lock
//! mid-pass.
//!
//! # Webhooks
//!
//! A trigger `webhook: /PATH` registers the path with the engine
//! ([`Engine::register`](crate::Engine::register); [`Scheduler::register`] does the same).
//! [`Engine::trigger`](crate::Engine::trigger)`(path, payload)` queues a run (trigger
//! `webhook:/PATH`) whose parameters are the payload's top-level keys, each of which the
//! workflow must declare in `params`. A path belongs to one registered workflow: a second
//! workflow with the same path is refused at registration. (The gateway's HTTP listener
//! calls this; it comes later.)

mod cron;
mod overlap;
mod plan;
mod scheduler;

pub use cron::Schedule;
pub use overlap::{Admission, ScheduleState, WaitingRun, admit, state_key};
pub use plan::{
    DEFAULT_CATCH_UP_WINDOW, DEFAULT_MAX_CATCH_UP, Plan, PlannedRun, ScheduledTrigger, TickRange,
    plan, rfc3339,
};
pub use scheduler::{DEFAULT_LOCK_TTL, DEFAULT_MAX_INTERVAL, SCHEDULER_LOCK, Scheduler};
