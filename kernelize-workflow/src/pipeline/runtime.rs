//! The tasks of a running pipeline: source, stages, sinks, dead letters, settlement.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kernelize_core::event::{AckHandle, EventSink, Settlement};
use kernelize_core::{Call, Error, ErrorKind, Event, Payload, PluginManager, Result};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::dead_letter::{self, Failure, REPLAY_SINK_HEADER};
use super::dedupe::DedupeStore;
use super::expr::{self, Expr};
use super::metrics::{Counters, SettleCounters, StageCounters};
use super::{Pipeline, PipelineHandle, Stage, StageKind, Unmatched};
use crate::definition::{BatchSpec, PipelineDef, RetrySpec, StageDef, WorkflowFile};
use crate::store::KeyClaim;

/// How long a delivery handed back to its source waits first, when nothing says otherwise.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Batching of the dead letter sink.
const DEAD_LETTER_BATCH: BatchSpec = BatchSpec {
    count: 100,
    bytes: 4 * 1024 * 1024,
    linger: Duration::from_millis(50),
};

pub(crate) fn stage_kind_name(stage: &StageDef) -> &'static str {
    if stage.filter.is_some() {
        "filter"
    } else if stage.route.is_some() {
        "route"
    } else if stage.transform.is_some() {
        "transform"
    } else if stage.dedupe.is_some() {
        "dedupe"
    } else {
        "batch"
    }
}

/// Installs the file's plugin instances and activates those the pipeline names.
pub(crate) async fn prepare_plugins(
    file: &WorkflowFile,
    def: &PipelineDef,
    manager: &PluginManager,
) -> Result<()> {
    let mut needed = BTreeSet::new();
    needed.insert(def.source.plugin.clone());
    for sink in &def.sinks {
        needed.insert(sink.plugin.clone());
    }
    if let Some(d) = &def.dead_letter {
        needed.insert(d.plugin.clone());
    }
    for stage in &def.stages {
        if let Some(t) = &stage.transform {
            needed.insert(t.plugin.clone());
        }
        if let Some(store) = stage.dedupe.as_ref().and_then(|d| d.store.as_deref())
            && store != "memory"
            && store != "store"
        {
            needed.insert(store.to_string());
        }
    }
    crate::engine::prepare_plugins(manager, file, needed).await
}

// --- settlement ------------------------------------------------------------------------------

/// A dedupe claim to settle with the delivery.
struct HeldKey {
    store: Arc<dyn DedupeStore>,
    scope: String,
    key: String,
    owner: String,
    window: Duration,
}

/// One delivery on its way: settled with its source when the last part of it ends.
struct Ticket {
    ack: Mutex<Option<AckHandle>>,
    remaining: AtomicUsize,
    written: AtomicBool,
    dead: AtomicBool,
    failed: AtomicBool,
    retry_delay: Mutex<Option<Duration>>,
    held: Mutex<Option<HeldKey>>,
    counters: Arc<Counters>,
    _permit: OwnedSemaphorePermit,
}

/// How one part of a delivery (its way through one sink, or the stages) ended.
enum Part {
    Written,
    DeadLettered,
    /// Neither written nor dead-lettered: hand the delivery back.
    Failed(Option<Duration>),
    Discarded,
}

impl Ticket {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn finish(self: Arc<Self>, part: Part) {
        match part {
            Part::Written => self.written.store(true, Ordering::SeqCst),
            Part::DeadLettered => self.dead.store(true, Ordering::SeqCst),
            Part::Failed(delay) => {
                self.failed.store(true, Ordering::SeqCst);
                let mut d = Self::lock(&self.retry_delay);
                *d = match (*d, delay) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            Part::Discarded => {}
        }
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.settle().await;
        }
    }

