// A semaphore in shared memory is a `Placed<Semaphore>`, which safe code
// cannot make: `Pin::set` has nothing to replace it with.
use std::pin::Pin;

fn replace(mut s: Pin<&mut mc::sync::Placed<mc::sync::Semaphore>>) {
    s.set(mc::sync::Placed { value: mc::sync::Semaphore::new(7), _pin: std::marker::PhantomPinned });
}

fn main() {
    let _ = replace;
}
