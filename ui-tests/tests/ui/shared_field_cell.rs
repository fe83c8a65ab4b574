// `Cell` cannot be shared: modify shared values through the heap instead.
use std::cell::Cell;

#[derive(mc::Shared)]
struct Counter(Cell<u8>);

fn main() {}