    async fn settle(&self) {
        let failed = self.failed.load(Ordering::SeqCst);
        let written = self.written.load(Ordering::SeqCst);
        let dead = self.dead.load(Ordering::SeqCst);
        let settlement = if failed {
            Settlement::Retry {
                delay: Some(Self::lock(&self.retry_delay).unwrap_or(RETRY_DELAY)),
            }
        } else if written || !dead {
            Settlement::Ack
        } else {
            Settlement::Reject
        };
        let held = Self::lock(&self.held).take();
        if let Some(h) = held {
            let window = matches!(settlement, Settlement::Ack).then_some(h.window);
            if let Err(e) = h.store.settle(&h.scope, &h.key, &h.owner, window).await {
                tracing::warn!(key = %h.key, error = %e, "could not settle a dedupe key");
            }
        }
        let ack = Self::lock(&self.ack).take();
        if let Some(ack) = ack {
            let settled: &SettleCounters = &self.counters.settled;
            match ack.settle(settlement).await {
                Ok(()) => match settlement {
                    Settlement::Ack => settled.acked(),
                    Settlement::Reject => settled.rejected(),
                    Settlement::Retry { .. } => settled.retried(),
                },
                Err(e) => {
                    settled.failed();
                    tracing::warn!(error = %e, "the source did not take a settlement; it will deliver the event again");
                }
            }
        }
    }
}

// --- items --------------------------------------------------------------------------------

/// An event between stages.
struct Item {
    event: Event,
    /// The body as JSON once a stage needed it, shared with expressions without copying;
    /// the event's payload is empty meanwhile and gets it back when the item leaves the
    /// stages ([`Item::settle_body`]).
    json: Option<Arc<Value>>,
    /// `json` holds only the fields the expressions read; the payload still holds the
    /// body as received.
    partial: bool,
    /// The body as received, for dead letters.
    original: Payload,
    route: Option<String>,
    ticket: Arc<Ticket>,
}

/// An event on its way to a sink or the dead letter sink.
struct Outgoing {
    event: Event,
    original: Payload,
    ticket: Arc<Ticket>,
}

/// What the stages made of an event.
enum Verdict {
    Next,
    Discard,
    Defer(Duration),
    Reject(Failure),
}

struct Lane {
    name: String,
    routes: Option<Vec<String>>,
    tx: mpsc::Sender<Outgoing>,
}

struct Shared {
    pipeline: String,
    owner: String,
    stages: Vec<(Stage, Arc<StageCounters>)>,
    lanes: Vec<Lane>,
    dead: Option<mpsc::Sender<Outgoing>>,
    source: Arc<StageCounters>,
    last_purge: Mutex<Instant>,
    /// The top-level body fields the stages' expressions read; `None` when one reads the
    /// body whole.
    fields: Option<BTreeSet<String>>,
}

/// The top-level fields of the body that the stages' expressions read, all together.
fn fields_read(stages: &[(Stage, Arc<StageCounters>)]) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for (stage, _) in stages {
        let exprs: Vec<&Expr> = match &stage.kind {
            StageKind::Filter(e) => vec![e],
            StageKind::Route { arms, .. } => arms.iter().map(|(_, e)| e).collect(),
            StageKind::Dedupe { key: Some(e), .. } => vec![e],
            StageKind::Dedupe { key: None, .. } | StageKind::Transform { .. } => vec![],
        };
        for e in exprs {
            all.extend(e.top_fields()?);
        }
    }
    Some(all)
}

