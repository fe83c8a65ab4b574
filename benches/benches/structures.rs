//! Shared structure benchmarks, each against a baseline measured in the
//! same run.
//!
//! 1. `SHashtbl<u64, u64>` operations per second (12.5 % add, 12.5 %
//!    remove, 37.5 % replace, 37.5 % find) from 1 and 2 processes vs
//!    `std::collections::HashMap` behind a `std::sync::Mutex` from 1 and 2
//!    threads; and the same from a table of 16 shards
//!    (`SShardedHashtbl`), whose shards have a lock each.
//! 2. `SQueue<u64>` push/pop throughput from a producer process to a
//!    consumer process vs a `crossbeam-channel` (unbounded) between two
//!    threads (also with batches of 64: `extend` / `pop_many`).
//!    And `Ring<u64>` (a bounded ring of 1,024 slots) between the same two
//!    processes, item by item and in batches of 64, vs a bounded
//!    `crossbeam-channel` of 1,024 items between two threads.
//! 3. Memory per entry of an `SHashtbl` (its heap's live bytes, and its
//!    chunks) vs a `HashMap` (bytes the global allocator holds for it),
//!    for `u64 → u64` and 16-byte `String → u64`, 100,000 entries.
//!
//! 4. `PlainMap<u64, u64>` (lookups without a lock) on the same mix with
//!    one value a key, from 1 and 2 processes, vs `Mutex<HashMap<u64,
//!    u64>>` from 1 and 2 threads and a `DashMap` from 2 threads; also a
//!    `DashMap<u64, Vec<u64>>` on section 1's mix; and its bytes a key.
//!
//! Run: `cargo bench -p mc-benches --bench structures` (`-- --quick` for
//! short runs, `-- --plain-map` for section 4 alone). Prints operations
//! per second and ratios (mc / baseline; below 1 means mc is slower).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use dashmap::DashMap;
use mc::{PlainMap, Pool, Ring, SHashtbl, SQueue, SShardedHashtbl};
use mc_testkit::shared;

const KEYS: u64 = 10_000;

/// The system allocator, counting the bytes it holds while `COUNTING` is
/// set (section 3 only: the other sections' baselines allocate at full
/// speed, with no shared counter to contend on).
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

// SAFETY: every call is forwarded to the system allocator with the same
// arguments; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            HELD.fetch_add(new_size, Ordering::Relaxed);
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Section 3: bytes per entry, `SHashtbl` vs `HashMap`.
fn memory_per_entry(pool: &Pool) {
    println!("memory per entry, {ENTRIES} entries (SHashtbl: live bytes of its heap / chunk bytes; HashMap: bytes allocated)");
    let u64s = entry_bytes(pool, |k| k);
    let strings = entry_bytes(pool, |k| format!("key-{k:012}"));
    for (name, (live, chunks, map)) in [("u64 -> u64:   ", u64s), ("String -> u64:", strings)] {
        println!(
            "  {name}  SHashtbl {live:>6.1} B live, {chunks:>6.1} B of chunks; HashMap {map:>6.1} B: {:.2}x",
            live / map
        );
    }
}

const ENTRIES: u64 = 100_000;

/// Bytes per entry of `ENTRIES` entries keyed by `key(k)`: an `SHashtbl`'s
/// live heap bytes and chunk bytes, and what a `HashMap` holds from the
/// global allocator.
fn entry_bytes<K>(pool: &Pool, key: impl Fn(u64) -> K) -> (f64, f64, f64)
where
    K: mc::SharedKey + std::hash::Hash + Eq,
{
    // Counted from a fresh start: `HELD` may wrap below zero when a block
    // allocated before counting began is freed during it.
    HELD.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let mut m: HashMap<K, u64> = HashMap::new();
    for k in 0..ENTRIES {
        m.insert(key(k), k);
    }
    let map = HELD.load(Ordering::Relaxed) as f64 / ENTRIES as f64;
    COUNTING.store(false, Ordering::SeqCst);
    black_box(&m);
    drop(m);
    let t = SHashtbl::<K, u64>::create(pool, &()).expect("table");
    for k in 0..ENTRIES {
        t.add(&key(k), &k).expect("add");
    }
    t.gc().expect("gc");
    let st = t.stats().expect("stats");
    t.destroy().expect("destroy");
    (
        st.live_bytes as f64 / ENTRIES as f64,
        st.chunk_bytes as f64 / ENTRIES as f64,
        map,
    )
}

