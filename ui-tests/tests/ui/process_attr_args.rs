// `#[mc::process]` takes no arguments.
#[mc::process(restart = true)]
fn work(x: u32) -> u32 {
    x
}

fn main() {}
