//! Heap benchmarks, each against a baseline measured in the same run.
//!
//! 1. Copy a `Vec` of 1,000 records into a heap and out again, vs `postcard`
//!    serialize + deserialize of the same value; and reading in place
//!    (summing a field through a read guard), which copies nothing.
//! 2. Small allocations: `Mutator::add(&0u64)` vs `Box::new(0u64)` + drop.
//! 3. Garbage collection: mark & sweep throughput in MB of live data per
//!    second, on a tree of records.
//! 4. What validating a heap costs (the check run when a heap is opened in
//!    a pool attached from an unrelated process), against copying the same
//!    value out.
//! 5. With the `peers` feature: the same 1,000 records through rkyv, the
//!    zero-copy format a Rust user would pick, against mc: serialize plus
//!    full deserialize against copy in plus copy out, and serialize plus a
//!    checked access plus a read against copy in plus a read in place.
//! 6. Pins: pinning one record of about 100 bytes, then a modification
//!    while it is pinned, in a heap whose root holds 1 KB against one whose
//!    root holds 100 MB; for a part pin (`Heap::pin_part`) and for a pin of
//!    the whole root (`Heap::pin`).
//!
//! Run: `cargo bench -p mc-benches --bench heap`. Each figure is the median
//! of several runs after a warm-up.

use std::hint::black_box;
use std::time::Instant;

use mc::{Heap, Pool};
use serde::{Deserialize, Serialize};

#[derive(mc::Shared, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "peers",
    derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)
)]
struct Rec {
    name: String,
    values: Vec<f64>,
}

#[derive(mc::Shared, Debug, Clone, PartialEq)]
struct Node {
    name: String,
    children: Vec<Node>,
}

const RUNS: usize = 9;

/// Median time per iteration of `f(iters)` over `RUNS` runs after one
/// warm-up run, in ns.
fn median_ns(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    f(iters.div_ceil(4));
    let mut t: Vec<f64> = (0..RUNS)
        .map(|_| {
            let s = Instant::now();
            f(iters);
            s.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[RUNS / 2]
}

/// Times a baseline and a candidate in alternation (`PAIRS` pairs after a
/// warm-up of each), so that load from other processes hits both alike.
/// Returns the median ns per iteration of each and the median of the
/// per-pair ratios baseline / candidate.
fn paired(iters: u64, mut base: impl FnMut(u64), mut cand: impl FnMut(u64)) -> (f64, f64, f64) {
    const PAIRS: usize = 21;
    base(iters.div_ceil(4));
    cand(iters.div_ceil(4));
    let time = |f: &mut dyn FnMut(u64)| {
        let s = Instant::now();
        f(iters);
        s.elapsed().as_nanos() as f64 / iters as f64
    };
    let mut b = Vec::with_capacity(PAIRS);
    let mut c = Vec::with_capacity(PAIRS);
    let mut r = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let tb = time(&mut base);
        let tc = time(&mut cand);
        b.push(tb);
        c.push(tc);
        r.push(tb / tc);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (med(b), med(c), med(r))
}

/// Median of `RUNS` figures returned by `f`, after one warm-up call.
fn median_timed(mut f: impl FnMut() -> f64) -> f64 {
    f();
    let mut t: Vec<f64> = (0..RUNS).map(|_| f()).collect();
    t.sort_by(f64::total_cmp);
    t[RUNS / 2]
}

fn records(n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            name: format!("record-{i:06}-ab"),
            values: (0..8).map(|k| (i * 8 + k) as f64 * 0.25).collect(),
        })
        .collect()
}