/// Forks a child that waits for `go`, runs `f` and exits (the bench main
/// is single-threaded when it forks: every thread of the baselines was
/// joined).
fn fork_child(go: &'static AtomicU32, f: impl FnOnce()) -> mc_testkit::ChildPid {
    mc_testkit::fork_child(|| {
        while go.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        f();
        0
    })
}

fn wait(pid: mc_testkit::ChildPid) {
    mc_testkit::expect_exit_ok(pid, std::time::Duration::from_secs(600)).expect("child failed");
}

/// A cheap deterministic sequence of (operation, key). The operation is
/// the top 4 bits modulo 10: 0 (add) and 1 (remove) come 2 times in 16
/// each, 2 to 4 (replace) 6 times, 5 to 9 (find) 6 times.
fn op(seed: u64, i: u64) -> (u64, u64) {
    let x = (seed ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((x >> 60) % 10, (x >> 20) % KEYS)
}

/// The operations the table benchmark uses, on a plain or a sharded
/// table.
trait Table: Clone {
    fn add(&self, k: u64, v: u64);
    fn remove(&self, k: u64);
    fn replace(&self, k: u64, v: u64);
    fn find(&self, k: u64) -> Option<u64>;
    fn destroy(self);
}

macro_rules! table {
    ($t:ty) => {
        impl Table for $t {
            fn add(&self, k: u64, v: u64) {
                <$t>::add(self, &k, &v).expect("add")
            }
            fn remove(&self, k: u64) {
                <$t>::remove(self, &k).expect("remove");
            }
            fn replace(&self, k: u64, v: u64) {
                <$t>::replace(self, &k, &v).expect("replace")
            }
            fn find(&self, k: u64) -> Option<u64> {
                <$t>::find_copy(self, &k).expect("find")
            }
            fn destroy(self) {
                <$t>::destroy(self).expect("destroy")
            }
        }
    };
}
table!(SHashtbl<u64, u64>);
table!(SShardedHashtbl<u64, u64>);

fn table_ops(t: &impl Table, seed: u64, n: u64) {
    for i in 0..n {
        let (o, k) = op(seed, i);
        match o {
            0 => t.add(k, i),
            1 => t.remove(k),
            2..=4 => t.replace(k, i),
            _ => {
                black_box(t.find(k));
            }
        }
    }
}

/// A map of stacks of bindings on threads (the baselines of section 1):
/// `f` on key `k`'s stack, made empty first if there is none (`entry`)
/// or only if there is one (`existing`).
trait Stacks: Sync {
    fn entry<R>(&self, k: u64, f: impl FnOnce(&mut Vec<u64>) -> R) -> R;
    fn existing<R>(&self, k: u64, f: impl FnOnce(&mut Vec<u64>) -> R) -> Option<R>;
}

impl Stacks for Mutex<HashMap<u64, Vec<u64>>> {
    fn entry<R>(&self, k: u64, f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
        f(self.lock().expect("lock").entry(k).or_default())
    }
    fn existing<R>(&self, k: u64, f: impl FnOnce(&mut Vec<u64>) -> R) -> Option<R> {
        self.lock().expect("lock").get_mut(&k).map(f)
    }
}

impl Stacks for DashMap<u64, Vec<u64>> {
    fn entry<R>(&self, k: u64, f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
        f(&mut self.entry(k).or_default())
    }
    fn existing<R>(&self, k: u64, f: impl FnOnce(&mut Vec<u64>) -> R) -> Option<R> {
        self.get_mut(&k).map(|mut v| f(&mut v))
    }
}

/// The table mix on a map of stacks: each operation under one lock.
fn stack_ops(t: &impl Stacks, seed: u64, n: u64) {
    for i in 0..n {
        let (o, k) = op(seed, i);
        match o {
            0 => t.entry(k, |v| v.push(i)),
            1 => {
                t.existing(k, |v| v.pop());
            }
            2..=4 => t.entry(k, |v| match v.last_mut() {
                Some(x) => *x = i,
                None => v.push(i),
            }),
            _ => {
                black_box(t.existing(k, |v| v.last().copied()));
            }
        }
    }
}

/// Runs `work(seed)` on `threads` threads at once (seeds 1, 2, ...);
/// operations per second of `n` operations each.
fn on_threads(threads: u64, n: u64, work: impl Fn(u64) + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..threads {
            let work = &work;
            s.spawn(move || work(w + 1));
        }
    });
    (threads * n) as f64 / start.elapsed().as_secs_f64()
}

