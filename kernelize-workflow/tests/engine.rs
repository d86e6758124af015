//! The engine against a probe plugin that records what it was asked to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kernelize_core::plugin::{ActionDescriptor, PayloadDescriptor};
use kernelize_core::{
    Call, Category, Error, ErrorKind, Payload, Plugin, PluginFactory, PluginManager,
    PluginMetadata, Result, async_trait, semver::Version,
};
use kernelize_workflow::definition::WorkflowFile;
use kernelize_workflow::{Engine, RunOptions, RunStatus, StepStatus};
use serde_json::{Value, json};

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<String>>,
    attempts: Mutex<BTreeMap<String, u32>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Probe(Arc<Shared>);

#[async_trait]
impl Plugin for Probe {
    fn metadata(&self) -> PluginMetadata {
        let action = |name: &str| ActionDescriptor {
            name: name.into(),
            description: name.into(),
            config: json!({}),
            input: PayloadDescriptor::of_kind("any"),
            output: PayloadDescriptor::of_kind("any"),
            permissions: vec![],
        };
        PluginMetadata::new(
            "probe",
            "Probe",
            Version::new(1, 0, 0),
            Category::DataProcessor,
        )
        .actions(
            ["echo", "flaky", "fail", "record", "slow"]
                .map(action)
                .to_vec(),
        )
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        let label = call.config["label"].as_str().unwrap_or("").to_string();
        self.0
            .log
            .lock()
            .unwrap()
            .push(format!("{}:{label}", call.action));
        match call.action.as_str() {
            "echo" => Ok(Payload::Json(json!({
                "config": call.config,
                "key": call.idempotency_key,
                "input": call.input.into_json()?,
            }))),
            "flaky" => {
                let n = {
                    let mut a = self.0.attempts.lock().unwrap();
                    let n = a.entry(label.clone()).or_default();
                    *n += 1;
                    *n
                };
                let fail = call.config["fail"].as_u64().unwrap_or(0) as u32;
                let kind = match call.config["kind"].as_str() {
                    Some("invalid_input") => ErrorKind::InvalidInput,
                    _ => ErrorKind::Remote,
                };
                if n <= fail {
                    Err(Error::new(kind, format!("attempt {n} fails")).set_temporary())
                } else {
                    Ok(Payload::Json(json!({"attempt": n})))
                }
            }
            "fail" => Err(Error::new(ErrorKind::Remote, "this step always fails").set_permanent()),
            "record" => Ok(Payload::Json(json!(label))),
            "slow" => {
                let now = self.0.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.0.max_in_flight.fetch_max(now, Ordering::SeqCst);
                let ms = call.config["ms"].as_u64().unwrap_or(100);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(Payload::Json(json!(label)))
            }
            other => Err(Error::new(
                ErrorKind::NotFound,
                format!("no action {other}"),
            )),
        }
    }
}

fn engine() -> (Engine, Arc<Shared>) {
    let shared = Arc::new(Shared::default());
    let manager = PluginManager::new();
    let s = shared.clone();
    manager
        .install(PluginFactory::new(move || Box::new(Probe(s.clone()))))
        .unwrap();
    (Engine::new(manager), shared)
}

fn workflow(steps: Value) -> WorkflowFile {
    serde_json::from_value(json!({"workflows": {"w": {"params": {"who": "Ada"}, "steps": steps}}}))
        .unwrap()
}

async fn run(engine: &Engine, file: &WorkflowFile) -> kernelize_workflow::RunReport {
    engine.run(file, "w", RunOptions::default()).await.unwrap()
}

#[tokio::test]
async fn a_sequence_passes_outputs_on_and_resolves_references() {
    let (engine, _) = engine();
    let file = workflow(json!([
        {"name": "first", "plugin": "probe", "action": "echo", "config": {"greet": "hi ${params.who}"}},
        {"name": "second", "plugin": "probe", "action": "echo",
         "config": {"from_first": "${steps.first.output.config.greet}", "status": "${steps.first.status}"}}
    ]));
    let report = run(&engine, &file).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let second = report.outputs["second"].clone().into_json().unwrap();
    assert_eq!(second["config"]["from_first"], "hi Ada");
    assert_eq!(second["config"]["status"], "succeeded");
    assert_eq!(
        second["input"]["config"]["greet"], "hi Ada",
        "a step's input is the output of the step before it"
    );
    assert_eq!(
        second["key"],
        format!("{}/second/1", report.id),
        "each step attempt carries RUN/STEP/ATTEMPT as its idempotency key"
    );
    let mut options = RunOptions::default();
    options.params.insert("who".into(), json!("Grace"));
    let report = engine.run(&file, "w", options).await.unwrap();
    let first = report.outputs["first"].clone().into_json().unwrap();
    assert_eq!(
        first["config"]["greet"], "hi Grace",
        "--set overrides a default"
    );
}

