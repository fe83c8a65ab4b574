//! The tutorial's example with a shared reference: the pool is created in
//! the master before any worker (here: before `mc::run`, whose master and
//! workers are forks of the caller, so they all have it mapped) and
//! released after the run. The master starts X with the pool; X creates a
//! shared reference holding 1 and starts Y with its descriptor; Y returns
//! `k + 1 + value`. Unlike the global variable of `tutorial_processes`, the
//! shared value is seen by Y: X prints `Result: 3`.

use mc::{Pool, PoolDescr, SRef, SRefDescr};

#[mc::process]
fn body_y((c_descr, k): (SRefDescr<usize>, usize)) -> usize {
    let c = c_descr.open().expect("open the shared reference");
    let c_value = *c.read().expect("read the shared reference");
    k + 1 + c_value
}

#[mc::process]
fn body_x((pool, k): (PoolDescr, usize)) -> usize {
    let pool = pool.open().expect("open the pool");
    let c = SRef::new(&pool, &1usize).expect("create a shared reference");
    let c_descr = c.descr();
    let pid_y = body_y::start((c_descr, k)).expect("start Y");
    let j = body_y::join(pid_y).expect("Error in process Y");
    println!("Result: {j}");
    c.destroy().expect("destroy the shared reference");
    j
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::create(1024 * 1024)?;
    let j = mc::run(|| -> Result<usize, mc::Error> {
        let pid_x = body_x::start((pool.descr(), 1))?;
        Ok(body_x::join(pid_x)?)
    })?
    .into_result()??;
    // `Netmcore.release pool`.
    pool.unlink()?;
    if j != 3 {
        return Err(format!("expected 3, got {j}").into());
    }
    Ok(())
}
