// A generic function cannot be a process: a start names one compiled function.
#[mc::process]
fn identity<T: serde::Serialize + serde::de::DeserializeOwned>(x: T) -> T {
    x
}

fn main() {}
