//! Workflow runs from the command line against real stores: the example job on SQLite
//! (a second run moves only what changed), `runs list|show|resume|cancel`, and three
//! `kernelize worker` processes sharing 300 runs on PostgreSQL while one of them is killed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kernelize::workflow::store::{self, RunFilter, Store};
use kernelize::workflow::{Engine, RunOptions, RunStatus, definition};
use serde_json::Value;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn kernelize(dir: &Path, store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(args)
        .current_dir(dir)
        .env("KERNELIZE_STORE", store)
        .env_remove("KERNELIZE_LOG")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Runs SQL on a SQLite file through the connector's own `query` action.
fn sqlite(path: &Path, sql: &str, write: bool) -> Value {
    let config = serde_json::json!({ "sql": sql }).to_string();
    let plugin = serde_json::json!({
        "settings": { "path": path.display().to_string(), "read_only": !write },
        "permissions": [{
            "kind": if write { "file_write" } else { "file_read" },
            "path": path.display().to_string()
        }],
    })
    .to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args([
            "exec",
            "sqlite-connector",
            "query",
            "--plugin-config",
            &plugin,
            "--config",
            &config,
            "--json",
        ])
        .output()
        .unwrap();
    ok(&o)
}

#[test]
fn the_example_job_moves_only_changed_rows_on_its_second_run() {
    // The example's paths are relative to where it runs: give it a copy to change.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("examples/data")).unwrap();
    std::fs::create_dir_all(dir.path().join("examples/workflows")).unwrap();
    for f in [
        "examples/data/sales.db",
        "examples/workflows/data_sync_local.yaml",
    ] {
        std::fs::copy(repo().join(f), dir.path().join(f)).unwrap();
    }
    let store = format!("sqlite:{}", dir.path().join("state/runs.db").display());
    let run = |d: &Path| {
        ok(&kernelize(
            d,
            &store,
            &["run", "examples/workflows/data_sync_local.yaml", "--json"],
        ))
    };
    let first = run(dir.path());
    assert_eq!(first["status"], "succeeded");
    let rows = |report: &Value, step: usize| report["steps"][step]["rows"].clone();
    assert_eq!(rows(&first, 0), 300);
    let again = run(dir.path());
    assert_eq!(rows(&again, 0), 0, "nothing changed: {again}");

    let source = dir.path().join("examples/data/sales.db");
    // Two orders change after the last run started.
    std::thread::sleep(Duration::from_millis(1100));
    sqlite(
        &source,
        "UPDATE sales SET amount = 999.5, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+1 second') WHERE id IN (3, 5)",
        true,
    );
    let third = run(dir.path());
    assert_eq!(rows(&third, 0), 2, "{third}");
    assert_eq!(third["steps"][3]["status"], "succeeded");

    let list = ok(&kernelize(dir.path(), &store, &["runs", "list", "--json"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["id"], third["id"]);
    for r in list {
        assert_eq!(r["workflow"], "data_sync");
        assert_eq!(r["status"], "succeeded");
        assert!(r["started_at"].as_str().unwrap().ends_with('Z'));
    }
    // The warehouse holds each order once, with the new amount.
    let counted = sqlite(
        &dir.path().join("target/warehouse.db"),
        "SELECT COUNT(*) AS n, SUM(CASE WHEN amount = 999.5 THEN 1 ELSE 0 END) AS changed FROM sales_analytics",
        false,
    );
    assert_eq!(counted[0]["n"], 300, "{counted}");
    assert_eq!(counted[0]["changed"], 2, "{counted}");
}

const SMALL: &str = r##"
workflows:
  small:
    params: { who: "world" }
    steps:
      - name: greet
        plugin: log-notifier
        action: send_message
        config: { channel: "#t", text: "hello ${params.who}" }
      - name: shout
        plugin: log-notifier
        action: send_message
        config: { channel: "#t", text: "HELLO" }
"##;

#[test]
fn runs_can_be_queued_listed_shown_resumed_and_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.yaml"), SMALL).unwrap();
    let store = format!("sqlite:{}", dir.path().join("runs.db").display());
    let k = |args: &[&str]| kernelize(dir.path(), &store, args);

    let a = ok(&k(&[
        "run",
        "small.yaml",
        "--queue",
        "--set",
        "who=ada",
        "--json",
    ]));
    let b = ok(&k(&["run", "small.yaml", "--queue", "--json"]));
    assert_eq!(a["status"], "queued");
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let queued = ok(&k(&["runs", "list", "--status", "queued", "--json"]));
    assert_eq!(queued.as_array().unwrap().len(), 2);
    let shown = ok(&k(&["runs", "show", a, "--json"]));
    assert_eq!(shown["status"], "queued");
    assert_eq!(shown["steps"][0]["status"], "pending");

    let o = k(&["runs", "cancel", b]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = k(&["runs", "cancel", b]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an ended run cannot be cancelled again"
    );

    let resumed = ok(&k(&["runs", "resume", a, "--json"]));
    assert_eq!(resumed["status"], "succeeded");
    assert_eq!(resumed["id"], a);
    for step in resumed["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "succeeded");
        assert_eq!(step["attempts"], 1);
        assert!(step["error"].is_null());
        assert!(step["duration_ms"].is_u64());
    }
    let o = k(&["runs", "resume", a]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has ended"));

    let history = ok(&k(&["runs", "show", a, "--history", "--json"]));
    let statuses: Vec<String> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["step"].as_str().unwrap_or("run"),
                e["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "run:queued",
            "run:claimed",
            "greet:running",
            "greet:succeeded",
            "shout:running",
            "shout:succeeded",
            "run:succeeded"
        ]
    );
    let all = ok(&k(&["runs", "list", "--json"]));
    let states: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&"succeeded") && states.contains(&"cancelled"));

    let o = k(&["runs", "show", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let o = k(&["runs", "list", "--status", "sleeping"]);
    assert_eq!(o.status.code(), Some(2));
    let o = kernelize(dir.path(), "mysql://nowhere", &["runs", "list"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a store URL"));
}

/// An HTTP server that answers every request with `{}` after a pause, and counts them.
fn slow_server(pause: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(pause);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            });
        }
    });
    (url, hits)
}

