//! Multi-process tests of heaps: processes killed with SIGKILL inside a
//! modification, holding a read guard, holding a pin, taking part pins, or
//! in the middle of a GC-heavy loop; and bad input that needs a fresh mapping (a segment of
//! another format version, a pool whose address range is taken).
//!
//! Children are made with `fork` from this single-threaded `main`; every
//! wait is bounded (a child that does not finish in time is killed and the
//! scenario fails). Accesses that could hang if the heap's robustness were
//! broken run in a child with a deadline.
//!
//! Prints one line per scenario and `N passed, M failed` last; exits with a
//! non-zero status on any failure. Arguments filter scenarios by name.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mc::{Heap, HeapError, Pool, PoolError};

mod common;
use common::{
    ensure, fork_child, kill, run_scenarios, shared, wait_child, wait_for, ChildPid, Ended,
    Scenario,
};

/// Kills `pid` and reaps it.
fn kill_and_reap(pid: ChildPid) -> Result<(), String> {
    kill(pid);
    let ended = wait_child(pid, Duration::from_secs(10))?;
    ensure(ended == Ended::Signaled(SIGKILL), || {
        format!("child {pid} was not killed ({ended:?})")
    })
}

const SIGKILL: i32 = 9;

/// Runs `f` in a child, at most `timeout`: a hang becomes an error.
fn in_child(timeout: Duration, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let pid = fork_child(|| match f() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child: {e}");
            1
        }
    });
    let ended = wait_child(pid, timeout)?;
    ensure(ended.ok(), || {
        format!("the child's check failed ({ended:?}, see stderr)")
    })
}

/// Sleeps until killed (bounded, in case nobody does).
fn linger() {
    std::thread::sleep(Duration::from_secs(30));
}

fn poisoned<T: std::fmt::Debug>(what: &str, r: Result<T, HeapError>) -> Result<(), String> {
    match r {
        Err(HeapError::Poisoned) => Ok(()),
        other => Err(format!("{what}: expected Err(Poisoned), got {other:?}")),
    }
}

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Pair {
    a: u64,
    b: u64,
    note: String,
}

fn pair() -> Pair {
    Pair {
        a: 0,
        b: 0,
        note: "start".into(),
    }
}

// ---------------------------------------------------------------------------

/// A writer killed inside `modify` poisons the heap: every access is
/// `Err(Poisoned)`, whichever comes first (a reader or a writer), and
/// `destroy` still works.
fn killed_in_modify_poisons() -> Result<String, String> {
    let mut detail = Vec::new();
    for first in ["read", "modify"] {
        let pool = Pool::create(16 << 20).map_err(|e| e.to_string())?;
        let heap = Heap::create(&pool, &pair()).map_err(|e| e.to_string())?;
        let flag = shared(AtomicU32::new(0));
        let h = heap.clone();
        let pid = fork_child(move || {
            let _ = h.modify(|m, r| {
                let p = r.project();
                *p.a.get_mut() += 1; // half-way: `b` is not updated
                let _ = m.set_str(p.note, "half");
                flag.store(1, SeqCst);
                linger();
            });
            2
        });
        wait_for(Duration::from_secs(10), || flag.load(SeqCst) == 1)?;
        kill_and_reap(pid)?;
        let t = Instant::now();
        in_child(Duration::from_secs(10), || {
            if first == "read" {
                poisoned("read", heap.read().map(|_| ()))?;
            } else {
                poisoned("modify", heap.modify(|_, _| ()))?;
            }
            poisoned("read", heap.read().map(|_| ()))?;
            poisoned("pin", heap.pin().map(|_| ()))?;
            poisoned("copy", heap.copy())?;
            poisoned("modify", heap.modify(|_, _| ()))?;
            poisoned("assign", heap.assign(&pair()))?;
            poisoned("gc", heap.gc())?;
            poisoned("stats", heap.stats())?;
            // Opening gives a handle; using it is refused.
            let opened = heap.descr().open().map_err(|e| e.to_string())?;
            poisoned("read through a new handle", opened.read().map(|_| ()))?;
            let msg = HeapError::Poisoned.to_string();
            ensure(msg.contains("destroy it"), || format!("message: {msg}"))
        })?;
        detail.push(format!("{first} first: poisoned in {:?}", t.elapsed()));
        // The parent sees the same.
        poisoned("read in parent", heap.read().map(|_| ()))?;
        heap.destroy().map_err(|e| format!("destroy: {e}"))?;
        ensure(pool.stats().used == mc::pool::PAGE_SIZE, || {
            "destroy left chunks".into()
        })?;
        // The pool is fine: a new heap works.
        let again = Heap::create(&pool, &pair()).map_err(|e| e.to_string())?;
        ensure(again.copy().map_err(|e| e.to_string())? == pair(), || {
            "new heap".into()
        })?;
    }
    Ok(detail.join("; "))
}

