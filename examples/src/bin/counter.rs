//! Four workers increment a `mc::sync::Mutex<u64>` kept in a shared heap,
//! 100,000 times each. The lock is taken through a read guard of the
//! heap, so the workers contend only on the counter's own lock.

use std::process::ExitCode;

use mc::sync::Mutex;
use mc::{Heap, HeapDescr, Pool};

const WORKERS: u64 = 4;
const ROUNDS: u64 = 100_000;

#[derive(mc::Shared)]
pub struct Counter {
    counter: Mutex<u64>,
}

#[mc::process]
fn bump(descr: HeapDescr<Counter>) -> Result<(), String> {
    let heap = descr.open().map_err(|e| e.to_string())?;
    let r = heap.read().map_err(|e| e.to_string())?;
    for _ in 0..ROUNDS {
        let mut g = r.counter.lock().map_err(|e| e.to_string())?;
        *g += 1;
    }
    Ok(())
}

fn work() -> Result<u64, String> {
    let pool = Pool::create(16 << 20).map_err(|e| e.to_string())?;
    let heap = Heap::create(
        &pool,
        &Counter {
            counter: Mutex::new(0),
        },
    )
    .map_err(|e| e.to_string())?;
    let pids = (0..WORKERS)
        .map(|_| bump::start(heap.descr()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for p in pids {
        bump::join(p).map_err(|e| e.to_string())??;
    }
    let r = heap.read().map_err(|e| e.to_string())?;
    let n = *r.counter.lock().map_err(|e| e.to_string())?;
    Ok(n)
}

fn main() -> ExitCode {
    let n = match mc::run(work).map(|r| r.returned()) {
        Ok(Some(Ok(n))) => n,
        Ok(Some(Err(e))) => {
            eprintln!("counter: {e}");
            return ExitCode::FAILURE;
        }
        Ok(None) => {
            eprintln!("counter: the first process did not return");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("counter: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Counter: {n}");
    if n != WORKERS * ROUNDS {
        eprintln!("counter: expected {}", WORKERS * ROUNDS);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