pub(super) fn start(
    pipeline: Pipeline,
    cancel: CancellationToken,
) -> (
    PipelineHandle,
    impl std::future::Future<Output = Result<()>> + Send + 'static,
) {
    let Pipeline {
        name,
        mut source,
        stages,
        sinks,
        dead_letter,
        batch,
        max_in_flight,
        concurrency,
        owner,
    } = pipeline;
    let source_counters = Arc::new(StageCounters::default());
    let mut parts = vec![(name.clone(), "source", source_counters.clone())];
    let stages: Vec<(Stage, Arc<StageCounters>)> = stages
        .into_iter()
        .map(|s| {
            let c = Arc::new(StageCounters::default());
            parts.push((s.name.clone(), s.kind.name(), c.clone()));
            (s, c)
        })
        .collect();
    let sink_counters: Vec<Arc<StageCounters>> = sinks
        .iter()
        .map(|s| {
            let c = Arc::new(StageCounters::default());
            parts.push((s.name.clone(), "sink", c.clone()));
            c
        })
        .collect();
    let dead_counters = Arc::new(StageCounters::default());
    if dead_letter.is_some() {
        parts.push(("dead_letter".into(), "dead_letter", dead_counters.clone()));
    }
    let counters = Arc::new(Counters {
        pipeline: name.clone(),
        parts,
        settled: SettleCounters::default(),
    });
    let handle = PipelineHandle {
        counters: counters.clone(),
    };

    let mut tasks = Vec::new();
    // Dead letters.
    let dead_tx = dead_letter.map(|sink| {
        let (tx, rx) = mpsc::channel(DEAD_LETTER_BATCH.count * 2);
        let writer = Writer {
            name: "dead_letter".into(),
            pipeline: name.clone(),
            sink,
            batch: DEAD_LETTER_BATCH,
            retry: RetrySpec {
                max_attempts: 5,
                initial_interval: Duration::from_millis(500),
                backoff_coefficient: 2.0,
                max_interval: Duration::from_secs(10),
                non_retryable: Vec::new(),
            },
            counters: dead_counters,
            dead: None,
            is_dead_letter: true,
            cancel: cancel.clone(),
        };
        tasks.push(tokio::spawn(writer.run(rx)));
        tx
    });
    // Sinks.
    let mut lanes = Vec::new();
    for (sink, c) in sinks.into_iter().zip(sink_counters) {
        let b = sink.batch.clone().unwrap_or_else(|| batch.clone());
        let (tx, rx) = mpsc::channel(b.count.saturating_mul(2).clamp(16, 20_000));
        lanes.push(Lane {
            name: sink.name.clone(),
            routes: sink.routes.clone(),
            tx,
        });
        let writer = Writer {
            name: sink.name,
            pipeline: name.clone(),
            sink: sink.sink,
            batch: b,
            retry: sink.retry,
            counters: c,
            dead: dead_tx.clone(),
            is_dead_letter: false,
            cancel: cancel.clone(),
        };
        tasks.push(tokio::spawn(writer.run(rx)));
    }
    let fields = fields_read(&stages);
    let shared = Arc::new(Shared {
        fields,
        pipeline: name.clone(),
        owner,
        stages,
        lanes,
        dead: dead_tx,
        source: source_counters.clone(),
        last_purge: Mutex::new(Instant::now()),
    });

    let (item_tx, item_rx) = mpsc::channel::<Item>(max_in_flight.clamp(1, 1024));
    let processing = tokio::spawn(process(shared, item_rx, concurrency));
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let done = async move {
        let mut outcome = Ok(());
        let mut pause = Duration::from_millis(100);
        loop {
            let permit = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let received = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                r = source.receive(&cancel) => r,
            };
            match received {
                Ok(Some(delivery)) => {
                    pause = Duration::from_millis(100);
                    source_counters.received(1);
                    let ticket = Arc::new(Ticket {
                        ack: Mutex::new(Some(delivery.ack)),
                        remaining: AtomicUsize::new(1),
                        written: AtomicBool::new(false),
                        dead: AtomicBool::new(false),
                        failed: AtomicBool::new(false),
                        retry_delay: Mutex::new(None),
                        held: Mutex::new(None),
                        counters: counters.clone(),
                        _permit: permit,
                    });
                    let original = delivery.event.payload.clone();
                    let item = Item {
                        event: delivery.event,
                        json: None,
                        partial: false,
                        original,
                        route: None,
                        ticket,
                    };
                    if item_tx.send(item).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_temporary() || e.kind() == ErrorKind::Cancelled => {
                    if cancel.is_cancelled() {
                        break;
                    }
                    source_counters.error(1);
                    tracing::warn!(pipeline = %counters.pipeline, error = %e, "the source failed; trying again");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    source_counters.error(1);
                    outcome = Err(e.with_context("pipeline", &counters.pipeline));
                    break;
                }
            }
        }
        drop(item_tx);
        drop(source);
        let _ = processing.await;
        for task in tasks {
            let _ = task.await;
        }
        outcome
    };
    (handle, done)
}

