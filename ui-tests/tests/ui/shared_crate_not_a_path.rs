// The `crate` option of the derive takes a path to the `mc` crate; anything else is an error on the option.
#[derive(mc::Shared)]
#[shared(crate = "not a path")]
struct Job {
    n: u64,
}

fn main() {}
