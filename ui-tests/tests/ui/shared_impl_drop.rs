// A `Drop` impl on a shared representation conflicts with the derive (it could move fields out).
#[derive(mc::Shared)]
struct Job {
    name: String,
}

impl Drop for SharedJob {
    fn drop(&mut self) {}
}

fn main() {}
