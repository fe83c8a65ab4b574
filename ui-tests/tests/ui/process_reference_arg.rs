// A borrowed argument cannot reach another process: use an owned type (`String`).
#[mc::process]
fn greet(name: &'static str) -> usize {
    name.len()
}

fn main() {}