#[tokio::test]
async fn independent_steps_run_in_parallel_within_the_bound() {
    let (engine, shared) = engine();
    let slow = |name: &str| json!({"name": name, "plugin": "probe", "action": "slow", "config": {"ms": 200, "label": name}, "depends_on": []});
    let mut file = workflow(json!([slow("a"), slow("b"), slow("c"), slow("d")]));
    file.workflows.get_mut("w").unwrap().concurrency = Some(2);
    let report = run(&engine, &file).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        shared.max_in_flight.load(Ordering::SeqCst),
        2,
        "two at a time, never more"
    );
}

#[tokio::test]
async fn retries_follow_the_policy_and_skip_non_retryable_kinds() {
    let (engine, _) = engine();
    let file = workflow(json!([
        {"name": "flaky", "plugin": "probe", "action": "flaky", "config": {"fail": 2, "label": "x"},
         "retry": {"max_attempts": 3, "initial_interval": "10ms"}},
        {"name": "refused", "plugin": "probe", "action": "flaky",
         "config": {"fail": 5, "label": "y", "kind": "invalid_input"},
         "retry": {"max_attempts": 4, "initial_interval": "10ms", "non_retryable": ["invalid_input"]}}
    ]));
    let report = run(&engine, &file).await;
    let flaky = report.step("flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (StepStatus::Succeeded, 3));
    let refused = report.step("refused").unwrap();
    assert_eq!((refused.status, refused.attempts), (StepStatus::Failed, 1));
    assert_eq!(report.status, RunStatus::Failed);
}

#[tokio::test]
async fn conditions_and_trigger_rules_decide_what_runs() {
    let (engine, shared) = engine();
    let file = workflow(json!([
        {"name": "maybe", "plugin": "probe", "action": "record", "config": {"label": "maybe"},
         "when": "${params.who} == \"Grace\"", "depends_on": []},
        {"name": "broken", "plugin": "probe", "action": "fail", "on_failure": "continue", "depends_on": []},
        {"name": "after_failure", "plugin": "probe", "action": "record", "config": {"label": "alarm"},
         "depends_on": ["broken"], "trigger_rule": "one_failed"},
        {"name": "needs_all", "plugin": "probe", "action": "record", "config": {"label": "never"},
         "depends_on": ["broken", "maybe"]},
        {"name": "cleanup", "plugin": "probe", "action": "record", "config": {"label": "cleanup"},
         "depends_on": ["broken", "maybe"], "trigger_rule": "all_done"}
    ]));
    let report = run(&engine, &file).await;
    let status = |n: &str| report.step(n).unwrap().status;
    assert_eq!(status("maybe"), StepStatus::Skipped);
    assert_eq!(status("broken"), StepStatus::Failed);
    assert_eq!(status("after_failure"), StepStatus::Succeeded);
    assert_eq!(status("needs_all"), StepStatus::Skipped);
    assert_eq!(status("cleanup"), StepStatus::Succeeded);
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "the failure was allowed to continue"
    );
    let log = shared.log.lock().unwrap().clone();
    assert!(!log.contains(&"record:never".to_string()), "{log:?}");
}

#[tokio::test]
async fn a_failed_run_compensates_completed_steps_in_reverse_order_and_runs_its_handler() {
    let (engine, shared) = engine();
    let compensated =
        |label: &str| json!({"plugin": "probe", "action": "record", "config": {"label": label}});
    let file = workflow(json!([
        {"name": "reserve", "plugin": "probe", "action": "record", "config": {"label": "reserve"},
         "compensate": compensated("release")},
        {"name": "charge", "plugin": "probe", "action": "record", "config": {"label": "charge"},
         "compensate": compensated("refund")},
        {"name": "ship", "plugin": "probe", "action": "fail", "on_failure": {"handler": "alert"}},
        {"name": "never", "plugin": "probe", "action": "record", "config": {"label": "never"}},
        {"name": "alert", "plugin": "probe", "action": "record", "config": {"label": "alert"}}
    ]));
    let report = run(&engine, &file).await;
    assert_eq!(report.status, RunStatus::Failed);
    let log = shared.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "record:reserve",
            "record:charge",
            "fail:",
            "record:alert",
            "record:refund",
            "record:release"
        ],
    );
    assert_eq!(
        report.step("reserve").unwrap().status,
        StepStatus::Compensated
    );
    assert_eq!(
        report.step("charge").unwrap().status,
        StepStatus::Compensated
    );
    assert_eq!(report.step("never").unwrap().status, StepStatus::Cancelled);
    assert_eq!(report.step("alert").unwrap().status, StepStatus::Succeeded);
}

#[tokio::test]
async fn a_step_timeout_fails_the_step() {
    let (engine, _) = engine();
    let file = workflow(json!([
        {"name": "slow", "plugin": "probe", "action": "slow", "config": {"ms": 2000}, "timeout": "50ms"}
    ]));
    let report = run(&engine, &file).await;
    let slow = report.step("slow").unwrap();
    assert_eq!(slow.status, StepStatus::Failed);
    assert!(
        slow.error.as_deref().unwrap().contains("timeout")
            || slow.error.as_deref().unwrap().contains("time"),
        "{:?}",
        slow.error
    );
    assert!(slow.duration_ms < 1500, "{}", slow.duration_ms);
}
