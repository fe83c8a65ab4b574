// The argument travels as bytes, so it must be serde: this struct is not.
struct Job {
    size: usize,
}

#[mc::process]
fn work(job: Job) -> usize {
    job.size
}

fn main() {}