/// Operations per second of `workers` processes on table `t`, filled
/// first.
fn hashtbl_mc(t: impl Table + 'static, workers: u64, n: u64) -> f64 {
    for k in 0..KEYS {
        t.replace(k, k);
    }
    let go = shared(AtomicU32::new(0));
    let pids: Vec<_> = (0..workers)
        .map(|w| {
            let t = t.clone();
            fork_child(go, move || table_ops(&t, w + 1, n))
        })
        .collect();
    let start = Instant::now();
    go.store(1, Ordering::Release);
    pids.into_iter().for_each(wait);
    let secs = start.elapsed().as_secs_f64();
    t.destroy();
    (workers * n) as f64 / secs
}

/// Section 1's mix on `t` (filled first) from `threads` threads.
fn hashtbl_threads(t: impl Stacks, threads: u64, n: u64) -> f64 {
    for k in 0..KEYS {
        t.entry(k, |v| v.push(k));
    }
    on_threads(threads, n, |seed| stack_ops(&t, seed, n))
}

/// The one-value form of the table mix: add and replace insert, remove
/// removes, find gets.
trait OneValue: Sync {
    fn insert(&self, k: u64, v: u64);
    fn remove(&self, k: u64);
    fn get(&self, k: u64) -> Option<u64>;
}

impl OneValue for PlainMap<u64, u64> {
    fn insert(&self, k: u64, v: u64) {
        PlainMap::insert(self, k, v).expect("insert");
    }
    fn remove(&self, k: u64) {
        PlainMap::remove(self, &k).expect("remove");
    }
    fn get(&self, k: u64) -> Option<u64> {
        PlainMap::get(self, &k).expect("get")
    }
}

impl OneValue for Mutex<HashMap<u64, u64>> {
    fn insert(&self, k: u64, v: u64) {
        self.lock().expect("lock").insert(k, v);
    }
    fn remove(&self, k: u64) {
        self.lock().expect("lock").remove(&k);
    }
    fn get(&self, k: u64) -> Option<u64> {
        self.lock().expect("lock").get(&k).copied()
    }
}

impl OneValue for DashMap<u64, u64> {
    fn insert(&self, k: u64, v: u64) {
        DashMap::insert(self, k, v);
    }
    fn remove(&self, k: u64) {
        DashMap::remove(self, &k);
    }
    fn get(&self, k: u64) -> Option<u64> {
        DashMap::get(self, &k).map(|v| *v)
    }
}

fn one_value_ops(t: &impl OneValue, seed: u64, n: u64) {
    for i in 0..n {
        let (o, k) = op(seed, i);
        match o {
            0 | 2..=4 => t.insert(k, i),
            1 => t.remove(k),
            _ => {
                black_box(t.get(k));
            }
        }
    }
}

