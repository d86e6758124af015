//! `kernelize run FILE.yaml`: validate a workflow file, then run one of its workflows (or
//! queue it for workers), recording it in a store; `kernelize runs ...` and
//! `kernelize worker` work on that store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use kernelize::workflow::definition;
use kernelize::workflow::store::{self, RunFilter, Store};
use kernelize::workflow::{Engine, RunOptions, RunReport, RunStatus};
use kernelize::{Error, ErrorKind, Result};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::output::{emit, print_table};

/// Where runs are kept when neither `--store` nor `KERNELIZE_STORE` says: a SQLite file in
/// the user's data folder.
fn default_store() -> String {
    if let Ok(url) = std::env::var("KERNELIZE_STORE")
        && !url.is_empty()
    {
        return url;
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    format!("sqlite:{}", base.join("kernelize/runs.db").display())
}

/// The store option every run command takes.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Where runs are recorded: `sqlite:PATH`, `postgres://USER@HOST/DB` or `memory:`.
    /// Default: `$KERNELIZE_STORE`, else `sqlite:` in `$XDG_DATA_HOME/kernelize/runs.db`.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

impl StoreArgs {
    async fn open(&self) -> Result<Arc<dyn Store>> {
        let url = self.store.clone().unwrap_or_else(default_store);
        store::open(&url)
            .await
            .map_err(|e| e.with_context("store", url))
    }
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration: {e}"))
}

/// Arguments of `kernelize run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The workflow file.
    pub(crate) file: PathBuf,
    /// Which workflow of the file; needed when it holds more than one.
    #[arg(long, value_name = "NAME")]
    workflow: Option<String>,
    /// A parameter, `NAME=VALUE` (the value read as JSON when it is JSON, else as text).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Print one JSON object: the run's id, status and steps (a pipeline's counters).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// A YAML file whose `plugins:` section configures plugin instances (settings with
    /// `${secret:..}`/`${env:..}`, permissions, limits) over the workflow file's own, so one
    /// workflow file runs against several environments.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Queue the run for `kernelize worker` instead of running it here; prints its id.
    #[arg(long)]
    queue: bool,
    /// How long this process's hold on the run lasts without renewal; after a crash, the
    /// run can be resumed once it has passed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lease: Duration,
    /// Run this event pipeline of the file (until its source ends, or until stopped with
    /// Ctrl-C or SIGTERM) instead of a workflow; the default when the file holds pipelines
    /// only, one of them.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["workflow", "queue"])]
    pub(crate) pipeline: Option<String>,
    /// With a pipeline: feed it dead letters read back from this source,
    /// `{"plugin": ID, "options": {...}}`, instead of its own source.
    #[arg(long, value_name = "JSON")]
    pub(crate) replay_from: Option<String>,
    /// With `--replay-from`: only the dead letters for which this expression over their
    /// fields holds (`event.stage == 'load'`).
    #[arg(long = "where", value_name = "EXPR", requires = "replay_from")]
    pub(crate) replay_where: Option<String>,
    /// With `--replay-from`: at most this many dead letters.
    #[arg(long, value_name = "N", requires = "replay_from")]
    pub(crate) replay_limit: Option<u64>,
}

pub(crate) async fn run(args: RunArgs) -> Result<()> {
    let mut loaded = definition::load(&args.file).map_err(Error::from)?;
    let manager = kernelize::manager()?;
    if let Some(path) = &args.config {
        // Checked on its own first, so that its problems point into it.
        let extra = definition::load(path).map_err(Error::from)?;
        if !extra.file.workflows.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{}: a --config file holds a `plugins:` section only, not workflows",
                    path.display()
                ),
            ));
        }
        definition::validate(&extra, &manager).map_err(Error::from)?;
        loaded.file.plugins.extend(extra.file.plugins);
    }
    definition::validate(&loaded, &manager).map_err(Error::from)?;
    let pipelines_only = loaded.file.workflows.is_empty() && !loaded.file.pipelines.is_empty();
    if args.pipeline.is_some() || (args.workflow.is_none() && pipelines_only) {
        let store = args.store.open().await?;
        return crate::pipeline::run(&args, loaded, manager, store).await;
    }
    let name = match &args.workflow {
        Some(name) => name.clone(),
        None => {
            let mut names = loaded.file.workflows.keys();
            match (names.next(), names.next()) {
                (Some(only), None) => only.clone(),
                _ => {
                    let all: Vec<&str> = loaded.file.workflows.keys().map(String::as_str).collect();
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{} holds {} workflows; name one with --workflow ({})",
                            args.file.display(),
                            all.len(),
                            all.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let mut params = BTreeMap::new();
    for pair in &args.set {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("--set `{pair}` is not NAME=VALUE"),
            )
        })?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        params.insert(key.to_string(), value);
    }
    let store = args.store.open().await?;
    let engine = Engine::new(manager.clone())
        .with_store(store)
        .with_lease(args.lease);
    let options = RunOptions {
        params,
        ..RunOptions::default()
    };
    if args.queue {
        let id = engine.submit(&loaded.file, &name, options).await?;
        let text = if args.json {
            format!("{}\n", json!({ "id": id, "status": "queued" }))
        } else {
            format!("{id}\n")
        };
        return emit(text.as_bytes());
    }
    let cancel = options.cancel.clone();
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: cancelling the run (compensations run); press Ctrl-C again to stop at once"
            );
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let run_id = kernelize::workflow::engine::new_run_id();
    let steps = loaded
        .file
        .workflows
        .get(&name)
        .map_or(0, |w| w.steps.len());
    let progress = show_progress(engine.store().clone(), run_id.clone(), steps);
    let options = RunOptions {
        run_id: Some(run_id),
        ..options
    };
    let report = engine.run(&loaded.file, &name, options).await;
    if let Some((task, bar)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    interrupt.abort();
    manager.deactivate_all().await;
    finish(report?, args.json)
}

