//! Multi-process tests of `mc::sync`: locks in an anonymous `MAP_SHARED`
//! mapping, children made with `fork` from this single-threaded `main`,
//! holders and waiters killed with SIGKILL. Every wait is bounded; a child
//! that does not finish in time is killed and the scenario fails.
//!
//! Prints one line per scenario and `N passed, M failed` last; exits with a
//! non-zero status on any failure. Arguments filter scenarios by name.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mc::sync::{Barrier, Condvar, LockError, Mutex, RwLock, Semaphore};

mod common;
use common::{
    ensure, expect_exit_ok, fork_child, kill, run_scenarios, shared, wait_child, wait_for, Scenario,
};

/// Sleeps until killed (bounded, in case nobody does).
fn linger() -> i32 {
    std::thread::sleep(Duration::from_secs(30));
    2
}

struct Handshake {
    ready: AtomicU32,
}

// ---------------------------------------------------------------------------

fn counter_four_processes() -> Result<String, String> {
    const PER: u64 = 100_000;
    let m = shared(Mutex::new(0u64));
    let start = Instant::now();
    let pids: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                for _ in 0..PER {
                    match m.lock() {
                        Ok(mut g) if !g.owner_died() => *g += 1,
                        _ => return 3,
                    }
                }
                0
            })
        })
        .collect();
    for pid in pids {
        expect_exit_ok(pid, Duration::from_secs(60))?;
    }
    let n = *m.lock().map_err(|e| e.to_string())?;
    ensure(n == 4 * PER, || {
        format!("counter is {n}, expected {}", 4 * PER)
    })?;
    Ok(format!("{n} increments in {:?}", start.elapsed()))
}

fn owner_died_trials() -> Result<String, String> {
    const TRIALS: usize = 100;
    let m = shared(Mutex::new(0u64));
    let hs = shared(Handshake {
        ready: AtomicU32::new(0),
    });
    let mut lat = Vec::with_capacity(TRIALS);
    for trial in 0..TRIALS {
        hs.ready.store(0, SeqCst);
        let pid = fork_child(|| {
            let mut g = match m.lock() {
                Ok(g) => g,
                Err(_) => return 3,
            };
            *g += 1; // half-way through an update
            hs.ready.store(1, SeqCst);
            linger()
        });
        wait_for(Duration::from_secs(10), || hs.ready.load(SeqCst) == 1)?;
        kill(pid);
        let t = Instant::now();
        // The child is not reaped yet: it is a zombie while we wait.
        let mut g = m
            .lock_timeout(Duration::from_secs(5))
            .map_err(|e| format!("trial {trial}: {e}"))?;
        let dt = t.elapsed();
        ensure(g.owner_died(), || {
            format!("trial {trial}: owner death not reported")
        })?;
        ensure(dt < Duration::from_millis(100), || {
            format!("trial {trial}: owner death noticed after {dt:?}")
        })?;
        lat.push(dt);
        if trial % 2 == 0 {
            // Repair and go on.
            g.mark_consistent();
            drop(g);
            let g = m.lock().map_err(|e| format!("trial {trial}: {e}"))?;
            ensure(!g.owner_died(), || {
                format!("trial {trial}: still inconsistent after repair")
            })?;
        } else {
            // No repair: poisoned for everyone, until cleared.
            drop(g);
            ensure(m.lock().err() == Some(LockError::Poisoned), || {
                format!("trial {trial}: not poisoned")
            })?;
            let other = fork_child(|| {
                if m.lock().err() == Some(LockError::Poisoned) {
                    0
                } else {
                    4
                }
            });
            expect_exit_ok(other, Duration::from_secs(10))?;
            ensure(m.clear_poison(), || "clear_poison found nothing".into())?;
        }
        let status = wait_child(pid, Duration::from_secs(10))?;
        ensure(matches!(status, common::Ended::Signaled(_)), || {
            format!("trial {trial}: child was not killed")
        })?;
    }
    let n = *m.lock().map_err(|e| e.to_string())?;
    ensure(n == TRIALS as u64, || format!("counter is {n}"))?;
    lat.sort();
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    Ok(format!(
        "{TRIALS} trials, kill to OwnerDied: min {:?} median {:?} mean {mean:?} max {:?}",
        lat[0],
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    ))
}

