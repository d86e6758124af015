//! Event pipelines: events from a source, through stages, into sinks, acknowledged only
//! once written.
//!
//! ```text
//!  source ──▶ [bounded] ──▶ stages: filter · route · transform · dedupe ──▶ [bounded] ──▶ sink A ─┐
//!    ▲                          │ rejected                                └─▶ [bounded] ──▶ sink B ─┤
//!    │                          ▼                                                                   │
//!    │                     dead letter sink ◀── events a sink still failed after its retries ◀──────┘
//!    └──── ack / retry / reject, once every sink an event went to has answered
//! ```
//!
//! ## Delivery
//!
//! At least once. A delivery is acknowledged to its source only when every sink it was
//! routed to confirmed it (or it was filtered out, or found a duplicate); it is rejected
//! (NATS `term`, RabbitMQ `reject`) only after the dead letter sink confirmed its dead
//! letter; anything else — a sink and the dead letter sink both failing, a stop before it
//! was written — hands it back to the source, which delivers it again. Nothing is
//! acknowledged that was not written.
//!
//! ## Backpressure
//!
//! At most `max_in_flight` deliveries (10,000 by default) are between the source and their
//! settlement; the source is not read while that many are. Stages and sinks are joined by
//! bounded queues. Memory is bounded by `max_in_flight` events, whatever the rates.
//!
//! ## Concurrency
//!
//! Events go through the stages one at a time unless `concurrency` says more; a transform
//! that calls a remote service then works on that many events at once. Sinks write their
//! batches as they fill, each sink on its own task.
//!
//! ## Stages
//!
//! - `filter`: an [expression](expr) over the event; false → acknowledged and discarded.
//! - `route`: named outputs with conditions, tried in order, the first that holds wins;
//!   `unmatched` names the output for the rest, or `drop`, or `dead_letter`. A sink takes the
//!   outputs it lists (every event when it lists none).
//! - `transform`: a plugin action called with the event's body (JSON; a plugin taking
//!   records gets a one-row table); its answer is the new body (a one-row table becomes its
//!   row). A failure of a temporary kind is retried by the source (the delivery is handed
//!   back); a permanent one dead-letters the event.
//! - `dedupe`: an idempotent consumer by key ([`dedupe`] module): a duplicate within the
//!   window is acknowledged and discarded.
//! - `batch`: how sinks group events (count, bytes of bodies, linger).
//!
//! A stage that needs the body as JSON parses it once; a body that is not JSON is rejected
//! to the dead letter sink with the parser's reason.
//!
//! ## Sinks and failures
//!
//! Each sink writes batches through [`EventSink::write`], with its retry policy (the
//! workflow's [`RetrySpec`]): a failed write is tried again after the policy's wait (or the
//! error's retry-after); when a sink reports some events of a batch failed, only those are
//! tried again. Permanent failures, and events still failing when the attempts run out, go to
//! the dead letter sink ([`dead_letter`] module, with the original body, the error, the
//! stage, the attempts and timestamps), from which [`dead_letter::Replay`] moves them back.
//!
//! ## Metrics
//!
//! Per stage and sink: received, sent, errors, discarded, dead-lettered, latency
//! ([`PipelineMetrics`]), readable while it runs ([`PipelineHandle::metrics`]) and returned
//! when it ends.

pub mod dead_letter;
pub mod dedupe;
pub mod expr;
mod metrics;
mod runtime;

use std::sync::Arc;
use std::time::Duration;

use kernelize_core::event::{EventSink, EventSource};
use kernelize_core::{Error, ErrorKind, PluginManager, Result};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use dedupe::{DedupeStore, MemoryDedupe, PluginDedupe, StoreDedupe};
pub use expr::Expr;
pub use metrics::{PipelineMetrics, StageMetrics};

use crate::definition::{BatchSpec, PipelineDef, RetrySpec, WorkflowFile};
use crate::store::Store;

/// Most events in one sink write.
pub const MAX_BATCH: usize = 100_000;

/// Where unmatched events of a route go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    /// To this output.
    Output(String),
    /// Acknowledged and discarded.
    Drop,
    /// To the dead letter sink.
    DeadLetter,
}

