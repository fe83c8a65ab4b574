//! The tutorial's first example: the master starts process X, which sets a
//! global counter to 1, starts Y and prints Y's result; Y returns
//! `k + 1 + c`. Y is a fresh copy of the master, where the counter is
//! still 0: X prints `Result: 2`, not 3.
//!
//! The closure given to `mc::run` is Netmulticore's `first_process`; as a
//! run ends with its closure, the closure also waits for X.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The tutorial's `c` (`ref 0`).
static C: AtomicUsize = AtomicUsize::new(0);

#[mc::process]
fn body_y(k: usize) -> usize {
    k + 1 + C.load(Ordering::SeqCst)
}

#[mc::process]
fn body_x(k: usize) -> usize {
    C.store(1, Ordering::SeqCst);
    let pid_y = body_y::start(k).expect("start Y");
    let j = body_y::join(pid_y).expect("Error in process Y");
    println!("Result: {j}");
    j
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let j = mc::run(|| -> Result<usize, mc::Error> {
        let pid_x = body_x::start(1)?;
        Ok(body_x::join(pid_x)?)
    })?
    .into_result()??;
    if j != 2 {
        return Err(format!("expected 2, got {j}").into());
    }
    Ok(())
}