fn dead_reader_does_not_block_writer() -> Result<String, String> {
    const TRIALS: u64 = 20;
    let l = shared(RwLock::new(7u64));
    let hs = shared(Handshake {
        ready: AtomicU32::new(0),
    });
    let mut worst = Duration::ZERO;
    for trial in 0..TRIALS {
        hs.ready.store(0, SeqCst);
        let pid = fork_child(|| {
            let g = match l.read() {
                Ok(g) => g,
                Err(_) => return 3,
            };
            let _ = *g;
            hs.ready.store(1, SeqCst);
            linger()
        });
        wait_for(Duration::from_secs(10), || hs.ready.load(SeqCst) == 1)?;
        // Other readers still get in next to the reader.
        drop(
            l.try_read()
                .map_err(|e| format!("trial {trial}: second reader: {e}"))?,
        );
        kill(pid);
        let t = Instant::now();
        let mut g = l
            .write_timeout(Duration::from_secs(5))
            .map_err(|e| format!("trial {trial}: writer: {e}"))?;
        let dt = t.elapsed();
        ensure(!g.owner_died(), || "a dead reader must not poison".into())?;
        *g += 1;
        drop(g);
        worst = worst.max(dt);
        ensure(dt < Duration::from_millis(500), || {
            format!("trial {trial}: writer waited {dt:?}")
        })?;
        wait_child(pid, Duration::from_secs(10))?;
    }
    // A writer that dies: readers are refused until a writer repairs.
    hs.ready.store(0, SeqCst);
    let pid = fork_child(|| {
        let g = match l.write() {
            Ok(g) => g,
            Err(_) => return 3,
        };
        hs.ready.store(1, SeqCst);
        std::mem::forget(g);
        linger()
    });
    wait_for(Duration::from_secs(10), || hs.ready.load(SeqCst) == 1)?;
    kill(pid);
    let r = l.read_timeout(Duration::from_secs(5)).map(|g| *g);
    ensure(r == Err(LockError::Poisoned), || {
        format!("reader after writer death got {r:?}")
    })?;
    let mut g = l
        .write_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    ensure(g.owner_died(), || {
        "writer death not reported to the next writer".into()
    })?;
    g.mark_consistent();
    drop(g);
    let v = *l.read().map_err(|e| e.to_string())?;
    ensure(v == 7 + TRIALS, || format!("value {v}"))?;
    wait_child(pid, Duration::from_secs(10))?;
    Ok(format!(
        "{TRIALS} dead readers, writer in at most {worst:?}; a dead writer poisons readers until repaired"
    ))
}

const RING: usize = 16;

struct Ring {
    buf: [u64; RING],
    head: u64,
    tail: u64,
}

struct Channel {
    m: Mutex<Ring>,
    not_empty: Condvar,
    not_full: Condvar,
}

