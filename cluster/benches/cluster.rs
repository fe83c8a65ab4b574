//! The cluster against its baselines, in alternated rounds (`harness =
//! false`; started by `cargo bench`, it launches itself with `mpirun`):
//!
//! - N-queens, N = 15: 2 ranks of 1 worker vs 1 rank of 2 workers (both
//!   dealt with `Cluster::deal`, two tasks per worker at a time, to workers
//!   that live as long as the count and take tasks from an `mc::Ring`),
//!   and vs a sequential count;
//! - a typed message round trip (`Cluster::send`/`recv` of a byte buffer,
//!   `serde_bytes::ByteBuf`; and `send_shared`/`recv_shared` of a
//!   `Vec<u8>` in mc's layout) vs a raw `mpi` send of the same bytes, for
//!   1 KiB and 1 MiB.
//!
//! Run: `cargo bench -p mc-cluster --features mpi --bench cluster`.

use std::process::Command;
use std::time::Instant;

use mpi::traits::{Communicator, Destination, Source};

const N: usize = 15;
const ROUNDS: usize = 3;

/// Solutions with the first two queens in columns `a` and `b`.
fn count_from(n: usize, a: usize, b: usize) -> u64 {
    fn place(n: usize, row: usize, cols: u32, d1: u32, d2: u32) -> u64 {
        if row == n {
            return 1;
        }
        let mut count = 0;
        let mut bits = !(cols | d1 | d2) & ((1 << n) - 1);
        while bits != 0 {
            let bit = bits & bits.wrapping_neg();
            bits ^= bit;
            count += place(n, row + 1, cols | bit, (d1 | bit) << 1, (d2 | bit) >> 1);
        }
        count
    }
    let (ba, bb) = (1u32 << a, 1u32 << b);
    let (d1, d2) = ((ba << 1), (ba >> 1));
    if (ba | d1 | d2) & bb != 0 {
        return 0;
    }
    place(n, 2, ba | bb, (d1 | bb) << 1, (d2 | bb) >> 1)
}

fn tasks(n: usize) -> Vec<(usize, usize)> {
    (0..n)
        .flat_map(|a| (0..n).map(move |b| (a, b)))
        .filter(|(a, b)| a.abs_diff(*b) > 1)
        .collect()
}

/// A worker that lives as long as the rank's count: takes tasks `(a, b)`
/// from one ring and puts their counts in another, until a task
/// `(u64::MAX, _)`.
#[mc::process]
fn counter(rings: (mc::RingDescr<[u64; 2]>, mc::RingDescr<u64>)) -> u64 {
    let (tasks, counts) = (rings.0.open().expect("open"), rings.1.open().expect("open"));
    let mut done = 0;
    loop {
        let [a, b] = tasks.pop().expect("pop");
        if a == u64::MAX {
            return done;
        }
        counts
            .push(count_from(N, a as usize, b as usize))
            .expect("push");
        done += 1;
    }
}

/// A rank: counts N-queens with `workers` mc workers per rank, which live
/// as long as the count and take their tasks from a ring (`mc::Ring`); rank
/// 0 prints the time of the distributed count.
fn queens_rank(workers: usize) {
    let r = mc_cluster::run(|c| {
        let pool = mc::Pool::create(1 << 20).expect("pool");
        let tasks_ring = mc::Ring::<[u64; 2]>::create(&pool, 256).expect("ring");
        let counts_ring = mc::Ring::<u64>::create(&pool, 256).expect("ring");
        let pids: Vec<_> = (0..workers)
            .map(|_| counter::start((tasks_ring.descr(), counts_ring.descr())).expect("start"))
            .collect();
        c.barrier();
        let t = Instant::now();
        let all = c.is_root().then(|| tasks(N));
        let counts = c
            .deal(all, workers * 2, |batch| {
                let jobs: Vec<[u64; 2]> =
                    batch.iter().map(|&(a, b)| [a as u64, b as u64]).collect();
                tasks_ring.push_slice(&jobs).expect("push");
                let total: u64 = (0..jobs.len())
                    .map(|_| counts_ring.pop().expect("pop"))
                    .sum();
                vec![total]
            })
            .expect("deal");
        let took = t.elapsed();
        tasks_ring
            .push_slice(&vec![[u64::MAX, 0]; workers])
            .expect("push");
        for p in pids {
            counter::join(p).expect("join");
        }
        if let Some(counts) = counts {
            let total: u64 = counts.iter().sum();
            assert_eq!(total, 2_279_184, "N = 15");
            println!("time {}", took.as_secs_f64());
        }
    });
    r.expect("run");
}