impl Unmatched {
    /// `drop`, `dead_letter`, or an output name.
    pub fn parse(text: &str) -> Self {
        match text {
            "drop" => Unmatched::Drop,
            "dead_letter" => Unmatched::DeadLetter,
            other => Unmatched::Output(other.to_string()),
        }
    }
}

/// One stage of a pipeline.
pub struct Stage {
    name: String,
    kind: StageKind,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("kind", &self.kind.name())
            .finish()
    }
}

pub(crate) enum StageKind {
    Filter(Expr),
    Route {
        arms: Vec<(String, Expr)>,
        unmatched: Unmatched,
    },
    Transform {
        manager: PluginManager,
        plugin: String,
        action: String,
        config: Value,
    },
    Dedupe {
        key: Option<Expr>,
        window: Duration,
        lease: Duration,
        scope: Option<String>,
        store: Arc<dyn DedupeStore>,
    },
}

impl StageKind {
    fn name(&self) -> &'static str {
        match self {
            StageKind::Filter(_) => "filter",
            StageKind::Route { .. } => "route",
            StageKind::Transform { .. } => "transform",
            StageKind::Dedupe { .. } => "dedupe",
        }
    }
}

fn compile(text: &str) -> Result<Expr> {
    Expr::compile(text).map_err(|e| Error::new(ErrorKind::ConfigInvalid, e))
}

impl Stage {
    /// Keeps the events for which `condition` holds.
    pub fn filter(name: impl Into<String>, condition: &str) -> Result<Self> {
        Ok(Stage {
            name: name.into(),
            kind: StageKind::Filter(compile(condition)?),
        })
    }

    /// Sends each event to the first of `arms` (output, condition) that holds.
    pub fn route(
        name: impl Into<String>,
        arms: &[(&str, &str)],
        unmatched: Unmatched,
    ) -> Result<Self> {
        let arms = arms
            .iter()
            .map(|(output, when)| Ok((output.to_string(), compile(when)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Stage {
            name: name.into(),
            kind: StageKind::Route { arms, unmatched },
        })
    }

    /// Replaces each event's body with what `action` of the active plugin `plugin` returns.
    pub fn transform(
        name: impl Into<String>,
        manager: PluginManager,
        plugin: impl Into<String>,
        action: impl Into<String>,
        config: Value,
    ) -> Self {
        Stage {
            name: name.into(),
            kind: StageKind::Transform {
                manager,
                plugin: plugin.into(),
                action: action.into(),
                config,
            },
        }
    }

    /// Drops events whose key (`key`, an expression; the event's own key when `None`) was
    /// processed within `window`, keeping keys in `store`.
    pub fn dedupe(
        name: impl Into<String>,
        key: Option<&str>,
        window: Duration,
        store: Arc<dyn DedupeStore>,
    ) -> Result<Self> {
        Ok(Stage {
            name: name.into(),
            kind: StageKind::Dedupe {
                key: key.map(compile).transpose()?,
                window,
                lease: Duration::from_secs(300),
                scope: None,
                store,
            },
        })
    }

    /// Sets the namespace of a dedupe stage's keys (the pipeline's name by default).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        if let StageKind::Dedupe { scope: s, .. } = &mut self.kind {
            *s = Some(scope.into());
        }
        self
    }

    /// Sets how long a dedupe stage's claim on a key in flight lasts (five minutes by
    /// default): a process that dies holding it delays that key's redelivery this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        if let StageKind::Dedupe { lease: l, .. } = &mut self.kind {
            *l = lease;
        }
        self
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One sink of a pipeline.
pub struct Sink {
    name: String,
    sink: Arc<dyn EventSink>,
    routes: Option<Vec<String>>,
    batch: Option<BatchSpec>,
    retry: RetrySpec,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// A sink named `name` writing through `sink`, taking every event, retried three times.
    pub fn new(name: impl Into<String>, sink: Arc<dyn EventSink>) -> Self {
        Sink {
            name: name.into(),
            sink,
            routes: None,
            batch: None,
            retry: RetrySpec::default(),
        }
    }