/// Operations per second of `workers` processes on a `PlainMap` for
/// `KEYS` keys, filled first.
fn plain_map_mc(pool: &Pool, workers: u64, n: u64) -> f64 {
    let m = PlainMap::<u64, u64>::create(pool, KEYS as usize).expect("map");
    for k in 0..KEYS {
        OneValue::insert(&m, k, k);
    }
    let go = shared(AtomicU32::new(0));
    let pids: Vec<_> = (0..workers)
        .map(|w| {
            let d = m.descr();
            // Opened before the start: the pool's mapping is not timed.
            mc_testkit::fork_child(move || {
                let m = d.open().expect("open");
                while go.load(Ordering::Acquire) == 0 {
                    std::hint::spin_loop();
                }
                one_value_ops(&m, w + 1, n);
                0
            })
        })
        .collect();
    let start = Instant::now();
    go.store(1, Ordering::Release);
    pids.into_iter().for_each(wait);
    (workers * n) as f64 / start.elapsed().as_secs_f64()
}

/// The same on `t` (filled first) from `threads` threads.
fn one_value_threads(t: impl OneValue, threads: u64, n: u64) -> f64 {
    for k in 0..KEYS {
        t.insert(k, k);
    }
    on_threads(threads, n, |seed| one_value_ops(&t, seed, n))
}

/// Section 4: `PlainMap` against `Mutex<HashMap>` and `DashMap`, runs
/// alternated, medians of `runs`.
fn plain_map_section(pool: &Pool, n: u64, runs: usize) {
    println!(
        "PlainMap<u64, u64> (lookups take no lock), the same mix with one value a key \
         (50% insert, 12.5% remove, 37.5% get), {KEYS} keys"
    );
    let mut v: [Vec<f64>; 6] = Default::default();
    for _ in 0..runs {
        v[0].push(plain_map_mc(pool, 1, n));
        v[1].push(one_value_threads(Mutex::new(HashMap::new()), 1, n));
        v[2].push(plain_map_mc(pool, 2, n));
        v[3].push(one_value_threads(Mutex::new(HashMap::new()), 2, n));
        v[4].push(one_value_threads(DashMap::new(), 2, n));
        v[5].push(hashtbl_threads(DashMap::new(), 2, n));
    }
    let [p1, s1, p2, s2, d2, dt2] = v.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    println!("  mc PlainMap, 1 process          {p1:>12.0} ops/s");
    println!("  std Mutex<HashMap>, 1 thread    {s1:>12.0} ops/s");
    println!("  mc PlainMap, 2 processes        {p2:>12.0} ops/s");
    println!("  std Mutex<HashMap>, 2 threads   {s2:>12.0} ops/s");
    println!("  DashMap, 2 threads              {d2:>12.0} ops/s");
    println!(
        "  ratio PlainMap/std, 1: {:.3}   2: {:.3}   PlainMap/DashMap, 2: {:.3}",
        p1 / s1,
        p2 / s2,
        p2 / d2
    );
    println!("  (SHashtbl's mix) DashMap<u64, Vec<u64>>, 2 threads {dt2:>12.0} ops/s");
    let before = pool.stats().used;
    let m = PlainMap::<u64, u64>::create(pool, ENTRIES as usize).expect("map");
    for k in 0..ENTRIES {
        OneValue::insert(&m, k, k);
    }
    let bytes = pool.stats().used - before;
    println!(
        "  memory, {ENTRIES} u64 -> u64 at capacity: {:.1} B a key",
        bytes as f64 / ENTRIES as f64
    );
}

/// Starts the forked producer and consumer at once, waits for both, and
/// returns items per second for `n` items.
fn race(
    go: &AtomicU32,
    producer: mc_testkit::ChildPid,
    consumer: mc_testkit::ChildPid,
    n: u64,
) -> f64 {
    let start = Instant::now();
    go.store(1, Ordering::Release);
    wait(producer);
    wait(consumer);
    n as f64 / start.elapsed().as_secs_f64()
}

