// `RefCell` cannot be shared: its borrow flag is not process-safe.
use std::cell::RefCell;

#[derive(mc::Shared)]
enum State {
    Idle,
    Busy { data: RefCell<u8> },
}

fn main() {}
