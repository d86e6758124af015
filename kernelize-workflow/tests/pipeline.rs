//! Event pipelines end to end in memory: an acknowledging channel source, stages, sinks
//! that record (and fail on demand), dead letters, replay, dedupe, backpressure, YAML.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kernelize_core::event::channel::{ChannelSender, channel};
use kernelize_core::event::{EventSink, WriteReport};
use kernelize_core::{Error, ErrorKind, Event, Payload, PluginManager, Result};
use kernelize_workflow::definition::{BatchSpec, RetrySpec, parse, validate};
use kernelize_workflow::pipeline::dead_letter::{Replay, original_event};
use kernelize_workflow::pipeline::{
    DedupeStore, Expr, MemoryDedupe, Pipeline, Sink, Stage, StoreDedupe, Unmatched,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A sink that keeps what it wrote; events whose body has `"fail": "permanent"` fail for
/// good, `"fail": "once"` fail (temporarily) on their first write only.
#[derive(Default)]
struct Recording {
    written: Mutex<Vec<Event>>,
    seen_once: Mutex<HashSet<String>>,
    calls: AtomicUsize,
    /// Fails whole writes while above zero.
    down: AtomicUsize,
}

impl Recording {
    fn bodies(&self) -> Vec<Value> {
        self.written
            .lock()
            .map(|w| w.iter().map(|e| body(&e.payload)).collect())
            .unwrap_or_default()
    }
}

fn body(p: &Payload) -> Value {
    p.clone().into_json().unwrap_or(Value::Null)
}

#[async_trait]
impl EventSink for Recording {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .down
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1))
            .is_ok()
        {
            return Err(Error::new(ErrorKind::Remote, "the sink is down").set_temporary());
        }
        let mut report = WriteReport::all_written();
        for (i, e) in events.iter().enumerate() {
            let b = body(&e.payload);
            match b.get("fail").and_then(Value::as_str) {
                Some("permanent") => report.failed.push((
                    i,
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("row {} violates a check", b["id"]),
                    ),
                )),
                Some("once")
                    if self
                        .seen_once
                        .lock()
                        .map(|mut s| s.insert(e.id.clone()))
                        .unwrap_or(false) =>
                {
                    report.failed.push((
                        i,
                        Error::new(ErrorKind::Timeout, "lock timeout").set_temporary(),
                    ))
                }
                _ => {
                    if let Ok(mut w) = self.written.lock() {
                        w.push(e.clone());
                    }
                }
            }
        }
        Ok(report)
    }
}

fn event(id: u64, body: Value) -> Event {
    Event::new(
        id.to_string(),
        Payload::bytes(body.to_string().into_bytes(), "application/json"),
    )
}

async fn send_all(tx: &ChannelSender, events: Vec<Event>) -> Result<()> {
    for e in events {
        tx.send(e).await?;
    }
    tx.close();
    Ok(())
}

fn fast_retry(max_attempts: u32) -> RetrySpec {
    RetrySpec {
        max_attempts,
        initial_interval: Duration::from_millis(5),
        backoff_coefficient: 2.0,
        max_interval: Duration::from_millis(50),
        non_retryable: Vec::new(),
    }
}

fn small_batches() -> BatchSpec {
    BatchSpec {
        count: 50,
        bytes: 1 << 20,
        linger: Duration::from_millis(5),
    }
}

async fn run_with_timeout(p: Pipeline) -> Result<kernelize_workflow::pipeline::PipelineMetrics> {
    tokio::time::timeout(Duration::from_secs(60), p.run(CancellationToken::new()))
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "the pipeline did not finish in 60 s"))?
}

async fn manager_with_builtins() -> Result<PluginManager> {
    let manager = PluginManager::new();
    manager.install_all(kernelize_core::builtins::factories())?;
    manager.activate("data-transformer").await?;
    Ok(manager)
}

