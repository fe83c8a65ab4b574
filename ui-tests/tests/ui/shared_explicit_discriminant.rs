// Explicit discriminants are rejected: the shared tag numbers variants from 0.
#[derive(mc::Shared)]
enum Level {
    Low,
    High = 5,
}

fn main() {}
