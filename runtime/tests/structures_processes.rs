//! Multi-process tests of `mc::structures`: structures created in a pool
//! before `fork`, used by several children at once, checked by the parent.
//! Every wait is bounded; a child that does not finish in time is killed
//! and the scenario fails.
//!
//! Prints one line per scenario and `N passed, M failed` last; exits with a
//! non-zero status on any failure. Arguments filter scenarios by name.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use mc::structures::StructureError;
use mc::sync::{Condvar, Mutex};
use mc::{HeapError, Pool, Ring, SArray, SBuffer, SHashtbl, SQueue, SShardedHashtbl};

const TIMEOUT: Duration = Duration::from_secs(60);

mod common;
use common::{
    ensure, expect_exit_ok, fork_child, kill, run_scenarios, shared, wait_child, ChildPid,
};

fn wait_all(pids: Vec<ChildPid>) -> Result<(), String> {
    let mut err = Ok(());
    for p in pids {
        if let Err(e) = expect_exit_ok(p, TIMEOUT) {
            err = Err(e);
        }
    }
    err
}

fn pool() -> Pool {
    Pool::create(512 << 20).expect("pool")
}

// ---------------------------------------------------------------------------

/// Four processes push their own tagged values and pop concurrently; each
/// records what it popped. Every value pushed is popped exactly once (by a
/// child, or by the parent draining the rest), and each consumer sees each
/// producer's values in order (FIFO).
fn queue_stress() -> Result<String, String> {
    const P: u64 = 4;
    const N: u64 = 20_000;
    let pool = pool();
    let q = SQueue::<u64>::create(&pool, &()).map_err(|e| e.to_string())?;
    let popped: Vec<SArray<u64>> = (0..P)
        .map(|_| SArray::create(&pool, &(), &[]).expect("array"))
        .collect();
    let pids: Vec<_> = (0..P)
        .map(|p| {
            let q = q.clone();
            let out = popped[p as usize].clone();
            fork_child(move || {
                let mut mine = Vec::new();
                for i in 0..N {
                    q.push(&(p << 32 | i)).expect("push");
                    if i % 3 != 0 {
                        if let Some(v) = q.pop_copy().expect("pop") {
                            mine.push(v);
                        }
                    }
                    if i % 1000 == 0 {
                        let _ = q.pop_with(|v| mine.push(*v)).expect("pop_with");
                    }
                }
                out.modify(|m, v| m.extend_from_slice(v, &mine))
                    .expect("modify")
                    .expect("record");
                0
            })
        })
        .collect();
    wait_all(pids)?;
    let mut all: Vec<u64> = Vec::new();
    for a in &popped {
        let got = a.to_vec().map_err(|e| e.to_string())?;
        // FIFO per producer, as seen by one consumer.
        let mut last: HashMap<u64, u64> = HashMap::new();
        for &v in &got {
            let (p, i) = (v >> 32, v & 0xffff_ffff);
            if let Some(&prev) = last.get(&p) {
                ensure(i > prev, || {
                    format!("producer {p}: {i} popped after {prev}")
                })?;
            }
            last.insert(p, i);
        }
        all.extend(got);
    }
    let by_children = all.len();
    while let Some(v) = q.pop_copy().map_err(|e| e.to_string())? {
        all.push(v);
    }
    ensure(all.len() as u64 == P * N, || {
        format!("{} values popped, {} pushed", all.len(), P * N)
    })?;
    let set: HashSet<u64> = all.iter().copied().collect();
    ensure(set.len() == all.len(), || "duplicates".into())?;
    for p in 0..P {
        for i in 0..N {
            ensure(set.contains(&(p << 32 | i)), || format!("lost {p}/{i}"))?;
        }
    }
    Ok(format!(
        "{} values, {by_children} popped by the children",
        P * N
    ))
}

