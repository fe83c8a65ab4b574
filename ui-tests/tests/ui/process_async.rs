// An `async fn` cannot be a process: the body runs to completion in its own process.
#[mc::process]
async fn fetch(x: u32) -> u32 {
    x
}

fn main() {}
