//! Dependency resolution over a layered plugin graph with many versions per plugin.
//!
//! `cargo bench -p kernelize-benches --bench registry`

// Benchmarks run on fixed, known-good data: a failure there is a bug to see at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kernelize::plugin::InitContext;
use kernelize::semver::Version;
use kernelize::{
    Call, Category, Dependency, Payload, Plugin, PluginFactory, PluginMetadata, Registry, Result,
    async_trait,
};

struct Node(PluginMetadata);

#[async_trait]
impl Plugin for Node {
    fn metadata(&self) -> PluginMetadata {
        self.0.clone()
    }
    async fn initialize(&mut self, _ctx: InitContext) -> Result<()> {
        Ok(())
    }
    async fn execute(&self, _call: Call) -> Result<Payload> {
        Ok(Payload::Empty)
    }
}

/// `layers` layers of `width` plugins, each with `versions` versions; every plugin depends
/// on two plugins of the next layer with a caret requirement.
fn layered(layers: usize, width: usize, versions: u64) -> Registry {
    let mut registry = Registry::new();
    for layer in 0..layers {
        for i in 0..width {
            for v in 0..versions {
                let mut meta = PluginMetadata::new(
                    &format!("p{layer}-{i}"),
                    "node",
                    Version::new(1, v, 0),
                    Category::DataProcessor,
                );
                if layer + 1 < layers {
                    for j in [i, (i + 1) % width] {
                        meta = meta.depends_on(
                            Dependency::new(
                                format!("p{}-{j}", layer + 1),
                                &format!("^1.{}", v / 2),
                            )
                            .unwrap(),
                        );
                    }
                }
                registry
                    .register(PluginFactory::new(move || Box::new(Node(meta.clone()))))
                    .unwrap();
            }
        }
    }
    registry
}

fn resolve(c: &mut Criterion) {
    let registry = layered(6, 8, 10);
    let requests: Vec<Dependency> = (0..8)
        .map(|i| Dependency::new(format!("p0-{i}"), "*").unwrap())
        .collect();
    c.bench_function("resolve_48_plugins_480_versions", |b| {
        b.iter(|| registry.resolve(black_box(&requests)).unwrap())
    });
}

criterion_group!(benches, resolve);
criterion_main!(benches);