/// On a terminal, a live line under the run: steps done of all, and what is running (with
/// its attempt), read from the store twice a second. Nothing when stderr is not a terminal.
fn show_progress(
    store: Arc<dyn Store>,
    run_id: String,
    steps: usize,
) -> Option<(tokio::task::JoinHandle<()>, indicatif::ProgressBar)> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(steps as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {bar:24} {pos}/{len} steps  {elapsed}  {msg}",
    ) {
        bar.set_style(style);
    }
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            // Runs that end within half a second never draw a bar.
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok(records) = store.steps(&run_id).await {
                let done = records.iter().filter(|r| r.status.is_done()).count();
                let running: Vec<String> = records
                    .iter()
                    .filter(|r| !r.status.is_done())
                    .map(|r| match r.attempts {
                        0 | 1 => format!("{} {}", r.name, r.status.as_str()),
                        n => format!("{} {} (attempt {n})", r.name, r.status.as_str()),
                    })
                    .collect();
                shown.set_position(done as u64);
                shown.set_message(running.join(", "));
            }
            shown.tick();
        }
    });
    Some((task, bar))
}

/// Prints a run's report and turns a run that did not succeed into an error (exit 1).
fn finish(report: RunReport, json: bool) -> Result<()> {
    print_report(&report, json)?;
    let name = &report.workflow;
    match report.status {
        RunStatus::Succeeded => Ok(()),
        status => {
            let failed: Vec<&str> = report
                .steps
                .iter()
                .filter(|s| s.error.is_some())
                .map(|s| s.name.as_str())
                .collect();
            Err(Error::new(
                ErrorKind::Remote,
                format!(
                    "run {} of `{name}` {}: {}",
                    report.id,
                    match status {
                        RunStatus::Cancelled => "was cancelled",
                        RunStatus::Queued => "is queued",
                        RunStatus::Running => "is still running",
                        _ => "failed",
                    },
                    if failed.is_empty() {
                        "no step reported an error".to_string()
                    } else {
                        format!("failed steps: {}", failed.join(", "))
                    }
                ),
            ))
        }
    }
}

fn print_report(report: &RunReport, json: bool) -> Result<()> {
    if json {
        let out = report_json(report);
        let mut text = serde_json::to_string_pretty(&out)?;
        text.push('\n');
        emit(text.as_bytes())?;
    } else {
        let rows: Vec<Vec<String>> = report
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.status.as_str().to_string(),
                    s.attempts.to_string(),
                    format!("{} ms", s.duration_ms),
                    match (s.rows, s.bytes) {
                        (Some(r), _) => format!("{r} rows"),
                        (_, Some(b)) => format!("{b} bytes"),
                        _ => String::new(),
                    },
                    s.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print_table(
            &["step", "status", "attempts", "duration", "moved", "error"],
            &rows,
        )?;
    }
    Ok(())
}

