//! `kernelize worker --schedule FILE`: the worker queues the runs of the file's schedules and
//! executes them; `kernelize runs list` shows them with their trigger.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const EVERY_SECOND: &str = r##"
workflows:
  heartbeat:
    params: { scheduled_at: null }
    triggers:
      - schedule: "* * * * * *"
    steps:
      - name: beat
        plugin: log-notifier
        action: send_message
        config: { channel: "#ops", text: "tick ${params.scheduled_at}" }
"##;

fn kernelize(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(args)
        .current_dir(dir)
        .env_remove("KERNELIZE_STORE")
        .env_remove("KERNELIZE_LOG")
        .output()
        .unwrap()
}

fn runs(dir: &Path, store: &str) -> Vec<Value> {
    let o = kernelize(dir, &["runs", "list", "--json", "--store", store]);
    assert!(
        o.status.success(),
        "runs list: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_worker_with_a_schedule_queues_and_executes_the_scheduled_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("heartbeat.yaml"), EVERY_SECOND).unwrap();
    let store = format!("sqlite:{}", dir.path().join("runs.db").display());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args([
            "worker",
            "--store",
            &store,
            "--schedule",
            "heartbeat.yaml",
            "--poll",
            "200ms",
        ])
        .current_dir(dir.path())
        .env("KERNELIZE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // About three seconds of ticks; more time only if the machine is slow.
    std::thread::sleep(Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let succeeded = runs(dir.path(), &store)
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count();
        if succeeded >= 2 {
            break;
        }
        if let Some(status) = worker.try_wait().unwrap() {
            panic!("the worker exited ({status}) before running the schedule");
        }
        assert!(
            Instant::now() < deadline,
            "the worker ran {succeeded} scheduled runs in a minute"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();

    let listed = runs(dir.path(), &store);
    assert!(listed.len() >= 2, "{listed:?}");
    for run in &listed {
        assert_eq!(run["workflow"], "heartbeat");
        assert_eq!(run["trigger"], "schedule:* * * * * *", "{run}");
    }
    let succeeded: Vec<&Value> = listed
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .collect();
    assert!(succeeded.len() >= 2, "{listed:?}");
    // The step saw its tick: `runs show` has no params, but the run succeeded only if the
    // `${params.scheduled_at}` reference resolved.
    let id = succeeded[0]["id"].as_str().unwrap();
    let o = kernelize(
        dir.path(),
        &["runs", "show", id, "--json", "--store", &store],
    );
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["steps"][0]["status"], "succeeded", "{shown}");
}

#[test]
fn a_worker_refuses_an_invalid_schedule_file_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = EVERY_SECOND.replace("* * * * * *", "* * * *");
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let store = format!("sqlite:{}", dir.path().join("runs.db").display());
    let o = kernelize(
        dir.path(),
        &["worker", "--store", &store, "--schedule", "bad.yaml"],
    );
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("bad.yaml:") && stderr.contains("4 fields"),
        "{stderr}"
    );

    // A file without any schedule has nothing to schedule.
    let none = EVERY_SECOND.replace("    triggers:\n      - schedule: \"* * * * * *\"\n", "");
    std::fs::write(dir.path().join("none.yaml"), none).unwrap();
    let o = kernelize(
        dir.path(),
        &["worker", "--store", &store, "--schedule", "none.yaml"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no workflow in it has a `schedule`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