/// Four processes add their own keys, replace shared keys, and increment a
/// shared counter with `modify_value` (an atomic read-modify-write).
fn hashtbl_concurrent() -> Result<String, String> {
    const P: u64 = 4;
    const N: u64 = 3_000;
    const SHARED: u64 = 50;
    let pool = pool();
    let t = SHashtbl::<String, u64>::create(&pool, &()).map_err(|e| e.to_string())?;
    t.add(&"count".to_string(), &0).map_err(|e| e.to_string())?;
    let pids: Vec<_> = (0..P)
        .map(|p| {
            let d = t.descr();
            fork_child(move || {
                let t = d.open().expect("open");
                for i in 0..N {
                    t.add(&format!("p{p}-{i}"), &i).expect("add");
                    t.replace(&format!("shared-{}", i % SHARED), &p)
                        .expect("replace");
                    t.modify_value(&"count".to_string(), |_, v| *v.get_mut() += 1)
                        .expect("modify")
                        .expect("count bound");
                    if i % 7 == 0 {
                        // Add twice, remove once: one binding stays.
                        let k = format!("dup{p}-{i}");
                        t.add(&k, &1).expect("add");
                        t.add(&k, &2).expect("add");
                        t.remove(&k).expect("remove");
                    }
                }
                0
            })
        })
        .collect();
    wait_all(pids)?;
    let te = |e: StructureError| e.to_string();
    let dups = (0..N).filter(|i| i % 7 == 0).count() as u64;
    let want = P * N + SHARED + 1 + P * dups;
    let len = t.len().map_err(te)?;
    ensure(len as u64 == want, || {
        format!("{len} bindings, expected {want}")
    })?;
    let count = t.find_copy(&"count".to_string()).map_err(te)?;
    ensure(count == Some(P * N), || format!("count {count:?}"))?;
    for p in 0..P {
        for i in 0..N {
            let v = t.find_all_copy(&format!("p{p}-{i}")).map_err(te)?;
            ensure(v == [i], || format!("p{p}-{i}: {v:?}"))?;
            if i % 7 == 0 {
                let v = t.find_all_copy(&format!("dup{p}-{i}")).map_err(te)?;
                ensure(v == [1], || format!("dup{p}-{i}: {v:?}"))?;
            }
        }
    }
    for s in 0..SHARED {
        let v = t.find_all_copy(&format!("shared-{s}")).map_err(te)?;
        ensure(v.len() == 1 && v[0] < P, || format!("shared-{s}: {v:?}"))?;
    }
    Ok(format!(
        "{len} bindings, {} buckets",
        t.buckets().map_err(te)?
    ))
}

/// Four processes work on one sharded table through its descriptor: their
/// own keys, keys every process replaces, and one counter that each
/// increments (an atomic read-modify-write in the counter's shard).
fn sharded_hashtbl_concurrent() -> Result<String, String> {
    const P: u64 = 4;
    const N: u64 = 3_000;
    const SHARED: u64 = 50;
    let pool = pool();
    let te = |e: StructureError| e.to_string();
    let t = SShardedHashtbl::<String, u64>::create(&pool, 8).map_err(te)?;
    t.add(&"count".to_string(), &0).map_err(te)?;
    let pids: Vec<_> = (0..P)
        .map(|p| {
            let d = t.descr();
            fork_child(move || {
                let t = d.open().expect("open");
                for i in 0..N {
                    t.add(&format!("p{p}-{i}"), &i).expect("add");
                    t.replace(&format!("shared-{}", i % SHARED), &p)
                        .expect("replace");
                    t.modify_value(&"count".to_string(), |_, v| *v.get_mut() += 1)
                        .expect("modify")
                        .expect("count bound");
                }
                0
            })
        })
        .collect();
    wait_all(pids)?;
    let want = P * N + SHARED + 1;
    let len = t.len().map_err(te)?;
    ensure(len as u64 == want, || {
        format!("{len} bindings, expected {want}")
    })?;
    let count = t.find_copy(&"count".to_string()).map_err(te)?;
    ensure(count == Some(P * N), || format!("count {count:?}"))?;
    for p in 0..P {
        for i in 0..N {
            let v = t.find_all_copy(&format!("p{p}-{i}")).map_err(te)?;
            ensure(v == [i], || format!("p{p}-{i}: {v:?}"))?;
        }
    }
    for s in 0..SHARED {
        let v = t.find_all_copy(&format!("shared-{s}")).map_err(te)?;
        ensure(v.len() == 1 && v[0] < P, || format!("shared-{s}: {v:?}"))?;
    }
    let per_shard = t
        .shards()
        .iter()
        .map(|s| s.len())
        .collect::<Result<Vec<_>, _>>()
        .map_err(te)?;
    Ok(format!("{len} bindings over 8 shards: {per_shard:?}"))
}