/// `kernelize runs ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// Recent runs, newest first.
    List {
        /// Only this workflow's runs.
        #[arg(long, value_name = "NAME")]
        workflow: Option<String>,
        /// Only runs in this state (queued, running, succeeded, failed, cancelled).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One run: its steps, and with `--history` every recorded state change.
    Show {
        /// The run's id.
        id: String,
        /// Also list the run's state changes.
        #[arg(long)]
        history: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Continue an interrupted (or queued) run here: completed steps are kept, an
    /// interrupted attempt runs again with its idempotency key.
    Resume {
        /// The run's id.
        id: String,
        /// Take the run even though its owner's lease has not expired (the owner must be
        /// gone).
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Ask a run to stop: a queued run is cancelled at once, a running one at its owner's
    /// next lease renewal (its compensations run).
    Cancel {
        /// The run's id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn rfc3339(ms: i64) -> String {
    kernelize::workflow::engine::rfc3339_millis(ms)
}

pub(crate) async fn runs(command: RunsCommand) -> Result<()> {
    match command {
        RunsCommand::List {
            workflow,
            status,
            limit,
            json,
            store,
        } => {
            let status = status
                .map(|s| {
                    RunStatus::parse(&s).ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!(
                                "--status `{s}` is not one of queued, running, succeeded, failed, cancelled"
                            ),
                        )
                    })
                })
                .transpose()?;
            let runs = store
                .open()
                .await?
                .list_runs(&RunFilter {
                    workflow,
                    status,
                    limit: Some(limit),
                })
                .await?;
            if json {
                let out: Vec<Value> = runs
                    .iter()
                    .map(|r| {
                        json!({
                            "id": r.id,
                            "workflow": r.workflow,
                            "status": r.status,
                            "trigger": r.trigger,
                            "created_at": rfc3339(r.created_at),
                            "started_at": r.started_at.map(rfc3339),
                            "finished_at": r.finished_at.map(rfc3339),
                        })
                    })
                    .collect();
                let mut text = serde_json::to_string_pretty(&out)?;
                text.push('\n');
                emit(text.as_bytes())
            } else {
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.workflow.clone(),
                            r.status.as_str().to_string(),
                            r.trigger.clone(),
                            r.started_at.map(rfc3339).unwrap_or_default(),
                            match (r.started_at, r.finished_at) {
                                (Some(s), Some(f)) => format!("{} ms", f - s),
                                _ => String::new(),
                            },
                        ]
                    })
                    .collect();
                print_table(
                    &["id", "workflow", "status", "trigger", "started", "duration"],
                    &rows,
                )
            }
        }
        RunsCommand::Show {
            id,
            history,
            json,
            store,
        } => {
            let store = store.open().await?;
            let report = kernelize::workflow::engine::report_from_store(&*store, &id).await?;
            if history {
                let events = store.events(&id).await?;
                if json {
                    let mut out = report_json(&report);
                    out["history"] = serde_json::to_value(
                        events
                            .iter()
                            .map(|e| {
                                json!({
                                    "at": rfc3339(e.at),
                                    "step": e.step,
                                    "status": e.status,
                                    "attempt": e.attempt,
                                    "error": e.error,
                                })
                            })
                            .collect::<Vec<_>>(),
                    )?;
                    let mut text = serde_json::to_string_pretty(&out)?;
                    text.push('\n');
                    return emit(text.as_bytes());
                }
                print_report(&report, false)?;
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        vec![
                            rfc3339(e.at),
                            e.step.clone().unwrap_or_else(|| "(run)".into()),
                            e.status.clone(),
                            e.attempt.map(|a| a.to_string()).unwrap_or_default(),
                            e.error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                emit(b"\n")?;
                return print_table(&["at", "step", "status", "attempt", "error"], &rows);
            }
            print_report(&report, json)
        }
        RunsCommand::Resume {
            id,
            force,
            json,
            store,
        } => {
            let manager = kernelize::manager()?;
            let engine = Engine::new(manager.clone()).with_store(store.open().await?);
            let report = engine.resume(&id, force).await;
            manager.deactivate_all().await;
            finish(report?, json)
        }
        RunsCommand::Cancel { id, store } => {
            if store.open().await?.request_cancel(&id).await? {
                emit(format!("cancellation of run {id} requested\n").as_bytes())
            } else {
                Err(Error::new(
                    ErrorKind::InvalidState,
                    format!("run {id} has already ended"),
                ))
            }
        }
    }
}

/// Arguments of `kernelize worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// How long a claimed run stays this worker's without renewal; a run whose worker
    /// died is taken over by another once it has passed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    lease: Duration,
    /// How often to look for work when no notification comes.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    poll: Duration,
    /// Also run the scheduler for the schedules of this workflow file (repeatable). Among
    /// all the processes scheduling on one store, one at a time queues the runs.
    #[arg(long = "schedule", value_name = "FILE")]
    schedule: Vec<PathBuf>,
}

/// Executes queued runs, and interrupted runs whose lease expired, until interrupted
/// (Ctrl-C or SIGTERM: the current run is finished first... or released for another worker
/// at the second signal).
pub(crate) async fn worker(args: WorkerArgs) -> Result<()> {
    let manager = kernelize::manager()?;
    let scheduled = crate::schedule::load(&args.schedule, &manager)?;
    let store = args.store.open().await?;
    let engine = Engine::new(manager.clone())
        .with_store(store)
        .with_lease(args.lease);
    let scheduler = crate::schedule::scheduler(&engine, &scheduled, &args.schedule)?;
    eprintln!(
        "worker {} executing runs from the {} store",
        engine.owner(),
        engine.store().backend()
    );
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("worker: stopping after the current run");
        signal.cancel();
    });
    let result = match scheduler {
        Some(scheduler) => {
            eprintln!(
                "worker {} also scheduling: {}",
                engine.owner(),
                engine
                    .registered()
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let (worked, scheduled) =
                tokio::join!(engine.work(stop.clone(), args.poll), scheduler.run(stop));
            worked.and(scheduled)
        }
        None => engine.work(stop, args.poll).await,
    };
    manager.deactivate_all().await;
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn report_json(report: &RunReport) -> Value {
    let steps: Vec<Value> = report
        .steps
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "status": s.status,
                "attempts": s.attempts,
                "duration_ms": s.duration_ms,
                "error": s.error,
                "rows": s.rows,
                "bytes": s.bytes,
            })
        })
        .collect();
    json!({
        "id": report.id,
        "workflow": report.workflow,
        "status": report.status,
        "started_at": report.started_at,
        "duration_ms": report.duration_ms,
        "steps": steps,
    })
}