fn condvar_producer_consumer() -> Result<String, String> {
    const N: u64 = 100_000;
    let ch = shared(Channel {
        m: Mutex::new(Ring {
            buf: [0; RING],
            head: 0,
            tail: 0,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let start = Instant::now();
    let producer = fork_child(|| {
        for i in 0..N {
            let g = ch.m.lock().expect("lock");
            let mut g = ch
                .not_full
                .wait_while(g, |r| r.tail - r.head == RING as u64)
                .expect("wait");
            let t = g.tail;
            g.buf[t as usize % RING] = i * 3;
            g.tail = t + 1;
            drop(g);
            ch.not_empty.notify_one();
        }
        0
    });
    let mut sum = 0u64;
    for i in 0..N {
        let g = ch.m.lock().map_err(|e| e.to_string())?;
        let (mut g, to) = ch
            .not_empty
            .wait_timeout_while(g, Duration::from_secs(10), |r| r.tail == r.head)
            .map_err(|e| e.to_string())?;
        ensure(!to.timed_out(), || format!("item {i} never came"))?;
        let h = g.head;
        let v = g.buf[h as usize % RING];
        g.head = h + 1;
        drop(g);
        ch.not_full.notify_one();
        ensure(v == i * 3, || format!("item {i} is {v}"))?;
        sum += v;
    }
    expect_exit_ok(producer, Duration::from_secs(30))?;
    ensure(sum == 3 * N * (N - 1) / 2, || format!("sum {sum}"))?;
    Ok(format!("{N} items in {:?}", start.elapsed()))
}

struct Tickets {
    /// (tickets, waiters so far)
    m: Mutex<(u32, u32)>,
    cv: Condvar,
    taken_by_b: AtomicU64,
}

fn killed_waiter_does_not_swallow_notify() -> Result<String, String> {
    const TRIALS: u32 = 40;
    let t = shared(Tickets {
        m: Mutex::new((0, 0)),
        cv: Condvar::new(),
        taken_by_b: AtomicU64::new(0),
    });
    let mut worst = Duration::ZERO;
    let mut late = 0;
    for trial in 0..TRIALS {
        *t.m.lock().map_err(|e| e.to_string())? = (0, 0);
        let waiter = |is_b: bool| {
            move || {
                let mut g = t.m.lock().expect("lock");
                g.1 += 1;
                let mut g = t.cv.wait_while(g, |s| s.0 == 0).expect("wait");
                g.0 -= 1;
                if is_b {
                    t.taken_by_b.fetch_add(1, SeqCst);
                }
                0
            }
        };
        // A waits first, so that it is first in the futex queue.
        let a = fork_child(waiter(false));
        wait_for(Duration::from_secs(10), || {
            t.m.lock().map(|g| g.1 == 1).unwrap_or(false)
        })?;
        let b = fork_child(waiter(true));
        wait_for(Duration::from_secs(10), || {
            t.m.lock().map(|g| g.1 == 2).unwrap_or(false)
        })?;
        std::thread::sleep(Duration::from_millis(2));
        // Kill A and notify at once: A, killed but maybe still queued on the
        // futex, may receive the wake-up; B must get the ticket anyway.
        kill(a);
        if trial % 2 == 1 {
            std::thread::sleep(Duration::from_micros(50 * u64::from(trial)));
        }
        let start = Instant::now();
        t.m.lock().map_err(|e| e.to_string())?.0 += 1;
        t.cv.notify_one();
        expect_exit_ok(b, Duration::from_secs(5))
            .map_err(|e| format!("trial {trial}: B never woke: {e}"))?;
        let dt = start.elapsed();
        worst = worst.max(dt);
        if dt >= Duration::from_millis(3) {
            // The wake-up went to the dying A; B noticed the new sequence
            // number after its sleep slice.
            late += 1;
        }
        ensure(t.taken_by_b.load(SeqCst) == u64::from(trial) + 1, || {
            format!("trial {trial}: B did not take it")
        })?;
        let status = wait_child(a, Duration::from_secs(10))?;
        ensure(matches!(status, common::Ended::Signaled(_)), || {
            format!("trial {trial}: A was not killed")
        })?;
        // A did not hold the mutex when it died.
        ensure(!t.m.lock().map_err(|e| e.to_string())?.owner_died(), || {
            "unexpected owner death".into()
        })?;
    }
    Ok(format!(
        "{TRIALS} trials, B took the ticket within {worst:?} at worst; \
         {late} wake-ups went to the killed waiter and were made up for"
    ))
}

/// CLOCK_MONOTONIC in ns: comparable between processes.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the time into a live local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Relay {
    m: Mutex<u64>,
    l: RwLock<u64>,
    /// 1 when the holder holds, 2 when the waiter is about to wait.
    stage: AtomicU32,
    /// When the waiter got the lock (CLOCK_MONOTONIC ns), 0 before.
    got_at: AtomicU64,
    /// What the waiter saw: 1 = owner died, 2 = clean.
    seen: AtomicU32,
}

/// A holder process is killed while a waiter process is already blocked;
/// the waiter takes the lock over. Then the taker is killed too before it
/// repairs: the next locker sees the death again.
fn blocked_waiter_takes_over() -> Result<String, String> {
    const TRIALS: usize = 20;
    let r = shared(Relay {
        m: Mutex::new(0),
        l: RwLock::new(0),
        stage: AtomicU32::new(0),
        got_at: AtomicU64::new(0),
        seen: AtomicU32::new(0),
    });
    let mut lat = Vec::new();
    for trial in 0..TRIALS {
        let rw = trial % 2 == 1; // odd trials: a reader holds, a writer waits
        r.stage.store(0, SeqCst);
        r.got_at.store(0, SeqCst);
        r.seen.store(0, SeqCst);
        let holder = fork_child(|| {
            if rw {
                std::mem::forget(r.l.read().expect("read"));
            } else {
                std::mem::forget(r.m.lock().expect("lock"));
            }
            r.stage.store(1, SeqCst);
            linger()
        });
        wait_for(Duration::from_secs(10), || r.stage.load(SeqCst) == 1)?;
        let waiter = fork_child(|| {
            r.stage.store(2, SeqCst);
            let died = if rw {
                let g = r.l.write_timeout(Duration::from_secs(5)).expect("write");
                let d = g.owner_died();
                drop(g);
                d
            } else {
                let mut g = r.m.lock_timeout(Duration::from_secs(5)).expect("lock");
                let d = g.owner_died();
                g.mark_consistent();
                d
            };
            r.got_at.store(mono_ns(), SeqCst);
            r.seen.store(if died { 1 } else { 2 }, SeqCst);
            0
        });
        wait_for(Duration::from_secs(10), || r.stage.load(SeqCst) == 2)?;
        // Let the waiter get to sleep in the kernel.
        std::thread::sleep(Duration::from_millis(30));
        ensure(r.got_at.load(SeqCst) == 0, || {
            format!("trial {trial}: waiter got a held lock")
        })?;
        let killed_at = mono_ns();
        kill(holder);
        expect_exit_ok(waiter, Duration::from_secs(10))
            .map_err(|e| format!("trial {trial}: {e}"))?;
        let dt = Duration::from_nanos(r.got_at.load(SeqCst) - killed_at);
        // A dead mutex holder is reported; a dead reader is not.
        let expect = if rw { 2 } else { 1 };
        ensure(r.seen.load(SeqCst) == expect, || {
            format!("trial {trial}: waiter saw {}", r.seen.load(SeqCst))
        })?;
        ensure(dt < Duration::from_millis(100), || {
            format!("trial {trial}: took over after {dt:?}")
        })?;
        lat.push(dt);
        wait_child(holder, Duration::from_secs(10))?;
    }
    // The taker dies too, before repairing: the death is reported again.
    let holder = fork_child(|| {
        std::mem::forget(r.m.lock().expect("lock"));
        r.stage.store(3, SeqCst);
        linger()
    });
    wait_for(Duration::from_secs(10), || r.stage.load(SeqCst) == 3)?;
    kill(holder);
    let taker = fork_child(|| {
        let g = r.m.lock_timeout(Duration::from_secs(5)).expect("lock");
        if !g.owner_died() {
            return 7;
        }
        std::mem::forget(g);
        r.stage.store(4, SeqCst);
        linger()
    });
    wait_for(Duration::from_secs(10), || r.stage.load(SeqCst) == 4)?;
    kill(taker);
    let g =
        r.m.lock_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
    ensure(g.owner_died(), || "second death not reported".into())?;
    drop(g);
    ensure(r.m.is_poisoned(), || {
        "not poisoned after an unrepaired takeover".into()
    })?;
    wait_child(holder, Duration::from_secs(10))?;
    wait_child(taker, Duration::from_secs(10))?;
    let max = lat.iter().max().copied().unwrap_or_default();
    Ok(format!("{TRIALS} trials (mutex and rwlock), kill to takeover at most {max:?}; a dying taker hands the death on"))
}

struct Phases {
    barrier: Barrier,
    arrived: AtomicU64,
    leaders: AtomicU64,
}

fn barrier_three_processes() -> Result<String, String> {
    const ROUNDS: u64 = 2_000;
    let p = shared(Phases {
        barrier: Barrier::new(3),
        arrived: AtomicU64::new(0),
        leaders: AtomicU64::new(0),
    });
    let start = Instant::now();
    let pids: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                for round in 0..ROUNDS {
                    p.arrived.fetch_add(1, SeqCst);
                    if p.barrier
                        .wait_timeout(Duration::from_secs(10))
                        .expect("barrier")
                    {
                        p.leaders.fetch_add(1, SeqCst);
                    }
                    // Everybody of this round has arrived, nobody of the next.
                    let a = p.arrived.load(SeqCst);
                    if a < 3 * (round + 1) || a > 3 * (round + 2) {
                        return 5;
                    }
                    p.barrier
                        .wait_timeout(Duration::from_secs(10))
                        .expect("barrier");
                }
                0
            })
        })
        .collect();
    for pid in pids {
        expect_exit_ok(pid, Duration::from_secs(60))?;
    }
    let l = p.leaders.load(SeqCst);
    ensure(l == ROUNDS, || format!("{l} leaders for {ROUNDS} rounds"))?;
    Ok(format!(
        "3 processes x {ROUNDS} rounds in {:?}",
        start.elapsed()
    ))
}

