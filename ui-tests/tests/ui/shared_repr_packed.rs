// A packed layout would leave fields unaligned: the derive rejects it on `packed`.
#[derive(mc::Shared)]
#[repr(C, packed)]
struct Sample {
    tag: u8,
    value: u64,
}

#[derive(mc::Shared)]
#[repr(packed(2))]
struct Pair(u8, u32);

fn main() {}