#[tokio::test]
async fn filter_route_transform_and_sinks_account_for_every_event() -> Result<()> {
    let manager = manager_with_builtins().await?;
    let (tx, source) = channel(2000);
    let big = Arc::new(Recording::default());
    let small = Arc::new(Recording::default());
    let audit = Arc::new(Recording::default());
    let dead = Arc::new(Recording::default());
    let pipeline = Pipeline::builder("orders", Box::new(source))
        .stage(Stage::filter("not_test", "not event.test")?)
        .stage(Stage::transform(
            "shape",
            manager.clone(),
            "data-transformer",
            "select",
            json!({"columns": ["id", "amount", "region"]}),
        ))
        .stage(Stage::route(
            "size",
            &[
                ("big", "event.amount >= 1000"),
                ("small", "event.amount >= 0"),
            ],
            Unmatched::DeadLetter,
        )?)
        .sink(Sink::new("big", big.clone()).routes(["big"]))
        .sink(Sink::new("small", small.clone()).routes(["small"]))
        .sink(Sink::new("audit", audit.clone()))
        .dead_letter(dead.clone())
        .batch(small_batches())
        .build()?;
    let mut events = Vec::new();
    for i in 0..1000u64 {
        let body = match i % 10 {
            0 => json!({"id": i, "amount": 5000, "region": "eu", "extra": "x"}),
            1 => json!({"id": i, "amount": 10, "region": "us", "test": true}),
            2 => json!({"id": i, "amount": -5, "region": "us"}),
            _ => json!({"id": i, "amount": i, "region": "eu"}),
        };
        events.push(event(i, body));
    }
    events.push(Event::new(
        "bad",
        Payload::bytes(&b"{not json"[..], "application/json"),
    ));
    send_all(&tx, events).await?;
    let metrics = run_with_timeout(pipeline).await?;

    // 100 test events filtered; 100 negative amounts dead-lettered (no route); one malformed
    // dead-lettered; the rest routed by amount.
    let big_ids: Vec<i64> = big
        .bodies()
        .iter()
        .filter_map(|b| b["id"].as_i64())
        .collect();
    let small_n = small.bodies().len();
    assert_eq!(big_ids.len() + small_n, 800);
    assert!(
        big.bodies()
            .iter()
            .all(|b| b["amount"].as_i64() >= Some(1000))
    );
    assert!(
        big.bodies().iter().all(|b| b.get("extra").is_none()),
        "the transform kept only three fields"
    );
    assert_eq!(
        audit.bodies().len(),
        800,
        "a sink with no routes takes every event"
    );
    let dead_letters = dead.bodies();
    assert_eq!(dead_letters.len(), 101);
    let malformed: Vec<&Value> = dead_letters
        .iter()
        .filter(|d| d["event_id"] == "bad")
        .collect();
    assert_eq!(malformed.len(), 1);
    assert_eq!(malformed[0]["stage"], "not_test");
    assert!(
        malformed[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("not JSON"),
        "{}",
        malformed[0]
    );
    assert_eq!(malformed[0]["payload"], "{not json");
    assert_eq!(malformed[0]["error_kind"], "invalid_input");
    let unrouted = dead_letters.iter().filter(|d| d["stage"] == "size").count();
    assert_eq!(unrouted, 100);

    // Counts add up, and every delivery was settled.
    let stage = |n: &str| {
        metrics
            .stage(n)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, n.to_string()))
    };
    assert_eq!(stage("orders")?.received, 1001);
    assert_eq!(stage("not_test")?.discarded, 100);
    assert_eq!(stage("not_test")?.dead_lettered, 1);
    assert_eq!(stage("size")?.dead_lettered, 100);
    assert_eq!(stage("big")?.sent + stage("small")?.sent, 800);
    assert_eq!(stage("dead_letter")?.sent, 101);
    assert_eq!(metrics.acked, 900);
    assert_eq!(metrics.rejected, 101);
    assert_eq!(metrics.retried, 0);
    assert_eq!(tx.unsettled(), 0);
    Ok(())
}

