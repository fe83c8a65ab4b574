//! Parallel speedup on the N-queens workload: sequential vs mc worker
//! processes vs rayon threads, in alternating rounds inside one run (so that
//! load from other work hits all three alike). Figures: median times per
//! round and their ratios.
//!
//! `cargo bench -p mc-benches --bench nqueens [-- N]` (default N = 14).
//! Targets (2 cores): mc at least 1.7x sequential, and at least 0.9x
//! rayon's throughput.

use std::time::{Duration, Instant};

use mc_examples::nqueens::{self, Task};
use rayon::prelude::*;

#[mc::process]
fn count_share(job: (usize, Vec<Task>)) -> u64 {
    job.1
        .into_iter()
        .map(|t| nqueens::count_task(job.0, t))
        .sum()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(14);
    let workers = std::thread::available_parallelism().map_or(2, |w| w.get());
    let report = mc::run(move || {
        let all = nqueens::tasks(n);
        let expected = nqueens::count_sequential(n);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .expect("rayon pool");
        let (mut seq, mut mcw, mut ray) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..7 {
            let t = Instant::now();
            assert_eq!(nqueens::count_sequential(n), expected);
            seq.push(t.elapsed());

            let t = Instant::now();
            let pids: Vec<_> = (0..workers)
                .map(|w| count_share::start((n, nqueens::share(&all, w, workers))).expect("start"))
                .collect();
            let total: u64 = pids
                .into_iter()
                .map(|p| count_share::join(p).expect("worker"))
                .sum();
            mcw.push(t.elapsed());
            assert_eq!(total, expected);

            let t = Instant::now();
            let total: u64 =
                pool.install(|| all.par_iter().map(|&t| nqueens::count_task(n, t)).sum());
            ray.push(t.elapsed());
            assert_eq!(total, expected);
        }
        (median(seq), median(mcw), median(ray), expected)
    })
    .expect("mc::run");
    let Some((seq, mcw, ray, count)) = report.returned() else {
        eprintln!("the benchmark's first process failed");
        std::process::exit(1);
    };
    println!(
        "N-queens N = {n} ({count} solutions), {workers} workers, median of 7 alternating rounds"
    );
    println!("{:<24} {:>10} {:>12}", "variant", "time", "vs seq");
    for (name, d) in [
        ("sequential", seq),
        ("mc worker processes", mcw),
        ("rayon threads", ray),
    ] {
        println!(
            "{name:<24} {:>8.1}ms {:>11.2}x",
            d.as_secs_f64() * 1e3,
            seq.as_secs_f64() / d.as_secs_f64()
        );
    }
    println!(
        "mc throughput / rayon throughput: {:.2}x (target >= 0.9)",
        ray.as_secs_f64() / mcw.as_secs_f64()
    );
    println!(
        "mc speedup over sequential: {:.2}x (target >= 1.7 on 2 cores)",
        seq.as_secs_f64() / mcw.as_secs_f64()
    );
}
