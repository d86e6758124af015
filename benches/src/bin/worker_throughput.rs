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

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kernelize::workflow::store::{RunFilter, SqlStore, Store};
use kernelize::workflow::{Engine, RunOptions, definition};

const FILE: &str = r##"
workflows:
  tick:
    steps:
      - name: note
        plugin: log-notifier
        action: send_message
        config: { channel: "#bench", text: "tick" }
"##;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .expect("usage: worker_throughput KERNELIZE_BINARY [RUNS] [WORKERS...]");
    let runs: usize = args.next().map_or(500, |n| n.parse().unwrap());
    let mut counts: Vec<usize> = args.map(|n| n.parse().unwrap()).collect();
    if counts.is_empty() {
        counts = vec![1, 2, 4];
    }
    let file = definition::parse("tick.yaml", FILE).unwrap().file;
    println!("| workers | runs | seconds | runs/s |");
    println!("|---|---|---|---|");
    for workers in counts {
        let url = format!(
            "postgres://postgres@127.0.0.1:5432/test?schema=kz_throughput_{}_{workers}",
            std::process::id()
        );
        let store = std::sync::Arc::new(SqlStore::postgres(&url).await.unwrap());
        let engine = Engine::new(kernelize::manager().unwrap()).with_store(store.clone());
        for _ in 0..runs {
            engine
                .submit(&file, "tick", RunOptions::default())
                .await
                .unwrap();
        }
        let started = Instant::now();
        let mut children: Vec<_> = (0..workers)
            .map(|_| {
                Command::new(&binary)
                    .args(["worker", "--store", &url, "--poll", "100ms"])
                    .env("KERNELIZE_LOG", "error")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let all = RunFilter {
            limit: Some(u32::try_from(runs).unwrap()),
            ..RunFilter::default()
        };
        loop {
            let done = store
                .list_runs(&all)
                .await
                .unwrap()
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
        store.drop_schema().await.unwrap();
    }
}