#[tokio::test]
async fn only_the_failed_events_of_a_batch_are_retried_or_dead_lettered() -> Result<()> {
    let (tx, source) = channel(1000);
    let sink = Arc::new(Recording::default());
    let dead = Arc::new(Recording::default());
    let pipeline = Pipeline::builder("partial", Box::new(source))
        .sink(Sink::new("table", sink.clone()).retry(fast_retry(3)))
        .dead_letter(dead.clone())
        .batch(small_batches())
        .build()?;
    let mut events = Vec::new();
    for i in 0..200u64 {
        let fail = match i {
            7 | 77 | 177 => "permanent",
            i if i % 20 == 3 => "once",
            _ => "no",
        };
        events.push(event(i, json!({"id": i, "fail": fail})));
    }
    send_all(&tx, events).await?;
    let metrics = run_with_timeout(pipeline).await?;
    let written: Vec<i64> = sink
        .bodies()
        .iter()
        .filter_map(|b| b["id"].as_i64())
        .collect();
    assert_eq!(
        written.len(),
        197,
        "every good row once, the temporary failures after a retry"
    );
    assert_eq!(
        written.iter().collect::<HashSet<_>>().len(),
        197,
        "no row written twice"
    );
    let dead_ids: Vec<String> = dead
        .bodies()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(dead_ids, vec!["7", "77", "177"]);
    for d in dead.bodies() {
        assert_eq!(d["stage"], "table");
        assert_eq!(d["sink"], "table");
        assert_eq!(d["attempts"], 1, "a permanent failure is not retried");
        assert!(
            d["error"]
                .as_str()
                .unwrap_or("")
                .contains("violates a check")
        );
        assert!(d["failed_at"].as_str().is_some() && d["received_at"].as_str().is_some());
    }
    // 4 batches of 50; the retries send only the 10 "once" rows again: 4 + 4 writes of which
    // the second four hold just the failed rows.
    let table = metrics.stage("table").cloned();
    assert_eq!(table.as_ref().map(|t| t.received), Some(200));
    assert_eq!(table.as_ref().map(|t| t.errors), Some(13));
    assert_eq!(table.as_ref().map(|t| t.sent), Some(197));
    assert!(
        sink.calls.load(Ordering::SeqCst) <= 8,
        "whole batches were written again"
    );
    assert_eq!(table.as_ref().map(|t| t.dead_lettered), Some(3));
    assert_eq!(metrics.acked, 197);
    assert_eq!(metrics.rejected, 3);
    assert_eq!(tx.unsettled(), 0);
    Ok(())
}

#[tokio::test]
async fn a_sink_that_stays_down_dead_letters_after_its_attempts() -> Result<()> {
    let (tx, source) = channel(100);
    let sink = Arc::new(Recording::default());
    sink.down.store(1000, Ordering::SeqCst);
    let dead = Arc::new(Recording::default());
    let pipeline = Pipeline::builder("down", Box::new(source))
        .sink(Sink::new("table", sink.clone()).retry(fast_retry(4)))
        .dead_letter(dead.clone())
        .batch(small_batches())
        .build()?;
    send_all(&tx, (0..10).map(|i| event(i, json!({"id": i}))).collect()).await?;
    let metrics = run_with_timeout(pipeline).await?;
    assert_eq!(
        sink.calls.load(Ordering::SeqCst),
        4,
        "one batch, four attempts"
    );
    let dead = dead.bodies();
    assert_eq!(dead.len(), 10);
    assert!(
        dead.iter()
            .all(|d| d["attempts"] == 4 && d["error_kind"] == "remote")
    );
    assert_eq!(metrics.rejected, 10);
    Ok(())
}

#[tokio::test]
async fn without_a_working_dead_letter_sink_events_go_back_to_the_source() -> Result<()> {
    let (tx, source) = channel(100);
    let sink = Arc::new(Recording::default());
    let dead = Arc::new(Recording::default());
    // The dead letter sink is down for its first 5 writes (one dead letter's 5 attempts).
    dead.down.store(5, Ordering::SeqCst);
    let pipeline = Pipeline::builder("handback", Box::new(source))
        .sink(Sink::new("table", sink.clone()).retry(fast_retry(1)))
        .dead_letter(dead.clone())
        .batch(small_batches())
        .build()?;
    send_all(
        &tx,
        vec![
            event(1, json!({"id": 1, "fail": "permanent"})),
            event(2, json!({"id": 2})),
        ],
    )
    .await?;
    let metrics = run_with_timeout(pipeline).await?;
    // First round: the dead letter could not be written → handed back (retried); the
    // channel delivered it again (attempt 2) and then it was dead-lettered.
    assert_eq!(metrics.retried, 1);
    assert_eq!(metrics.rejected, 1);
    let dead = dead.bodies();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 1);
    assert_eq!(sink.bodies().len(), 1);
    assert_eq!(tx.unsettled(), 0);
    Ok(())
}

