// `#[mc::process]` applies to functions only, not to a struct.
#[mc::process]
struct Worker;

fn main() {}
