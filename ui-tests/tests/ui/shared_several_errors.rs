// All errors of a derive are reported at once.
#[derive(mc::Shared)]
#[shared(crate = "mc", repr = SharedE)]
enum E<'a> {
    A = 1,
    B(&'a str),
}

fn main() {}