#[tokio::test]
async fn dedupe_drops_duplicates_within_the_window() -> Result<()> {
    for store in [
        Arc::new(MemoryDedupe::default()) as Arc<dyn DedupeStore>,
        Arc::new(StoreDedupe(Arc::new(
            kernelize_workflow::store::MemoryStore::default(),
        ))),
    ] {
        let (tx, source) = channel(1000);
        let sink = Arc::new(Recording::default());
        let pipeline = Pipeline::builder("dedupe", Box::new(source))
            .stage(Stage::dedupe(
                "once",
                Some("event.order"),
                Duration::from_secs(3600),
                store,
            )?)
            .sink(Sink::new("table", sink.clone()))
            .batch(small_batches())
            .build()?;
        let events = (0..300u64)
            .map(|i| event(i, json!({"order": i % 100})))
            .collect();
        send_all(&tx, events).await?;
        let metrics = run_with_timeout(pipeline).await?;
        let mut orders: Vec<i64> = sink
            .bodies()
            .iter()
            .filter_map(|b| b["order"].as_i64())
            .collect();
        orders.sort_unstable();
        assert_eq!(orders, (0..100).collect::<Vec<_>>());
        assert_eq!(metrics.stage("once").map(|s| s.discarded), Some(200));
        assert_eq!(metrics.acked, 300);
    }
    Ok(())
}

#[tokio::test]
async fn a_dead_lettered_key_is_not_a_duplicate() -> Result<()> {
    // The first copy of key 1 fails for good and is dead-lettered; the second copy must be
    // processed, not dropped as a duplicate.
    let (tx, source) = channel(100);
    let sink = Arc::new(Recording::default());
    let dead = Arc::new(Recording::default());
    let pipeline = Pipeline::builder("dedupe_dead", Box::new(source))
        .stage(Stage::dedupe(
            "once",
            Some("event.order"),
            Duration::from_secs(3600),
            Arc::new(MemoryDedupe::default()),
        )?)
        .sink(Sink::new("table", sink.clone()).retry(fast_retry(1)))
        .dead_letter(dead.clone())
        .batch(BatchSpec {
            count: 1,
            ..small_batches()
        })
        .max_in_flight(1)
        .build()?;
    send_all(
        &tx,
        vec![
            event(1, json!({"order": 1, "fail": "permanent"})),
            event(2, json!({"order": 1})),
        ],
    )
    .await?;
    run_with_timeout(pipeline).await?;
    assert_eq!(dead.bodies().len(), 1);
    assert_eq!(sink.bodies().len(), 1);
    Ok(())
}

/// A sink that blocks until released and counts how many events it holds.
struct Gate {
    open: tokio::sync::Semaphore,
    held: AtomicUsize,
}

#[async_trait]
impl EventSink for Gate {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        self.held.fetch_add(events.len(), Ordering::SeqCst);
        let permit = self
            .open
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Cancelled, "closed"))?;
        permit.forget();
        Ok(WriteReport::all_written())
    }
}

#[tokio::test]
async fn a_slow_sink_holds_back_the_source() -> Result<()> {
    let (tx, source) = channel(10_000);
    let gate = Arc::new(Gate {
        open: tokio::sync::Semaphore::new(0),
        held: AtomicUsize::new(0),
    });
    let pipeline = Pipeline::builder("pressure", Box::new(source))
        .sink(Sink::new("slow", gate.clone()))
        .batch(BatchSpec {
            count: 10,
            bytes: 1 << 20,
            linger: Duration::from_millis(1),
        })
        .max_in_flight(25)
        .build()?;
    for i in 0..1000 {
        tx.send(event(i, json!({"i": i}))).await?;
    }
    tx.close();
    let (handle, done) = pipeline.start(CancellationToken::new());
    let running = tokio::spawn(done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = handle.metrics().stages[0].received;
    assert!(
        received <= 25,
        "the source was read past max_in_flight: {received}"
    );
    assert!(received >= 10, "the pipeline did not start: {received}");
    gate.open.add_permits(1000);
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "did not finish"))?
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))??;
    assert_eq!(handle.metrics().acked, 1000);
    Ok(())
}

/// A sink that feeds another channel: a dead letter store that is also a source.
struct Forward(ChannelSender);

#[async_trait]
impl EventSink for Forward {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        for e in events {
            self.0.send(e.clone()).await?;
        }
        Ok(WriteReport::all_written())
    }
}

