//! A typed workflow, recorded in a SQLite store: the compiler checks that each step takes
//! what the step before gives; the store keeps every state change, so the run can be listed,
//! inspected and, had the process died, resumed.
//!
//! Run with `cargo run -p kernelize-examples --example durable_workflow`.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use kernelize::plugin::ActionRouter;
use kernelize::prelude::*;
use kernelize::semver::Version;
use kernelize::workflow::builder::{Chain, Step, TypedWorkflow, WorkflowBuilder};
use kernelize::workflow::store::{self, RunFilter};
use kernelize::workflow::{Engine, RunOptions, RunReport};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Orders read from a shop.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Orders {
    /// Order amounts.
    pub(crate) amounts: Vec<f64>,
}

/// What the orders add up to.
#[derive(Serialize, Deserialize, JsonSchema)]
pub(crate) struct Totals {
    /// The sum.
    pub(crate) sum: f64,
    /// How many orders.
    pub(crate) count: usize,
}

struct Fetch;
impl Action for Fetch {
    const NAME: &'static str = "fetch";
    const DESCRIPTION: &'static str = "Reads today's orders.";
    type Config = ();
    type Input = ();
    type Output = Orders;
}

struct Sum;
impl Action for Sum {
    const NAME: &'static str = "sum";
    const DESCRIPTION: &'static str = "Adds the orders up.";
    type Config = ();
    type Input = Orders;
    type Output = Totals;
}

#[derive(Default)]
struct Shop;

static ROUTER: LazyLock<ActionRouter<Shop>> =
    LazyLock::new(|| ActionRouter::new().action::<Fetch>().action::<Sum>());

#[async_trait]
impl Plugin for Shop {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new("shop", "Shop", Version::new(1, 0, 0), Category::Connector)
            .description("A shop with a few orders.")
            .actions(ROUTER.descriptors())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }
}

#[async_trait]
impl Handler<Fetch> for Shop {
    async fn handle(&self, _ctx: ActionContext, _config: (), _input: ()) -> Result<Orders> {
        Ok(Orders {
            amounts: vec![19.5, 5.25, 100.0],
        })
    }
}

#[async_trait]
impl Handler<Sum> for Shop {
    async fn handle(&self, _ctx: ActionContext, _config: (), orders: Orders) -> Result<Totals> {
        Ok(Totals {
            sum: orders.amounts.iter().sum(),
            count: orders.amounts.len(),
        })
    }
}

/// Runs the workflow with its runs kept in `dir/runs.db`; returns the totals and the report
/// as the store has it.
pub(crate) async fn run(dir: &Path) -> Result<(Totals, RunReport)> {
    let manager = PluginManager::new();
    manager.install(PluginFactory::new(|| Box::new(Shop)))?;
    let store = store::open(&format!("sqlite:{}", dir.join("runs.db").display())).await?;
    let engine = Engine::new(manager.clone()).with_store(Arc::clone(&store));

    // `.then(Step::typed::<Fetch>(..))` after `sum` would not compile: Fetch takes `()`.
    let steps = Chain::start(Step::typed::<Fetch>("fetch", "shop", ())).then(Step::typed::<Sum>(
        "sum",
        "shop",
        (),
    ));
    let workflow: TypedWorkflow<Totals> = WorkflowBuilder::new("daily_totals").build(steps)?;
    let totals = workflow
        .run(&engine, RunOptions::default())
        .await?
        .into_output()?;

    let newest = store.list_runs(&RunFilter::default()).await?;
    let stored = engine.report(&newest[0].id).await?;
    manager.deactivate_all().await;
    Ok((totals, stored))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("kernelize-example-{}", std::process::id()));
    let (totals, report) = run(&dir).await?;
    println!("{} orders, {:.2} in all", totals.count, totals.sum);
    println!("run {} {}", report.id, report.status.as_str());
    for step in &report.steps {
        println!(
            "  {} {} ({} ms)",
            step.name,
            step.status.as_str(),
            step.duration_ms
        );
    }
    println!("history kept in {}", dir.join("runs.db").display());
    Ok(())
}
