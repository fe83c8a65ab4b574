// The result travels back as bytes: an `Rc` is not serde.
use std::rc::Rc;

#[mc::process]
fn make(x: u32) -> Rc<u32> {
    Rc::new(x)
}

fn main() {}
