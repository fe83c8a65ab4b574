//! The tutorial's X/Y example with a shared reference: X puts 1 into an
//! `SRef` in a pool and passes its descriptor to Y, which returns
//! `k + 1 + value`. Unlike a global variable, the shared value is seen by
//! Y: the result is 3.

use mc::{Pool, SRef, SRefDescr};

#[mc::process]
fn body_y(arg: (usize, SRefDescr<usize>)) -> usize {
    let (k, descr) = arg;
    let c = descr.open().expect("open the shared reference");
    let v = c.copy().expect("read the shared reference");
    k + 1 + v
}

fn body_x(k: usize) -> usize {
    let pool = Pool::create(16 << 20).expect("create a pool");
    let c = SRef::new(&pool, &1usize).expect("create a shared reference");
    let pid = body_y::start((k, c.descr())).expect("start Y");
    let r = body_y::join(pid).expect("error in process Y");
    c.destroy().expect("destroy the shared reference");
    r
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let j = mc::run(|| body_x(1))?.into_result()?;
    println!("Result: {j}");
    if j != 3 {
        return Err("expected 3".into());
    }
    Ok(())
}
