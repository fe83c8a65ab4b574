// `Rc` cannot be shared: its reference count is per process; use `Box` or `Vec`.
use std::rc::Rc;

#[derive(mc::Shared)]
struct Config {
    name: String,
    counter: Rc<u8>,
}

fn main() {}