fn queue_mc(pool: &Pool, n: u64) -> f64 {
    let q = SQueue::<u64>::create(pool, &()).expect("queue");
    let go = shared(AtomicU32::new(0));
    let qp = q.clone();
    let producer = fork_child(go, move || {
        for i in 0..n {
            qp.push(&i).expect("push");
        }
    });
    let qc = q.clone();
    let consumer = fork_child(go, move || {
        let mut next = 0;
        while next < n {
            match qc.pop_copy().expect("pop") {
                Some(v) => {
                    assert_eq!(v, next, "FIFO order");
                    next += 1;
                }
                None => std::thread::yield_now(),
            }
        }
    });
    let rate = race(go, producer, consumer, n);
    q.destroy().expect("destroy");
    rate
}

/// As [`queue_mc`], with batches of `batch` items per push and pop.
fn queue_mc_batched(pool: &Pool, n: u64, batch: u64) -> f64 {
    let q = SQueue::<u64>::create(pool, &()).expect("queue");
    let go = shared(AtomicU32::new(0));
    let qp = q.clone();
    let producer = fork_child(go, move || {
        let mut i = 0;
        while i < n {
            let k = batch.min(n - i);
            let items: Vec<u64> = (i..i + k).collect();
            qp.extend(&items).expect("extend");
            i += k;
        }
    });
    let qc = q.clone();
    let consumer = fork_child(go, move || {
        let mut next = 0;
        while next < n {
            let got = qc.pop_many(batch as usize).expect("pop_many");
            if got.is_empty() {
                std::thread::yield_now();
            }
            for v in got {
                assert_eq!(v, next, "FIFO order");
                next += 1;
            }
        }
    });
    let rate = race(go, producer, consumer, n);
    q.destroy().expect("destroy");
    rate
}

/// The ring's capacity, and the bounded channel's.
const RING: usize = 1024;

/// A `Ring<u64>` from a producer process to a consumer process, item by
/// item (`push` / `pop`), or in batches (`push_slice` / `pop_into`).
fn ring_mc(pool: &Pool, n: u64, batch: u64) -> f64 {
    let ring = Ring::<u64>::create(pool, RING).expect("ring");
    let go = shared(AtomicU32::new(0));
    let d = ring.descr();
    let producer = fork_child(go, move || {
        let r = d.open().expect("open");
        if batch == 1 {
            for i in 0..n {
                r.push(i).expect("push");
            }
        } else {
            let mut i = 0;
            while i < n {
                let k = batch.min(n - i);
                let items: Vec<u64> = (i..i + k).collect();
                r.push_slice(&items).expect("push_slice");
                i += k;
            }
        }
    });
    let d = ring.descr();
    let consumer = fork_child(go, move || {
        let r = d.open().expect("open");
        let mut next = 0;
        if batch == 1 {
            while next < n {
                assert_eq!(r.pop().expect("pop"), next, "FIFO order");
                next += 1;
            }
        } else {
            let mut got = Vec::with_capacity(batch as usize);
            while next < n {
                got.clear();
                if r.pop_into(&mut got, batch as usize).expect("pop_into") == 0 {
                    std::hint::spin_loop();
                }
                for &v in &got {
                    assert_eq!(v, next, "FIFO order");
                    next += 1;
                }
            }
        }
    });
    race(go, producer, consumer, n)
}

/// A bounded `crossbeam-channel` of [`RING`] items between two threads.
fn queue_crossbeam_bounded(n: u64) -> f64 {
    crossbeam_pipe(n, crossbeam_channel::bounded::<u64>(RING))
}

/// An unbounded `crossbeam-channel` between two threads.
fn queue_crossbeam(n: u64) -> f64 {
    crossbeam_pipe(n, crossbeam_channel::unbounded::<u64>())
}

