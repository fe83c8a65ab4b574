// A closure cannot be a process: what it captures does not exist in the fresh copy of the master.
#[mc::process]
static SQUARE: fn(u64) -> u64 = |x| x * x;

fn main() {}