/// A new heap in a new pool, after a child ran `take` on it, which takes
/// a guard and calls its second argument while holding it: the child was
/// killed there.
fn heap_of_killed_holder(
    take: impl FnOnce(&Heap<Pair>, &dyn Fn()),
) -> Result<(Pool, Heap<Pair>), String> {
    let pool = Pool::create(16 << 20).map_err(|e| e.to_string())?;
    let heap = Heap::create(&pool, &pair()).map_err(|e| e.to_string())?;
    let flag = shared(AtomicU32::new(0));
    let h = heap.clone();
    let pid = fork_child(move || {
        take(&h, &|| {
            flag.store(1, SeqCst);
            linger();
        });
        2
    });
    wait_for(Duration::from_secs(10), || flag.load(SeqCst) == 1)?;
    kill_and_reap(pid)?;
    Ok((pool, heap))
}

/// A process killed while holding a read guard does not block writers.
fn killed_reader_does_not_block_writers() -> Result<String, String> {
    let (_pool, heap) = heap_of_killed_holder(|h, stay| {
        let _guard = h.read();
        stay();
    })?;
    let t = Instant::now();
    in_child(Duration::from_secs(5), || {
        heap.modify(|_, r| {
            let p = r.project();
            *p.a.get_mut() = 7;
            *p.b.get_mut() = 7;
        })
        .map_err(|e| format!("modify: {e}"))
    })?;
    let dt = t.elapsed();
    let v = heap.copy().map_err(|e| e.to_string())?;
    ensure((v.a, v.b) == (7, 7), || format!("value {v:?}"))?;
    let s = heap.stats().map_err(|e| e.to_string())?;
    ensure(s.owner_deaths == 0, || "a reader's death counted".into())?;
    heap.destroy().map_err(|e| e.to_string())?;
    Ok(format!("writer went on after {dt:?}"))
}

