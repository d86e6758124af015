//! Typed workflows whose step types do not fit together must not compile.
//!
//! The expected compiler messages (`tests/ui/*.stderr`) depend on the toolchain; after a
//! Rust upgrade, regenerate them with `TRYBUILD=overwrite` and review the diff.

#[test]
fn mismatched_step_types_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
