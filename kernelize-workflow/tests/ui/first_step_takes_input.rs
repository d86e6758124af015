// A workflow starts with no input: its first step must take `()`.
use kernelize_core::Action;
use kernelize_workflow::builder::{Chain, Step, WorkflowBuilder};

struct Shout;
impl Action for Shout {
    const NAME: &'static str = "shout";
    const DESCRIPTION: &'static str = "shout";
    type Config = ();
    type Input = String;
    type Output = String;
}

fn main() {
    let _ = WorkflowBuilder::new("w").build(Chain::start(Step::typed::<Shout>("shout", "p", ())));
}
