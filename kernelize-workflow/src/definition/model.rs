//! The shape of a workflow file, as users write it in YAML.
//!
//! ```yaml
//! plugins:                      # plugin-level settings, keyed by instance name
//!   warehouse:
//!     plugin: sqlite-connector  # the plugin id; the key itself when absent
//!     settings: { path: "${env:DB_PATH}" }
//! workflows:
//!   data_sync:
//!     params: { since: "1970-01-01" }
//!     triggers:
//!       - schedule: "0 */6 * * *"
//!       - webhook: "/trigger/data-sync"
//!     steps:
//!       - name: extract_data
//!         plugin: warehouse
//!         action: extract
//!         config: { query: "SELECT * FROM sales WHERE updated_at > :last_sync" }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use kernelize_core::config::{Limits, opt_duration};
use kernelize_core::{ErrorKind, Permission};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole workflow file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    /// Plugin instances: settings, permissions and limits, keyed by instance name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginInstance>,
    /// The workflows, keyed by name.
    #[serde(default)]
    pub workflows: BTreeMap<String, WorkflowDef>,
    /// Event pipelines, keyed by name ([`crate::pipeline`]).
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineDef>,
}

/// One configured instance of a plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInstance {
    /// The plugin's id; the instance's name when absent, so that
    /// `plugins: { http: { settings: ... } }` configures the `http` plugin itself.
    #[serde(default)]
    pub plugin: Option<String>,
    /// A semver requirement on the plugin's version (`^0.1`); any version when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// The plugin's settings, checked against its schema; may hold `${secret:NAME}` and
    /// `${env:NAME}` references.
    #[serde(default)]
    pub settings: Value,
    /// Permissions granted to it.
    #[serde(default)]
    #[schemars(with = "Vec<Value>")]
    pub permissions: Vec<Permission>,
    /// Limits on its calls.
    #[serde(default)]
    #[schemars(with = "Value")]
    pub limits: Limits,
}

/// One workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Parameters and their defaults; `--set NAME=VALUE` and trigger payloads override
    /// them. Referenced as `${params.NAME}`.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// What starts it besides a manual run.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Its steps. Without `depends_on`, each runs after the one listed before it.
    pub steps: Vec<StepDef>,
    /// Most steps running at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// A deadline for the whole run (`"2h"`).
    #[serde(default, with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// The value of `:last_sync` before the first successful run (RFC 3339); the Unix
    /// epoch when absent.
    #[serde(default)]
    pub initial_last_sync: Option<String>,
}

/// What starts a workflow: a cron schedule or a webhook path (exactly one of the two).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// A cron expression with 5 or 6 fields (seconds first when 6).
    #[serde(default)]
    pub schedule: Option<String>,
    /// An IANA time zone for the schedule (`Europe/Paris`); UTC when absent.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A webhook path (`/trigger/data-sync`).
    #[serde(default)]
    pub webhook: Option<String>,
    /// What to do about ticks missed while nothing was running.
    #[serde(default)]
    pub missed: MissedRuns,
    /// How far back `catch_up` looks (`"1d"`); a day when absent.
    #[serde(default, with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub catch_up_window: Option<Duration>,
    /// Most runs `catch_up` starts for one gap; 10 when absent.
    #[serde(default)]
    pub max_catch_up: Option<u32>,
    /// What to do when a tick comes while the previous run is still going.
    #[serde(default)]
    pub overlap: Overlap,
}

/// Missed-run policy of a schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedRuns {
    /// Forget missed ticks.
    #[default]
    Skip,
    /// One run covers the whole gap.
    RunOnce,
    /// One run per missed tick within the window, oldest first, bounded.
    CatchUp,
}

/// Overlap policy of a schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Drop the tick.
    #[default]
    Skip,
    /// Keep one tick waiting; drop the rest.
    BufferOne,
    /// Start another run alongside.
    Allow,
}

