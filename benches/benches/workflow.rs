//! Engine overhead per step: a workflow of 100 no-op steps in a row, run by the engine with
//! its in-memory, SQLite and PostgreSQL stores, beside the same 100 calls made straight
//! through the plugin manager and 100 direct function calls, in the same run.
//!
//! The PostgreSQL case needs the server on 127.0.0.1:5432 (user postgres, database test);
//! its tables go to a schema of their own, dropped at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernelize::plugin::{ActionDescriptor, PayloadDescriptor};
use kernelize::workflow::definition::WorkflowFile;
use kernelize::workflow::{Engine, RunOptions};
use kernelize::{
    Call, Category, Payload, Plugin, PluginFactory, PluginManager, PluginMetadata, Result,
    async_trait, semver::Version,
};
use serde_json::json;

const STEPS: usize = 100;

struct Noop;

#[async_trait]
impl Plugin for Noop {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            "noop",
            "No-op",
            Version::new(1, 0, 0),
            Category::DataProcessor,
        )
        .actions(vec![ActionDescriptor {
            name: "run".into(),
            description: "Returns its input.".into(),
            config: json!({}),
            input: PayloadDescriptor::of_kind("any"),
            output: PayloadDescriptor::of_kind("any"),
            permissions: vec![],
        }])
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        Ok(call.input)
    }
}

#[inline(never)]
fn direct(input: Payload) -> Payload {
    std::hint::black_box(input)
}

fn workflow(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let manager = PluginManager::new();
    manager
        .install(PluginFactory::new(|| Box::new(Noop)))
        .unwrap();
    rt.block_on(manager.activate("noop")).unwrap();
    let steps: Vec<_> = (0..STEPS)
        .map(|i| json!({"name": format!("s{i}"), "plugin": "noop", "action": "run"}))
        .collect();
    let file: WorkflowFile =
        serde_json::from_value(json!({"workflows": {"w": {"steps": steps}}})).unwrap();
    let engine = Engine::new(manager.clone());
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite:{}", dir.path().join("runs.db").display());
    let sqlite = rt
        .block_on(kernelize::workflow::store::open(&sqlite_url))
        .unwrap();
    let on_sqlite = Engine::new(manager.clone()).with_store(sqlite);
    let pg_url = format!(
        "postgres://postgres@127.0.0.1:5432/test?schema=kz_bench_{}",
        std::process::id()
    );
    let postgres = std::sync::Arc::new(
        rt.block_on(kernelize::workflow::store::SqlStore::postgres(&pg_url))
            .expect("PostgreSQL on 127.0.0.1:5432"),
    );
    let on_postgres = Engine::new(manager.clone()).with_store(postgres.clone());

    let mut group = c.benchmark_group("workflow-step-overhead");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.bench_function("direct function call", |b| {
        b.iter(|| {
            let mut p = Payload::Json(json!({"n": 1}));
            for _ in 0..STEPS {
                p = direct(p);
            }
            p
        })
    });
    group.bench_function("plugin manager call", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut p = Payload::Json(json!({"n": 1}));
                for _ in 0..STEPS {
                    p = manager.call("noop", Call::new("run", p)).await.unwrap();
                }
                p
            })
        })
    });
    group.bench_function("engine, in memory", |b| {
        b.iter(|| {
            rt.block_on(engine.run(&file, "w", RunOptions::default()))
                .unwrap()
        })
    });
    group.sample_size(10);
    group.bench_function("engine, SQLite store", |b| {
        b.iter(|| {
            rt.block_on(on_sqlite.run(&file, "w", RunOptions::default()))
                .unwrap()
        })
    });
    group.bench_function("engine, PostgreSQL store", |b| {
        b.iter(|| {
            rt.block_on(on_postgres.run(&file, "w", RunOptions::default()))
                .unwrap()
        })
    });
    group.finish();
    rt.block_on(postgres.drop_schema()).unwrap();
}

criterion_group!(benches, workflow);
criterion_main!(benches);