/// Four processes set their own elements of one array while it grows,
/// and read whole-array snapshots; every element ends as its owner set it.
fn array_concurrent() -> Result<String, String> {
    const P: usize = 4;
    const N: usize = 4_000;
    let pool = pool();
    let a = SArray::<u64>::make(&pool, &(), 16, &0).map_err(|e| e.to_string())?;
    let pids: Vec<_> = (0..P)
        .map(|p| {
            let a = a.clone();
            fork_child(move || {
                for i in (p..N).step_by(P) {
                    // Grow first (idempotent), then set: elements never
                    // move back or get lost while others grow the array.
                    a.grow(i + 1, &0).expect("grow");
                    a.set(i, &(i as u64 * 10 + 1)).expect("set");
                    if i % 97 == 0 {
                        let g = a.read().expect("read");
                        if g[i] != i as u64 * 10 + 1 {
                            return 3;
                        }
                    }
                }
                0
            })
        })
        .collect();
    wait_all(pids)?;
    let v = a.to_vec().map_err(|e| e.to_string())?;
    ensure(v.len() == N, || format!("length {}", v.len()))?;
    for (i, x) in v.iter().enumerate() {
        ensure(*x == i as u64 * 10 + 1, || format!("element {i} is {x}"))?;
    }
    Ok(format!("{N} elements"))
}

/// A child opening the descriptor of a destroyed structure, and a child
/// holding a handle when the parent destroys it, both get `Destroyed`.
fn destroyed_structure() -> Result<String, String> {
    let pool = pool();
    let q = SQueue::<String>::create(&pool, &()).map_err(|e| e.to_string())?;
    let d = q.descr();
    let held = d.open().map_err(|e| e.to_string())?;
    q.destroy().map_err(|e| e.to_string())?;
    let pid = fork_child(move || {
        let a = matches!(d.open(), Err(StructureError::Heap(HeapError::Destroyed)));
        let b = matches!(
            held.push(&"x".to_string()),
            Err(StructureError::Heap(HeapError::Destroyed))
        );
        if a && b {
            0
        } else {
            5
        }
    });
    wait_child(pid, TIMEOUT)?;
    Ok("Err(Destroyed) in the child".into())
}

#[derive(mc::Shared)]
struct Pipe {
    state: Mutex<bool>,
    have_space: Condvar,
    have_data: Condvar,
}

/// A bounded buffer between a producer and a consumer process, with the
/// mutex and condition variables in the buffer's header; waits have
/// timeouts.
fn buffer_pipe() -> Result<String, String> {
    const TOTAL: usize = 8 << 20;
    const MAX: usize = 10_000;
    let pool = pool();
    let header = Pipe {
        state: Mutex::new(false),
        have_space: Condvar::new(),
        have_data: Condvar::new(),
    };
    let b = SBuffer::with_block_size(&pool, &header, 4096).map_err(|e| e.to_string())?;
    let byte = |i: usize| (i * 7 + i / 251) as u8;
    let bp = b.clone();
    let producer = fork_child(move || {
        let h = bp.header().expect("header");
        let mut sent = 0;
        while sent < TOTAL {
            let g = h.state.lock().expect("lock");
            let (g, t) = h
                .have_space
                .wait_timeout_while(g, TIMEOUT, |_| bp.len().expect("len") >= MAX)
                .expect("wait");
            if t.timed_out() {
                return 3;
            }
            let room = MAX - bp.len().expect("len");
            drop(g);
            let n = room.min(TOTAL - sent).min(3001);
            let piece: Vec<u8> = (sent..sent + n).map(byte).collect();
            let pos = bp.push_bytes(&piece).expect("push");
            if pos != sent {
                return 4;
            }
            sent += n;
            let _g = h.state.lock().expect("lock");
            h.have_data.notify_one();
        }
        *h.state.lock().expect("lock") = true;
        h.have_data.notify_one();
        0
    });
    let bc = b.clone();
    let consumer = fork_child(move || {
        let h = bc.header().expect("header");
        let mut got = 0;
        loop {
            let g = h.state.lock().expect("lock");
            let (g, t) = h
                .have_data
                .wait_timeout_while(g, TIMEOUT, |done| !*done && bc.len().expect("len") == 0)
                .expect("wait");
            if t.timed_out() {
                return 3;
            }
            let done = *g;
            drop(g);
            let view = bc.read().expect("read");
            let (start, n) = (view.start(), view.len());
            if n == 0 && done {
                return if got == TOTAL { 0 } else { 6 };
            }
            if start != got {
                return 7;
            }
            let mut i = start;
            for c in view.chunks(start, n).expect("chunks") {
                for &x in c {
                    if x != byte(i) {
                        return 8;
                    }
                    i += 1;
                }
            }
            drop(view);
            bc.delete_head(n).expect("delete");
            got += n;
            let _g = h.state.lock().expect("lock");
            h.have_space.notify_one();
        }
    });
    let r1 = wait_child(producer, TIMEOUT);
    let r2 = wait_child(consumer, TIMEOUT);
    r1?;
    r2?;
    ensure(b.start().map_err(|e| e.to_string())? == TOTAL, || {
        "start".into()
    })?;
    Ok(format!("{TOTAL} bytes through a {MAX}-byte buffer"))
}