    /// Takes only the events routed to these outputs.
    pub fn routes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, routes: I) -> Self {
        self.routes = Some(routes.into_iter().map(Into::into).collect());
        self
    }

    /// Groups events into writes this way (the pipeline's batching by default).
    pub fn batch(mut self, batch: BatchSpec) -> Self {
        self.batch = Some(batch);
        self
    }

    /// Retries failed writes this way.
    pub fn retry(mut self, retry: RetrySpec) -> Self {
        self.retry = retry;
        self
    }
}

/// A pipeline ready to run; build one with [`Pipeline::builder`] or
/// [`Pipeline::from_definition`].
pub struct Pipeline {
    name: String,
    source: Box<dyn EventSource>,
    stages: Vec<Stage>,
    sinks: Vec<Sink>,
    dead_letter: Option<Arc<dyn EventSink>>,
    batch: BatchSpec,
    max_in_flight: usize,
    concurrency: usize,
    owner: String,
}

/// The most events [`PipelineBuilder::concurrency`] lets through the stages at once.
pub const MAX_CONCURRENCY: usize = 1024;

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("stages", &self.stages)
            .field("sinks", &self.sinks)
            .field("dead_letter", &self.dead_letter.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Pipeline`] from Rust.
///
/// ```
/// use std::sync::Arc;
/// use kernelize_core::event::channel::channel;
/// use kernelize_core::{Event, Payload};
/// use kernelize_workflow::pipeline::{Pipeline, Sink, Stage, Unmatched};
/// # use kernelize_core::{event::{EventSink, WriteReport}, Result};
/// # struct Print;
/// # #[async_trait::async_trait]
/// # impl EventSink for Print {
/// #     async fn write(&self, _events: &[Event]) -> Result<WriteReport> { Ok(WriteReport::all_written()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let (tx, source) = channel(100);
/// let pipeline = Pipeline::builder("orders", Box::new(source))
///     .stage(Stage::filter("paid", "event.status == 'paid'")?)
///     .stage(Stage::route("size", &[("big", "event.amount > 1000")], Unmatched::Output("small".into()))?)
///     .sink(Sink::new("big_orders", Arc::new(Print)).routes(["big"]))
///     .build()?;
/// tx.send(Event::new("1", Payload::json(serde_json::json!({"status": "paid", "amount": 5000})))).await?;
/// tx.close();
/// let metrics = pipeline.run(tokio_util::sync::CancellationToken::new()).await?;
/// assert_eq!(metrics.stage("big_orders").map(|s| s.sent), Some(1));
/// # Ok(()) }
/// ```
pub struct PipelineBuilder {
    pipeline: Pipeline,
}

impl std::fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pipeline.fmt(f)
    }
}

impl PipelineBuilder {
    /// Adds a stage after the others.
    pub fn stage(mut self, stage: Stage) -> Self {
        self.pipeline.stages.push(stage);
        self
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: Sink) -> Self {
        self.pipeline.sinks.push(sink);
        self
    }

    /// Sets the dead letter sink.
    pub fn dead_letter(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.pipeline.dead_letter = Some(sink);
        self
    }

    /// Sets how sinks group events by default.
    pub fn batch(mut self, batch: BatchSpec) -> Self {
        self.pipeline.batch = batch;
        self
    }

