// A method cannot be a process: write a free function.
struct Counter;

impl Counter {
    #[mc::process]
    fn bump(&self, x: u32) -> u32 {
        x + 1
    }
}

fn main() {}
