// A field that borrows (`&'static str`) cannot be shared: use `String`.
#[derive(mc::Shared)]
struct Message {
    id: u32,
    text: &'static str,
}

fn main() {}
