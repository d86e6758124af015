//! Checks of `pipelines:`: sources and sinks are plugins that take that role, with options
//! that fit the schema they declare; every stage is one kind, with expressions that compile
//! and plugins and actions that exist; routes and the outputs sinks take agree.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Checker;
use super::list;
use crate::definition::diagnostics::escape_token;
use crate::definition::model::{EndpointDef, PipelineDef, StageDef};
use crate::pipeline::expr::Expr;

/// Which event role an endpoint takes.
#[derive(Clone, Copy)]
enum Role {
    Source,
    Sink,
}

impl Checker<'_> {
    pub(super) fn pipeline(&mut self, name: &str, pipeline: &PipelineDef) {
        let base = format!("/pipelines/{}", escape_token(name));
        self.endpoint(&format!("{base}/source"), &pipeline.source, Role::Source);
        if let Some(dead) = &pipeline.dead_letter {
            self.endpoint(&format!("{base}/dead_letter"), dead, Role::Sink);
        }
        if pipeline.max_in_flight == Some(0) {
            self.error(
                &format!("{base}/max_in_flight"),
                "`max_in_flight` must be at least 1",
            );
        }
        if pipeline
            .concurrency
            .is_some_and(|n| n == 0 || n > crate::pipeline::MAX_CONCURRENCY)
        {
            self.error(
                &format!("{base}/concurrency"),
                format!(
                    "`concurrency` must be 1 to {}",
                    crate::pipeline::MAX_CONCURRENCY
                ),
            );
        }
        let mut outputs = BTreeSet::new();
        let mut names = BTreeSet::new();
        let last = pipeline.stages.len().saturating_sub(1);
        for (i, stage) in pipeline.stages.iter().enumerate() {
            let at = format!("{base}/stages/{i}");
            if let Some(n) = &stage.name
                && !names.insert(n.clone())
            {
                self.error(
                    &format!("{at}/name"),
                    format!("stage name `{n}` is used twice"),
                );
            }
            self.stage(&at, stage, i == last, &mut outputs);
        }
        if pipeline.sinks.is_empty() {
            self.error(
                &format!("{base}/sinks"),
                "a pipeline needs at least one sink",
            );
        }
        let mut sink_names = BTreeSet::new();
        for (i, sink) in pipeline.sinks.iter().enumerate() {
            let at = format!("{base}/sinks/{i}");
            let endpoint = EndpointDef {
                plugin: sink.plugin.clone(),
                options: sink.options.clone(),
            };
            self.endpoint(&at, &endpoint, Role::Sink);
            let sink_name = sink.name.clone().unwrap_or_else(|| sink.plugin.clone());
            if !sink_names.insert(sink_name.clone()) {
                self.error(
                    &format!("{at}/name"),
                    format!("two sinks are named `{sink_name}`; give each a `name`"),
                );
            }
            if let Some(batch) = &sink.batch {
                self.batch(&format!("{at}/batch"), batch);
            }
            for (j, route) in sink.routes.iter().flatten().enumerate() {
                if !outputs.contains(route) {
                    self.error(
                        &format!("{at}/routes/{j}"),
                        format!(
                            "no route stage has an output `{route}`; outputs: {}",
                            list(outputs.iter().map(String::as_str))
                        ),
                    );
                }
            }
        }
    }

    fn endpoint(&mut self, pointer: &str, endpoint: &EndpointDef, role: Role) {
        let Some(metadata) = self.resolve_plugin(pointer, &endpoint.plugin) else {
            return;
        };
        let (schema, word) = match role {
            Role::Source => (metadata.events.source.clone(), "source"),
            Role::Sink => (metadata.events.sink.clone(), "sink"),
        };
        let Some(schema) = schema else {
            self.error(
                &format!("{pointer}/plugin"),
                format!("plugin `{}` is not an event {word}", metadata.id),
            );
            return;
        };
        let options = if endpoint.options.is_null() {
            Value::Object(Default::default())
        } else {
            endpoint.options.clone()
        };
        self.check_schema(
            &format!("{pointer}/options"),
            &format!("{}\u{0}{word}", metadata.id),
            &schema,
            &options,
            false,
            &format!("{word} options of `{}`", metadata.id),
        );
    }

    fn stage(&mut self, at: &str, stage: &StageDef, is_last: bool, outputs: &mut BTreeSet<String>) {
        let kinds = [
            ("filter", stage.filter.is_some()),
            ("route", stage.route.is_some()),
            ("transform", stage.transform.is_some()),
            ("dedupe", stage.dedupe.is_some()),
            ("batch", stage.batch.is_some()),
        ];
        let set: Vec<&str> = kinds
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect();
        if set.len() != 1 {
            self.error(
                at,
                format!(
                    "a stage is exactly one of filter, route, transform, dedupe, batch; this one is {}",
                    if set.is_empty() { "none".to_string() } else { set.join(" and ") }
                ),
            );
            return;
        }
        if let Some(filter) = &stage.filter {
            self.expression(&format!("{at}/filter"), filter);
        }
        if let Some(route) = &stage.route {
            for (j, arm) in route.routes.iter().enumerate() {
                self.expression(&format!("{at}/route/routes/{j}/when"), &arm.when);
                if !outputs.insert(arm.name.clone()) {
                    self.error(
                        &format!("{at}/route/routes/{j}/name"),
                        format!("route output `{}` is declared twice", arm.name),
                    );
                }
            }
            match route.unmatched.as_str() {
                "drop" | "dead_letter" => {}
                other => {
                    outputs.insert(other.to_string());
                }
            }
        }
        if let Some(t) = &stage.transform {
            let at = format!("{at}/transform");
            self.step_call(
                &at,
                &t.plugin,
                &t.action,
                &t.config,
                &format!("{at}/config"),
            );
        }
        if let Some(d) = &stage.dedupe {
            if let Some(key) = &d.key {
                self.expression(&format!("{at}/dedupe/key"), key);
            }
            if d.window.is_zero() {
                self.error(
                    &format!("{at}/dedupe/window"),
                    "the window must be longer than zero",
                );
            }
            if let Some(store) = &d.store
                && store != "memory"
                && store != "store"
            {
                let pointer = format!("{at}/dedupe/store");
                if let Some(metadata) = self.resolve_plugin(&pointer, store) {
                    for action in ["get", "set"] {
                        if metadata.action(action).is_none() {
                            self.error(
                                &pointer,
                                format!(
                                    "plugin `{}` has no `{action}` action, so it cannot keep dedupe keys; use `memory`, `store` or a cache plugin such as redis-connector",
                                    metadata.id
                                ),
                            );
                        }
                    }
                }
            }
        }
        if let Some(batch) = &stage.batch {
            if !is_last {
                self.error(at, "a `batch` stage must be the last stage");
            }
            self.batch(&format!("{at}/batch"), batch);
        }
    }

    fn batch(&mut self, at: &str, batch: &crate::definition::BatchSpec) {
        if batch.count == 0 || batch.count > crate::pipeline::MAX_BATCH {
            self.error(
                &format!("{at}/count"),
                format!("`count` must be from 1 to {}", crate::pipeline::MAX_BATCH),
            );
        }
        if batch.bytes == 0 {
            self.error(&format!("{at}/bytes"), "`bytes` must be at least 1");
        }
    }

    fn expression(&mut self, at: &str, text: &str) {
        if let Err(e) = Expr::compile(text) {
            self.error(at, e);
        }
    }
}
