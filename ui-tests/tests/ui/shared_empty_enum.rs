// An enum without variants has no values to share.
#[derive(mc::Shared)]
enum Never {}

fn main() {}