#[tokio::test]
async fn dead_letters_replay_selectively_into_the_failed_sink() -> Result<()> {
    let (tx, source) = channel(100);
    let (dead_tx, dead_source) = channel(100);
    let table = Arc::new(Recording::default());
    let copy = Arc::new(Recording::default());
    table.down.store(1000, Ordering::SeqCst);
    let build = |source: Box<dyn kernelize_core::EventSource>| {
        Pipeline::builder("replayed", source)
            .sink(Sink::new("table", table.clone()).retry(fast_retry(1)))
            .sink(Sink::new("copy", copy.clone()))
            .dead_letter(Arc::new(Forward(dead_tx.clone())))
            .batch(small_batches())
            .build()
    };
    let events = (0..20u64)
        .map(|i| event(i, json!({"id": i, "kind": if i < 5 { "a" } else { "b" }})))
        .collect();
    send_all(&tx, events).await?;
    let first = run_with_timeout(build(Box::new(source))?).await?;
    assert_eq!(
        first.acked, 20,
        "written to `copy`, dead-lettered for `table`: acknowledged"
    );
    assert_eq!(copy.bodies().len(), 20);
    assert_eq!(dead_tx.unsettled(), 20);

    // The table is back; replay only the dead letters of kind `a`.
    table.down.store(0, Ordering::SeqCst);
    let select = Expr::compile(r#"'"kind":"a"' in event.payload and event.stage == "table""#)
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    let replay = Replay::new(Box::new(dead_source), Some(select)).idle(Duration::from_millis(300));
    let second = run_with_timeout(build(Box::new(replay))?).await?;
    let replayed: Vec<i64> = table
        .bodies()
        .iter()
        .filter_map(|b| b["id"].as_i64())
        .collect();
    assert_eq!(replayed.len(), 5);
    assert!(replayed.iter().all(|i| *i < 5));
    assert_eq!(
        copy.bodies().len(),
        20,
        "a replay goes to the sink that failed only"
    );
    assert_eq!(second.acked, 5);
    assert_eq!(
        dead_tx.unsettled(),
        15,
        "the replayed dead letters left the store, the others stayed"
    );
    Ok(())
}

#[test]
fn dead_letters_keep_the_original_body_and_metadata() -> Result<()> {
    let dead = Event::new(
        "p/9",
        Payload::json(json!({
            "pipeline": "p", "stage": "s", "sink": null, "error": "bad", "error_kind": "invalid_input",
            "attempts": 1, "event_id": "9", "key": "k9", "subject": "orders",
            "headers": "{\"h\":\"v\"}", "media_type": "application/octet-stream",
            "payload": "AAEC/w==", "payload_encoding": "base64",
            "received_at": "2026-11-27T06:00:00.000Z", "failed_at": "2026-11-27T06:00:01.000Z"
        })),
    );
    let original = original_event(&dead)?;
    assert_eq!(original.id, "9");
    assert_eq!(original.key.as_deref(), Some("k9"));
    assert_eq!(original.headers.get("h").map(String::as_str), Some("v"));
    match original.payload {
        Payload::Bytes(b) => assert_eq!(&b.data[..], &[0u8, 1, 2, 255]),
        other => panic!("expected bytes, got {other:?}"),
    }
    let broken = Event::new("x", Payload::json(json!({"payload_encoding": "base64"})));
    assert_eq!(
        original_event(&broken).map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::CorruptData)
    );
    Ok(())
}

const YAML: &str = r#"
pipelines:
  orders:
    source: { plugin: log-notifier }
    concurrency: 0
    max_in_flight: 0
    stages:
      - filter: "event.amount >"
      - route: { routes: [{ name: eu, when: "event.region == 'eu'" }], unmatched: rest }
      - batch: { count: 0 }
      - filter: "true"
        dedupe: { window: 1h }
    sinks:
      - { plugin: data-transformer, routes: [eu, nowhere] }
"#;

#[tokio::test]
async fn yaml_pipelines_are_checked_against_the_plugins() -> Result<()> {
    let manager = PluginManager::new();
    manager.install_all(kernelize_core::builtins::factories())?;
    let loaded =
        parse("p.yaml", YAML).map_err(|d| Error::new(ErrorKind::InvalidInput, d.to_string()))?;
    let problems = validate(&loaded, &manager)
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default();
    for expected in [
        "is not an event source",
        "is not an event sink",
        "is not a valid expression",
        "a `batch` stage must be the last stage",
        "`count` must be from 1",
        "exactly one of filter, route, transform, dedupe, batch; this one is filter and dedupe",
        "no route stage has an output `nowhere`",
        "`concurrency` must be 1 to 1024",
        "`max_in_flight` must be at least 1",
    ] {
        assert!(
            problems.contains(expected),
            "missing `{expected}` in:\n{problems}"
        );
    }
    assert!(!problems.contains("`eu`"), "{problems}");
    Ok(())
}

