//! The workflows registered with an engine for their triggers: webhook paths that start
//! runs ([`Engine::trigger`]) and schedules that a [`crate::schedule::Scheduler`] ticks.
//! Clones of an engine share one registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kernelize_core::{Error, ErrorKind, Result};
use serde_json::Value;

use super::{Engine, RunOptions, workflow_def};
use crate::definition::WorkflowFile;
use crate::schedule::ScheduledTrigger;

/// A workflow registered for its triggers, with the file it comes from.
#[derive(Debug, Clone)]
pub struct RegisteredWorkflow {
    /// The whole file (its plugin instances travel with every run).
    pub file: Arc<WorkflowFile>,
    /// The workflow's name in the file.
    pub name: String,
    /// Its schedule triggers, in the order the file lists them.
    pub schedules: Vec<ScheduledTrigger>,
    /// Its webhook paths.
    pub webhooks: Vec<String>,
}

/// Registered workflows by name.
#[derive(Debug, Default)]
pub(crate) struct TriggerRegistry {
    workflows: BTreeMap<String, RegisteredWorkflow>,
}

impl TriggerRegistry {
    fn webhook(&self, path: &str) -> Option<&RegisteredWorkflow> {
        self.workflows
            .values()
            .find(|w| w.webhooks.iter().any(|p| p == path))
    }

    fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .workflows
            .values()
            .flat_map(|w| w.webhooks.iter().cloned())
            .collect();
        paths.sort();
        paths
    }
}

pub(crate) type SharedRegistry = Arc<RwLock<TriggerRegistry>>;