fn copy_vs_postcard() {
    println!("## 1. Copy into a heap and out vs postcard (1,000 records: 16-char name, 8 f64)");
    let value = records(1000);
    assert_eq!(value[0].name.len(), 16);
    let pool = Pool::create(256 << 20).expect("pool");
    let heap = Heap::create(&pool, &value).expect("heap");

    let (postcard, mc_round, round_ratio) = paired(
        50,
        |n| {
            for _ in 0..n {
                let bytes = postcard::to_allocvec(black_box(&value)).expect("serialize");
                let back: Vec<Rec> = postcard::from_bytes(&bytes).expect("deserialize");
                black_box(back);
            }
        },
        |n| {
            for _ in 0..n {
                heap.assign(black_box(&value)).expect("assign");
                black_box(heap.copy().expect("copy"));
            }
        },
    );
    let copy_in = median_ns(200, |n| {
        for _ in 0..n {
            heap.assign(black_box(&value)).expect("assign");
        }
    });
    let copy_out = median_ns(200, |n| {
        for _ in 0..n {
            black_box(heap.copy().expect("copy"));
        }
    });
    let ser = median_ns(200, |n| {
        for _ in 0..n {
            black_box(postcard::to_allocvec(black_box(&value)).expect("serialize"));
        }
    });
    let bytes = postcard::to_allocvec(&value).expect("serialize");
    let de = median_ns(200, |n| {
        for _ in 0..n {
            let back: Vec<Rec> = postcard::from_bytes(black_box(&bytes)).expect("deserialize");
            black_box(back);
        }
    });
    let clone = median_ns(200, |n| {
        for _ in 0..n {
            black_box(black_box(&value).clone());
        }
    });
    let read_sum = median_ns(2000, |n| {
        for _ in 0..n {
            let g = heap.read().expect("read");
            let s: f64 = g.iter().map(|r| r.values[0]).sum();
            black_box(s);
        }
    });
    let local_sum = median_ns(2000, |n| {
        for _ in 0..n {
            let s: f64 = black_box(&value).iter().map(|r| r.values[0]).sum();
            black_box(s);
        }
    });
    assert_eq!(heap.copy().expect("copy"), value);
    let us = |ns: f64| ns / 1000.0;
    println!(
        "postcard serialize + deserialize     {:>8.1} µs   (baseline; ratios: median of 21 alternated pairs)",
        us(postcard)
    );
    println!(
        "mc copy in (assign) + copy out       {:>8.1} µs   {:.2}x faster than postcard",
        us(mc_round),
        round_ratio
    );
    println!(
        "  copy in (assign, GC amortised)     {:>8.1} µs",
        us(copy_in)
    );
    println!(
        "  copy out                           {:>8.1} µs",
        us(copy_out)
    );
    println!(
        "  (postcard serialize {:.1} µs, deserialize {:.1} µs; a local clone {:.1} µs)",
        us(ser),
        us(de),
        us(clone)
    );
    println!(
        "read in place: sum a field (guard)   {:>8.2} µs   {:.0}x less than copying out; \
         {:.2}x a local Vec",
        us(read_sum),
        copy_out / read_sum,
        read_sum / local_sum
    );
    heap.destroy().expect("destroy");
}

fn small_allocations() {
    println!();
    println!("## 2. Small allocations: Mutator::add(&0u64) vs Box::new(0u64) + drop");
    const N: u64 = 200_000;
    let pool = Pool::create(1 << 30).expect("pool");
    let heap = Heap::create(&pool, &0u64).expect("heap");
    let (boxed, add, add_ratio) = paired(
        N,
        |n| {
            for i in 0..n {
                black_box(Box::new(black_box(i)));
            }
        },
        |n| {
            heap.modify(|m, _| {
                for i in 0..n {
                    black_box(m.add(black_box(&i)).expect("add"));
                }
            })
            .expect("modify");
            heap.gc().expect("gc");
        },
    );
    // The same, timing the allocations only.
    let add_only = median_timed(|| {
        let t = Instant::now();
        heap.modify(|m, _| {
            for i in 0..N {
                black_box(m.add(black_box(&i)).expect("add"));
            }
        })
        .expect("modify");
        let dt = t.elapsed();
        heap.gc().expect("gc");
        dt.as_nanos() as f64 / N as f64
    });
    println!(
        "Box::new(0u64) + drop                {boxed:>8.1} ns   (baseline; ratio: median of 21 alternated pairs)"
    );
    println!(
        "m.add(&0u64), incl. collecting them  {add:>8.1} ns   {:.2}x Box::new",
        1.0 / add_ratio
    );
    println!(
        "m.add(&0u64), allocation only        {add_only:>8.1} ns   {:.2}x Box::new (median)",
        add_only / boxed
    );
    heap.destroy().expect("destroy");
}

fn tree(depth: u32, fan: usize, id: &mut u64) -> Node {
    *id += 1;
    let name = format!("node {id:>12}");
    let children = if depth == 0 {
        Vec::new()
    } else {
        (0..fan).map(|_| tree(depth - 1, fan, id)).collect()
    };
    Node { name, children }
}

