// A process takes exactly one argument: pass several values as a tuple.
#[mc::process]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {}
