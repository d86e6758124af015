//! `kernelize run FILE.yaml`: validate a workflow file, then run one of its workflows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use kernelize::workflow::definition;
use kernelize::workflow::{Engine, RunOptions, RunStatus};
use kernelize::{Error, ErrorKind, Result};
use serde_json::{Value, json};

use crate::output::{emit, print_table};

/// Arguments of `kernelize run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The workflow file.
    file: PathBuf,
    /// Which workflow of the file; needed when it holds more than one.
    #[arg(long, value_name = "NAME")]
    workflow: Option<String>,
    /// A parameter, `NAME=VALUE` (the value read as JSON when it is JSON, else as text).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Print one JSON object: the run's id, status and steps.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: RunArgs) -> Result<()> {
    let loaded = definition::load(&args.file).map_err(Error::from)?;
    let manager = kernelize::manager()?;
    definition::validate(&loaded, &manager).map_err(Error::from)?;
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
    let engine = Engine::new(manager.clone());
    let report = engine
        .run(
            &loaded.file,
            &name,
            RunOptions {
                params,
                ..RunOptions::default()
            },
        )
        .await;
    manager.deactivate_all().await;
    let report = report?;
    if args.json {
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
        let out = json!({
            "id": report.id,
            "workflow": report.workflow,
            "status": report.status,
            "started_at": report.started_at,
            "duration_ms": report.duration_ms,
            "steps": steps,
        });
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
                    if status == RunStatus::Cancelled {
                        "was cancelled"
                    } else {
                        "failed"
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