    /// Sets the most deliveries in flight at once.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.pipeline.max_in_flight = n.max(1);
        self
    }

    /// Sets how many events go through the stages at once (1 by default, at most
    /// [`MAX_CONCURRENCY`]). More than one lets transforms that wait on a remote service
    /// overlap; events may then reach the sinks in another order than the source's.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.pipeline.concurrency = n.clamp(1, MAX_CONCURRENCY);
        self
    }

    /// Names this process in dedupe claims (a random name by default).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.pipeline.owner = owner.into();
        self
    }

    /// Checks the pipeline: at least one sink, unique names, routes sinks take exist,
    /// batch sizes in range.
    pub fn build(self) -> Result<Pipeline> {
        let p = &self.pipeline;
        let bad = |m: String| {
            Err(Error::new(ErrorKind::ConfigInvalid, m).with_context("pipeline", &p.name))
        };
        if p.sinks.is_empty() {
            return bad("a pipeline needs at least one sink".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for name in p
            .stages
            .iter()
            .map(|s| &s.name)
            .chain(p.sinks.iter().map(|s| &s.name))
        {
            if !names.insert(name.clone()) {
                return bad(format!("two stages or sinks are named `{name}`"));
            }
        }
        let mut outputs = std::collections::BTreeSet::new();
        for stage in &p.stages {
            if let StageKind::Route { arms, unmatched } = &stage.kind {
                outputs.extend(arms.iter().map(|(o, _)| o.clone()));
                if let Unmatched::Output(o) = unmatched {
                    outputs.insert(o.clone());
                }
            }
        }
        for sink in &p.sinks {
            for route in sink.routes.iter().flatten() {
                if !outputs.contains(route) {
                    return bad(format!(
                        "sink `{}` takes output `{route}`, which no route stage has",
                        sink.name
                    ));
                }
            }
            let batch = sink.batch.as_ref().unwrap_or(&p.batch);
            if batch.count == 0 || batch.count > MAX_BATCH || batch.bytes == 0 {
                return bad(format!(
                    "sink `{}`: a batch holds 1 to {MAX_BATCH} events and at least 1 byte",
                    sink.name
                ));
            }
        }
        Ok(self.pipeline)
    }
}

/// A running pipeline's window: its counters while it runs.
#[derive(Clone)]
pub struct PipelineHandle {
    counters: Arc<metrics::Counters>,
}

impl std::fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHandle")
            .field("pipeline", &self.counters.pipeline)
            .finish()
    }
}

impl PipelineHandle {
    /// The counters now.
    pub fn metrics(&self) -> PipelineMetrics {
        self.counters.snapshot()
    }
}

impl Pipeline {
    /// A pipeline named `name` reading `source`; add stages and sinks to it.
    pub fn builder(name: impl Into<String>, source: Box<dyn EventSource>) -> PipelineBuilder {
        PipelineBuilder {
            pipeline: Pipeline {
                name: name.into(),
                source,
                stages: Vec::new(),
                sinks: Vec::new(),
                dead_letter: None,
                batch: BatchSpec::default(),
                max_in_flight: 10_000,
                concurrency: 1,
                owner: crate::engine::default_owner(),
            },
        }
    }

