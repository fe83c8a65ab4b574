//! Compile-fail tests of `#[mc::process]` (`tests/ui/process_*.rs`).
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite`.

#[test]
fn process_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/process_*.rs");
    t.pass("tests/pass/process_*.rs");
}