fn gc_throughput() {
    println!();
    println!("## 3. GC mark & sweep throughput on a tree of records");
    let mut id = 0;
    let forest: Vec<Node> = (0..8).map(|_| tree(6, 4, &mut id)).collect();
    let pool = Pool::create(1 << 30).expect("pool");
    let heap = Heap::create(&pool, &forest).expect("heap");
    heap.gc().expect("gc");
    let s = heap.stats().expect("stats");
    let live = s.live_bytes as f64;
    // Each collection marks the whole tree and sweeps every chunk.
    let full = median_ns(10, |n| {
        for _ in 0..n {
            heap.gc().expect("gc");
        }
    });
    // With garbage to free: replace half the tree before each collection.
    let half: Vec<Node> = forest[..4].to_vec();
    let sweep_garbage = median_timed(|| {
        heap.modify(|m, r| {
            let mut r = r;
            for (i, node) in half.iter().enumerate() {
                let place = r.as_mut().get_pin(i).expect("node");
                m.set::<Node>(place, node).expect("set");
            }
        })
        .expect("modify");
        let t = Instant::now();
        heap.gc().expect("gc");
        t.elapsed().as_nanos() as f64
    });
    let mb = live / 1e6;
    println!("live data {:.1} MB ({} nodes, {} chunks)", mb, id, s.chunks);
    println!(
        "collection, nothing to free          {:>8.2} ms   {:>6.0} MB/s",
        full / 1e6,
        mb / (full / 1e9)
    );
    println!(
        "collection, half the tree garbage    {:>8.2} ms   {:>6.0} MB/s of live data",
        sweep_garbage / 1e6,
        mb / (sweep_garbage / 1e9)
    );
    heap.destroy().expect("destroy");
}

fn validation_cost() {
    println!();
    println!("## 4. Validating a heap (an untrusted open) vs copying it out (1,000 records)");
    let value = records(1000);
    let pool = Pool::create(256 << 20).expect("pool");
    let heap = Heap::create(&pool, &value).expect("heap");
    let (copy, validate, ratio) = paired(
        100,
        |n| {
            for _ in 0..n {
                black_box(heap.copy().expect("copy"));
            }
        },
        |n| {
            for _ in 0..n {
                heap.validate().expect("validate");
            }
        },
    );
    let live = heap.stats().expect("stats").live_bytes as f64;
    println!(
        "copy out                             {:>8.1} µs   (baseline; ratio: median of 21 alternated pairs)",
        copy / 1000.0
    );
    println!(
        "validate (chunks, blocks, values)    {:>8.1} µs   {:.2}x the copy; {:.0} MB/s of live data",
        validate / 1000.0,
        1.0 / ratio,
        live / 1e6 / (validate / 1e9)
    );
    heap.destroy().expect("destroy");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("# mc heap benchmarks ({} runs each, median)", RUNS);
    copy_vs_postcard();
    small_allocations();
    gc_throughput();
    validation_cost();
    #[cfg(feature = "peers")]
    rkyv_vs_mc();
    pin_cost();
}

/// Pin record `i` of `heap` (with `part`: only that record), modify record
/// `i + 1` while it is pinned, read the pinned record, unpin.
fn pin_modify(heap: &Heap<Vec<Rec>>, i: usize, part: bool) {
    let n = heap.read().expect("read").len();
    let (i, j) = (i % n, (i + 1) % n);
    let touch = |heap: &Heap<Vec<Rec>>| {
        heap.modify(|_, mut v| {
            let r = v.as_mut().get_pin(j).expect("in range").project();
            r.values.as_mut_slice()[0] += 1.0;
        })
        .expect("modify");
    };
    if part {
        let p = heap.pin_part::<Rec>(|v| &v[i]).expect("pin_part");
        touch(heap);
        black_box(p.values[1]);
    } else {
        let p = heap.pin().expect("pin");
        touch(heap);
        black_box(p[i].values[1]);
    }
}

fn pin_cost() {
    println!();
    println!(
        "## 6. Pin one record (~100 B) + a modification while pinned: 1 KB root vs 100 MB root"
    );
    let pool = Pool::create(1 << 30).expect("pool");
    let small = Heap::create(&pool, &records(8)).expect("small heap");
    let t = Instant::now();
    let big = Heap::create(&pool, &records(740_000)).expect("big heap");
    let st = big.stats().expect("stats");
    println!(
        "roots: {} B and {:.0} MB of live heap data (made in {:.1?})",
        small.stats().expect("stats").live_bytes,
        st.live_bytes as f64 / 1e6,
        t.elapsed()
    );
    let (ts, tb, r) = paired(
        2000,
        |n| (0..n as usize).for_each(|i| pin_modify(&small, i, true)),
        |n| (0..n as usize).for_each(|i| pin_modify(&big, i * 7919, true)),
    );
    println!(
        "part pin (pin_part), 1 KB root       {:>8.2} µs   (baseline; ratio: median of 21 alternated pairs)",
        ts / 1e3
    );
    println!(
        "part pin (pin_part), 100 MB root     {:>8.2} µs   {:.2}x the 1 KB root (target <= 2x)",
        tb / 1e3,
        1.0 / r
    );
    let root_small = median_ns(200, |n| {
        (0..n as usize).for_each(|i| pin_modify(&small, i, false))
    });
    let root_big = median_timed(|| {
        let s = Instant::now();
        pin_modify(&big, 3, false);
        s.elapsed().as_nanos() as f64
    });
    println!(
        "root pin (pin), 1 KB root            {:>8.2} µs",
        root_small / 1e3
    );
    println!(
        "root pin (pin), 100 MB root          {:>8.2} µs   {:.0}x the 1 KB root (the modification copies the root)",
        root_big / 1e3,
        root_big / root_small
    );
    small.destroy().expect("destroy");
    big.destroy().expect("destroy");
}

