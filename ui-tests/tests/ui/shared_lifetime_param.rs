// Lifetime parameters are rejected: shared values own their data.
#[derive(mc::Shared)]
struct Name<'a> {
    text: &'a str,
}

fn main() {}
