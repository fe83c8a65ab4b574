// Data in a `SharedMutex` that is not `Unpin` (it carries heap pointers) is modified through `as_pin`, never by a plain `&mut`.
use std::marker::PhantomPinned;

fn replace(lock: &mc::sync::SharedMutex<PhantomPinned>) {
    let mut g = lock.lock().unwrap();
    *g = PhantomPinned;
}

fn main() {
    let _ = replace;
}
