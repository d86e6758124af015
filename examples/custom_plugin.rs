//! Writing a plugin: one typed action, served to typed Rust calls and to dynamic calls by the
//! same code.
//!
//! Run with `cargo run -p kernelize-examples --example custom_plugin`.

use std::sync::LazyLock;

use kernelize::plugin::ActionRouter;
use kernelize::prelude::*;
use kernelize::semver::Version;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Config of the `greet` action.
#[derive(Serialize, Deserialize, JsonSchema)]
struct GreetConfig {
    /// Who to greet.
    name: String,
}

/// Output of the `greet` action.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Greeting {
    text: String,
}

/// The typed action: its name, config, input and output.
struct Greet;

impl Action for Greet {
    const NAME: &'static str = "greet";
    const DESCRIPTION: &'static str = "Greets someone by name.";
    type Config = GreetConfig;
    type Input = ();
    type Output = Greeting;
}

/// Plugin settings.
#[derive(Deserialize, JsonSchema)]
struct Settings {
    /// The greeting word, e.g. "Hello".
    salutation: String,
}

#[derive(Default)]
struct Greeter {
    salutation: String,
}

static ROUTER: LazyLock<ActionRouter<Greeter>> =
    LazyLock::new(|| ActionRouter::new().action::<Greet>());

#[async_trait]
impl Plugin for Greeter {
    fn metadata(&self) -> PluginMetadata {
        PluginMetadata::new(
            "greeter",
            "Greeter",
            Version::new(1, 0, 0),
            Category::DataProcessor,
        )
        .description("Greets people.")
        .config_type::<Settings>()
        .actions(ROUTER.descriptors())
    }

    async fn initialize(&mut self, ctx: InitContext) -> Result<()> {
        self.salutation = ctx.config.parse::<Settings>()?.salutation;
        Ok(())
    }

    async fn execute(&self, call: Call) -> Result<Payload> {
        ROUTER.dispatch(self, call).await
    }
}

#[async_trait]
impl Handler<Greet> for Greeter {
    async fn handle(
        &self,
        _ctx: ActionContext,
        config: GreetConfig,
        _input: (),
    ) -> Result<Greeting> {
        Ok(Greeting {
            text: format!("{}, {}!", self.salutation, config.name),
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let manager = PluginManager::new();
    manager.install(PluginFactory::new(|| Box::new(Greeter::default())))?;
    manager.configure(
        "greeter",
        PluginConfig::with_settings(json!({"salutation": "Hello"})),
    );
    manager.activate("greeter").await?;

    // Typed: the compiler checks the config, input and output types.
    let typed = manager
        .call_typed::<Greet>(
            "greeter",
            GreetConfig { name: "Ada".into() },
            (),
            Default::default(),
        )
        .await?;
    println!("{}", typed.text);

    // Dynamic: the same handler, by name, as a workflow or the CLI would call it.
    let dynamic = manager
        .call(
            "greeter",
            Call::new("greet", Payload::Empty).with_config(json!({"name": "Grace"})),
        )
        .await?;
    println!("{}", dynamic.into_json()?["text"]);

    manager.deactivate_all().await;
    Ok(())
}
