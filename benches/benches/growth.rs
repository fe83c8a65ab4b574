//! How long the slowest insert of a growing table takes: `SHashtbl<u64,
//! u64>` against `std::collections::HashMap` (which rehashes everything at
//! once when it grows), both filled with the same keys in one process.
//!
//! For each table: the time of every insert, then the slowest one, the
//! 99.99th percentile and the mean, alternated over rounds (medians). For
//! `SHashtbl` also the slowest insert that ran no garbage collection (the
//! collector's pause is the heap's, not the table's growth).
//!
//! Run: `cargo bench -p mc-benches --bench growth` (`--quick`: fewer keys).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use mc::{Pool, SHashtbl};

/// Slowest, 99.99th percentile and mean of `times` (seconds).
fn figures(mut times: Vec<f64>) -> (f64, f64, f64) {
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let p = times[(times.len() as f64 * 0.9999) as usize];
    (times[times.len() - 1], p, mean)
}

fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The figures of every insert, and the slowest insert that ran no
/// collection.
fn mc_inserts(pool: &Pool, n: u64) -> ((f64, f64, f64), f64) {
    let t = SHashtbl::<u64, u64>::create(pool, &()).expect("table");
    let gc_runs = || t.heap().stats().expect("stats").gc_runs;
    let mut times = Vec::with_capacity(n as usize);
    let mut without_gc: f64 = 0.0;
    for i in 0..n {
        let before = gc_runs();
        let s = Instant::now();
        t.add(&key(i), &i).expect("add");
        let took = s.elapsed().as_secs_f64();
        times.push(took);
        if gc_runs() == before {
            without_gc = without_gc.max(took);
        }
    }
    assert_eq!(t.len().expect("len"), n as usize);
    assert_eq!(t.find_copy(&key(n / 2)).expect("find"), Some(n / 2));
    t.destroy().expect("destroy");
    (figures(times), without_gc)
}

fn std_inserts(n: u64) -> (f64, f64, f64) {
    let mut t = HashMap::new();
    let mut times = Vec::with_capacity(n as usize);
    for i in 0..n {
        let s = Instant::now();
        t.insert(key(i), i);
        times.push(s.elapsed().as_secs_f64());
    }
    black_box(&t);
    assert_eq!(t.len(), n as usize);
    figures(times)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, rounds) = if quick { (50_000, 1) } else { (500_000, 5) };
    let pool = Pool::create(1 << 30).expect("pool");
    let (mut mc, mut st, mut no_gc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (f, g) = mc_inserts(&pool, n);
        mc.push(f);
        no_gc.push(g);
        st.push(std_inserts(n));
    }
    let col =
        |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| median(v.iter().map(f).collect());
    println!("growing to {n} entries, u64 -> u64, median of {rounds} alternated rounds");
    for (name, v) in [("mc SHashtbl", &mc), ("std HashMap", &st)] {
        println!(
            "  {name:<12} slowest insert {:>10.1} µs   99.99th pct {:>8.2} µs   mean {:>7.3} µs",
            col(v, |f| f.0) * 1e6,
            col(v, |f| f.1) * 1e6,
            col(v, |f| f.2) * 1e6
        );
    }
    println!(
        "  mc SHashtbl  slowest insert that ran no collection {:>8.1} µs: {:.2}x std's slowest",
        median(no_gc.clone()) * 1e6,
        median(no_gc.clone()) / col(&st, |f| f.0)
    );
    println!(
        "  slowest insert / mean: mc {:.0}x, std {:.0}x; mc slowest / std slowest: {:.2}x",
        col(&mc, |f| f.0 / f.2),
        col(&st, |f| f.0 / f.2),
        col(&mc, |f| f.0) / col(&st, |f| f.0)
    );
}
