// `std::sync::Mutex` only works between threads: use the `mc::sync` locks.
#[derive(mc::Shared)]
struct Guarded {
    lock: std::sync::Mutex<u8>,
}

fn main() {}
