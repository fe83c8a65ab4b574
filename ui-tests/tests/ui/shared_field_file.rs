// A `File` cannot be shared: file descriptors are per process.
#[derive(mc::Shared)]
struct Log {
    file: std::fs::File,
}

fn main() {}
