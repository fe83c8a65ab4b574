//! The tutorial's example: the first process X sets a global counter to 1,
//! then starts Y, which returns `k + 1 + C`. Y is a fresh copy of the
//! master, where the counter is still 0: the result is 2, not 3.

use std::sync::atomic::{AtomicUsize, Ordering};

static C: AtomicUsize = AtomicUsize::new(0);

#[mc::process]
fn body_y(k: usize) -> usize {
    k + 1 + C.load(Ordering::SeqCst)
}

fn body_x(k: usize) -> usize {
    C.store(1, Ordering::SeqCst);
    let pid = body_y::start(k).expect("start Y");
    body_y::join(pid).expect("error in process Y")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let j = mc::run(|| body_x(1))?.into_result()?;
    println!("Result: {j}");
    if j != 2 {
        return Err("expected 2".into());
    }
    Ok(())
}