fn semaphore_ping_pong() -> Result<String, String> {
    const ROUNDS: u32 = 20_000;
    let s = shared([Semaphore::new(0), Semaphore::new(0)]);
    let start = Instant::now();
    let child = fork_child(|| {
        for _ in 0..ROUNDS {
            if s[0].wait_timeout(Duration::from_secs(10)).is_err() || s[1].post().is_err() {
                return 6;
            }
        }
        0
    });
    for i in 0..ROUNDS {
        s[0].post().map_err(|e| e.to_string())?;
        s[1].wait_timeout(Duration::from_secs(10))
            .map_err(|e| format!("round {i}: {e}"))?;
    }
    expect_exit_ok(child, Duration::from_secs(10))?;
    ensure(s[0].value() == 0 && s[1].value() == 0, || {
        "counts left over".into()
    })?;
    Ok(format!("{ROUNDS} round trips in {:?}", start.elapsed()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime")
}

/// Async locks across processes: tasks of two processes (on tokio
/// runtimes of 2 threads, holding the lock across awaits) and blocking
/// lockers count exactly; a process that dies holding an async guard is
/// taken over; an async consumer waits on a condition variable that a
/// blocking producer in another process notifies. Last in the list: the
/// parker thread it starts stays in this process.
fn async_locks_across_processes() -> Result<String, String> {
    const TASKS: u64 = 4;
    const PER: u64 = 2_000;
    let m = shared(Mutex::new(0u64));
    let pids: Vec<_> = (0..2)
        .map(|_| {
            fork_child(|| {
                runtime().block_on(async {
                    let ts: Vec<_> = (0..TASKS)
                        .map(|_| {
                            tokio::spawn(async {
                                for _ in 0..PER {
                                    let mut g = m.lock_async().await.expect("lock");
                                    *g += 1;
                                    tokio::task::yield_now().await;
                                }
                            })
                        })
                        .collect();
                    for t in ts {
                        t.await.expect("task");
                    }
                });
                0
            })
        })
        .collect();
    for _ in 0..2 * TASKS * PER {
        *m.lock().map_err(|e| e.to_string())? += 1;
    }
    for pid in pids {
        expect_exit_ok(pid, Duration::from_secs(60))?;
    }
    let n = *m.lock().map_err(|e| e.to_string())?;
    ensure(n == 4 * TASKS * PER, || format!("counter {n}"))?;

    // A process that dies holding an async guard.
    let d = shared(Mutex::new(7u64));
    let hs = shared(Handshake {
        ready: AtomicU32::new(0),
    });
    let pid = fork_child(|| {
        runtime().block_on(async {
            let g = d.lock_async().await.expect("lock");
            hs.ready.store(1, SeqCst);
            std::mem::forget(g);
            linger()
        })
    });
    wait_for(Duration::from_secs(10), || hs.ready.load(SeqCst) == 1)?;
    kill(pid);
    let _ = wait_child(pid, Duration::from_secs(10));
    let rt = runtime();
    let t = Instant::now();
    let died = rt.block_on(async {
        let mut g = tokio::time::timeout(Duration::from_secs(10), d.lock_async())
            .await
            .map_err(|_| "the dead holder's lock was not taken over in 10 s".to_string())?
            .map_err(|e| e.to_string())?;
        let died = g.owner_died();
        g.mark_consistent();
        Ok::<_, String>(died)
    })?;
    ensure(died, || "owner_died not reported".into())?;
    let takeover = t.elapsed();

    // A reader/writer lock: a process dies holding an async write guard,
    // another holding an async read guard.
    let l = shared(RwLock::new(1u64));
    for writer in [true, false] {
        hs.ready.store(0, SeqCst);
        let pid = fork_child(|| {
            runtime().block_on(async {
                if writer {
                    let mut g = l.write_async().await.expect("write");
                    *g = 2;
                    hs.ready.store(1, SeqCst);
                    std::mem::forget(g);
                } else {
                    let g = l.read_async().await.expect("read");
                    hs.ready.store(1, SeqCst);
                    std::mem::forget(g);
                }
                linger()
            })
        });
        wait_for(Duration::from_secs(10), || hs.ready.load(SeqCst) == 1)?;
        kill(pid);
        let _ = wait_child(pid, Duration::from_secs(10));
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                if writer {
                    // Readers are refused until a writer repairs the data.
                    loop {
                        match l.read_async().await {
                            Err(LockError::Poisoned) => break,
                            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                }
                let mut g = l.write_async().await.map_err(|e| e.to_string())?;
                ensure(g.owner_died() == writer, || {
                    format!(
                        "owner_died {} after a dead {}",
                        g.owner_died(),
                        if writer { "writer" } else { "reader" }
                    )
                })?;
                g.mark_consistent();
                *g = 3;
                drop(g);
                let v = *l.read_async().await.map_err(|e| e.to_string())?;
                ensure(v == 3, || format!("read {v}"))
            })
            .await
            .map_err(|_| "a dead holder of the reader/writer lock kept it for 10 s".to_string())?
        });
        r?;
    }

    // A blocking producer in another process, an async consumer here.
    let q = shared(Mutex::new((0u64, 0u64)));
    let cv = shared(Condvar::new());
    let producer = fork_child(|| {
        for i in 1..=100u64 {
            {
                let mut g = q.lock().expect("lock");
                g.0 += 1;
                g.1 += i;
            }
            cv.notify_one();
            std::thread::sleep(Duration::from_micros(500));
        }
        0
    });
    let (count, sum) = rt.block_on(async {
        let work = async {
            let mut g = q.lock_async().await.map_err(|e| e.to_string())?;
            while g.0 < 100 {
                g = cv.wait_async(g).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(*g)
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .map_err(|_| "the consumer waited 30 s".to_string())?
    })?;
    expect_exit_ok(producer, Duration::from_secs(30))?;
    ensure(count == 100 && sum == 5050, || {
        format!("{count} items, sum {sum}")
    })?;
    Ok(format!(
        "{n} increments (async tasks of 2 processes and a blocking locker); \
         a dead async holder taken over in {takeover:.2?} (and a dead async writer and reader \
         of a reader/writer lock); 100 notifications awaited"
    ))
}

fn main() {
    let scenarios: &[(&str, Scenario)] = &[
        ("counter_four_processes", counter_four_processes),
        ("owner_died_trials", owner_died_trials),
        (
            "dead_reader_does_not_block_writer",
            dead_reader_does_not_block_writer,
        ),
        ("condvar_producer_consumer", condvar_producer_consumer),
        (
            "killed_waiter_does_not_swallow_notify",
            killed_waiter_does_not_swallow_notify,
        ),
        ("blocked_waiter_takes_over", blocked_waiter_takes_over),
        ("barrier_three_processes", barrier_three_processes),
        ("semaphore_ping_pong", semaphore_ping_pong),
        ("async_locks_across_processes", async_locks_across_processes),
    ];
    run_scenarios(scenarios);
}
