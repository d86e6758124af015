//! Checking a parsed workflow file against the plugins a host has, before anything runs.
//!
//! [`validate`] reports every problem it finds, each at the line and column of the node it
//! is about:
//!
//! - plugin instances (`plugins:`): unknown plugin ids, `version` requirements that do not
//!   parse or that no installed version meets, settings that fail the plugin's schema;
//! - steps: no steps, repeated names, unknown plugins or actions (step and `compensate`),
//!   `config` that fails the action's schema, `on_failure` handlers that are not steps,
//!   retry policies that cannot work;
//! - the graph: `depends_on` naming missing steps or the step itself, and cycles;
//! - references: malformed `${...}`, `${steps.X...}` to a step that does not exist or is
//!   not sure to have finished first, `${params.X}` not declared in `params`;
//! - `when` conditions that do not parse;
//! - triggers: not exactly one of `schedule` and `webhook`, bad cron expressions or time
//!   zones, webhook paths that do not start with `/` or are used twice.
//!
//! Strings holding `${...}` references are skipped by the schema checks: their value is only
//! known when the run resolves them.

mod condition;
mod graph;
mod pipelines;
mod plugins;
mod references;
mod schema;
mod triggers;

use std::collections::HashMap;

use kernelize_core::PluginMetadata;

use super::catalog::Catalog;
use super::diagnostics::Diagnostics;
use super::parse::Loaded;

pub use condition::{Condition, prepare_condition};
pub use triggers::{parse_schedule, parse_timezone};

/// Most steps in one workflow.
pub const MAX_STEPS: usize = 10_000;

/// Checks a parsed workflow file against `catalog`; every problem found is one diagnostic,
/// sorted by position.
pub fn validate(loaded: &Loaded, catalog: &dyn Catalog) -> Result<(), Diagnostics> {
    let mut checker = Checker::new(loaded, catalog);
    checker.plugin_instances();
    let mut webhooks = HashMap::new();
    for (name, workflow) in &loaded.file.workflows {
        checker.workflow(name, workflow, &mut webhooks);
    }
    for (name, pipeline) in &loaded.file.pipelines {
        checker.pipeline(name, pipeline);
    }
    checker.diagnostics.into_result()
}

/// The state of one validation: what was found, and what was looked up.
struct Checker<'a> {
    loaded: &'a Loaded,
    catalog: &'a dyn Catalog,
    diagnostics: Diagnostics,
    metadata: HashMap<String, Option<PluginMetadata>>,
    schemas: schema::SchemaCache,
}

impl<'a> Checker<'a> {
    fn new(loaded: &'a Loaded, catalog: &'a dyn Catalog) -> Self {
        Checker {
            loaded,
            catalog,
            diagnostics: Diagnostics::new(),
            metadata: HashMap::new(),
            schemas: schema::SchemaCache::default(),
        }
    }

    /// A problem with the value at `pointer`.
    fn error(&mut self, pointer: &str, message: impl Into<String>) {
        let diagnostic = self.loaded.diagnostic(pointer, message);
        self.diagnostics.push(diagnostic);
    }

    /// A problem with the key of the value at `pointer`.
    fn key_error(&mut self, pointer: &str, message: impl Into<String>) {
        let diagnostic = self.loaded.key_diagnostic(pointer, message);
        self.diagnostics.push(diagnostic);
    }

    /// The catalog's metadata of plugin `id`, looked up once.
    fn plugin(&mut self, id: &str) -> Option<PluginMetadata> {
        if let Some(found) = self.metadata.get(id) {
            return found.clone();
        }
        let found = self.catalog.plugin(id);
        self.metadata.insert(id.to_string(), found.clone());
        found
    }

    fn workflow(
        &mut self,
        name: &str,
        workflow: &super::model::WorkflowDef,
        webhooks: &mut HashMap<String, (String, String)>,
    ) {
        let base = format!("/workflows/{}", super::diagnostics::escape_token(name));
        self.triggers(&base, name, workflow, webhooks);
        if let Some(0) = workflow.concurrency {
            self.error(
                &format!("{base}/concurrency"),
                "`concurrency` must be at least 1",
            );
        }
        if let Some(start) = &workflow.initial_last_sync
            && let Err(e) = chrono::DateTime::parse_from_rfc3339(start)
        {
            self.error(
                &format!("{base}/initial_last_sync"),
                format!("`{start}` is not an RFC 3339 time (like 2024-01-31T00:00:00Z): {e}"),
            );
        }
        if workflow.steps.is_empty() {
            self.error(
                &format!("{base}/steps"),
                format!("workflow `{name}` has no steps"),
            );
            return;
        }
        if workflow.steps.len() > MAX_STEPS {
            self.error(
                &format!("{base}/steps"),
                format!(
                    "workflow `{name}` has {} steps; the limit is {MAX_STEPS}",
                    workflow.steps.len()
                ),
            );
            return;
        }
        let mut graph = self.graph(&base, name, &workflow.steps);
        for (i, step) in workflow.steps.iter().enumerate() {
            let pointer = format!("{base}/steps/{i}");
            self.step(&pointer, step, &workflow.steps);
        }
        self.references(&base, name, workflow, &mut graph);
    }

    /// Checks of one step that need no other step but by name.
    fn step(
        &mut self,
        pointer: &str,
        step: &super::model::StepDef,
        steps: &[super::model::StepDef],
    ) {
        self.step_call(
            pointer,
            &step.plugin,
            &step.action,
            &step.config,
            &format!("{pointer}/config"),
        );
        if let Some(compensate) = &step.compensate {
            let at = format!("{pointer}/compensate");
            self.step_call(
                &at,
                &compensate.plugin,
                &compensate.action,
                &compensate.config,
                &format!("{at}/config"),
            );
        }
        if let super::model::OnFailure::Handler(handler) = &step.on_failure {
            let at = format!("{pointer}/on_failure/handler");
            if handler == &step.name {
                self.error(
                    &at,
                    format!("step `{}` cannot be its own failure handler", step.name),
                );
            } else if !steps.iter().any(|s| &s.name == handler) {
                self.error(
                    &at,
                    format!(
                        "failure handler `{handler}` is not a step of this workflow; steps: {}",
                        list(steps.iter().map(|s| s.name.as_str()))
                    ),
                );
            }
        }
        if let Some(retry) = &step.retry {
            let at = format!("{pointer}/retry");
            if retry.max_attempts < 1 {
                self.error(
                    &format!("{at}/max_attempts"),
                    "`max_attempts` must be at least 1 (it counts the first attempt)",
                );
            }
            if !(retry.backoff_coefficient >= 1.0 && retry.backoff_coefficient.is_finite()) {
                self.error(
                    &format!("{at}/backoff_coefficient"),
                    format!(
                        "`backoff_coefficient` must be a number of at least 1, not {}",
                        retry.backoff_coefficient
                    ),
                );
            }
            if retry.initial_interval > retry.max_interval {
                self.error(
                    &format!("{at}/initial_interval"),
                    "`initial_interval` is longer than `max_interval`",
                );
            }
        }
    }
}

/// `a, b, c`, or `none` for an empty list.
fn list<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    let items: Vec<&str> = items.into_iter().collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
