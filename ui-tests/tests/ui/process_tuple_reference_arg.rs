// A reference inside a tuple argument cannot reach another process either.
#[mc::process]
fn greet((count, name): (u64, &'static str)) -> usize {
    name.len() * count as usize
}

#[mc::process]
fn names(n: u64) -> Vec<&'static str> {
    vec!["a"; n as usize]
}

fn main() {}