/// Rank 0 and rank 1 bounce `size` bytes `n` times, typed and raw in
/// alternation; rank 0 prints both round-trip times (the medians of 11
/// alternated pairs).
fn ping_rank(size: usize) {
    let r = mc_cluster::run(|c| {
        let n = if size >= 1 << 20 { 50 } else { 2_000 };
        let payload = serde_bytes::ByteBuf::from(vec![7u8; size]);
        let other = 1 - c.rank();
        let world = c.world();
        let (mut typed, mut raw, mut layout) = (Vec::new(), Vec::new(), Vec::new());
        let plain = vec![7u8; size];
        for _ in 0..11 {
            c.barrier();
            let t = Instant::now();
            for _ in 0..n {
                if c.is_root() {
                    c.send_shared(other, &plain).expect("send");
                    let back: Vec<u8> = c.recv_shared(other).expect("recv");
                    assert_eq!(back.len(), size);
                } else {
                    let got: Vec<u8> = c.recv_shared(other).expect("recv");
                    c.send_shared(other, &got).expect("send");
                }
            }
            layout.push(t.elapsed().as_secs_f64() / n as f64);
            c.barrier();
            let t = Instant::now();
            for _ in 0..n {
                if c.is_root() {
                    c.send(other, &payload).expect("send");
                    let back: serde_bytes::ByteBuf = c.recv(other).expect("recv");
                    assert_eq!(back.len(), size);
                } else {
                    let got: serde_bytes::ByteBuf = c.recv(other).expect("recv");
                    c.send(other, &got).expect("send");
                }
            }
            typed.push(t.elapsed().as_secs_f64() / n as f64);
            c.barrier();
            let peer = world.process_at_rank(other as i32);
            let t = Instant::now();
            for _ in 0..n {
                if c.is_root() {
                    peer.send_with_tag(&payload[..], 9);
                    let (back, _) = peer.receive_vec_with_tag::<u8>(9);
                    assert_eq!(back.len(), size);
                } else {
                    let (got, _) = peer.receive_vec_with_tag::<u8>(9);
                    peer.send_with_tag(&got[..], 9);
                }
            }
            raw.push(t.elapsed().as_secs_f64() / n as f64);
        }
        if c.is_root() {
            typed.sort_by(f64::total_cmp);
            raw.sort_by(f64::total_cmp);
            layout.sort_by(f64::total_cmp);
            println!("typed {} raw {} layout {}", typed[5], raw[5], layout[5]);
        }
    });
    r.expect("run");
}

fn mpirun(np: &str, args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("path");
    let out = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
            np,
        ])
        .arg(exe)
        .args(args)
        .env("MC_CLUSTER_BENCH", "1")
        .output()
        .expect("mpirun");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field(out: &str, name: &str) -> f64 {
    out.split_whitespace()
        .skip_while(|w| *w != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if std::env::var_os("MC_CLUSTER_BENCH").is_some() {
        match args.get(1).map(String::as_str) {
            Some("queens") => queens_rank(args[2].parse().expect("workers")),
            Some("ping") => ping_rank(args[2].parse().expect("size")),
            other => panic!("unknown mode {other:?}"),
        }
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    println!(
        "cluster: N-queens N = {N} ({} tasks), {ROUNDS} alternated rounds",
        tasks(N).len()
    );
    let (mut r2w1, mut r1w2, mut seq) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        r2w1.push(field(&mpirun("2", &["queens", "1"]), "time"));
        r1w2.push(field(&mpirun("1", &["queens", "2"]), "time"));
        let t = Instant::now();
        let total: u64 = tasks(N).iter().map(|&(a, b)| count_from(N, a, b)).sum();
        assert_eq!(total, 2_279_184);
        seq.push(t.elapsed().as_secs_f64());
    }
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| y / x).collect());
    println!(
        "  2 ranks x 1 worker   {:>8.3} s\n  1 rank x 2 workers   {:>8.3} s\n  sequential           {:>8.3} s",
        median(r2w1.clone()),
        median(r1w2.clone()),
        median(seq.clone())
    );
    println!(
        "  2 ranks x 1 worker vs 1 rank x 2 workers: {:.2}x the speed (target >= 0.9)",
        ratio(&r2w1, &r1w2)
    );
    println!(
        "  2 ranks x 1 worker vs sequential:         {:.2}x (target >= 1.7 on 2 cores)",
        ratio(&r2w1, &seq)
    );
    println!("message round trip between 2 ranks (median of 11 alternated pairs):");
    for (size, name) in [(1usize << 10, "1 KiB"), (1 << 20, "1 MiB")] {
        let out = mpirun("2", &["ping", &size.to_string()]);
        let (typed, raw, layout) = (
            field(&out, "typed"),
            field(&out, "raw"),
            field(&out, "layout"),
        );
        println!(
            "  {name}: typed (serde) {:>8.1} µs, in mc's layout {:>8.1} µs, raw mpi {:>8.1} µs: \
             {:.2}x and {:.2}x the raw time (target <= 1.3)",
            typed * 1e6,
            layout * 1e6,
            raw * 1e6,
            typed / raw,
            layout / raw
        );
    }
}