/// One step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Its name, unique in the workflow; `${steps.NAME.output}` refers to its output.
    pub name: String,
    /// The plugin instance (a key of `plugins:`) or plugin id it calls.
    pub plugin: String,
    /// The action.
    pub action: String,
    /// The action's configuration; may hold `${params.NAME}`, `${steps.NAME.output...}`,
    /// `${env:NAME}` and `${secret:NAME}` references. `:name` placeholders in queries are
    /// bound as parameters by the plugin, never spliced.
    #[serde(default)]
    pub config: Value,
    /// The action's input; the output of the step it follows (its single dependency)
    /// when absent. May be a `${steps.NAME.output}` reference.
    #[serde(default)]
    pub input: Option<Value>,
    /// Steps that must finish first. When absent, the step listed before this one.
    #[serde(default)]
    pub depends_on: Option<Vec<String>>,
    /// A condition over `${params...}` and `${steps...}`: the step is skipped when false.
    #[serde(default)]
    pub when: Option<String>,
    /// How it is retried.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Longest one attempt may take (`"30s"`).
    #[serde(default, with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// What undoes it when the run fails after it succeeded.
    #[serde(default)]
    pub compensate: Option<Compensation>,
    /// What its failure does to the run.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// When it runs given how its dependencies ended.
    #[serde(default)]
    pub trigger_rule: TriggerRule,
}

/// A step's retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the first retry.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub initial_interval: Duration,
    /// How the wait grows from one retry to the next.
    pub backoff_coefficient: f64,
    /// The longest wait.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub max_interval: Duration,
    /// Error kinds never retried (`invalid_input`, `permission_denied`), beside
    /// permanent errors, which never are.
    #[serde(with = "error_kinds")]
    #[schemars(with = "Vec<String>")]
    pub non_retryable: Vec<ErrorKind>,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            max_interval: Duration::from_secs(60),
            non_retryable: Vec::new(),
        }
    }
}

/// The step that undoes a completed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compensation {
    /// The plugin instance or id.
    pub plugin: String,
    /// The action.
    pub action: String,
    /// Its configuration (references allowed, as in a step).
    #[serde(default)]
    pub config: Value,
}

/// What a step's failure does to its run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The run fails (compensations run).
    #[default]
    Fail,
    /// The run goes on; steps that need this one follow their trigger rule.
    Continue,
    /// Run this step (by name, declared in the workflow), then fail the run.
    Handler(String),
}

/// When a step runs given how the steps it depends on ended (Airflow's trigger rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every dependency succeeded.
    #[default]
    AllSuccess,
    /// Every dependency ended, however.
    AllDone,
    /// At least one succeeded.
    OneSuccess,
    /// At least one failed.
    OneFailed,
    /// None failed (skipped ones allowed).
    NoneFailed,
}

/// Serde for lists of error kinds by their snake_case names.
mod error_kinds {
    use kernelize_core::ErrorKind;
    use serde::{Deserialize, Deserializer, Serializer};

    const KINDS: [(&str, ErrorKind); 14] = [
        ("config_invalid", ErrorKind::ConfigInvalid),
        ("invalid_input", ErrorKind::InvalidInput),
        ("not_found", ErrorKind::NotFound),
        ("permission_denied", ErrorKind::PermissionDenied),
        ("dependency", ErrorKind::Dependency),
        ("timeout", ErrorKind::Timeout),
        ("rate_limited", ErrorKind::RateLimited),
        ("remote", ErrorKind::Remote),
        ("corrupt_data", ErrorKind::CorruptData),
        ("cancelled", ErrorKind::Cancelled),
        ("unsupported", ErrorKind::Unsupported),
        ("invalid_state", ErrorKind::InvalidState),
        ("unexpected", ErrorKind::Unexpected),
        ("rate_limit", ErrorKind::RateLimited),
    ];

    /// The snake_case name of a kind.
    pub(crate) fn name(kind: ErrorKind) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == kind)
            .map_or("unexpected", |(n, _)| n)
    }

    pub(super) fn serialize<S: Serializer>(kinds: &[ErrorKind], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(kinds.iter().map(|k| name(*k)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ErrorKind>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                KINDS
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, kind)| *kind)
                    .ok_or_else(|| {
                        let known: Vec<&str> = KINDS[..13].iter().map(|(k, _)| *k).collect();
                        serde::de::Error::custom(format!(
                            "unknown error kind `{n}`; known kinds: {}",
                            known.join(", ")
                        ))
                    })
            })
            .collect()
    }
}

