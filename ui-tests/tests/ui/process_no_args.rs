// A process takes exactly one argument: use `_: ()` when it needs none.
#[mc::process]
fn tick() -> u32 {
    1
}

fn main() {}
