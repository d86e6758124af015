//! `${...}` references in steps: well formed, to declared parameters, and to steps that are
//! sure to have finished first.

use serde_json::Value;

use super::condition::prepare_condition;
use super::graph::StepGraph;
use super::{Checker, list};
use crate::definition::diagnostics::escape_token;
use crate::definition::model::WorkflowDef;
use crate::definition::reference::{Reference, Segment, parse_template};

/// Whether a string holds a reference, or something meant as one that does not parse (so
/// the run, not the schema, decides what it becomes).
pub(super) fn holds_reference(text: &str) -> bool {
    text.contains("${")
        && parse_template(text).map_or(true, |segments| {
            segments.iter().any(|s| matches!(s, Segment::Ref(_)))
        })
}

/// A string (or key) with references in it.
pub(super) struct FoundReferences {
    /// The JSON pointer of the string (of the value, for a key).
    pub(super) pointer: String,
    /// Its references, or why they do not parse.
    pub(super) references: Result<Vec<Reference>, String>,
}

/// Every string and key under `value` that holds `${`, with what it refers to.
pub(super) fn strings_with_references(value: &Value, pointer: &str) -> Vec<FoundReferences> {
    fn text(found: &mut Vec<FoundReferences>, pointer: &str, s: &str) {
        if !s.contains("${") {
            return;
        }
        let references = parse_template(s).map(|segments| {
            segments
                .into_iter()
                .filter_map(|s| match s {
                    Segment::Ref(r) => Some(r),
                    Segment::Text(_) => None,
                })
                .collect::<Vec<_>>()
        });
        if references.as_ref().is_ok_and(Vec::is_empty) {
            return;
        }
        found.push(FoundReferences {
            pointer: pointer.to_string(),
            references,
        });
    }
    fn walk(found: &mut Vec<FoundReferences>, value: &Value, pointer: &str) {
        match value {
            Value::String(s) => text(found, pointer, s),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(found, item, &format!("{pointer}/{i}"));
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let below = format!("{pointer}/{}", escape_token(key));
                    text(found, &below, key);
                    walk(found, item, &below);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&mut found, value, pointer);
    found
}

impl Checker<'_> {
    /// Checks the references of every step of a workflow, and that its `when` conditions
    /// parse.
    pub(super) fn references(
        &mut self,
        base: &str,
        workflow_name: &str,
        workflow: &WorkflowDef,
        graph: &mut StepGraph,
    ) {
        for (i, step) in workflow.steps.iter().enumerate() {
            let at = format!("{base}/steps/{i}");
            let mut found = strings_with_references(&step.config, &format!("{at}/config"));
            if let Some(input) = &step.input {
                found.extend(strings_with_references(input, &format!("{at}/input")));
            }
            if let Some(when) = &step.when {
                let pointer = format!("{at}/when");
                match prepare_condition(when) {
                    Err(message) => self.error(&pointer, message),
                    Ok(condition) => found.push(FoundReferences {
                        pointer,
                        references: Ok(condition.references),
                    }),
                }
            }
            let compensation = step.compensate.as_ref().map_or_else(Vec::new, |c| {
                strings_with_references(&c.config, &format!("{at}/compensate/config"))
            });
            let uses = found
                .into_iter()
                .map(|f| (f, false))
                .chain(compensation.into_iter().map(|f| (f, true)));
            for (found, after_the_step) in uses {
                match found.references {
                    Err(message) => self.error(&found.pointer, message),
                    Ok(references) => {
                        for reference in references {
                            self.reference(
                                &found.pointer,
                                workflow_name,
                                workflow,
                                graph,
                                i,
                                after_the_step,
                                &reference,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Checks one reference made by step `step`; `after_the_step` when it is resolved once
    /// the step itself has finished (in its compensation), so it may name the step.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        &mut self,
        pointer: &str,
        workflow_name: &str,
        workflow: &WorkflowDef,
        graph: &mut StepGraph,
        step: usize,
        after_the_step: bool,
        reference: &Reference,
    ) {
        let name = &workflow.steps[step].name;
        match reference {
            Reference::Param(param) => {
                if !workflow.params.contains_key(param) {
                    self.error(
                        pointer,
                        format!(
                            "{reference}: workflow `{workflow_name}` declares no parameter \
                             `{param}` in `params`; declared: {}",
                            list(workflow.params.keys().map(String::as_str))
                        ),
                    );
                }
            }
            Reference::StepOutput { step: target, .. } | Reference::StepStatus(target) => {
                match graph.index.get(target).copied() {
                    None => self.error(
                        pointer,
                        format!(
                            "{reference}: workflow `{workflow_name}` has no step `{target}`; \
                             steps: {}",
                            list(workflow.steps.iter().map(|s| s.name.as_str()))
                        ),
                    ),
                    Some(t) if t == step || target == name => {
                        if !after_the_step {
                            self.error(
                                pointer,
                                format!("{reference}: step `{name}` cannot refer to itself"),
                            );
                        }
                    }
                    Some(t) => {
                        if !graph.precedes(t, step) {
                            self.error(
                                pointer,
                                format!(
                                    "{reference}: step `{target}` is not sure to finish before \
                                     step `{name}` starts; add `{target}` to its `depends_on` \
                                     (directly or through a step it depends on)"
                                ),
                            );
                        }
                    }
                }
            }
            Reference::Env(_) | Reference::Secret(_) => {}
        }
    }
}
