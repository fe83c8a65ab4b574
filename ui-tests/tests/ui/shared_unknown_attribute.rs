// Unknown `#[shared(...)]` options are rejected, spanned on the option.
#[derive(mc::Shared)]
#[shared(rename = "Other")]
struct Job {
    name: String,
}

fn main() {}
