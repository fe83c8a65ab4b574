// A function pointer cannot be shared: code addresses are per process.
#[derive(mc::Shared)]
struct Task {
    run: fn(u32) -> u32,
}

fn main() {}
