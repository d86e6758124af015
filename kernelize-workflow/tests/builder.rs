//! The typed workflow builder: typed steps over small in-test plugins, built into
//! definitions and run through the engine that runs YAML workflows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use kernelize_core::plugin::{ActionContext, ActionRouter, Handler};
use kernelize_core::{
    Action, Call, Category, Error, ErrorKind, Payload, Plugin, PluginFactory, PluginManager,
    PluginMetadata, Result, async_trait, semver::Version,
};
use kernelize_workflow::builder::{
    Chain, NamedJoin, Step, TypedCompensation, TypedWorkflow, WorkflowBuilder,
};
use kernelize_workflow::definition::{OnFailure, RetrySpec, WorkflowFile, parse};
use kernelize_workflow::{Engine, RunOptions, RunStatus, StepStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---- The data the actions pass along ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Numbers {
    values: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Total {
    value: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Count {
    n: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Mean {
    value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Text {
    text: String,
}

/// The input of a named join: one field per branch, named after the branch's last step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
struct Stats {
    total: Total,
    count: Count,
}

impl NamedJoin for Stats {
    type Branches = (Total, Count);
    const FIELDS: &'static [&'static str] = &["total", "count"];
}

// ---- Configs ----

#[derive(Serialize, Deserialize, JsonSchema)]
struct GenerateConfig {
    count: i64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
struct LabelConfig {
    label: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
struct FlakyConfig {
    label: String,
    failures: u32,
}

// ---- Actions ----

macro_rules! action {
    ($name:ident, $wire:literal, $config:ty, $input:ty, $output:ty) => {
        struct $name;
        impl Action for $name {
            const NAME: &'static str = $wire;
            const DESCRIPTION: &'static str = $wire;
            type Config = $config;
            type Input = $input;
            type Output = $output;
        }
    };
}

action!(Generate, "generate", GenerateConfig, (), Numbers);
action!(Sum, "sum", (), Numbers, Total);
action!(CountValues, "count", (), Numbers, Count);
action!(Average, "average", (), (Total, Count), Mean);
action!(AverageNamed, "average_named", (), Stats, Mean);
action!(Describe, "describe", LabelConfig, Total, Text);
action!(Double, "double", (), Total, Total);
action!(Negate, "negate", (), Total, Total);
action!(Flaky, "flaky", FlakyConfig, Numbers, Numbers);
action!(Explode, "explode", (), Numbers, Numbers);
action!(Release, "release", LabelConfig, Numbers, ());
action!(Alert, "alert", LabelConfig, (), ());
action!(Inspect, "inspect", (), Payload, Text);

// ---- The plugin ----

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<String>>,
    attempts: Mutex<BTreeMap<String, u32>>,
}

struct Numeric(Arc<Shared>);

impl Numeric {
    fn log(&self, entry: String) {
        self.0.log.lock().unwrap().push(entry);
    }
}

static ROUTER: LazyLock<ActionRouter<Numeric>> = LazyLock::new(|| {
    ActionRouter::new()
        .action::<Generate>()
        .action::<Sum>()
        .action::<CountValues>()
        .action::<Average>()
        .action::<AverageNamed>()
        .action::<Describe>()
        .action::<Double>()
        .action::<Negate>()
        .action::<Flaky>()
        .action::<Explode>()
        .action::<Release>()
        .action::<Alert>()
        .action::<Inspect>()
});

#[async_trait]
impl Plugin for Numeric {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            "numeric",
            "Numeric",
            Version::new(1, 0, 0),
            Category::DataProcessor,
        )
        .actions(ROUTER.descriptors())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        self.log(call.action.clone());
        ROUTER.dispatch(self, call).await
    }
}

#[async_trait]
impl Handler<Generate> for Numeric {
    async fn handle(&self, _: ActionContext, config: GenerateConfig, _: ()) -> Result<Numbers> {
        Ok(Numbers {
            values: (1..=config.count).collect(),
        })
    }
}

#[async_trait]
impl Handler<Sum> for Numeric {
    async fn handle(&self, _: ActionContext, _: (), input: Numbers) -> Result<Total> {
        Ok(Total {
            value: input.values.iter().sum(),
        })
    }
}

#[async_trait]
impl Handler<CountValues> for Numeric {
    async fn handle(&self, _: ActionContext, _: (), input: Numbers) -> Result<Count> {
        Ok(Count {
            n: input.values.len() as u64,
        })
    }
}

#[async_trait]
impl Handler<Average> for Numeric {
    async fn handle(
        &self,
        _: ActionContext,
        _: (),
        (total, count): (Total, Count),
    ) -> Result<Mean> {
        Ok(Mean {
            value: total.value as f64 / count.n as f64,
        })
    }
}

#[async_trait]
impl Handler<AverageNamed> for Numeric {
    async fn handle(&self, _: ActionContext, _: (), input: Stats) -> Result<Mean> {
        Ok(Mean {
            value: input.total.value as f64 / input.count.n as f64,
        })
    }
}

#[async_trait]
impl Handler<Describe> for Numeric {
    async fn handle(&self, _: ActionContext, config: LabelConfig, input: Total) -> Result<Text> {
        Ok(Text {
            text: format!("{}: {}", config.label, input.value),
        })
    }
}

#[async_trait]
impl Handler<Double> for Numeric {
    async fn handle(&self, _: ActionContext, _: (), input: Total) -> Result<Total> {
        Ok(Total {
            value: input.value * 2,
        })
    }
}

#[async_trait]
impl Handler<Negate> for Numeric {
    async fn handle(&self, _: ActionContext, _: (), input: Total) -> Result<Total> {
        Ok(Total {
            value: -input.value,
        })
    }
}

#[async_trait]
impl Handler<Flaky> for Numeric {
    async fn handle(
        &self,
        _: ActionContext,
        config: FlakyConfig,
        input: Numbers,
    ) -> Result<Numbers> {
        let attempt = {
            let mut attempts = self.0.attempts.lock().unwrap();
            let n = attempts.entry(config.label).or_default();
            *n += 1;
            *n
        };
        if attempt <= config.failures {
            Err(Error::new(ErrorKind::Remote, format!("attempt {attempt} fails")).set_temporary())
        } else {
            Ok(input)
        }
    }
}

#[async_trait]
impl Handler<Explode> for Numeric {
    async fn handle(&self, _: ActionContext, _: (), _: Numbers) -> Result<Numbers> {
        Err(Error::new(ErrorKind::Remote, "explode always fails").set_permanent())
    }
}

#[async_trait]
impl Handler<Release> for Numeric {
    async fn handle(&self, _: ActionContext, config: LabelConfig, input: Numbers) -> Result<()> {
        self.log(format!("release:{}:{:?}", config.label, input.values));
        Ok(())
    }
}

#[async_trait]
impl Handler<Alert> for Numeric {
    async fn handle(&self, _: ActionContext, config: LabelConfig, _: ()) -> Result<()> {
        self.log(format!("alert:{}", config.label));
        Ok(())
    }
}

#[async_trait]
impl Handler<Inspect> for Numeric {
    async fn handle(&self, _: ActionContext, _: (), input: Payload) -> Result<Text> {
        Ok(Text {
            text: input.into_json()?.to_string(),
        })
    }
}

// ---- Helpers ----

fn engine() -> (Engine, Arc<Shared>) {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let manager = PluginManager::new();
    manager
        .install(PluginFactory::new(move || Box::new(Numeric(s.clone()))))
        .unwrap();
    (Engine::new(manager), shared)
}

fn manager() -> PluginManager {
    let manager = PluginManager::new();
    manager
        .install(PluginFactory::new(|| {
            Box::new(Numeric(Arc::new(Shared::default())))
        }))
        .unwrap();
    manager
}

fn generate(name: &str, count: i64) -> Step<(), Numbers> {
    Step::typed::<Generate>(name, "numeric", GenerateConfig { count })
}

fn sum(name: &str) -> Step<Numbers, Total> {
    Step::typed::<Sum>(name, "numeric", ())
}

fn label(text: &str) -> LabelConfig {
    LabelConfig { label: text.into() }
}

fn with_params(params: Value) -> RunOptions {
    RunOptions {
        params: serde_json::from_value(params).unwrap(),
        ..RunOptions::default()
    }
}

// ---- Sequences ----

#[tokio::test]
async fn a_typed_sequence_runs_through_the_engine_and_gives_its_typed_output() {
    let (engine, shared) = engine();
    let steps = Chain::start(generate("numbers", 4))
        .then(sum("total"))
        .then(Step::typed::<Describe>("describe", "numeric", label("sum")));
    let workflow: TypedWorkflow<Text> = WorkflowBuilder::new("report").build(steps).unwrap();

    let report = workflow.run(&engine, RunOptions::default()).await.unwrap();

    assert_eq!(report.status(), RunStatus::Succeeded);
    assert_eq!(report.report.outputs.len(), 3);
    assert_eq!(
        report.into_output().unwrap(),
        Text {
            text: "sum: 10".into()
        }
    );
    assert_eq!(*shared.log.lock().unwrap(), ["generate", "sum", "describe"]);
}

#[test]
fn a_typed_sequence_is_the_yaml_workflow_it_stands_for() {
    let steps = Chain::start(generate("numbers", 4))
        .then(sum("total").retry(RetrySpec {
            max_attempts: 2,
            ..RetrySpec::default()
        }))
        .then(
            Step::typed::<Describe>("describe", "numeric", label("${params.prefix}"))
                .timeout(Duration::from_secs(5)),
        );
    let workflow = WorkflowBuilder::new("report")
        .param("prefix", "sum")
        .build(steps)
        .unwrap();

    let yaml = r#"
workflows:
  report:
    params: { prefix: sum }
    steps:
      - name: numbers
        plugin: numeric
        action: generate
        config: { count: 4 }
      - name: total
        plugin: numeric
        action: sum
        depends_on: [numbers]
        retry: { max_attempts: 2 }
      - name: describe
        plugin: numeric
        action: describe
        config: { label: "${params.prefix}" }
        depends_on: [total]
        timeout: 5s
"#;
    let expected: WorkflowFile = parse("report.yaml", yaml).unwrap().file;
    assert_eq!(workflow.to_file(), expected);
    let (file, name) = workflow.into_parts();
    assert_eq!((file, name.as_str()), (expected, "report"));
}

#[tokio::test]
async fn a_payload_step_accepts_any_output_once_it_says_so() {
    let (engine, _) = engine();
    let steps = Chain::start(generate("numbers", 2))
        .then(Step::typed::<Inspect>("inspect", "numeric", ()).accept_any())
        .then(Step::dynamic(
            "echo_back",
            "numeric",
            "inspect",
            Value::Null,
        ));
    let workflow: TypedWorkflow<Payload> = WorkflowBuilder::new("any").build(steps).unwrap();

    let output = workflow
        .run(&engine, RunOptions::default())
        .await
        .unwrap()
        .into_output()
        .unwrap();

    let inner = json!({"values": [1, 2]}).to_string();
    assert_eq!(
        output.into_json().unwrap(),
        json!({"text": json!({"text": inner}).to_string()})
    );
}

// ---- Parallel branches and joins ----

#[tokio::test]
async fn parallel_branches_join_into_a_tuple_in_branch_order() {
    let (engine, _) = engine();
    let steps = Chain::start(generate("numbers", 4))
        .parallel((
            sum("total"),
            Step::typed::<CountValues>("count", "numeric", ()),
        ))
        .join(Step::typed::<Average>("average", "numeric", ()));
    let workflow = WorkflowBuilder::new("mean").build(steps).unwrap();

    let def = workflow.definition();
    let join = def.steps.iter().find(|s| s.name == "average").unwrap();
    assert_eq!(
        join.depends_on,
        Some(vec!["total".to_string(), "count".to_string()])
    );
    assert_eq!(
        join.input,
        Some(json!(["${steps.total.output}", "${steps.count.output}"]))
    );
    for branch in ["total", "count"] {
        let step = def.steps.iter().find(|s| s.name == branch).unwrap();
        assert_eq!(step.depends_on, Some(vec!["numbers".to_string()]));
    }

    let report = workflow.run(&engine, RunOptions::default()).await.unwrap();
    assert_eq!(report.into_output().unwrap(), Mean { value: 2.5 });
}

#[tokio::test]
async fn a_named_join_receives_an_object_keyed_by_branch_name() {
    let (engine, _) = engine();
    let steps = Chain::start(generate("numbers", 3))
        .parallel((
            sum("total"),
            Chain::new()
                .then(Step::typed::<Flaky>(
                    "steady",
                    "numeric",
                    FlakyConfig {
                        label: "steady".into(),
                        failures: 0,
                    },
                ))
                .then(Step::typed::<CountValues>("count", "numeric", ())),
        ))
        .join_named(Step::typed::<AverageNamed>("average", "numeric", ()));
    let workflow = WorkflowBuilder::new("mean").build(steps).unwrap();

    let join = workflow.definition().steps.last().unwrap();
    assert_eq!(
        join.input,
        Some(json!({"total": "${steps.total.output}", "count": "${steps.count.output}"}))
    );

    let report = workflow.run(&engine, RunOptions::default()).await.unwrap();
    assert_eq!(report.into_output().unwrap(), Mean { value: 2.0 });
}

#[test]
fn a_named_join_whose_fields_are_not_the_branch_names_does_not_build() {
    let steps = Chain::start(generate("numbers", 3))
        .parallel((
            sum("sum"),
            Step::typed::<CountValues>("count", "numeric", ()),
        ))
        .join_named(Step::typed::<AverageNamed>("average", "numeric", ()));

    let error = WorkflowBuilder::new("mean").build(steps).unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(
        error.message().contains("[total, count]") && error.message().contains("[sum, count]"),
        "{error}"
    );
}

#[tokio::test]
async fn parallel_branches_can_open_a_workflow() {
    let (engine, _) = engine();
    let steps = Chain::new()
        .parallel((generate("left", 2), generate("right", 3)))
        .join(Step::typed::<Inspect>("both", "numeric", ()).accept_any());
    let workflow = WorkflowBuilder::new("two").build(steps).unwrap();
    let def = workflow.definition();
    assert_eq!(def.steps[0].depends_on, None);
    assert_eq!(
        def.steps[1].depends_on,
        Some(vec![]),
        "a branch opening the workflow depends on nothing, not on the step listed before it"
    );

    let output = workflow
        .run(&engine, RunOptions::default())
        .await
        .unwrap()
        .into_output()
        .unwrap();
    assert_eq!(
        output.text,
        json!([{"values": [1, 2]}, {"values": [1, 2, 3]}]).to_string()
    );
}

// ---- Conditions ----

#[tokio::test]
async fn a_step_whose_condition_is_false_is_skipped_and_the_run_has_no_output() {
    let (engine, _) = engine();
    let steps = Chain::start(generate("numbers", 4))
        .then(sum("total").when("${params.enabled}"))
        .then(Step::typed::<Double>("double", "numeric", ()));
    let workflow = WorkflowBuilder::new("maybe")
        .param("enabled", false)
        .build(steps)
        .unwrap();

    let report = workflow.run(&engine, RunOptions::default()).await.unwrap();
    assert_eq!(report.status(), RunStatus::Succeeded);
    assert_eq!(
        report.report.step("total").unwrap().status,
        StepStatus::Skipped
    );
    assert_eq!(
        report.report.step("double").unwrap().status,
        StepStatus::Skipped
    );
    assert!(report.output.is_none());
    let error = report.into_output().unwrap_err();
    assert!(error.message().contains("`double` skipped"), "{error}");

    let report = workflow
        .run(&engine, with_params(json!({"enabled": true})))
        .await
        .unwrap();
    assert_eq!(report.into_output().unwrap(), Total { value: 20 });
}

#[tokio::test]
async fn a_branch_runs_the_arm_its_condition_picks() {
    let (engine, _) = engine();
    let steps = Chain::start(generate("numbers", 3))
        .then(sum("total"))
        .branch(
            "${params.x} > 3",
            Step::typed::<Double>("double", "numeric", ()),
            Chain::new()
                .then(Step::typed::<Negate>("negate", "numeric", ()))
                .then(Step::typed::<Double>("double_negated", "numeric", ())),
        );
    let workflow: TypedWorkflow<Total> = WorkflowBuilder::new("pick")
        .param("x", 0)
        .build(steps)
        .unwrap();
    let when = |name: &str| {
        workflow
            .definition()
            .steps
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .when
            .clone()
    };
    assert_eq!(when("double").as_deref(), Some("${params.x} > 3"));
    assert_eq!(when("negate").as_deref(), Some("not (${params.x} > 3)"));
    assert_eq!(when("double_negated"), None);
    assert_eq!(workflow.output_steps(), ["double", "double_negated"]);

    let high = workflow
        .run(&engine, with_params(json!({"x": 5})))
        .await
        .unwrap();
    assert_eq!(
        high.report.step("negate").unwrap().status,
        StepStatus::Skipped
    );
    assert_eq!(high.into_output().unwrap(), Total { value: 12 });

    let low = workflow
        .run(&engine, with_params(json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(
        low.report.step("double").unwrap().status,
        StepStatus::Skipped
    );
    assert_eq!(low.into_output().unwrap(), Total { value: -12 });
}

#[test]
fn a_branch_arm_keeps_its_own_condition_beside_the_branch_condition() {
    let steps = Chain::start(generate("numbers", 3))
        .then(sum("total"))
        .branch(
            "${params.x} > 3",
            Step::typed::<Double>("double", "numeric", ()).when("${params.y}"),
            Step::typed::<Negate>("negate", "numeric", ()),
        );
    let workflow = WorkflowBuilder::new("pick")
        .param("x", 0)
        .param("y", true)
        .build(steps)
        .unwrap();
    let double = &workflow.definition().steps[2];
    assert_eq!(
        double.when.as_deref(),
        Some("(${params.x} > 3) and (${params.y})")
    );
}

#[test]
fn a_condition_that_does_not_parse_does_not_build() {
    let steps = Chain::start(generate("numbers", 3)).then(sum("total").when("${params.x} >"));
    let error = WorkflowBuilder::new("bad")
        .param("x", 1)
        .build(steps)
        .unwrap_err();
    assert!(error.message().contains("step `total`"), "{error}");
    assert!(error.message().contains("not a valid condition"), "{error}");
}

// ---- Retries, compensation, failure handlers ----

#[tokio::test]
async fn retry_and_timeout_are_carried_into_the_definition_and_honoured() {
    let (engine, _) = engine();
    let policy = RetrySpec {
        max_attempts: 3,
        initial_interval: Duration::from_millis(10),
        ..RetrySpec::default()
    };
    let flaky = |failures| FlakyConfig {
        label: format!("fails-{failures}"),
        failures,
    };
    let steps = Chain::start(generate("numbers", 2))
        .then(
            Step::typed::<Flaky>("flaky", "numeric", flaky(2))
                .retry(policy.clone())
                .timeout(Duration::from_secs(10)),
        )
        .then(Step::typed::<Flaky>("hopeless", "numeric", flaky(9)).retry(policy.clone()));
    let workflow = WorkflowBuilder::new("retries").build(steps).unwrap();
    let def = &workflow.definition().steps[1];
    assert_eq!(def.retry.as_ref(), Some(&policy));
    assert_eq!(def.timeout, Some(Duration::from_secs(10)));

    let report = workflow.run(&engine, RunOptions::default()).await.unwrap();

    let flaky = report.report.step("flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (StepStatus::Succeeded, 3));
    let hopeless = report.report.step("hopeless").unwrap();
    assert_eq!(
        (hopeless.status, hopeless.attempts),
        (StepStatus::Failed, 3)
    );
    assert_eq!(report.status(), RunStatus::Failed);
}

#[tokio::test]
async fn a_failed_run_compensates_completed_steps_and_runs_its_failure_handler() {
    let (engine, shared) = engine();
    let steps = Chain::start(generate("numbers", 2))
        .then(
            Step::typed::<Flaky>(
                "reserve",
                "numeric",
                FlakyConfig {
                    label: "reserve".into(),
                    failures: 0,
                },
            )
            .compensate(TypedCompensation::typed::<Release>(
                "numeric",
                label("reservation"),
            )),
        )
        .then(
            Step::typed::<Explode>("ship", "numeric", ())
                .on_failure(OnFailure::Handler("page".into())),
        );
    let workflow = WorkflowBuilder::new("order")
        .failure_handler(Step::typed::<Alert>("page", "numeric", label("on-call")))
        .build(steps)
        .unwrap();
    let reserve = &workflow.definition().steps[1];
    let compensation = reserve.compensate.as_ref().unwrap();
    assert_eq!(
        (compensation.plugin.as_str(), compensation.action.as_str()),
        ("numeric", "release")
    );
    assert_eq!(compensation.config, json!({"label": "reservation"}));

    let report = workflow.run(&engine, RunOptions::default()).await.unwrap();

    assert_eq!(report.status(), RunStatus::Failed);
    assert_eq!(
        report.report.step("reserve").unwrap().status,
        StepStatus::Compensated
    );
    let log = shared.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "generate",
            "flaky",
            "explode",
            "alert",
            "alert:on-call",
            "release",
            "release:reservation:[1, 2]"
        ]
    );
    let error = report.into_output().unwrap_err();
    assert!(
        error.message().contains("ended failed: step `ship` failed")
            && error.message().contains("explode always fails"),
        "{error}"
    );
}

#[test]
fn a_failure_handler_must_be_declared_and_named() {
    let steps = Chain::start(generate("numbers", 2))
        .then(sum("total").on_failure(OnFailure::Handler("nobody".into())));
    let error = WorkflowBuilder::new("order")
        .failure_handler(Step::typed::<Alert>("page", "numeric", label("x")))
        .build(steps)
        .unwrap_err();
    assert!(
        error.message().contains("`nobody` as its failure handler"),
        "{error}"
    );
    assert!(
        error
            .message()
            .contains("failure handler `page` is not named"),
        "{error}"
    );
}

// ---- Build errors and validation ----

#[test]
fn repeated_step_names_do_not_build() {
    let steps = Chain::start(generate("numbers", 2))
        .then(sum("total"))
        .then(Step::typed::<Double>("total", "numeric", ()));

    let error = WorkflowBuilder::new("twice").build(steps).unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ConfigInvalid);
    assert!(
        error
            .message()
            .contains("step name `total` is used by 2 steps"),
        "{error}"
    );
}

#[test]
fn names_references_cannot_reach_and_undeclared_parameters_do_not_build() {
    let steps = Chain::start(generate("two words", 2))
        .then(sum("total"))
        .then(Step::typed::<Describe>(
            "describe",
            "numeric",
            label("${params.missing}"),
        ));
    let error = WorkflowBuilder::new("names").build(steps).unwrap_err();
    assert!(
        error
            .message()
            .contains("`two words` cannot be referred to"),
        "{error}"
    );
    assert!(
        error
            .message()
            .contains("`${params.missing}`, a parameter the workflow does not declare"),
        "{error}"
    );
}

#[test]
fn an_empty_workflow_does_not_build() {
    let error = WorkflowBuilder::new("empty")
        .build(Chain::<(), ()>::new())
        .unwrap_err();
    assert!(error.message().contains("no steps"), "{error}");
}

#[test]
fn validation_checks_typed_workflows_against_the_plugins_a_host_has() {
    let good = Chain::start(generate("numbers", 2)).then(sum("total"));
    let workflow = WorkflowBuilder::new("fine").build(good).unwrap();
    workflow.validate(&manager()).unwrap();

    let elsewhere =
        Chain::start(generate("numbers", 2)).then(Step::typed::<Sum>("total", "statistics", ()));
    let workflow = WorkflowBuilder::new("elsewhere").build(elsewhere).unwrap();
    let diagnostics = workflow.validate(&manager()).unwrap_err().to_string();
    assert!(diagnostics.contains("statistics"), "{diagnostics}");
    assert!(
        diagnostics.contains("workflows.elsewhere.steps[1].plugin"),
        "{diagnostics}"
    );
}