/// A process killed while holding pins (of the root, and of a part): they
/// are reclaimed by the next collection (pins record their process), the
/// part's copy is freed, and the heap keeps working.
fn killed_while_pinning() -> Result<String, String> {
    let (pool, heap) = heap_of_killed_holder(|h, stay| {
        let _guard = h.pin();
        let _parts: Vec<_> = (0..200)
            .map(|_| h.pin_part::<String>(|r| &r.note))
            .collect();
        stay();
    })?;
    let s = heap.stats().map_err(|e| e.to_string())?;
    ensure(s.pinned == 201, || {
        format!(
            "{} values pinned by the killed process, expected 201",
            s.pinned
        )
    })?;
    in_child(Duration::from_secs(10), || {
        for i in 0..1000u64 {
            heap.modify(|m, r| {
                let p = r.project();
                *p.a.get_mut() = i;
                *p.b.get_mut() = i;
                m.set_str(p.note, &format!("round {i}"))
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        }
        heap.gc().map_err(|e| e.to_string())?;
        let v = heap.copy().map_err(|e| e.to_string())?;
        ensure((v.a, v.b) == (999, 999), || format!("value {v:?}"))?;
        let p = heap.pin().map_err(|e| e.to_string())?;
        ensure(p.note.as_str() == "round 999", || "pin".into())
    })?;
    // The dead process's pin was reclaimed by the first collection.
    let s = heap.stats().map_err(|e| e.to_string())?;
    ensure(s.pinned == 0, || {
        format!(
            "{} values pinned, expected the dead process's pin reclaimed",
            s.pinned
        )
    })?;
    heap.destroy().map_err(|e| e.to_string())?;
    ensure(pool.stats().used == mc::pool::PAGE_SIZE, || {
        "destroy left chunks".into()
    })?;
    Ok("the dead process's pin was reclaimed, heap works".into())
}

/// SIGKILL at random moments of a loop that takes and drops part pins
/// (and collects): the heap is never poisoned (a part pin changes no
/// value), every copy the dead process held is freed by the next
/// collection, and a pin held by the survivor still reads its value.
fn killed_while_taking_part_pins() -> Result<String, String> {
    const TRIALS: u64 = 30;
    let (mut held_at_kill, mut deaths) = (0, 0);
    for trial in 0..TRIALS {
        let pool = Pool::create(64 << 20).map_err(|e| e.to_string())?;
        let words: Vec<String> = (0..64).map(|i| format!("word {i}").repeat(8)).collect();
        let heap = Heap::create_with(&pool, &words, mc::HeapOptions::new().chunk_size(8192))
            .map_err(|e| e.to_string())?;
        let kept = heap
            .pin_part::<String>(|v| &v[5])
            .map_err(|e| e.to_string())?;
        heap.gc().map_err(|e| e.to_string())?;
        let base = heap.stats().map_err(|e| e.to_string())?.live_bytes;
        let flag = shared(AtomicU32::new(0));
        let h = heap.clone();
        let pid = fork_child(move || {
            let mut held = Vec::new();
            for i in 0usize.. {
                match h.pin_part::<String>(|v| &v[i % 64]) {
                    Ok(p) if p.starts_with(&format!("word {}", i % 64)) => held.push(p),
                    _ => return 3,
                }
                if held.len() > 8 {
                    held.drain(..4);
                }
                if i % 13 == 0 && h.gc().is_err() {
                    return 3;
                }
                flag.store(1, SeqCst);
            }
            0
        });
        wait_for(Duration::from_secs(10), || flag.load(SeqCst) == 1)?;
        std::thread::sleep(Duration::from_micros(200 + trial * 577 % 3000));
        kill_and_reap(pid)?;
        held_at_kill += heap.stats().map_err(|e| e.to_string())?.pinned - 1;
        let heap2 = heap.clone();
        in_child(Duration::from_secs(10), move || {
            heap2.gc().map_err(|e| format!("trial {trial}: gc: {e}"))?;
            heap2
                .validate()
                .map_err(|e| format!("trial {trial}: {e}"))?;
            let s = heap2.stats().map_err(|e| e.to_string())?;
            ensure(s.pinned == 1 && s.live_bytes == base, || {
                format!(
                    "trial {trial}: {} pinned, {} live bytes (expected 1 and {base})",
                    s.pinned, s.live_bytes
                )
            })
        })?;
        ensure(kept.as_str() == words[5], || "the kept pin changed".into())?;
        deaths += heap.stats().map_err(|e| e.to_string())?.owner_deaths;
        drop(kept);
        heap.destroy().map_err(|e| e.to_string())?;
    }
    Ok(format!(
        "{TRIALS} kills ({deaths} holding the heap's lock); {held_at_kill} part pins of dead \
         processes freed"
    ))
}

/// A record whose fields a mutex beside them protects, as in the
/// Netmulticore tutorial: the lock is a field of the shared value, taken
/// through a lock pin (`deref_p (fun r -> Netmcore_mutex.lock r.m)`) so
/// that modifications go on while it is held.
#[derive(mc::Shared, Debug)]
struct Guarded {
    m: mc::sync::Mutex<()>,
    c: mc::sync::Condvar,
    count: u64,
    done: u64,
    log: Vec<String>,
}

/// The tutorial's lock-via-`deref_p` pattern: three processes each run 300
/// read-then-modify cycles (two heap operations, which only the pinned
/// mutex makes atomic) while collections run; a fourth waits on the pinned
/// condition variable until all three are done.
fn lock_pinned_like_deref_p() -> Result<String, String> {
    const WORKERS: u64 = 3;
    const ROUNDS: u64 = 300;
    let pool = Pool::create(64 << 20).map_err(|e| e.to_string())?;
    let heap = Heap::create_with(
        &pool,
        &Guarded {
            m: mc::sync::Mutex::new(()),
            c: mc::sync::Condvar::new(),
            count: 0,
            done: 0,
            log: Vec::new(),
        },
        mc::HeapOptions::new().chunk_size(8192),
    )
    .map_err(|e| e.to_string())?;
    let h = heap.clone();
    let waiter = fork_child(move || {
        let (Ok(m), Ok(c)) = (
            h.pin_lock::<mc::sync::Mutex<()>>(|g| &g.m),
            h.pin_lock::<mc::sync::Condvar>(|g| &g.c),
        ) else {
            return 3;
        };
        let Ok(mut held) = m.lock() else { return 3 };
        let deadline = Instant::now() + Duration::from_secs(30);
        while h.read().map(|g| g.done).unwrap_or(0) < WORKERS {
            if Instant::now() > deadline {
                return 4;
            }
            match c.wait_timeout(held, Duration::from_millis(100)) {
                Ok((g, _)) => held = g,
                Err(_) => return 3,
            }
        }
        0
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let h = heap.clone();
            fork_child(move || {
                let Ok(m) = h.pin_lock::<mc::sync::Mutex<()>>(|g| &g.m) else {
                    return 3;
                };
                for i in 0..ROUNDS {
                    let Ok(held) = m.lock() else { return 3 };
                    let Ok(n) = h.read().map(|g| g.count) else {
                        return 3;
                    };
                    // Other processes' modifications (and collections) may
                    // run here, but none of these cycles.
                    std::hint::spin_loop();
                    let r = h.modify(|mu, g| {
                        let p = g.project();
                        *p.count.get_mut() = n + 1;
                        mu.push(p.log, &format!("worker {w} round {i}"))
                    });
                    if !matches!(r, Ok(Ok(()))) {
                        return 3;
                    }
                    drop(held);
                    if i % 50 == 0 && h.gc().is_err() {
                        return 3;
                    }
                }
                let Ok(held) = m.lock() else { return 3 };
                if h.modify(|_, g| *g.project().done.get_mut() += 1).is_err() {
                    return 3;
                }
                drop(held);
                let Ok(c) = h.pin_lock::<mc::sync::Condvar>(|g| &g.c) else {
                    return 3;
                };
                c.notify_all();
                0
            })
        })
        .collect();
    for pid in workers {
        common::expect_exit_ok(pid, Duration::from_secs(60))?;
    }
    common::expect_exit_ok(waiter, Duration::from_secs(60))?;
    let v = heap.read().map_err(|e| e.to_string())?;
    ensure(
        v.count == WORKERS * ROUNDS && v.log.len() as u64 == v.count,
        || {
            format!(
                "count {} and {} log lines, expected {}",
                v.count,
                v.log.len(),
                WORKERS * ROUNDS
            )
        },
    )?;
    drop(v);
    let gcs = heap.stats().map_err(|e| e.to_string())?.gc_runs;
    heap.destroy().map_err(|e| e.to_string())?;
    Ok(format!(
        "{} cycles under the pinned mutex, {gcs} collections; the waiter woke",
        WORKERS * ROUNDS
    ))
}

/// A process killed while it holds a pinned lock: the lock reports its
/// owner's death to the next locker, writes over the lock are refused
/// until a collection finds the pin's process gone, and then go through.
fn killed_holding_a_pinned_lock() -> Result<String, String> {
    let pool = Pool::create(16 << 20).map_err(|e| e.to_string())?;
    let fresh = || Guarded {
        m: mc::sync::Mutex::new(()),
        c: mc::sync::Condvar::new(),
        count: 0,
        done: 0,
        log: vec!["x".into()],
    };
    let heap = Heap::create(&pool, &fresh()).map_err(|e| e.to_string())?;
    let flag = shared(AtomicU32::new(0));
    let h = heap.clone();
    let pid = fork_child(move || {
        let Ok(m) = h.pin_lock::<mc::sync::Mutex<()>>(|g| &g.m) else {
            return 3;
        };
        let Ok(_held) = m.lock() else { return 3 };
        flag.store(1, SeqCst);
        linger();
        2
    });
    wait_for(Duration::from_secs(10), || flag.load(SeqCst) == 1)?;
    kill_and_reap(pid)?;
    let r = heap
        .modify(|mu, g| mu.set(g, &fresh()))
        .map_err(|e| e.to_string())?;
    ensure(matches!(r, Err(HeapError::LockPinned)), || {
        format!("overwriting the dead process's pinned lock: {r:?}")
    })?;
    let died = {
        let g = heap.read().map_err(|e| e.to_string())?;
        let held = g.m.lock().map_err(|e| e.to_string())?;
        held.owner_died()
    };
    ensure(died, || "the lock did not report its owner's death".into())?;
    heap.gc().map_err(|e| e.to_string())?;
    heap.modify(|mu, g| mu.set(g, &fresh()))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("after the collection: {e}"))?;
    let s = heap.stats().map_err(|e| e.to_string())?;
    ensure(s.pinned == 0, || format!("{} pins left", s.pinned))?;
    heap.destroy().map_err(|e| e.to_string())?;
    Ok("owner death reported; the pin reclaimed by the next collection".into())
}

/// SIGKILL at random moments of a loop that allocates, assigns and
/// collects: the next user gets `Ok` or `Err(Poisoned)` in bounded time,
/// never a hang, and an `Ok` heap holds a consistent value.
fn killed_in_gc_heavy_loop() -> Result<String, String> {
    const TRIALS: u64 = 20;
    let (mut ok, mut poisoned_n) = (0, 0);
    for trial in 0..TRIALS {
        let pool = Pool::create(64 << 20).map_err(|e| e.to_string())?;
        let heap = Heap::create_with(&pool, &pair(), mc::HeapOptions::new().chunk_size(8192))
            .map_err(|e| e.to_string())?;
        let flag = shared(AtomicU32::new(0));
        let h = heap.clone();
        let pid = fork_child(move || {
            for i in 0u64.. {
                let r = h.modify(|m, r| -> Result<(), HeapError> {
                    let p = r.project();
                    for k in 0..20 {
                        m.add(&vec![format!("garbage {k}"); 4])?;
                    }
                    *p.a.get_mut() = i;
                    m.set_str(p.note, &format!("round {i}"))?;
                    *p.b.get_mut() = i;
                    Ok(())
                });
                if !matches!(r, Ok(Ok(()))) {
                    return 3;
                }
                if i % 7 == 0 && h.gc().is_err() {
                    return 3;
                }
                if i % 11 == 0
                    && h.assign(&Pair {
                        a: i,
                        b: i,
                        note: format!("round {i}"),
                    })
                    .is_err()
                {
                    return 3;
                }
                flag.store(1, SeqCst);
                // In odd trials, time outside any modification too, so
                // that kills land between modifications as well as inside.
                if trial % 2 == 1 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            0
        });
        wait_for(Duration::from_secs(10), || flag.load(SeqCst) == 1)?;
        std::thread::sleep(Duration::from_micros(500 + trial * 731 % 5000));
        kill_and_reap(pid)?;
        let outcome = shared(AtomicU32::new(0));
        in_child(Duration::from_secs(10), || match heap.modify(|_, _| ()) {
            Ok(()) => {
                let v = heap.copy().map_err(|e| e.to_string())?;
                ensure(v.a == v.b && v.note == format!("round {}", v.a), || {
                    format!("inconsistent value {v:?}")
                })?;
                heap.gc().map_err(|e| e.to_string())?;
                outcome.store(1, SeqCst);
                Ok(())
            }
            Err(HeapError::Poisoned) => {
                outcome.store(2, SeqCst);
                Ok(())
            }
            Err(e) => Err(format!("trial {trial}: {e}")),
        })?;
        match outcome.load(SeqCst) {
            1 => ok += 1,
            2 => poisoned_n += 1,
            o => return Err(format!("trial {trial}: outcome {o}")),
        }
        heap.destroy().map_err(|e| format!("destroy: {e}"))?;
    }
    Ok(format!("{TRIALS} kills: {ok} Ok, {poisoned_n} Poisoned"))
}

/// A segment of another format version is refused with a message that
/// says what to do.
fn other_format_version() -> Result<String, String> {
    let name = format!("version-test-{}", std::process::id());
    let pool = Pool::create_named(&name, 1 << 20).map_err(|e| e.to_string())?;
    let seg = pool.name().to_owned();
    pool.persist();
    drop(pool);
    let patch = |v: u32| -> Result<(), String> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/{seg}"))
            .map_err(|e| e.to_string())?;
        f.write_all_at(&v.to_ne_bytes(), 8)
            .map_err(|e| e.to_string())
    };
    patch(99)?;
    let r = Pool::attach(&name);
    let res = match &r {
        Err(PoolError::NotAPool(_, mc::inspect::SegmentError::Version { found: 99, .. })) => {
            let msg = r.as_ref().unwrap_err().to_string();
            ensure(
                msg.contains("version 99") && msg.contains("recreate"),
                || format!("message: {msg}"),
            )
            .map(|()| msg)
        }
        other => Err(format!("expected a version error, got {other:?}")),
    };
    // Restored, the pool attaches again.
    patch(mc::inspect::FORMAT_VERSION)?;
    let again = Pool::attach(&name).map_err(|e| format!("attach after restore: {e}"));
    let _ = Pool::remove(&seg);
    again?;
    res
}

/// A pool whose recorded address range is taken in this process gives
/// `AddressInUse`, and attaches once the range is free.
fn address_in_use() -> Result<String, String> {
    let name = format!("addr-test-{}", std::process::id());
    let pool = Pool::create_named(&name, 1 << 20).map_err(|e| e.to_string())?;
    let seg = pool.name().to_owned();
    let base = pool.base();
    pool.persist();
    drop(pool);
    let r = in_child(Duration::from_secs(10), || {
        // SAFETY: maps one fresh page at a free address; never replaces a
        // mapping (MAP_FIXED_NOREPLACE).
        let p = unsafe {
            libc::mmap(
                std::ptr::without_provenance_mut::<libc::c_void>(base),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        ensure(p as usize == base, || "could not take the range".into())?;
        let e = match Pool::attach(&name) {
            Err(e) => e,
            Ok(_) => return Err("attached over a taken range".into()),
        };
        ensure(matches!(e, PoolError::AddressInUse { .. }), || {
            format!("{e:?}")
        })?;
        let msg = e.to_string();
        ensure(msg.contains("attach earlier"), || format!("message: {msg}"))?;
        // SAFETY: unmaps the page mapped above.
        unsafe { libc::munmap(p, 4096) };
        let pool = Pool::attach(&name).map_err(|e| format!("attach once free: {e}"))?;
        ensure(pool.base() == base, || "another address".into())
    });
    let _ = Pool::remove(&seg);
    r?;
    Ok(format!("range {base:#x} taken → AddressInUse"))
}

fn main() {
    let scenarios: &[(&str, Scenario)] = &[
        ("killed_in_modify_poisons", killed_in_modify_poisons),
        (
            "killed_reader_does_not_block_writers",
            killed_reader_does_not_block_writers,
        ),
        ("killed_while_pinning", killed_while_pinning),
        (
            "killed_while_taking_part_pins",
            killed_while_taking_part_pins,
        ),
        ("killed_in_gc_heavy_loop", killed_in_gc_heavy_loop),
        ("lock_pinned_like_deref_p", lock_pinned_like_deref_p),
        ("killed_holding_a_pinned_lock", killed_holding_a_pinned_lock),
        ("other_format_version", other_format_version),
        ("address_in_use", address_in_use),
    ];
    run_scenarios(scenarios);
}