// --- stages -------------------------------------------------------------------------------

async fn process(shared: Arc<Shared>, rx: mpsc::Receiver<Item>, concurrency: usize) {
    let items =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    items
        .for_each_concurrent(concurrency, |item| {
            let shared = shared.clone();
            async move { one(&shared, item).await }
        })
        .await;
}

async fn one(shared: &Shared, mut item: Item) {
    let verdict = run_stages(shared, &mut item).await;
    item.settle_body();
    match verdict {
        Verdict::Next => dispatch(shared, item).await,
        Verdict::Discard => item.ticket.finish(Part::Discarded).await,
        Verdict::Defer(delay) => item.ticket.finish(Part::Failed(Some(delay))).await,
        Verdict::Reject(failure) => {
            dead_letter(
                shared.dead.as_ref(),
                &shared.pipeline,
                item.event,
                item.original,
                item.ticket,
                failure,
            )
            .await
        }
    }
}

/// Sends a failed event to the dead letter sink; without one, hands it back to its source.
async fn dead_letter(
    dead: Option<&mpsc::Sender<Outgoing>>,
    pipeline: &str,
    event: Event,
    original: Payload,
    ticket: Arc<Ticket>,
    failure: Failure,
) {
    tracing::debug!(pipeline, stage = %failure.stage, event = %event.id, error = %failure.error, "event failed");
    match dead {
        Some(tx) => {
            let envelope = dead_letter::envelope(pipeline, &event, &original, &failure);
            let out = Outgoing {
                event: envelope,
                original: Payload::Empty,
                ticket,
            };
            if let Err(mpsc::error::SendError(out)) = tx.send(out).await {
                out.ticket.finish(Part::Failed(None)).await;
            }
        }
        None => {
            tracing::warn!(pipeline, stage = %failure.stage, event = %event.id, error = %failure.error, "event failed and the pipeline has no dead letter sink; the source will deliver it again");
            ticket.finish(Part::Failed(None)).await;
        }
    }
}

impl Item {
    /// The event's body as JSON for expressions, parsed once: of a body received as bytes
    /// only the `fields` expressions read (all of it when `fields` is `None`), the rest
    /// checked and skipped. A body that is not JSON is an error and is left as it was.
    fn body(&mut self, fields: Option<&BTreeSet<String>>) -> Result<Arc<Value>> {
        if let Some(body) = &self.json {
            return Ok(body.clone());
        }
        if let (Payload::Bytes(blob), Some(fields)) = (&self.event.payload, fields) {
            let parsed = expr::parse_fields(&blob.data, fields).map_err(not_json)?;
            let body = Arc::new(parsed);
            self.json = Some(body.clone());
            self.partial = true;
            return Ok(body);
        }
        let parsed = match std::mem::replace(&mut self.event.payload, Payload::Empty) {
            Payload::Json(v) => v,
            Payload::Bytes(blob) => match serde_json::from_slice::<Value>(&blob.data) {
                Ok(v) => v,
                Err(e) => {
                    self.event.payload = Payload::Bytes(blob);
                    return Err(not_json(e));
                }
            },
            other => match other.clone().into_json() {
                Ok(v) => v,
                Err(e) => {
                    self.event.payload = other;
                    return Err(e);
                }
            },
        };
        let body = Arc::new(parsed);
        self.json = Some(body.clone());
        Ok(body)
    }

    /// Takes the whole JSON body out for a stage that replaces it (copied only when an
    /// expression's value still holds it).
    fn take_body(&mut self) -> Result<Value> {
        if self.partial {
            self.json = None;
            self.partial = false;
        }
        self.body(None)?;
        Ok(self
            .json
            .take()
            .map(|b| Arc::try_unwrap(b).unwrap_or_else(|b| (*b).clone()))
            .unwrap_or(Value::Null))
    }

    /// Puts the JSON body back into the event, for the sinks; a body parsed in part stays
    /// as it was received.
    fn settle_body(&mut self) {
        if let Some(body) = self.json.take()
            && !std::mem::take(&mut self.partial)
        {
            self.event.payload =
                Payload::Json(Arc::try_unwrap(body).unwrap_or_else(|b| (*b).clone()));
        }
    }
}