impl Engine {
    fn registry(&self) -> RwLockReadGuard<'_, TriggerRegistry> {
        // `register` checks everything before it changes anything, and nothing under the
        // lock panics midway, so even a poisoned lock holds a consistent registry.
        self.triggers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, TriggerRegistry> {
        self.triggers.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the workflows of `file` that have triggers: their webhook paths start runs
    /// through [`Engine::trigger`], and a [`crate::schedule::Scheduler`] over this engine
    /// (or a clone of it) ticks their schedules.
    ///
    /// Nothing is registered when anything is wrong, and the error says what: a schedule
    /// that does not read or never ticks (`0 0 30 2 *`), the same schedule twice in one
    /// workflow, a webhook path that does not start with `/`, a webhook path another
    /// registered workflow already has (`InvalidInput`), or a workflow name already
    /// registered from a different definition (names must be unique: runs are counted and
    /// their schedules remembered by workflow name). Registering the same workflow again,
    /// unchanged, does nothing; [`Engine::unregister`] makes way for a changed one.
    pub fn register(&self, file: &WorkflowFile) -> Result<()> {
        let shared = Arc::new(file.clone());
        let mut incoming = Vec::new();
        for (name, def) in &file.workflows {
            if def.triggers.is_empty() {
                continue;
            }
            let mut schedules = Vec::new();
            let mut webhooks = Vec::new();
            let mut names = BTreeSet::new();
            for (index, trigger) in def.triggers.iter().enumerate() {
                let at = |e: Error| {
                    e.with_context("workflow", name)
                        .with_context("trigger", index)
                };
                if trigger.schedule.is_some() {
                    let scheduled = ScheduledTrigger::from_trigger(trigger).map_err(at)?;
                    if scheduled
                        .schedule()
                        .next_after(chrono::Utc::now())
                        .is_none()
                    {
                        return Err(at(Error::new(
                            ErrorKind::ConfigInvalid,
                            format!(
                                "schedule `{}` never ticks (no date matches it from now on)",
                                scheduled.schedule().expression()
                            ),
                        )));
                    }
                    if !names.insert(scheduled.name()) {
                        return Err(at(Error::new(
                            ErrorKind::ConfigInvalid,
                            format!(
                                "workflow `{name}` lists the schedule `{}` twice",
                                scheduled.name()
                            ),
                        )));
                    }
                    schedules.push(scheduled);
                }
                if let Some(path) = &trigger.webhook {
                    if !path.starts_with('/') {
                        return Err(at(Error::new(
                            ErrorKind::ConfigInvalid,
                            format!("webhook path `{path}` must start with `/`"),
                        )));
                    }
                    webhooks.push(path.clone());
                }
            }
            incoming.push(RegisteredWorkflow {
                file: shared.clone(),
                name: name.clone(),
                schedules,
                webhooks,
            });
        }
        let mut registry = self.registry_mut();
        let mut taken: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, known) in &registry.workflows {
            if !incoming.iter().any(|w| &w.name == name) {
                for path in &known.webhooks {
                    taken.insert(path, name);
                }
            }
        }
        for workflow in &incoming {
            if let Some(known) = registry.workflows.get(&workflow.name)
                && (known.file.workflows.get(&workflow.name) != file.workflows.get(&workflow.name)
                    || known.file.plugins != file.plugins)
            {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "workflow `{}` is already registered from another definition; workflow \
                         names must be unique among registered files (unregister it first to \
                         replace it)",
                        workflow.name
                    ),
                ));
            }
            for path in &workflow.webhooks {
                if let Some(other) = taken.insert(path, &workflow.name) {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "webhook path `{path}` of workflow `{}` is already registered by \
                             workflow `{other}`; each path starts one workflow",
                            workflow.name
                        ),
                    ));
                }
            }
        }
        for workflow in incoming {
            registry.workflows.insert(workflow.name.clone(), workflow);
        }
        Ok(())
    }

    /// Removes a registered workflow (its webhooks and schedules); false when it was not
    /// registered.
    pub fn unregister(&self, workflow: &str) -> bool {
        self.registry_mut().workflows.remove(workflow).is_some()
    }

    /// The registered workflows, by name.
    pub fn registered(&self) -> Vec<RegisteredWorkflow> {
        self.registry().workflows.values().cloned().collect()
    }

    /// The registered webhook paths, sorted.
    pub fn webhook_paths(&self) -> Vec<String> {
        self.registry().paths()
    }

    /// Starts the workflow registered for webhook `path`: queues a run for a worker
    /// (trigger `webhook:PATH`) and returns its id.
    ///
    /// The payload's top-level keys become the run's parameters, over the workflow's
    /// defaults. Only parameters the workflow declares in `params` are accepted: any other
    /// key is an `InvalidInput` error that names it (and the declared ones), so a typo never
    /// passes silently. A `null` payload keeps the defaults; a payload that is not an object
    /// is `InvalidInput`. An unknown path is `NotFound`, listing the registered paths.
    pub async fn trigger(&self, path: &str, payload: Value) -> Result<String> {
        let workflow = {
            let registry = self.registry();
            match registry.webhook(path) {
                Some(w) => w.clone(),
                None => {
                    let paths = registry.paths();
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        if paths.is_empty() {
                            format!("no webhook `{path}`: no webhook is registered")
                        } else {
                            format!(
                                "no webhook `{path}`; registered webhooks: {}",
                                paths.join(", ")
                            )
                        },
                    ));
                }
            }
        };
        let def = workflow_def(&workflow.file, &workflow.name)?;
        let params = match payload {
            Value::Null => BTreeMap::new(),
            Value::Object(map) => {
                let unknown: Vec<&str> = map
                    .keys()
                    .filter(|k| !def.params.contains_key(*k))
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    let declared: Vec<&str> = def.params.keys().map(String::as_str).collect();
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "webhook `{path}`: {} `{}` {} not declared in the `params` of \
                             workflow `{}` ({})",
                            if unknown.len() == 1 { "key" } else { "keys" },
                            unknown.join("`, `"),
                            if unknown.len() == 1 { "is" } else { "are" },
                            workflow.name,
                            if declared.is_empty() {
                                "it declares none".to_string()
                            } else {
                                format!("it declares: {}", declared.join(", "))
                            }
                        ),
                    ));
                }
                map.into_iter().collect()
            }
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "webhook `{path}`: the payload must be a JSON object of parameters, \
                         not {}",
                        kernelize_core::payload::json_type_name(&other)
                    ),
                ));
            }
        };
        self.submit(
            &workflow.file,
            &workflow.name,
            RunOptions {
                params,
                trigger: Some(format!("webhook:{path}")),
                ..RunOptions::default()
            },
        )
        .await
    }
}
