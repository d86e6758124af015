//! Library part of the examples crate: nothing; see the `examples/` targets.
