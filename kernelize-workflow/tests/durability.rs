//! A run survives `kill -9`: a child process runs a workflow on a SQLite or PostgreSQL store
//! and is killed in the middle of a step; the run is then resumed here. Completed steps are
//! not executed again; the interrupted step runs again with the same idempotency key.

#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kernelize_core::plugin::{ActionDescriptor, PayloadDescriptor};
use kernelize_core::{
    Call, Category, Payload, Plugin, PluginFactory, PluginManager, PluginMetadata, Result,
    async_trait, semver::Version,
};
use kernelize_workflow::definition::WorkflowFile;
use kernelize_workflow::store::{RunFilter, Store};
use kernelize_workflow::{Engine, RunOptions, RunStatus, StepStatus};
use serde_json::json;

const CHILD_ENV: &str = "KERNELIZE_DURABILITY_CHILD";

/// Appends `label key` to a log file for every call; blocks while a file exists.
struct Worklog;

#[async_trait]
impl Plugin for Worklog {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            "worklog",
            "Worklog",
            Version::new(1, 0, 0),
            Category::DataProcessor,
        )
        .actions(vec![ActionDescriptor {
            name: "work".into(),
            description: "log the call, then wait while the block file exists".into(),
            config: json!({}),
            input: PayloadDescriptor::of_kind("any"),
            output: PayloadDescriptor::of_kind("any"),
            permissions: vec![],
        }])
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        let label = call.config["label"].as_str().unwrap_or("?").to_string();
        let log = PathBuf::from(call.config["log"].as_str().unwrap());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        writeln!(
            f,
            "{label} {}",
            call.idempotency_key.clone().unwrap_or_default()
        )
        .unwrap();
        f.sync_all().unwrap();
        if let Some(block) = call.config["block"].as_str() {
            while Path::new(block).exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(Payload::Json(json!({ "label": label })))
    }
}

fn file(log: &Path, block: &Path) -> WorkflowFile {
    let step = |name: &str, blocking: bool| {
        let mut config = json!({ "label": name, "log": log.display().to_string() });
        if blocking {
            config["block"] = json!(block.display().to_string());
        }
        json!({ "name": name, "plugin": "worklog", "action": "work", "config": config })
    };
    serde_json::from_value(json!({
        "workflows": { "durable": { "steps": [
            step("a", false), step("b", false), step("c", true), step("d", false)
        ]}}
    }))
    .unwrap()
}

fn engine(store: Arc<dyn Store>) -> Engine {
    let manager = PluginManager::new();
    manager
        .install(PluginFactory::new(|| Box::new(Worklog)))
        .unwrap();
    Engine::new(manager)
        .with_store(store)
        .with_lease(Duration::from_millis(900))
}

/// Not a test of its own: the body of the child process that [`killed_mid_step`] starts
/// and kills. Without the environment variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_entry_point() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = PathBuf::from(std::env::var("KERNELIZE_DURABILITY_LOG").unwrap());
    let block = PathBuf::from(std::env::var("KERNELIZE_DURABILITY_BLOCK").unwrap());
    let store = common::open_url(&url).await;
    engine(store)
        .run(&file(&log, &block), "durable", RunOptions::default())
        .await
        .unwrap();
    panic!("the child should have been killed while step c was blocked");
}

async fn killed_mid_step(kind: &str) {
    let s = common::open(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let block = dir.path().join("block");
    std::fs::write(&block, b"").unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_entry_point", "--nocapture"])
        .env(CHILD_ENV, &s.url)
        .env("KERNELIZE_DURABILITY_LOG", &log)
        .env("KERNELIZE_DURABILITY_BLOCK", &block)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Wait until the child is inside step c.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("c ")) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended before step c: {status}");
        }
        assert!(Instant::now() < deadline, "the child never reached step c");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL: no cleanup, no lease release.
    child.wait().unwrap();

    let runs = s.store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1);
    let id = runs[0].id.clone();
    assert_eq!(runs[0].status, RunStatus::Running);
    let steps = s.store.steps(&id).await.unwrap();
    let status = |name: &str| steps.iter().find(|r| r.name == name).map(|r| r.status);
    assert_eq!(status("b"), Some(StepStatus::Succeeded));
    assert_eq!(status("c"), Some(StepStatus::Running));
    assert_eq!(status("d"), None);

    // The dead child's lease holds until it expires: resuming is refused until then.
    std::fs::remove_file(&block).unwrap();
    let resumer = engine(s.store.clone());
    let mut refused = 0;
    let report = loop {
        match resumer.resume(&id, false).await {
            Ok(report) => break report,
            Err(e) if e.to_string().contains("held by") && refused < 100 => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("resume failed: {e}"),
        }
    };
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.id, id);
    assert_eq!(
        report.outputs["b"].clone().into_json().unwrap()["label"],
        "b"
    );

    let calls: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        calls,
        vec![
            format!("a {id}/a/1"),
            format!("b {id}/b/1"),
            format!("c {id}/c/1"),
            // The interrupted attempt again, under the same key; a and b not again.
            format!("c {id}/c/1"),
            format!("d {id}/d/1"),
        ]
    );
    let record = s.store.run(&id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.claims, 2);
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_step_resumes_on_sqlite() {
    killed_mid_step("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_step_resumes_on_postgres() {
    killed_mid_step("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_lost_its_run_stops_without_overwriting_the_new_owner() {
    let s = common::open("sqlite").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let block = dir.path().join("block");
    std::fs::write(&block, b"").unwrap();
    let engine = engine(s.store.clone());
    let workflow = file(&log, &block);
    let running = tokio::spawn(async move {
        engine
            .run(&workflow, "durable", RunOptions::default())
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("c ")
    {
        assert!(Instant::now() < deadline, "step c never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = s.store.list_runs(&RunFilter::default()).await.unwrap()[0]
        .id
        .clone();
    // Another owner takes the run (as after a stall longer than the lease).
    let taken = s
        .store
        .claim(
            "thief",
            Duration::from_secs(60),
            kernelize_workflow::store::Claim::Run {
                id: id.clone(),
                force: true,
            },
        )
        .await
        .unwrap();
    assert!(taken.is_some());
    std::fs::remove_file(&block).unwrap();
    let e = running.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("taken over"), "{e}");
    // The old owner's result for c and its step d never reached the store.
    let steps = s.store.steps(&id).await.unwrap();
    assert_eq!(
        steps.iter().find(|r| r.name == "c").unwrap().status,
        StepStatus::Running
    );
    assert!(steps.iter().all(|r| r.name != "d"));
    let record = s.store.run(&id).await.unwrap().unwrap();
    assert_eq!(record.lease_owner.as_deref(), Some("thief"));
    assert_eq!(record.status, RunStatus::Running);
}