fn not_json(e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("the event's body is not JSON: {e}"),
    )
}

async fn run_stages(shared: &Shared, item: &mut Item) -> Verdict {
    for (stage, counters) in &shared.stages {
        let started = Instant::now();
        counters.received(1);
        let verdict = run_stage(shared, stage, item).await;
        counters.latency(started.elapsed());
        match &verdict {
            Verdict::Next => counters.sent(1),
            Verdict::Discard => counters.discarded(1),
            Verdict::Defer(_) => counters.error(1),
            Verdict::Reject(_) => {
                counters.error(1);
                if shared.dead.is_some() {
                    counters.dead_lettered(1);
                }
            }
        }
        if !matches!(verdict, Verdict::Next) {
            return verdict;
        }
    }
    Verdict::Next
}

async fn run_stage(shared: &Shared, stage: &Stage, item: &mut Item) -> Verdict {
    let attempts = item.event.attempt;
    let reject = |error: Error| {
        Verdict::Reject(Failure {
            stage: stage.name.clone(),
            sink: None,
            error,
            attempts,
        })
    };
    match &stage.kind {
        StageKind::Filter(expr) => {
            match item
                .body(shared.fields.as_ref())
                .and_then(|body| expr.holds(&body, &item.event))
            {
                Ok(true) => Verdict::Next,
                Ok(false) => Verdict::Discard,
                Err(e) => reject(e),
            }
        }
        StageKind::Route { arms, unmatched } => {
            let body = match item.body(shared.fields.as_ref()) {
                Ok(body) => body,
                Err(e) => return reject(e),
            };
            for (output, expr) in arms {
                match expr.holds(&body, &item.event) {
                    Ok(true) => {
                        item.route = Some(output.clone());
                        return Verdict::Next;
                    }
                    Ok(false) => {}
                    Err(e) => return reject(e),
                }
            }
            match unmatched {
                Unmatched::Output(o) => {
                    item.route = Some(o.clone());
                    Verdict::Next
                }
                Unmatched::Drop => Verdict::Discard,
                Unmatched::DeadLetter => reject(Error::new(
                    ErrorKind::InvalidInput,
                    "no route matched the event",
                )),
            }
        }
        StageKind::Transform {
            manager,
            plugin,
            action,
            config,
        } => {
            let input = match item.take_body() {
                Ok(input) => input,
                Err(e) => return reject(e),
            };
            let call = Call::new(action, Payload::Json(input)).with_config(config.clone());
            match manager.call(plugin, call).await {
                Ok(output) => match transformed(output) {
                    Ok(p) => {
                        item.event.payload = p;
                        Verdict::Next
                    }
                    Err(e) => reject(e),
                },
                Err(e) if e.is_temporary() => {
                    tracing::warn!(stage = %stage.name, error = %e, "transform failed; the event will come again");
                    Verdict::Defer(e.retry_after().unwrap_or(RETRY_DELAY))
                }
                Err(e) => reject(e),
            }
        }
        StageKind::Dedupe {
            key,
            window,
            lease,
            scope,
            store,
        } => {
            let found = match key {
                Some(expr) => match item
                    .body(shared.fields.as_ref())
                    .and_then(|body| expr.key(&body, &item.event))
                {
                    Ok(k) => k,
                    Err(e) => return reject(e),
                },
                None => item.event.key.clone(),
            };
            let Some(found) = found else {
                return reject(Error::new(
                    ErrorKind::InvalidInput,
                    "the event has no dedupe key",
                ));
            };
            let scope = scope.clone().unwrap_or_else(|| shared.pipeline.clone());
            maybe_purge(shared, store.as_ref(), &scope).await;
            match store.claim(&scope, &found, &shared.owner, *lease).await {
                Ok(KeyClaim::New) => {
                    *Ticket::lock(&item.ticket.held) = Some(HeldKey {
                        store: store.clone(),
                        scope,
                        key: found,
                        owner: shared.owner.clone(),
                        window: *window,
                    });
                    Verdict::Next
                }
                Ok(KeyClaim::Done) => Verdict::Discard,
                Ok(KeyClaim::Pending) => Verdict::Defer(RETRY_DELAY),
                Err(e) => {
                    tracing::warn!(stage = %stage.name, error = %e, "the dedupe store failed; the event will come again");
                    Verdict::Defer(RETRY_DELAY)
                }
            }
        }
    }
}

