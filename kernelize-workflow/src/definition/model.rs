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