/// rkyv against mc on the records of section 1, in alternated pairs.
#[cfg(feature = "peers")]
fn rkyv_vs_mc() {
    use rkyv::rancor::Error as RkyvError;
    println!();
    println!("## 5. rkyv vs mc (1,000 records; ratios: median of 21 alternated pairs)");
    let value = records(1000);
    let pool = Pool::create(256 << 20).expect("pool");
    let heap = Heap::create(&pool, &value).expect("heap");
    let sum_mc = |heap: &Heap<Vec<Rec>>| -> f64 {
        let g = heap.read().expect("read");
        g.iter().map(|r| r.values[0] + r.name.len() as f64).sum()
    };
    let sum_rkyv = |a: &rkyv::Archived<Vec<Rec>>| -> f64 {
        a.iter()
            .map(|r| r.values[0].to_native() + r.name.len() as f64)
            .sum()
    };
    // Owned round trips: what a receiver that wants a `Vec<Rec>` pays.
    let (rk_round, mc_round, round_ratio) = paired(
        50,
        |n| {
            for _ in 0..n {
                let bytes = rkyv::to_bytes::<RkyvError>(black_box(&value)).expect("serialize");
                let back: Vec<Rec> =
                    rkyv::from_bytes::<Vec<Rec>, RkyvError>(&bytes).expect("deserialize");
                black_box(back);
            }
        },
        |n| {
            for _ in 0..n {
                heap.assign(black_box(&value)).expect("assign");
                black_box(heap.copy().expect("copy"));
            }
        },
    );
    // Zero copy: write once, read a field of every record in place.
    let (rk_zero, mc_zero, zero_ratio) = paired(
        50,
        |n| {
            for _ in 0..n {
                let bytes = rkyv::to_bytes::<RkyvError>(black_box(&value)).expect("serialize");
                let a =
                    rkyv::access::<rkyv::Archived<Vec<Rec>>, RkyvError>(&bytes).expect("access");
                black_box(sum_rkyv(a));
            }
        },
        |n| {
            for _ in 0..n {
                heap.assign(black_box(&value)).expect("assign");
                black_box(sum_mc(&heap));
            }
        },
    );
    // The reader alone: rkyv's checked access against a read guard.
    let bytes = rkyv::to_bytes::<RkyvError>(&value).expect("serialize");
    let (rk_read, mc_read, read_ratio) = paired(
        500,
        |n| {
            for _ in 0..n {
                let a = rkyv::access::<rkyv::Archived<Vec<Rec>>, RkyvError>(black_box(&bytes))
                    .expect("access");
                black_box(sum_rkyv(a));
            }
        },
        |n| {
            for _ in 0..n {
                black_box(sum_mc(&heap));
            }
        },
    );
    let a = rkyv::access::<rkyv::Archived<Vec<Rec>>, RkyvError>(&bytes).expect("access");
    assert_eq!(sum_rkyv(a), sum_mc(&heap));
    let us = |ns: f64| ns / 1000.0;
    println!(
        "rkyv serialize + checked deserialize {:>8.1} µs   (baseline)",
        us(rk_round)
    );
    println!(
        "mc copy in + copy out                {:>8.1} µs   {:.2}x faster than rkyv",
        us(mc_round),
        round_ratio
    );
    println!(
        "rkyv serialize + checked access+sum  {:>8.1} µs   (baseline)",
        us(rk_zero)
    );
    println!(
        "mc copy in + read in place + sum     {:>8.1} µs   {:.2}x faster than rkyv",
        us(mc_zero),
        zero_ratio
    );
    println!(
        "rkyv checked access + sum            {:>8.2} µs   (baseline)",
        us(rk_read)
    );
    println!(
        "mc read guard + sum                  {:>8.2} µs   {:.2}x faster than rkyv",
        us(mc_read),
        read_ratio
    );
    heap.destroy().expect("destroy");
}