/// One event pipeline: a source, stages, sinks and a dead letter sink.
///
/// ```yaml
/// pipelines:
///   orders:
///     source: { plugin: events, options: { stream: ORDERS, durable: loader } }
///     stages:
///       - filter: 'event.status != "test"'
///       - transform: { plugin: data-transformer, action: rename, config: { ... } }
///       - route: { routes: { big: "event.amount > 1000" }, unmatched: rest }
///       - dedupe: { key: event.order_id, window: 1d, store: sql }
///       - batch: { count: 1000, linger: 200ms }
///     sinks:
///       - { name: warehouse, plugin: pg, options: { table: orders }, retry: { max_attempts: 5 } }
///     dead_letter: { plugin: pg, options: { table: orders_dead } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineDef {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Where events come from.
    pub source: EndpointDef,
    /// What happens to each event, in order.
    #[serde(default)]
    pub stages: Vec<StageDef>,
    /// Where events go; each takes the route outputs it names (every event when none).
    pub sinks: Vec<SinkDef>,
    /// Where events go that a stage rejected or a sink could not take; without one, such
    /// events are left to the source to deliver again.
    #[serde(default)]
    pub dead_letter: Option<EndpointDef>,
    /// Most events between the source and their settlement at once (backpressure); 10,000
    /// when absent.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// How many events go through the stages at once (1 when absent): more than one lets a
    /// transform that waits on a remote service work on several events together, and events
    /// may then reach the sinks out of order.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// A source or dead letter sink: a plugin (instance name or id) and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointDef {
    /// The plugin instance (a key of `plugins:`) or plugin id.
    pub plugin: String,
    /// The options the plugin declares for this role.
    #[serde(default)]
    pub options: Value,
}

/// One sink of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkDef {
    /// Its name in metrics and dead letters; the plugin's when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin instance or id.
    pub plugin: String,
    /// The options the plugin declares for sinks.
    #[serde(default)]
    pub options: Value,
    /// The route outputs it takes; every event when absent.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// How events are grouped into writes; the pipeline's `batch` stage when absent.
    #[serde(default)]
    pub batch: Option<BatchSpec>,
    /// How a failed write is retried; three attempts when absent.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
}

/// One stage: exactly one of its kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// Its name in metrics and dead letters; its kind and position when absent
    /// (`filter#1`).
    #[serde(default)]
    pub name: Option<String>,
    /// Keeps events for which this expression is true; the others are acknowledged and
    /// counted as discarded.
    #[serde(default)]
    pub filter: Option<String>,
    /// Sends each event to the first output whose condition holds.
    #[serde(default)]
    pub route: Option<RouteSpec>,
    /// Replaces each event's body with what a plugin action returns for it.
    #[serde(default)]
    pub transform: Option<TransformSpec>,
    /// Drops events whose key was already processed within a window.
    #[serde(default)]
    pub dedupe: Option<DedupeSpec>,
    /// How sinks group events into writes (the last stage only).
    #[serde(default)]
    pub batch: Option<BatchSpec>,
}

/// Content-based routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Outputs and their conditions, tried in order.
    pub routes: Vec<RouteArm>,
    /// Where an event no condition matched goes: an output name, `drop` (acknowledged and
    /// discarded) or `dead_letter`.
    pub unmatched: String,
}

/// One output of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteArm {
    /// The output's name, as sinks' `routes` name it.
    pub name: String,
    /// The condition.
    pub when: String,
}

/// A transform: a plugin action called once per event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// The plugin instance or id.
    pub plugin: String,
    /// The action.
    pub action: String,
    /// The action's configuration.
    #[serde(default)]
    pub config: Value,
}

/// Idempotent consumer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupeSpec {
    /// An expression giving the event's key (`event.order_id`); the event's own key (a
    /// message id) when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// How long a processed key is remembered (`"1d"`).
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// Where keys are kept: `memory` (the default; one process), `store` (the run store
    /// given to `kernelize run --store`: SQLite or PostgreSQL, shared by processes), or a
    /// plugin instance with `get`/`set` cache actions such as `redis-connector`.
    #[serde(default)]
    pub store: Option<String>,
    /// The namespace of the keys; the pipeline's name when absent.
    #[serde(default)]
    pub scope: Option<String>,
    /// How long a claim on a key in flight lasts (`"5m"` when absent): after a process died
    /// holding it, that key's redeliveries wait this long. Keep it above the longest time an
    /// event takes through the pipeline, and short enough to bear after a crash.
    #[serde(default, with = "opt_duration")]
    #[schemars(with = "Option<String>")]
    pub lease: Option<Duration>,
}

/// Batching by count, bytes and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSpec {
    /// Most events in one write.
    pub count: usize,
    /// Most bytes of bodies in one write.
    pub bytes: usize,
    /// Longest an event waits for its batch to fill.
    #[serde(with = "kernelize_core::config::duration")]
    #[schemars(with = "String")]
    pub linger: Duration,
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            count: 500,
            bytes: 4 * 1024 * 1024,
            linger: Duration::from_millis(100),
        }
    }
}

/// The snake_case name of an error kind (`invalid_input`), as retry policies write it.
pub(crate) fn error_kind_name(kind: ErrorKind) -> &'static str {
    error_kinds::name(kind)
}
