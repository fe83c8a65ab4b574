// A pointer-carrying shared value cannot be moved out of its `Pin<&mut _>`.
use std::pin::Pin;

#[derive(mc::Shared)]
struct Job {
    name: String,
}

fn swap(a: Pin<&mut SharedJob>, b: Pin<&mut SharedJob>) {
    std::mem::swap(&mut *a, &mut *b);
}

fn take(a: Pin<&mut SharedJob>, b: SharedJob) -> SharedJob {
    std::mem::replace(&mut *a, b)
}

fn main() {}