// ---------------------------------------------------------------------------

/// Two producer processes push tagged values into a small ring (item by
/// item and in slices), two consumer processes pop them (one by one and in
/// batches) until every value is taken. Every value arrives once, and
/// each consumer sees each producer's values in order.
fn ring_stress() -> Result<String, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    const N: u64 = 50_000;
    let pool = pool();
    let ring = Ring::<u64>::create(&pool, 64).map_err(|e| e.to_string())?;
    // What the consumers report: (count, sum) each.
    let results = Ring::<[u64; 2]>::create(&pool, 4).map_err(|e| e.to_string())?;
    let taken = shared(AtomicU64::new(0));
    let mut pids = Vec::new();
    for p in 0..2u64 {
        let d = ring.descr();
        pids.push(fork_child(move || {
            let r = d.open().expect("open");
            let mut i = 0;
            while i < N {
                if i % 5 == 0 {
                    let k = 7.min(N - i);
                    let vals: Vec<u64> = (i..i + k).map(|v| p << 32 | v).collect();
                    r.push_slice(&vals).expect("push_slice");
                    i += k;
                } else {
                    r.push(p << 32 | i).expect("push");
                    i += 1;
                }
            }
            0
        }));
    }
    for c in 0..2u64 {
        let (d, out) = (ring.descr(), results.descr());
        pids.push(fork_child(move || {
            let (r, out) = (d.open().expect("open"), out.open().expect("open"));
            let mut last = [None::<u64>; 2];
            let (mut count, mut sum) = (0u64, 0u64);
            let mut got = Vec::new();
            while taken.load(Ordering::SeqCst) < 2 * N {
                got.clear();
                if c == 0 {
                    if let Ok(v) = r.pop_timeout(Duration::from_millis(2)) {
                        got.push(v);
                    }
                } else {
                    r.pop_into(&mut got, 16).expect("pop_into");
                }
                for &v in &got {
                    let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                    if last[p].is_some_and(|l| l >= i) {
                        return 2;
                    }
                    last[p] = Some(i);
                    count += 1;
                    sum += v;
                }
                taken.fetch_add(got.len() as u64, Ordering::SeqCst);
            }
            out.push([count, sum]).expect("report");
            0
        }));
    }
    wait_all(pids)?;
    let (a, b) = (
        results.pop().map_err(|e| e.to_string())?,
        results.pop().map_err(|e| e.to_string())?,
    );
    let want: u64 = (0..2u64)
        .map(|p| (0..N).map(|i| p << 32 | i).sum::<u64>())
        .sum();
    ensure(a[0] + b[0] == 2 * N && a[1] + b[1] == want, || {
        format!("consumers took {} and {} values", a[0], b[0])
    })?;
    ensure(ring.is_empty(), || format!("{} values left", ring.len()))?;
    Ok(format!("{} values, split {} / {}", 2 * N, a[0], b[0]))
}

