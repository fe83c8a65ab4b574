// A boxed closure (a trait object) cannot be shared.
#[derive(mc::Shared)]
struct Task {
    name: String,
    run: Box<dyn Fn()>,
}

fn main() {}
