// Unions cannot be derived: which field is live is unknown.
#[derive(mc::Shared)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
