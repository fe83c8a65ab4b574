//! A tour of a shared heap: create a pool and a heap holding a derived
//! struct, read it three ways (guard, pin, copy), change parts of it in
//! place 10,000 times, collect the garbage and look at the figures.
//!
//! Run with `cargo run -p mc-examples --bin heap_tour`; the last line is
//! `heap_tour: ok` when every check passed.

use std::mem::size_of;
use std::process::ExitCode;

use mc::{Heap, HeapStats, Pool, Repr};

/// The lower and upper bound of something.
#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Limits {
    low: i64,
    high: i64,
}

/// What the job is doing.
#[derive(mc::Shared, Debug, Clone, PartialEq)]
enum Phase {
    Idle,
    Running { step: u64, note: String },
    Done(f64),
}

/// The value we keep in the heap.
#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Job {
    title: String,
    tags: Vec<String>,
    owner: Option<String>,
    limits: Limits,
    phase: Phase,
    history: Vec<u64>,
}

fn table(label: &str, s: &HeapStats) {
    println!("    {label}");
    println!("      live bytes          {:>10}", s.live_bytes);
    println!("      free bytes          {:>10}", s.free_bytes);
    println!(
        "      chunks              {:>10}  ({} bytes)",
        s.chunks, s.chunk_bytes
    );
    println!("      allocated since GC  {:>10}", s.allocated_since_gc);
    println!("      collections         {:>10}", s.gc_runs);
    println!("      last collection     {:>10.1?}", s.last_gc);
}

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

fn tour() -> Result<(), Box<dyn std::error::Error>> {
    println!("1. A pool: one shared-memory segment, mapped at the same address in");
    println!("   every process that uses it. 64 MiB are reserved, pages are backed");
    println!("   on demand.");
    let pool = Pool::create(64 << 20)?;
    println!("   pool {} at {:#x}", pool.name(), pool.base());

    println!();
    println!("2. A heap in the pool, holding one root value: a `Job` with a String,");
    println!("   a Vec, an Option, a nested struct and an enum, copied in deeply.");
    let job = Job {
        title: "resize images".into(),
        tags: vec!["batch".into(), "photos".into()],
        owner: Some("ada".into()),
        limits: Limits { low: 0, high: 10 },
        phase: Phase::Idle,
        history: Vec::new(),
    };
    let heap = Heap::create(&pool, &job)?;

    println!();
    println!("3. Three ways to read it:");
    {
        let g = heap.read()?;
        println!(
            "   - a read guard (shared lock, no copy): title {:?}, {} tags, owner {:?}",
            g.title.as_str(),
            g.tags.len(),
            g.owner.as_ref().map(|s| s.as_str())
        );
        check(g.title.as_str() == "resize images", "read: title")?;
    }
    {
        let p = heap.pin()?;
        println!(
            "   - a pin guard (no lock held; writers go on, this value stays): limits {}..{}",
            p.limits.low, p.limits.high
        );
        check(p.limits.high == 10, "pin: limits")?;
    }
    let copy = heap.copy()?;
    println!("   - a copy (an ordinary local `Job`): {copy:?}");
    check(copy == job, "copy differs from the original")?;

    println!();
    println!("4. 10,000 modifications under the exclusive lock. Each replaces parts");
    println!("   of the value in place through field projections: the old parts");
    println!("   become garbage, collected between modifications.");
    let before = heap.stats()?;
    let n = 10_000u64;
    for i in 0..n {
        heap.modify(|m, root| -> Result<(), mc::HeapError> {
            let p = root.project();
            m.set_str(p.title, &format!("resize images, round {i}"))?;
            m.set::<Phase>(
                p.phase,
                &Phase::Running {
                    step: i,
                    note: format!("step {i} of {n}"),
                },
            )?;
            let l = p.limits.project();
            *l.high.get_mut() = 10 + i as i64;
            if let Some(owner) = p.owner.as_pin() {
                m.set_str(owner, if i % 2 == 0 { "ada" } else { "grace" })?;
            }
            // Keep the last 16 steps in `history` and the tag list short.
            if p.history.len() >= 16 {
                m.truncate(p.history, 0);
            } else {
                m.push(p.history, &i)?;
            }
            m.set::<Vec<String>>(p.tags, &vec!["batch".into(), format!("round-{}", i % 7)])?;
            Ok(())
        })??;
    }
    heap.modify(|m, root| m.set::<Phase>(root.project().phase, &Phase::Done(99.5)))??;
    let after = heap.stats()?;
    println!(
        "   done: {} collections ran on their own meanwhile.",
        after.gc_runs - before.gc_runs
    );

    println!();
    println!("5. The figures, before and after an explicit collection:");
    table("before gc()", &after);
    heap.gc()?;
    let collected = heap.stats()?;
    table("after gc()", &collected);

    println!();
    println!("6. Checks.");
    let value = heap.copy()?;
    println!("   the value now: {value:?}");
    let expected_history: Vec<u64> = {
        // The history is cleared every 17th step and refilled in between.
        let mut h = Vec::new();
        for i in 0..n {
            if h.len() >= 16 {
                h.clear();
            } else {
                h.push(i);
            }
        }
        h
    };
    check(
        value.title == format!("resize images, round {}", n - 1),
        "title",
    )?;
    check(
        value.tags == vec!["batch".to_string(), format!("round-{}", (n - 1) % 7)],
        "tags",
    )?;
    check(value.owner.as_deref() == Some("grace"), "owner")?;
    check(
        value.limits
            == Limits {
                low: 0,
                high: 10 + n as i64 - 1,
            },
        "limits",
    )?;
    check(value.phase == Phase::Done(99.5), "phase")?;
    check(value.history == expected_history, "history")?;
    let live_data = mc::value::deep_size(&value) + size_of::<Repr<Job>>();
    println!(
        "   live data {live_data} bytes (deep size + inline part); heap live bytes after gc {} \
         ({:.2}x: block headers and alignment)",
        collected.live_bytes,
        collected.live_bytes as f64 / live_data as f64
    );
    check(
        collected.live_bytes < 2 * live_data,
        "live bytes after gc exceed twice the live data",
    )?;
    heap.destroy()?;
    println!("   the heap is destroyed; its chunks went back to the pool.");
    Ok(())
}

fn main() -> ExitCode {
    match tour() {
        Ok(()) => {
            println!("heap_tour: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("heap_tour: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
