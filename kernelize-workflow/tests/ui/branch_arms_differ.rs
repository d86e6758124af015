// Both arms of a branch must end in the same type.
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
action!(Describe, Vec<u32>, String);

fn main() {
    let _ = Chain::start(Step::typed::<Fetch>("fetch", "p", ())).branch(
        "${params.short}",
        Step::typed::<Count>("count", "p", ()),
        Step::typed::<Describe>("describe", "p", ()),
    );
}
