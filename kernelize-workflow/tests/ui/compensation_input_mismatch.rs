// A compensation receives the output of the step it undoes.
use kernelize_core::Action;
use kernelize_workflow::builder::{Step, TypedCompensation};

struct Reserve;
impl Action for Reserve {
    const NAME: &'static str = "reserve";
    const DESCRIPTION: &'static str = "reserve";
    type Config = ();
    type Input = ();
    type Output = u64;
}

struct Release;
impl Action for Release {
    const NAME: &'static str = "release";
    const DESCRIPTION: &'static str = "release";
    type Config = ();
    type Input = String;
    type Output = ();
}

fn main() {
    let _ = Step::typed::<Reserve>("reserve", "p", ())
        .compensate(TypedCompensation::typed::<Release>("p", ()));
}