async fn maybe_purge(shared: &Shared, store: &dyn DedupeStore, scope: &str) {
    let due = {
        let mut last = Ticket::lock(&shared.last_purge);
        if last.elapsed() >= Duration::from_secs(60) {
            *last = Instant::now();
            true
        } else {
            false
        }
    };
    if due && let Err(e) = store.purge(scope).await {
        tracing::warn!(error = %e, "could not purge expired dedupe keys");
    }
}

/// A transform's answer as the event's new body.
fn transformed(output: Payload) -> Result<Payload> {
    Ok(match output {
        Payload::Records(r) => {
            let mut rows = r.to_json_rows()?;
            if rows.len() == 1 {
                Payload::Json(rows.remove(0))
            } else {
                Payload::Json(Value::Array(rows))
            }
        }
        other => other,
    })
}

async fn dispatch(shared: &Shared, item: Item) {
    let only = item.event.headers.get(REPLAY_SINK_HEADER).cloned();
    let lanes: Vec<&Lane> = shared
        .lanes
        .iter()
        .filter(|lane| match &only {
            Some(sink) if shared.lanes.iter().any(|l| &l.name == sink) => &lane.name == sink,
            _ => match (&lane.routes, &item.route) {
                (None, _) => true,
                (Some(routes), Some(route)) => routes.contains(route),
                (Some(_), None) => false,
            },
        })
        .collect();
    if lanes.is_empty() {
        shared.source.discarded(1);
        item.ticket.finish(Part::Discarded).await;
        return;
    }
    item.ticket.remaining.store(lanes.len(), Ordering::SeqCst);
    let Item {
        event,
        original,
        ticket,
        ..
    } = item;
    // A copy for every lane but the last, which takes the event itself.
    let mut copies: Vec<Event> = (1..lanes.len()).map(|_| event.clone()).collect();
    copies.push(event);
    for (lane, e) in lanes.into_iter().zip(copies) {
        let out = Outgoing {
            event: e,
            original: original.clone(),
            ticket: ticket.clone(),
        };
        if let Err(mpsc::error::SendError(out)) = lane.tx.send(out).await {
            out.ticket.finish(Part::Failed(None)).await;
        }
    }
}

// --- sinks --------------------------------------------------------------------------------

struct Writer {
    name: String,
    pipeline: String,
    sink: Arc<dyn EventSink>,
    batch: BatchSpec,
    retry: RetrySpec,
    counters: Arc<StageCounters>,
    /// Where events that still fail go.
    dead: Option<mpsc::Sender<Outgoing>>,
    /// Whether this writes dead letters (what it writes is dead-lettered, not written, and
    /// what it cannot write is handed back to the source).
    is_dead_letter: bool,
    cancel: CancellationToken,
}

fn size_of(event: &Event) -> usize {
    match &event.payload {
        Payload::Bytes(b) => b.data.len(),
        Payload::Json(v) => estimate_json(v),
        Payload::Records(r) => r.batches().iter().map(|b| b.get_array_memory_size()).sum(),
        Payload::Empty => 0,
    }
}

