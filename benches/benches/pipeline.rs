//! Event pipeline throughput on one core: ~500-byte JSON events through filter + route
//! (+ a transform by a plugin action), from the in-memory acknowledging channel into a sink
//! that counts, beside a bare tokio channel pass-through of the same events, in the same run.
//!
//! Run: `cargo bench -p kernelize-benches --bench pipeline`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernelize::event::channel::channel;
use kernelize::event::{EventSink, WriteReport};
use kernelize::plugin::{ActionDescriptor, PayloadDescriptor};
use kernelize::workflow::definition::BatchSpec;
use kernelize::workflow::pipeline::{Pipeline, Sink, Stage, Unmatched};
use kernelize::{
    Call, Category, Event, Payload, Plugin, PluginFactory, PluginManager, PluginMetadata, Result,
    async_trait, semver::Version,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const EVENTS: usize = 20_000;

/// Adds a field to the event: the cheapest real transform.
struct Enrich;

#[async_trait]
impl Plugin for Enrich {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            "enrich",
            "Enrich",
            Version::new(1, 0, 0),
            Category::DataProcessor,
        )
        .actions(vec![ActionDescriptor {
            name: "tag".into(),
            description: "Adds `tagged: true`.".into(),
            config: json!({}),
            input: PayloadDescriptor::of_kind("json"),
            output: PayloadDescriptor::of_kind("json"),
            permissions: vec![],
        }])
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        let mut v = call.input.into_json()?;
        if let Value::Object(map) = &mut v {
            map.insert("tagged".into(), Value::Bool(true));
        }
        Ok(Payload::Json(v))
    }
}

struct Count(AtomicUsize);

#[async_trait]
impl EventSink for Count {
    async fn write(&self, events: &[Event]) -> Result<WriteReport> {
        self.0.fetch_add(events.len(), Ordering::Relaxed);
        Ok(WriteReport::all_written())
    }
}

fn events() -> Vec<Event> {
    (0..EVENTS)
        .map(|i| {
            let region = ["eu", "us", "apac"][i % 3];
            let body = json!({
                "order_id": i, "customer": format!("customer-{:06}", i % 5000),
                "region": region, "amount": (i * 37) % 5000,
                "currency": "EUR", "status": if i % 10 == 0 { "test" } else { "paid" },
                "items": [{"sku": "A-1001", "qty": 2, "price": 19.99}, {"sku": "B-2002", "qty": 1, "price": 5.5}],
                "note": "standard delivery, leave at the door if nobody answers the bell, thank you",
                "shipping": {"street": "Hauptstrasse 12", "city": "Zurich", "postcode": "8001", "country": "CH"},
                "tags": ["web", "returning", "newsletter"], "channel": "web", "priority": i % 3,
                "created_at": "2026-11-27T08:00:00Z", "updated_at": "2026-11-27T08:00:01Z",
            });
            Event::new(i.to_string(), Payload::bytes(body.to_string().into_bytes(), "application/json"))
        })
        .collect()
}

async fn run_pipeline(manager: &PluginManager, input: &[Event], transform: bool) -> usize {
    let (tx, source) = channel(2048);
    let sink = Arc::new(Count(AtomicUsize::new(0)));
    let mut builder = Pipeline::builder("bench", Box::new(source))
        .stage(Stage::filter("paid", "event.status == 'paid'").unwrap())
        .stage(
            Stage::route(
                "region",
                &[
                    ("eu", "event.region == 'eu'"),
                    ("us", "event.region == 'us'"),
                ],
                Unmatched::Output("other".into()),
            )
            .unwrap(),
        );
    if transform {
        builder = builder.stage(Stage::transform(
            "tag",
            manager.clone(),
            "enrich",
            "tag",
            json!({}),
        ));
    }
    let pipeline = builder
        .sink(Sink::new("out", sink.clone()))
        .batch(BatchSpec {
            count: 500,
            bytes: 1 << 22,
            linger: std::time::Duration::from_millis(1),
        })
        .build()
        .unwrap();
    let events = input.to_vec();
    let feeder = tokio::spawn(async move {
        for e in events {
            tx.send(e).await.unwrap();
        }
        tx.close();
    });
    pipeline.run(CancellationToken::new()).await.unwrap();
    feeder.await.unwrap();
    sink.0.load(Ordering::Relaxed)
}

async fn bare_channel(input: &[Event]) -> usize {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(2048);
    let events = input.to_vec();
    let feeder = tokio::spawn(async move {
        for e in events {
            tx.send(e).await.unwrap();
        }
    });
    let mut n = 0;
    while let Some(e) = rx.recv().await {
        std::hint::black_box(&e);
        n += 1;
    }
    feeder.await.unwrap();
    n
}

fn pipeline(c: &mut Criterion) {
    // One core: a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = PluginManager::new();
    manager
        .install(PluginFactory::new(|| Box::new(Enrich)))
        .unwrap();
    rt.block_on(manager.activate("enrich")).unwrap();
    let input = events();
    let bytes: usize = input
        .iter()
        .map(|e| match &e.payload {
            Payload::Bytes(b) => b.data.len(),
            _ => 0,
        })
        .sum();
    eprintln!("mean event size: {} bytes", bytes / input.len());

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("tokio_channel_pass_through", |b| {
        b.iter(|| assert_eq!(rt.block_on(bare_channel(&input)), EVENTS))
    });
    group.bench_function("filter_route", |b| {
        b.iter(|| {
            assert_eq!(
                rt.block_on(run_pipeline(&manager, &input, false)),
                EVENTS * 9 / 10
            )
        })
    });
    group.bench_function("filter_route_transform", |b| {
        b.iter(|| {
            assert_eq!(
                rt.block_on(run_pipeline(&manager, &input, true)),
                EVENTS * 9 / 10
            )
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
