//! `kernelize run FILE --pipeline NAME`: an event pipeline of a workflow file, run until its
//! source ends or the process is told to stop (Ctrl-C, SIGTERM), then its counters.

use std::sync::Arc;
use std::time::Duration;

use kernelize::workflow::definition::{EndpointDef, Loaded};
use kernelize::workflow::pipeline::dead_letter::Replay;
use kernelize::workflow::pipeline::{Expr, Pipeline, PipelineMetrics};
use kernelize::workflow::store::Store;
use kernelize::{Error, ErrorKind, PluginManager, Result};
use tokio_util::sync::CancellationToken;

use crate::output::{emit, print_table};
use crate::run::RunArgs;

pub(crate) async fn run(
    args: &RunArgs,
    loaded: Loaded,
    manager: PluginManager,
    store: Arc<dyn Store>,
) -> Result<()> {
    let file = &loaded.file;
    let name = match &args.pipeline {
        Some(name) => name.clone(),
        None => {
            let mut names = file.pipelines.keys();
            match (names.next(), names.next()) {
                (Some(only), None) => only.clone(),
                _ => {
                    let all: Vec<&str> = file.pipelines.keys().map(String::as_str).collect();
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{} holds {} pipelines; name one with --pipeline ({})",
                            args.file.display(),
                            all.len(),
                            all.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let pipeline = match &args.replay_from {
        None => Pipeline::from_definition(file, &name, &manager, Some(store)).await?,
        Some(text) => {
            let from: EndpointDef = serde_json::from_str(text).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("--replay-from is not {{\"plugin\": ID, \"options\": {{...}}}}: {e}"),
                )
            })?;
            let select = args
                .replay_where
                .as_deref()
                .map(Expr::compile)
                .transpose()
                .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("--where: {e}")))?;
            if manager.active_version(&from.plugin).is_none() {
                manager.activate(&from.plugin).await?;
            }
            let options = if from.options.is_null() {
                serde_json::json!({})
            } else {
                from.options
            };
            let inner = manager.open_source(&from.plugin, options).await?;
            let mut replay = Replay::new(inner, select);
            if let Some(limit) = args.replay_limit {
                replay = replay.limit(limit);
            }
            Pipeline::from_definition_with_source(
                file,
                &name,
                &manager,
                Some(store),
                Box::new(replay),
            )
            .await?
        }
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let signals = tokio::spawn(async move {
        let term = async {
            #[cfg(unix)]
            {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            }
            #[cfg(not(unix))]
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
        eprintln!("stopping: finishing the events in flight; press Ctrl-C again to stop at once");
        stop.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    let (handle, done) = pipeline.start(cancel);
    let progress = show_progress(handle.clone());
    let outcome = done.await;
    if let Some((task, bar)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    signals.abort();
    manager.deactivate_all().await;
    print_metrics(&handle.metrics(), args.json)?;
    outcome
}

fn show_progress(
    handle: kernelize::workflow::pipeline::PipelineHandle,
) -> Option<(tokio::task::JoinHandle<()>, indicatif::ProgressBar)> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed}  {msg}") {
        bar.set_style(style);
    }
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let m = handle.metrics();
            let received = m.stages.first().map_or(0, |s| s.received);
            shown.set_message(format!(
                "{received} received, {} acknowledged, {} dead-lettered, {} handed back",
                m.acked, m.rejected, m.retried
            ));
            shown.tick();
        }
    });
    Some((task, bar))
}

fn print_metrics(metrics: &PipelineMetrics, json: bool) -> Result<()> {
    if json {
        let mut text = serde_json::to_string_pretty(metrics)?;
        text.push('\n');
        return emit(text.as_bytes());
    }
    let rows: Vec<Vec<String>> = metrics
        .stages
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.kind.clone(),
                s.received.to_string(),
                s.sent.to_string(),
                s.discarded.to_string(),
                s.dead_lettered.to_string(),
                s.errors.to_string(),
                format!("{:.0} µs", s.latency_mean_us),
            ]
        })
        .collect();
    print_table(
        &[
            "part",
            "kind",
            "received",
            "sent",
            "discarded",
            "dead-lettered",
            "errors",
            "latency",
        ],
        &rows,
    )?;
    let line = format!(
        "{} acknowledged, {} dead-lettered and rejected, {} handed back to the source, {} settlements refused\n",
        metrics.acked, metrics.rejected, metrics.retried, metrics.settle_errors
    );
    emit(line.as_bytes())
}
