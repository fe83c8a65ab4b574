// A raw pointer field cannot be shared: it points into one process.
#[derive(mc::Shared)]
struct Node {
    value: u64,
    next: *const Node,
}

fn main() {}
