// A process body cannot use a local of the function it is written in: define it at module level.
fn main() {
    let offset = 1u32;
    #[mc::process]
    fn add(x: u32) -> u32 {
        x + offset
    }
}