#[tokio::test]
async fn counts_add_up_under_concurrent_duplicates_and_redeliveries() -> Result<()> {
    // Every event is sent twice; a quarter fail once in the sink; dedupe on the key.
    let (tx, source) = channel(500);
    let sink = Arc::new(Recording::default());
    let pipeline = Pipeline::builder("dups", Box::new(source))
        .stage(Stage::dedupe(
            "once",
            None,
            Duration::from_secs(60),
            Arc::new(MemoryDedupe::default()),
        )?)
        .sink(Sink::new("table", sink.clone()).retry(fast_retry(3)))
        .batch(small_batches())
        .build()?;
    let sender = tokio::spawn(async move {
        for round in 0..2u64 {
            for i in 0..500u64 {
                let fail = if i % 4 == 0 && round == 0 {
                    "once"
                } else {
                    "no"
                };
                let e =
                    event(round * 1000 + i, json!({"id": i, "fail": fail})).with_key(i.to_string());
                tx.send(e).await?;
            }
        }
        tx.close();
        Ok::<_, Error>(())
    });
    let metrics = run_with_timeout(pipeline).await?;
    sender
        .await
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))??;
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for b in sink.bodies() {
        *counts.entry(b["id"].as_i64().unwrap_or(-1)).or_default() += 1;
    }
    assert_eq!(counts.len(), 500);
    assert!(counts.values().all(|n| *n == 1), "a key written twice");
    assert_eq!(metrics.acked, 1000);
    Ok(())
}

/// A transform that waits 20 ms per event and records how many calls overlapped.
#[derive(Default)]
struct Slow {
    now: AtomicUsize,
    most: Arc<AtomicUsize>,
}

#[async_trait]
impl kernelize_core::Plugin for Slow {
    fn metadata(&self) -> kernelize_core::PluginMetadata {
        kernelize_core::PluginMetadata::new(
            "slow",
            "Slow",
            kernelize_core::semver::Version::new(1, 0, 0),
            kernelize_core::Category::DataProcessor,
        )
        .actions(vec![kernelize_core::plugin::ActionDescriptor {
            name: "wait".into(),
            description: "Waits 20 ms and returns its input.".into(),
            config: json!({}),
            input: kernelize_core::plugin::PayloadDescriptor::of_kind("json"),
            output: kernelize_core::plugin::PayloadDescriptor::of_kind("json"),
            permissions: vec![],
        }])
    }

    async fn execute(&self, call: kernelize_core::Call) -> Result<Payload> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(call.input)
    }
}

/// Runs 40 events through the slow transform with `concurrency`; the most calls that
/// overlapped.
async fn overlapping_transforms(concurrency: usize) -> Result<usize> {
    let most = Arc::new(AtomicUsize::new(0));
    let manager = PluginManager::new();
    let seen = most.clone();
    manager.install(kernelize_core::PluginFactory::new(move || {
        Box::new(Slow {
            now: AtomicUsize::new(0),
            most: seen.clone(),
        })
    }))?;
    manager.activate("slow").await?;
    let (tx, source) = channel(100);
    let out = Arc::new(Recording::default());
    let pipeline = Pipeline::builder("slow", Box::new(source))
        .stage(Stage::transform(
            "wait",
            manager.clone(),
            "slow",
            "wait",
            json!({}),
        ))
        .sink(Sink::new("out", out.clone()))
        .batch(small_batches())
        .concurrency(concurrency)
        .build()?;
    send_all(&tx, (0..40).map(|i| event(i, json!({"id": i}))).collect()).await?;
    let metrics = run_with_timeout(pipeline).await?;

    let mut ids: Vec<i64> = out
        .bodies()
        .iter()
        .filter_map(|b| b["id"].as_i64())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..40).collect::<Vec<i64>>());
    assert_eq!(metrics.acked, 40);
    assert_eq!(tx.unsettled(), 0);
    Ok(most.load(Ordering::SeqCst))
}

#[tokio::test]
async fn concurrency_lets_transforms_overlap_and_one_keeps_them_in_turn() -> Result<()> {
    let one = overlapping_transforms(1).await?;
    let eight = overlapping_transforms(8).await?;

    assert_eq!(one, 1, "with concurrency 1 calls never overlap");
    assert!(
        (2..=8).contains(&eight),
        "with concurrency 8, between 2 and 8 calls overlap; saw {eight}"
    );
    Ok(())
}
