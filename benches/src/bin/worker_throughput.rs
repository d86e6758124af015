//! Runs per second on a PostgreSQL store with 1, 2 and 4 `kernelize worker` processes.
//!
//! ```text
//! worker_throughput KERNELIZE_BINARY [RUNS] [WORKERS...]
//! ```
//!
//! For each worker count: queues RUNS runs (default 500) of a one-step workflow (a
//! `log-notifier` message) in a fresh schema, starts that many worker processes, and
//! measures the time from their start until every run has ended. Needs PostgreSQL on
//! 127.0.0.1:5432 (user postgres, database test).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kernelize::workflow::store::{RunFilter, SqlStore, Store};
use kernelize::workflow::{Engine, RunOptions, definition};
use kernelize::{Error, ErrorKind, Result};

const FILE: &str = r##"
workflows:
  tick:
    steps:
      - name: note
        plugin: log-notifier
        action: send_message
        config: { channel: "#bench", text: "tick" }
"##;

fn usage(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{what}; usage: worker_throughput KERNELIZE_BINARY [RUNS] [WORKERS...]"),
    )
}

fn count(text: &str) -> Result<usize> {
    text.parse()
        .map_err(|_| usage(format!("`{text}` is not a count")))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .ok_or_else(|| usage("no kernelize binary named"))?;
    let runs = args.next().as_deref().map_or(Ok(500), count)?;
    let mut counts = args.map(|n| count(&n)).collect::<Result<Vec<_>>>()?;
    if counts.is_empty() {
        counts = vec![1, 2, 4];
    }
    let file = definition::parse("tick.yaml", FILE)
        .map_err(Error::from)?
        .file;
    println!("| workers | runs | seconds | runs/s |");
    println!("|---|---|---|---|");
    for workers in counts {
        let url = format!(
            "postgres://postgres@127.0.0.1:5432/test?schema=kz_throughput_{}_{workers}",
            std::process::id()
        );
        let store = std::sync::Arc::new(SqlStore::postgres(&url).await?);
        let engine = Engine::new(kernelize::manager()?).with_store(store.clone());
        for _ in 0..runs {
            engine.submit(&file, "tick", RunOptions::default()).await?;
        }
        let started = Instant::now();
        let mut children = (0..workers)
            .map(|_| {
                Command::new(&binary)
                    .args(["worker", "--store", &url, "--poll", "100ms"])
                    .env("KERNELIZE_LOG", "error")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| usage(format!("cannot start {binary}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let all = RunFilter {
            limit: Some(u32::try_from(runs).unwrap_or(u32::MAX)),
            ..RunFilter::default()
        };
        loop {
            let done = store
                .list_runs(&all)
                .await?
                .iter()
                .filter(|r| r.status.is_final())
                .count();
            if done == runs {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        println!(
            "| {workers} | {runs} | {secs:.2} | {:.0} |",
            runs as f64 / secs
        );
        store.drop_schema().await?;
    }
    Ok(())
}