/// Items per second through a channel from one thread to another.
fn crossbeam_pipe(
    n: u64,
    (tx, rx): (
        crossbeam_channel::Sender<u64>,
        crossbeam_channel::Receiver<u64>,
    ),
) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..n {
                tx.send(i).expect("send");
            }
        });
        s.spawn(move || {
            for i in 0..n {
                assert_eq!(rx.recv().expect("recv"), i);
            }
        });
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// The median of `runs` runs of `f` (a rate).
fn median(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..runs).map(|_| f()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[runs / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n_tbl, n_q, runs) = if quick {
        (20_000, 50_000, 1)
    } else {
        (300_000, 1_000_000, 3)
    };
    let pool = Pool::create(1 << 30).expect("pool");
    if std::env::args().any(|a| a == "--plain-map") {
        // Section 4 alone.
        plain_map_section(&pool, n_tbl, runs.max(5));
        return;
    }
    memory_per_entry(&pool);

    println!("SHashtbl<u64, u64>, mix 12.5% add / 12.5% remove / 37.5% replace / 37.5% find, {KEYS} keys");
    let plain = || SHashtbl::<u64, u64>::create(&pool, &()).expect("table");
    let sharded = || SShardedHashtbl::<u64, u64>::create(&pool, 16).expect("table");
    let m1 = median(runs, || hashtbl_mc(plain(), 1, n_tbl));
    let m2 = median(runs, || hashtbl_mc(plain(), 2, n_tbl));
    let h1 = median(runs, || hashtbl_mc(sharded(), 1, n_tbl));
    let h2 = median(runs, || hashtbl_mc(sharded(), 2, n_tbl));
    let s1 = median(runs, || {
        hashtbl_threads(Mutex::new(HashMap::new()), 1, n_tbl)
    });
    let s2 = median(runs, || {
        hashtbl_threads(Mutex::new(HashMap::new()), 2, n_tbl)
    });
    println!("  mc SHashtbl, 1 process    {:>12.0} ops/s", m1);
    println!("  mc SHashtbl, 2 processes  {:>12.0} ops/s", m2);
    println!("  mc SShardedHashtbl (16), 1 process    {:>12.0} ops/s", h1);
    println!("  mc SShardedHashtbl (16), 2 processes  {:>12.0} ops/s", h2);
    println!("  std Mutex<HashMap>, 1 thread  {:>12.0} ops/s", s1);
    println!("  std Mutex<HashMap>, 2 threads {:>12.0} ops/s", s2);
    println!("  ratio mc/std, 1: {:.3}   2: {:.3}", m1 / s1, m2 / s2);
    println!(
        "  ratio sharded/std, 1: {:.3}   2: {:.3}   sharded 2 processes / 1: {:.2}",
        h1 / s1,
        h2 / s2,
        h2 / h1
    );

    plain_map_section(&pool, n_tbl, runs.max(5));

    println!("SQueue<u64> push/pop, producer → consumer");
    let q = median(runs, || queue_mc(&pool, n_q));
    let qb = median(runs, || queue_mc_batched(&pool, n_q, 64));
    let c = median(runs, || queue_crossbeam(n_q));
    println!("  mc SQueue, 2 processes         {:>12.0} items/s", q);
    println!("  mc SQueue, batches of 64       {:>12.0} items/s", qb);
    println!("  crossbeam-channel, 2 threads   {:>12.0} items/s", c);
    println!(
        "  ratio mc/crossbeam: {:.3}   batched: {:.3}",
        q / c,
        qb / c
    );

    println!("Ring<u64> ({RING} slots) push/pop, producer → consumer");
    let (mut ring1, mut ring64, mut bounded) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(3) {
        ring1.push(ring_mc(&pool, n_q, 1));
        ring64.push(ring_mc(&pool, n_q, 64));
        bounded.push(queue_crossbeam_bounded(n_q));
    }
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (r1, r64, cb) = (mid(&mut ring1), mid(&mut ring64), mid(&mut bounded));
    println!(
        "  mc Ring, 2 processes                 {:>12.0} items/s",
        r1
    );
    println!(
        "  mc Ring, batches of 64               {:>12.0} items/s",
        r64
    );
    println!(
        "  crossbeam-channel bounded, 2 threads {:>12.0} items/s",
        cb
    );
    println!(
        "  ratio mc Ring/crossbeam bounded: {:.3}   batched: {:.3}",
        r1 / cb,
        r64 / cb
    );
    // The queue's target is set against the bounded channel.
    println!(
        "  ratio mc SQueue/crossbeam bounded: {:.3}   batched: {:.3}",
        q / cb,
        qb / cb
    );
}
