//! Compile-fail tests: every `tests/ui/*.rs` documents one misuse (its first
//! line says which) and must fail to compile with exactly the diagnostics
//! recorded in its `.stderr` file; every `tests/pass/*.rs` must compile.
//!
//! The `.stderr` files belong to the toolchain pinned in
//! `rust-toolchain.toml`. Regenerate them with
//! `TRYBUILD=overwrite cargo test -p mc-ui-tests`, never by hand.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}
