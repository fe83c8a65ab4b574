//! Two workers modify the same heap 10,000 times each while a third reads
//! it with pin guards, checking that every pinned value is internally
//! consistent (its fields agree with each other). The final value must
//! count 20,000 changes.

use std::process::ExitCode;

use mc::{Heap, HeapDescr, Pool};

const ROUNDS: u64 = 10_000;

/// Fields that must agree: `total == a + b`, `last` names the writer of
/// the last change and `stamp` repeats the total as text.
#[derive(mc::Shared, Debug, Clone, PartialEq)]
pub struct Tally {
    a: u64,
    b: u64,
    total: u64,
    last: String,
    stamp: String,
}

fn consistent(t: &mc::Repr<Tally>) -> bool {
    t.total == t.a + t.b && t.stamp.as_str() == format!("total={}", t.total)
}

#[mc::process]
fn writer(arg: (HeapDescr<Tally>, String)) -> Result<u64, String> {
    let (descr, name) = arg;
    let heap = descr.open().map_err(|e| e.to_string())?;
    for _ in 0..ROUNDS {
        heap.modify(|m, root| -> Result<(), mc::HeapError> {
            let p = root.project();
            if name == "a" {
                *p.a.get_mut() += 1;
            } else {
                *p.b.get_mut() += 1;
            }
            let total = p.total.get_mut();
            *total += 1;
            let total = *total;
            m.set_str(p.last, &name)?;
            m.set_str(p.stamp, &format!("total={total}"))
        })
        .and_then(|r| r)
        .map_err(|e| e.to_string())?;
    }
    Ok(ROUNDS)
}

#[mc::process]
fn reader(descr: HeapDescr<Tally>) -> Result<u64, String> {
    let heap = descr.open().map_err(|e| e.to_string())?;
    let mut seen = 0u64;
    let mut last_total = 0;
    loop {
        let p = heap.pin().map_err(|e| e.to_string())?;
        if !consistent(&p) {
            return Err(format!("inconsistent pinned value: {:?}", *p));
        }
        if p.total < last_total {
            return Err(format!("total went back: {} after {last_total}", p.total));
        }
        last_total = p.total;
        seen += 1;
        if p.total == 2 * ROUNDS {
            return Ok(seen);
        }
        drop(p);
        std::thread::yield_now();
    }
}

fn work() -> Result<(), String> {
    let pool = Pool::create(64 << 20).map_err(|e| e.to_string())?;
    let initial = Tally {
        a: 0,
        b: 0,
        total: 0,
        last: String::new(),
        stamp: "total=0".into(),
    };
    let heap = Heap::create(&pool, &initial).map_err(|e| e.to_string())?;
    let d = heap.descr();
    let r = reader::start(d.clone()).map_err(|e| e.to_string())?;
    let wa = writer::start((d.clone(), "a".into())).map_err(|e| e.to_string())?;
    let wb = writer::start((d, "b".into())).map_err(|e| e.to_string())?;
    for (name, pid) in [("writer a", wa), ("writer b", wb)] {
        let n = writer::join(pid).map_err(|e| e.to_string())??;
        println!("{name}: {n} modifications");
    }
    let seen = reader::join(r).map_err(|e| e.to_string())??;
    println!("reader: {seen} pinned values, all consistent");
    let t = heap.copy().map_err(|e| e.to_string())?;
    println!(
        "final: a = {}, b = {}, total = {}, last writer {:?}",
        t.a, t.b, t.total, t.last
    );
    let s = heap.stats().map_err(|e| e.to_string())?;
    println!(
        "heap: {} live bytes, {} chunks, {} collections",
        s.live_bytes, s.chunks, s.gc_runs
    );
    if (t.a, t.b, t.total) != (ROUNDS, ROUNDS, 2 * ROUNDS) {
        return Err("wrong counts".into());
    }
    if t.last != "a" && t.last != "b" {
        return Err(format!("bad last writer {:?}", t.last));
    }
    if t.stamp != format!("total={}", 2 * ROUNDS) {
        return Err("bad stamp".into());
    }
    heap.destroy().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let report = match mc::run(work) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("heap_share: {e}");
            return ExitCode::FAILURE;
        }
    };
    match report.returned() {
        Some(Ok(())) => {
            println!("heap_share: ok");
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            eprintln!("heap_share: FAILED: {e}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("heap_share: the first process did not return");
            ExitCode::FAILURE
        }
    }
}
