// An `Unpin` impl on a pointer-carrying shared representation conflicts with the derive.
#[derive(mc::Shared)]
struct Job {
    name: String,
}

impl Unpin for SharedJob {}

fn main() {}
