// A step that takes `String` cannot follow one that gives `Vec<u32>`.
use kernelize_core::Action;
use kernelize_workflow::builder::{Chain, Step};

struct Fetch;
impl Action for Fetch {
    const NAME: &'static str = "fetch";
    const DESCRIPTION: &'static str = "fetch";
    type Config = ();
    type Input = ();
    type Output = Vec<u32>;
}

struct Shout;
impl Action for Shout {
    const NAME: &'static str = "shout";
    const DESCRIPTION: &'static str = "shout";
    type Config = ();
    type Input = String;
    type Output = String;
}

fn main() {
    let _ = Chain::start(Step::typed::<Fetch>("fetch", "p", ())).then(Step::typed::<Shout>(
        "shout",
        "p",
        (),
    ));
}
