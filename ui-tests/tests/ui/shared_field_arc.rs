// `Arc` cannot be shared between processes: use `Box`, or a value in a heap.
use std::sync::Arc;

#[derive(mc::Shared)]
struct Config {
    data: Arc<u8>,
}

fn main() {}
