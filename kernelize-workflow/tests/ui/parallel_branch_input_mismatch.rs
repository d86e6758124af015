// Every parallel branch takes the output of the step before the fork.
use kernelize_core::Action;
use kernelize_workflow::builder::{Chain, Step};

macro_rules! action {
    ($name:ident, $input:ty, $output:ty) => {
        struct $name;
        impl Action for $name {
            const NAME: &'static str = stringify!($name);
            const DESCRIPTION: &'static str = stringify!($name);
            type Config = ();
            type Input = $input;
            type Output = $output;
        }
    };
}

action!(Fetch, (), Vec<u32>);
action!(Count, Vec<u32>, u64);
action!(Shout, String, String);

fn main() {
    let _ = Chain::start(Step::typed::<Fetch>("fetch", "p", ())).parallel((
        Step::typed::<Count>("count", "p", ()),
        Step::typed::<Shout>("shout", "p", ()),
    ));
}