/// `SIGKILL` a producer, and then a consumer, at random moments, 100 times
/// each: what was pushed before the kill comes out whole, in order, each
/// value once (the killed consumer's values excepted), and the ring goes
/// on with the next process (a dead lock holder is taken over).
fn ring_killed() -> Result<String, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let pool = pool();
    let mut rng = common::Rng(0x5eed);
    let (mut takeovers, mut consumer_takeovers) = (0, 0);
    for trial in 0..100 {
        let ring = Ring::<u64>::create(&pool, 64).map_err(|e| e.to_string())?;
        // A producer that never stops, killed while it pushes.
        let d = ring.descr();
        let producer = fork_child(move || {
            let r = d.open().expect("open");
            let mut i = 0u64;
            loop {
                if i.is_multiple_of(9) {
                    let vals: Vec<u64> = (i..i + 8).collect();
                    r.push_slice(&vals).expect("push_slice");
                    i += 8;
                } else {
                    r.push(i).expect("push");
                    i += 1;
                }
            }
        });
        let mut next = 0u64;
        let until = std::time::Instant::now() + Duration::from_micros(100 + rng.below(3000) as u64);
        let mut got = Vec::new();
        while std::time::Instant::now() < until {
            got.clear();
            ring.pop_into(&mut got, 64).map_err(|e| e.to_string())?;
            for &v in &got {
                ensure(v == next, || {
                    format!("trial {trial}: {v} where {next} was due")
                })?;
                next += 1;
            }
        }
        kill(producer);
        let _ = wait_child(producer, TIMEOUT)?;
        // Whatever is left comes out in order; then the ring takes new
        // values (a full ring first gives one up).
        let t = std::time::Instant::now();
        if let Err(mc::RingError::Full) = ring.try_push(u64::MAX) {
            let v = ring.pop().map_err(|e| e.to_string())?;
            ensure(v == next, || {
                format!("trial {trial}: {v} where {next} was due")
            })?;
            next += 1;
            ring.try_push(u64::MAX)
                .map_err(|e| format!("trial {trial}: {e}"))?;
        }
        if t.elapsed() > Duration::from_millis(5) {
            takeovers += 1;
        }
        loop {
            let v = ring
                .pop_timeout(Duration::from_secs(5))
                .map_err(|e| format!("trial {trial}: {e}"))?;
            if v == u64::MAX {
                break;
            }
            ensure(v == next, || {
                format!("trial {trial}: {v} where {next} was due")
            })?;
            next += 1;
        }
        ensure(ring.is_empty(), || {
            format!("trial {trial}: values after the marker")
        })?;
    }
    // Consumers killed while they pop: the values they did not take stay.
    for trial in 0..100 {
        let ring = Ring::<u64>::create(&pool, 4096).map_err(|e| e.to_string())?;
        let all: Vec<u64> = (0..4096).collect();
        ring.push_slice(&all).map_err(|e| e.to_string())?;
        let popped = shared(AtomicU64::new(0));
        let d = ring.descr();
        let consumer = fork_child(move || {
            let r = d.open().expect("open");
            let mut got = Vec::new();
            loop {
                got.clear();
                if r.pop_into(&mut got, 3).expect("pop_into") == 0 {
                    std::thread::yield_now();
                }
                popped.fetch_add(got.len() as u64, Ordering::SeqCst);
                if r.try_pop().expect("pop").is_some() {
                    popped.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        std::thread::sleep(Duration::from_micros(50 + rng.below(2000) as u64));
        kill(consumer);
        let _ = wait_child(consumer, TIMEOUT)?;
        let mut rest = Vec::new();
        let t = std::time::Instant::now();
        if let Some(v) = ring.try_pop().map_err(|e| e.to_string())? {
            rest.push(v);
        }
        if t.elapsed() > Duration::from_millis(5) {
            consumer_takeovers += 1;
        }
        while let Some(v) = ring.try_pop().map_err(|e| e.to_string())? {
            rest.push(v);
        }
        ring.push(7).map_err(|e| e.to_string())?;
        ensure(ring.try_pop().ok().flatten() == Some(7), || {
            format!("trial {trial}: the ring does not go on")
        })?;
        // The rest is a run up to the last value; the dead consumer took
        // the ones before it (one of them possibly without counting).
        let first = rest.first().copied().unwrap_or(4096);
        let counted = popped.load(Ordering::SeqCst);
        ensure(
            rest.iter().copied().eq(first..4096) && (counted..=counted + 3).contains(&first),
            || {
                format!(
                    "trial {trial}: {} values left from {first}, {counted} counted",
                    rest.len()
                )
            },
        )?;
    }
    Ok(format!(
        "200 kills; locks of dead holders taken over: {takeovers} producers', \
         {consumer_takeovers} consumers'"
    ))
}

fn main() {
    run_scenarios::<String>(&[
        ("ring_stress", ring_stress),
        ("ring_killed", ring_killed),
        ("queue_stress", queue_stress),
        ("hashtbl_concurrent", hashtbl_concurrent),
        ("sharded_hashtbl_concurrent", sharded_hashtbl_concurrent),
        ("array_concurrent", array_concurrent),
        ("destroyed_structure", destroyed_structure),
        ("buffer_pipe", buffer_pipe),
    ]);
}