fn worker(store: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args([
            "worker", "--store", store, "--lease", "1s", "--poll", "200ms",
        ])
        .env("KERNELIZE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_finish_300_runs_and_take_over_from_a_killed_one() {
    let (url, hits) = slow_server(Duration::from_millis(15));
    let schema = format!("kz_cli_{}", std::process::id());
    let store_url = format!("{POSTGRES}?schema={schema}");
    let store: Arc<dyn Store> = store::open(&store_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must run on 127.0.0.1:5432 (scripts/services starts it): {e}")
    });
    let yaml = format!(
        r#"
plugins:
  http:
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
workflows:
  fetch:
    steps:
      - {{ name: one, plugin: http, action: request, config: {{ url: "{url}/one" }} }}
      - {{ name: two, plugin: http, action: request, config: {{ url: "{url}/two" }} }}
"#
    );
    let file = definition::parse("fetch.yaml", &yaml).unwrap().file;
    let engine = Engine::new(kernelize::manager().unwrap()).with_store(store.clone());
    for _ in 0..300 {
        engine
            .submit(&file, "fetch", RunOptions::default())
            .await
            .unwrap();
    }

    let mut workers: Vec<Child> = (0..3).map(|_| worker(&store_url)).collect();
    let done = |runs: &[kernelize::workflow::store::RunSummary]| {
        runs.iter().filter(|r| r.status.is_final()).count()
    };
    let all = RunFilter {
        limit: Some(1000),
        ..RunFilter::default()
    };
    // Kill one worker mid-way, with runs in its hands.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let runs = store.list_runs(&all).await.unwrap();
        if done(&runs) >= 60 {
            break;
        }
        assert!(Instant::now() < deadline, "workers made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Freeze the worker, and kill it only while it holds a run that has not ended (a
    // frozen worker cannot finish the run between the look and the kill).
    let pid = workers[0].id().to_string();
    let signal = |name: &str| {
        let ok = Command::new("kill")
            .args([name, &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {name} {pid} failed");
    };
    let running = RunFilter {
        status: Some(RunStatus::Running),
        limit: Some(1000),
        ..RunFilter::default()
    };
    loop {
        assert!(Instant::now() < deadline, "the worker never held a run");
        signal("-STOP");
        let mut holds = false;
        for r in store.list_runs(&running).await.unwrap() {
            let record = store.run(&r.id).await.unwrap();
            if record
                .and_then(|r| r.lease_owner)
                .is_some_and(|owner| owner.contains(&format!(":{pid}:")))
            {
                holds = true;
                break;
            }
        }
        if holds {
            break;
        }
        signal("-CONT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    loop {
        let runs = store.list_runs(&all).await.unwrap();
        if done(&runs) == 300 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 300 runs ended",
            done(&runs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in &mut workers[1..] {
        w.kill().unwrap();
        w.wait().unwrap();
    }

    let runs = store.list_runs(&all).await.unwrap();
    assert_eq!(runs.len(), 300);
    let mut taken_over = 0;
    let mut executions = 0;
    for r in &runs {
        assert_eq!(r.status, RunStatus::Succeeded, "run {}", r.id);
        let record = store.run(&r.id).await.unwrap().unwrap();
        let events = store.events(&r.id).await.unwrap();
        let started = |step: &str| {
            events
                .iter()
                .filter(|e| e.step.as_deref() == Some(step) && e.status == "running")
                .count()
        };
        let (one, two) = (started("one"), started("two"));
        executions += one + two;
        if record.claims == 1 {
            assert_eq!((one, two), (1, 1), "run {} ran a step twice", r.id);
        } else {
            // Held by the killed worker: only its interrupted step may run again.
            taken_over += 1;
            assert!(
                one + two <= 3 && one >= 1 && two >= 1,
                "run {}: {one} {two}",
                r.id
            );
        }
    }
    assert!(taken_over >= 1, "the killed worker held no run");
    assert!(hits.load(Ordering::SeqCst) <= executions);
    assert!(hits.load(Ordering::SeqCst) >= 600);
    kernelize::workflow::store::SqlStore::postgres(&store_url)
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}

/// A server that records each request's path and `Idempotency-Key`, answers `/one` at once,
/// and holds `/two` while `hold` exists.
fn holding_server(hold: std::path::PathBuf) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (record, hold) = (record.clone(), hold.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut path, mut key) = (String::new(), String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if path.is_empty() {
                        path = line.split(' ').nth(1).unwrap_or("").to_string();
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("idempotency-key:") {
                        key = v.trim().to_string();
                    }
                }
                record.lock().unwrap().push(format!("{path} {key}"));
                while path == "/two" && hold.exists() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            });
        }
    });
    (url, seen)
}

async fn kill_and_resume_from_the_command_line(store_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let (url, seen) = holding_server(hold.clone());
    let yaml = format!(
        r#"
plugins:
  http:
    permissions: [{{ kind: network, host: "127.0.0.1" }}]
workflows:
  sync:
    steps:
      - {{ name: one, plugin: http, action: request, config: {{ method: POST, url: "{url}/one" }} }}
      - {{ name: two, plugin: http, action: request, config: {{ method: POST, url: "{url}/two" }} }}
"#
    );
    std::fs::write(dir.path().join("sync.yaml"), yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(["run", "sync.yaml", "--lease", "1s"])
        .current_dir(dir.path())
        .env("KERNELIZE_STORE", store_url)
        .env("KERNELIZE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.lock().unwrap().iter().any(|r| r.starts_with("/two")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "kernelize run ended early"
        );
        assert!(Instant::now() < deadline, "step two never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::fs::remove_file(&hold).unwrap();

    let k = |args: &[&str]| kernelize(dir.path(), store_url, args);
    let runs = ok(&k(&["runs", "list", "--workflow", "sync", "--json"]));
    assert_eq!(runs[0]["status"], "running", "{runs}");
    let id = runs[0]["id"].as_str().unwrap().to_string();
    // Refused while the dead process's lease holds, then continued.
    let report = loop {
        let o = k(&["runs", "resume", &id, "--json"]);
        if o.status.success() {
            break ok(&o);
        }
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(err.contains("held by"), "{err}");
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["steps"][0]["attempts"], 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            format!("/one {id}/one/1"),
            format!("/two {id}/two/1"),
            // The interrupted POST again, with the same key; step one not again.
            format!("/two {id}/two/1"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_kernelize_run_resumes_with_runs_resume_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kill_and_resume_from_the_command_line(&format!(
        "sqlite:{}",
        dir.path().join("runs.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_kernelize_run_resumes_with_runs_resume_on_postgres() {
    let url = format!("{POSTGRES}?schema=kz_cli_resume_{}", std::process::id());
    kill_and_resume_from_the_command_line(&url).await;
    kernelize::workflow::store::SqlStore::postgres(&url)
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}

#[test]
fn plugin_instances_can_come_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flow.yaml"),
        r##"
workflows:
  w:
    steps:
      - { name: read, plugin: db, action: query, config: { sql: "SELECT 41 + 1 AS answer" } }
"##,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prod.yaml"),
        "plugins:\n  db:\n    plugin: sqlite-connector\n    settings: { path: \"${env:DB_FILE}\", create_if_missing: true }\n    permissions: [{ kind: file_write, path: \".\" }]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "plugins:\n  db:\n    plugin: sqlite-connector\n    settings: { nope: 1 }\n",
    )
    .unwrap();
    let store = "memory:";
    let run = |config: &str| {
        Command::new(env!("CARGO_BIN_EXE_kernelize"))
            .args(["run", "flow.yaml", "--config", config, "--json"])
            .current_dir(dir.path())
            .env("KERNELIZE_STORE", store)
            .env("DB_FILE", "local.db")
            .output()
            .unwrap()
    };
    let report = ok(&run("prod.yaml"));
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["steps"][0]["rows"], 1);
    assert!(dir.path().join("local.db").exists());
    // A bad config file is reported in that file, exit 2.
    let o = run("bad.yaml");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.yaml:"), "{err}");
    // Without it, the step's plugin is unknown.
    let o = Command::new(env!("CARGO_BIN_EXE_kernelize"))
        .args(["run", "flow.yaml"])
        .current_dir(dir.path())
        .env("KERNELIZE_STORE", store)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
