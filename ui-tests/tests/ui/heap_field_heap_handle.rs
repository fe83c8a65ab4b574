// A heap handle is process-local: a shared value must hold its descriptor instead.
#[derive(mc::Shared)]
struct Registry {
    other: mc::Heap<u64>,
}

fn main() {}
