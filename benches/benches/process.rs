//! Start + join round trip of a trivial process, against baselines measured
//! in the same run: raw `fork` + `waitpid` (the child exits at once), raw
//! `fork` with the result sent back through a pipe, `std::thread::spawn` +
//! `join`, and `procspawn::spawn` + `join` (which re-executes the binary).
//!
//! `cargo bench -p mc-benches --bench process`. Plain `Instant` loops. The
//! mc loop and its baselines run inside the first process, in alternating
//! rounds, so that a machine busy with other work slows them alike; the
//! figures are medians and minimums over the rounds, with their ratios.

use std::time::{Duration, Instant};

#[mc::process]
fn trivial(x: u64) -> u64 {
    x + 1
}

/// Median and minimum.
fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0])
}

/// Time per operation of one round of `n` operations.
fn round(n: u64, mut f: impl FnMut(u64)) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed() / n as u32
}

fn raw_fork(i: u64) {
    // SAFETY: the calling process is single-threaded; the child only calls
    // `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: ends the child at once.
        unsafe { libc::_exit((i & 1) as i32) };
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: `status` is a live local; `pid` is our child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
}

/// Raw `fork`, the child sends `i + 1` back through a pipe: what a process
/// with a result needs at the least.
fn raw_fork_pipe(i: u64) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two descriptors for the kernel.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the calling process is single-threaded; the child only
    // writes to the pipe and calls `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let v = (i + 1).to_le_bytes();
        // SAFETY: writes 8 bytes from a live local; then ends the child.
        unsafe {
            libc::write(fds[1], v.as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    assert!(pid > 0, "fork failed");
    let mut v = [0u8; 8];
    // SAFETY: closes our copy of the write end; reads 8 bytes into a live
    // local; closes the read end; reaps our child.
    unsafe {
        libc::close(fds[1]);
        assert_eq!(libc::read(fds[0], v.as_mut_ptr().cast(), 8), 8);
        libc::close(fds[0]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
    }
    assert_eq!(u64::from_le_bytes(v), i + 1);
}

fn mc_start_join(i: u64) {
    let p = trivial::start(i).expect("start");
    assert_eq!(trivial::join(p).expect("join"), i + 1);
}

fn thread_spawn_join(i: u64) {
    let h = std::thread::spawn(move || i + 1);
    assert_eq!(h.join().unwrap(), i + 1);
}

#[cfg(feature = "peers")]
fn procspawn_join(i: u64) {
    let h = procspawn::spawn(i, |i| i + 1);
    assert_eq!(h.join().unwrap(), i + 1);
}

/// procspawn's spawn + join (median, best).
#[cfg(feature = "peers")]
fn procspawn_stats() -> Option<(Duration, Duration)> {
    Some(stats((0..5).map(|_| round(20, procspawn_join)).collect()))
}

/// procspawn is built with the `peers` feature only.
#[cfg(not(feature = "peers"))]
fn procspawn_stats() -> Option<(Duration, Duration)> {
    None
}

fn main() {
    #[cfg(feature = "peers")]
    procspawn::init();
    let rounds = 9;
    let n = 200;
    // `MC_BENCH_ONLY=mc` runs the mc loop alone (for profiling); any other
    // value skips procspawn.
    let only = std::env::var("MC_BENCH_ONLY").ok();
    if only.as_deref() == Some("mc") {
        let report = mc::run(|| stats((0..rounds).map(|_| round(n, mc_start_join)).collect()))
            .expect("mc::run");
        let (med, min) = report
            .returned()
            .expect("the benchmark's first process failed");
        println!("mc start + join: median {med:?}, best {min:?}");
        return;
    }

    let report = mc::run(|| {
        let (mut fork, mut pipe, mut mc, mut thread) = (vec![], vec![], vec![], vec![]);
        for r in 0..=rounds {
            let f = round(n, raw_fork);
            let p = round(n, raw_fork_pipe);
            let m = round(n, mc_start_join);
            let t = round(n, thread_spawn_join);
            // Round 0 warms up.
            if r > 0 {
                fork.push(f);
                pipe.push(p);
                mc.push(m);
                thread.push(t);
            }
        }
        (stats(fork), stats(pipe), stats(mc), stats(thread))
    })
    .expect("mc::run");
    let (fork, pipe, mc, thread) = report
        .returned()
        .expect("the benchmark's first process failed");
    let procspawn = if only.is_none() {
        procspawn_stats()
    } else {
        None
    };

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("process start + join round trip, per operation ({rounds} rounds of {n}):");
    if procspawn.is_none() && only.is_none() {
        println!("(procspawn not built: `--features peers`, as benches/run-all.sh does)");
    }
    println!("                               median        best");
    for (name, (med, min)) in [
        ("raw fork + waitpid      ", fork),
        ("fork + pipe + waitpid   ", pipe),
        ("mc start + join         ", mc),
        ("std::thread spawn + join", thread),
    ]
    .into_iter()
    .chain(procspawn.map(|p| ("procspawn spawn + join  ", p)))
    {
        println!("  {name} {:>8.1} µs {:>8.1} µs", us(med), us(min));
    }
    println!("ratios (median, best):");
    for (label, (a, b), note) in [
        ("mc / raw fork + waitpid", (mc, fork), " (target <= 2)"),
        ("mc / fork + pipe", (mc, pipe), ""),
        ("mc / std::thread", (mc, thread), ""),
    ]
    .into_iter()
    .chain(procspawn.map(|p| ("procspawn / mc", (p, mc), " (target > 1)")))
    {
        println!(
            "  {label:<24} {:>6.2}x  {:>6.2}x{note}",
            r(a.0, b.0),
            r(a.1, b.1)
        );
    }
}
