// A lock in place is `!Unpin`, whatever its data: a modification cannot
// move or replace it through `Pin::get_mut` (a process may hold it pinned,
// `Heap::pin_lock`).
use std::pin::Pin;

fn swap(a: Pin<&mut mc::sync::SharedMutex<u64>>, b: Pin<&mut mc::sync::SharedMutex<u64>>) {
    std::mem::swap(a.get_mut(), b.get_mut());
}

fn main() {
    let _ = swap;
}