    /// The pipeline `name` of a workflow file: its plugins installed and activated in
    /// `manager` (as [`crate::Engine::prepare`] does for workflows), its source and sinks
    /// opened. `store` keeps dedupe keys of stages with `store: store`.
    pub async fn from_definition(
        file: &WorkflowFile,
        name: &str,
        manager: &PluginManager,
        store: Option<Arc<dyn Store>>,
    ) -> Result<Pipeline> {
        let def = file.pipelines.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no pipeline `{name}`; the file's pipelines: {}",
                    if file.pipelines.is_empty() {
                        "none".to_string()
                    } else {
                        file.pipelines
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )
        })?;
        runtime::prepare_plugins(file, def, manager).await?;
        let context = |e: Error| e.with_context("pipeline", name);
        let source = manager
            .open_source(&def.source.plugin, options(&def.source.options))
            .await
            .map_err(context)?;
        Self::assemble(name, def, source, manager, store)
            .await
            .map_err(context)
    }

    /// Like [`Pipeline::from_definition`], with `source` in place of the definition's own
    /// (a [`dead_letter::Replay`], a test channel).
    pub async fn from_definition_with_source(
        file: &WorkflowFile,
        name: &str,
        manager: &PluginManager,
        store: Option<Arc<dyn Store>>,
        source: Box<dyn EventSource>,
    ) -> Result<Pipeline> {
        let def = file.pipelines.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no pipeline `{name}` in the file"),
            )
        })?;
        runtime::prepare_plugins(file, def, manager).await?;
        Self::assemble(name, def, source, manager, store)
            .await
            .map_err(|e| e.with_context("pipeline", name))
    }

    async fn assemble(
        name: &str,
        def: &PipelineDef,
        source: Box<dyn EventSource>,
        manager: &PluginManager,
        store: Option<Arc<dyn Store>>,
    ) -> Result<Pipeline> {
        let mut builder = Pipeline::builder(name, source);
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for (i, stage) in def.stages.iter().enumerate() {
            let at = |e: Error| e.with_context("stage", i.to_string());
            let kind = runtime::stage_kind_name(stage);
            let n = counts.entry(kind).or_insert(0);
            *n += 1;
            let stage_name = stage.name.clone().unwrap_or_else(|| format!("{kind}#{n}"));
            if let Some(filter) = &stage.filter {
                builder = builder.stage(Stage::filter(stage_name, filter).map_err(at)?);
            } else if let Some(route) = &stage.route {
                let arms: Vec<(&str, &str)> = route
                    .routes
                    .iter()
                    .map(|a| (a.name.as_str(), a.when.as_str()))
                    .collect();
                builder = builder.stage(
                    Stage::route(stage_name, &arms, Unmatched::parse(&route.unmatched))
                        .map_err(at)?,
                );
            } else if let Some(t) = &stage.transform {
                builder = builder.stage(Stage::transform(
                    stage_name,
                    manager.clone(),
                    &t.plugin,
                    &t.action,
                    t.config.clone(),
                ));
            } else if let Some(d) = &stage.dedupe {
                let keys: Arc<dyn DedupeStore> = match d.store.as_deref() {
                    None | Some("memory") => Arc::new(MemoryDedupe::default()),
                    Some("store") => match &store {
                        Some(s) => Arc::new(StoreDedupe(s.clone())),
                        None => {
                            return Err(at(Error::new(
                                ErrorKind::ConfigInvalid,
                                "`store: store` keeps dedupe keys in the run store, and none was given",
                            )));
                        }
                    },
                    Some(plugin) => Arc::new(PluginDedupe::new(manager.clone(), plugin)),
                };
                let mut s =
                    Stage::dedupe(stage_name, d.key.as_deref(), d.window, keys).map_err(at)?;
                if let Some(scope) = &d.scope {
                    s = s.scope(scope);
                }
                if let Some(lease) = d.lease {
                    s = s.lease(lease);
                }
                builder = builder.stage(s);
            } else if let Some(batch) = &stage.batch {
                builder = builder.batch(batch.clone());
            } else {
                return Err(at(Error::new(
                    ErrorKind::ConfigInvalid,
                    "a stage is one of filter, route, transform, dedupe, batch",
                )));
            }
        }
        for sink in &def.sinks {
            let name = sink.name.clone().unwrap_or_else(|| sink.plugin.clone());
            let opened = manager
                .open_sink(&sink.plugin, options(&sink.options))
                .await
                .map_err(|e| e.with_context("sink", &name))?;
            let mut s = Sink::new(name, opened);
            if let Some(routes) = &sink.routes {
                s = s.routes(routes.clone());
            }
            if let Some(batch) = &sink.batch {
                s = s.batch(batch.clone());
            }
            if let Some(retry) = &sink.retry {
                s = s.retry(retry.clone());
            }
            builder = builder.sink(s);
        }
        if let Some(dead) = &def.dead_letter {
            let opened = manager
                .open_sink(&dead.plugin, options(&dead.options))
                .await
                .map_err(|e| e.with_context("dead_letter", &dead.plugin))?;
            builder = builder.dead_letter(opened);
        }
        if let Some(n) = def.max_in_flight {
            builder = builder.max_in_flight(n);
        }
        if let Some(n) = def.concurrency {
            builder = builder.concurrency(n);
        }
        builder.build()
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until the source ends or `cancel` fires, then lets what is in flight finish
    /// (writes and settlements; retries waiting are cut short and handed back to the
    /// source), and returns the counters. `Err` when the source fails for good (a
    /// permanent error: a stream that does not exist); temporary source errors are logged,
    /// counted and retried.
    pub async fn run(self, cancel: CancellationToken) -> Result<PipelineMetrics> {
        let (handle, done) = self.start(cancel);
        let result = done.await;
        let metrics = handle.metrics();
        result.map(|()| metrics)
    }

    /// Starts the pipeline on the current runtime: a handle to watch it and a future that
    /// ends with it (see [`Pipeline::run`]).
    pub fn start(
        self,
        cancel: CancellationToken,
    ) -> (
        PipelineHandle,
        impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        runtime::start(self, cancel)
    }
}

fn options(value: &Value) -> Value {
    if value.is_null() {
        Value::Object(Default::default())
    } else {
        value.clone()
    }
}