fn estimate_json(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(estimate_json).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 3 + estimate_json(v))
                .sum::<usize>()
        }
    }
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Outgoing>) {
        loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut bytes = size_of(&first.event);
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + self.batch.linger;
            while batch.len() < self.batch.count && bytes < self.batch.bytes {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some(o) => {
                            bytes += size_of(&o.event);
                            batch.push(o);
                        }
                        None => break,
                    },
                    () = tokio::time::sleep_until(until) => break,
                }
            }
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<Outgoing>) {
        self.counters.received(batch.len() as u64);
        let mut events = Vec::with_capacity(batch.len());
        let mut rest = Vec::with_capacity(batch.len());
        for o in batch {
            events.push(o.event);
            rest.push((o.original, o.ticket));
        }
        let mut attempt = 1u32;
        let mut wait = self.retry.initial_interval;
        loop {
            let started = Instant::now();
            let result = self.sink.write(&events).await;
            self.counters.latency(started.elapsed());
            let mut failed: Vec<Option<Error>> = vec![None; events.len()];
            match result {
                Ok(report) => {
                    for (i, e) in report.failed {
                        if let Some(slot) = failed.get_mut(i) {
                            *slot = Some(e);
                        }
                    }
                }
                Err(e) => failed.iter_mut().for_each(|slot| *slot = Some(e.clone())),
            }
            let n_failed = failed.iter().filter(|f| f.is_some()).count();
            self.counters.sent((events.len() - n_failed) as u64);
            self.counters.error(n_failed as u64);
            let out_of_time =
                attempt >= self.retry.max_attempts.max(1) || self.cancel.is_cancelled();
            let mut again_events = Vec::new();
            let mut again_rest = Vec::new();
            let mut finished = Vec::new();
            let mut longest_after = None;
            for ((event, (original, ticket)), error) in events.into_iter().zip(rest).zip(failed) {
                match error {
                    None => finished.push(ticket.finish(if self.is_dead_letter {
                        Part::DeadLettered
                    } else {
                        Part::Written
                    })),
                    Some(e) => {
                        let retryable = e.is_temporary()
                            && !self.retry.non_retryable.contains(&e.kind())
                            && e.kind() != ErrorKind::Cancelled;
                        if retryable && !out_of_time {
                            longest_after = longest_after.max(e.retry_after());
                            again_events.push(event);
                            again_rest.push((original, ticket));
                        } else {
                            self.give_up(event, original, ticket, e, attempt).await;
                        }
                    }
                }
            }
            futures::future::join_all(finished).await;
            if again_events.is_empty() {
                return;
            }
            let pause = longest_after.map_or(wait, |a| a.max(wait));
            tracing::info!(pipeline = %self.pipeline, sink = %self.name, events = again_events.len(), attempt, wait_ms = pause.as_millis() as u64, "write failed; retrying");
            let cancelled = tokio::select! {
                () = tokio::time::sleep(pause) => false,
                () = self.cancel.cancelled() => true,
            };
            if cancelled {
                let handed_back = again_rest
                    .into_iter()
                    .map(|(_, ticket)| ticket.finish(Part::Failed(None)));
                futures::future::join_all(handed_back).await;
                return;
            }
            events = again_events;
            rest = again_rest;
            attempt += 1;
            wait = Duration::from_secs_f64(
                (wait.as_secs_f64() * self.retry.backoff_coefficient.max(1.0))
                    .min(self.retry.max_interval.as_secs_f64()),
            );
        }
    }

    /// An event this sink could not write: dead-lettered by a sink, handed back to the
    /// source by the dead letter sink.
    async fn give_up(
        &self,
        event: Event,
        original: Payload,
        ticket: Arc<Ticket>,
        error: Error,
        attempts: u32,
    ) {
        if self.is_dead_letter {
            tracing::error!(pipeline = %self.pipeline, event = %event.id, error = %error, "the dead letter sink could not take a dead letter; the source will deliver the event again");
            ticket.finish(Part::Failed(None)).await;
            return;
        }
        match &self.dead {
            None => {
                dead_letter(
                    None,
                    &self.pipeline,
                    event,
                    original,
                    ticket,
                    Failure {
                        stage: self.name.clone(),
                        sink: Some(self.name.clone()),
                        error,
                        attempts,
                    },
                )
                .await
            }
            Some(dead) => {
                self.counters.dead_lettered(1);
                let failure = Failure {
                    stage: self.name.clone(),
                    sink: Some(self.name.clone()),
                    error,
                    attempts,
                };
                dead_letter(Some(dead), &self.pipeline, event, original, ticket, failure).await;
            }
        }
    }
}
