//! Runs every example program and checks its own verdict: the exit status
//! and the line it prints when its checks pass. Each run has a deadline
//! (the child is killed past it). `harness = false`: one thread, one
//! example at a time, so that the examples' worker processes do not compete.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Case {
    bin: &'static str,
    path: &'static str,
    args: &'static [&'static str],
    expect: &'static [&'static str],
    /// Text that must appear in the standard error.
    stderr: &'static [&'static str],
}

macro_rules! case {
    ($bin:literal, [$($arg:literal),*], [$($line:literal),*]) => {
        Case { bin: $bin, path: env!(concat!("CARGO_BIN_EXE_", $bin)), args: &[$($arg),*], expect: &[$($line),*], stderr: &[] }
    };
    ($bin:literal, [$($arg:literal),*], [$($line:literal),*], stderr [$($e:literal),*]) => {
        Case { stderr: &[$($e),*], ..case!($bin, [$($arg),*], [$($line),*]) }
    };
}

fn run(c: &Case) -> Result<(), String> {
    run_with(c, c.args)
}

/// Runs `c.path` with `args` and checks its verdict as [`run`] does.
fn run_with(c: &Case, args: &[&str]) -> Result<(), String> {
    let mut child = Command::new(c.path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("still running after 120 s: killed".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    if !status.success() {
        return Err(format!(
            "exit status {status}\nstdout:\n{out}\nstderr:\n{err}"
        ));
    }
    for text in c.stderr {
        if !err.contains(text) {
            return Err(format!("no {text:?} in the standard error:\n{err}"));
        }
    }
    for line in c.expect {
        if !out.lines().any(|l| l.trim() == *line) {
            return Err(format!(
                "no line {line:?} in the output:\n{out}\nstderr:\n{err}"
            ));
        }
    }
    Ok(())
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let cases = [
        case!("heap_tour", [], ["heap_tour: ok"]),
        case!("heap_share", [], ["heap_share: ok"]),
        case!("attach", [], ["attach: ok"]),
        case!("counter", [], ["Counter: 400000"]),
        case!("collatz_cache", [], ["collatz_cache: ok"]),
        case!("robust_lock", [], ["robust_lock: ok"]),
        case!("tutorial_processes", [], ["Result: 2"]),
        case!("create_join", [], ["Sum: 385"]),
        // A worker's panic report names the mc process.
        case!(
            "crash_join",
            [],
            ["crash_join: ok"],
            stderr["mc: process `crash_join::panics` (process #"]
        ),
        case!("tutorial_sref", [], ["Result: 3"]),
        // The tutorial's strings and its `p=` line.
        case!(
            "swap",
            [],
            [
                "p=initial string 2",
                "data1=Previously in data2: initial string 1",
                "data2=Previously in data1: initial string 2"
            ]
        ),
        case!("pipeline", ["--bytes", "67108864"], ["pipeline: ok"]),
        // Every count is checked against OEIS A000170 by the program.
        case!("nqueens", ["1"], ["nqueens: ok"]),
        case!("nqueens", ["2"], ["nqueens: ok"]),
        case!("nqueens", ["3"], ["nqueens: ok"]),
        case!("nqueens", ["4"], ["nqueens: ok"]),
        case!("nqueens", ["5"], ["nqueens: ok"]),
        case!("nqueens", ["6"], ["nqueens: ok"]),
        case!("nqueens", ["7"], ["nqueens: ok"]),
        case!("nqueens", ["8"], ["nqueens: ok"]),
        case!("nqueens", ["9"], ["nqueens: ok"]),
        case!("nqueens", ["10"], ["nqueens: ok"]),
        case!("nqueens", ["11"], ["nqueens: ok"]),
        case!(
            "nqueens",
            ["12", "--variants", "seq,rayon,mc,mp"],
            ["nqueens: ok"]
        ),
        case!(
            "nqueens",
            ["13", "--variants", "seq,rayon,mc,mp"],
            ["nqueens: ok"]
        ),
        case!(
            "nqueens",
            ["14", "--variants", "seq,rayon,mc,mp"],
            ["nqueens: ok"]
        ),
        case!("tutorial_camlbox", [], ["Message: Hello world"]),
        case!("camlbox_speed", ["20000"], ["Sum: 120000"]),
        // 2N = 400 meetings per game, spelled out on the total lines.
        case!(
            "chameneos",
            ["200"],
            ["blue + red -> yellow", "four zero zero"]
        ),
        case!("matrix_mult", ["500"], ["matrix_mult: ok"]),
        // Two worker processes share a cache and hit counts over HTTP.
        case!("queens_server", ["--demo"], ["queens_server: ok"]),
    ];
    let (mut passed, mut failed) = (0, 0);
    // With the `mpi` feature: `nqueens --cluster` under mpirun, on 2 and 3
    // ranks (filter: `cluster`).
    #[cfg(feature = "mpi")]
    for (np, n) in [("2", "12"), ("3", "11")] {
        if filter
            .as_deref()
            .is_some_and(|f| !"nqueens-cluster".contains(f))
        {
            continue;
        }
        let c = Case {
            bin: "nqueens-cluster",
            path: "mpirun",
            args: &[],
            expect: &["nqueens: ok"],
            stderr: &[],
        };
        let args = [
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            np,
            env!("CARGO_BIN_EXE_nqueens"),
            "--cluster",
            n,
        ];
        let t = Instant::now();
        match run_with(&c, &args) {
            Ok(()) => {
                passed += 1;
                println!(
                    "test mpirun -np {np} nqueens --cluster {n} ... ok ({:.2?})",
                    t.elapsed()
                );
            }
            Err(e) => {
                failed += 1;
                println!("test mpirun -np {np} nqueens --cluster {n} ... FAILED\n{e}");
            }
        }
    }
    for c in &cases {
        if filter.as_deref().is_some_and(|f| !c.bin.contains(f)) {
            continue;
        }
        let t = Instant::now();
        match run(c) {
            Ok(()) => {
                passed += 1;
                println!(
                    "test {} {} ... ok ({:.2?})",
                    c.bin,
                    c.args.join(" "),
                    t.elapsed()
                );
            }
            Err(e) => {
                failed += 1;
                println!("test {} {} ... FAILED\n{e}", c.bin, c.args.join(" "));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
