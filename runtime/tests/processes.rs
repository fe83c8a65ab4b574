//! Multi-process tests of `mc::run` and `#[mc::process]`.
//!
//! Forking from the default (multi-threaded) test harness is unsound, so
//! this file is a plain program (`harness = false`): `main` runs each
//! scenario in turn, each under an `alarm` watchdog (a hung scenario kills
//! the test with SIGALRM), and prints `N passed, M failed` last. Run with
//! a name filter as first argument to run only the matching scenarios.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{ensure, err, run_scenarios, wait_until};

use mc::processes;
use mc::resources::{self, NamedSemaphore, ShmBlock, TempFile};
use mc::{JoinError, Outcome, ProcessError, Signal, StartOptions};

type TestResult = Result<(), String>;

/// Runs `first` under `mc::run` and returns its own result.
fn in_run(first: impl FnOnce() -> TestResult) -> TestResult {
    let report = mc::run(first).map_err(err)?;
    match report.outcome {
        Outcome::Returned(r) => r,
        other => Err(format!("first process: {other}")),
    }
}

// ---------------------------------------------------------------------
// Process definitions.

static C: AtomicUsize = AtomicUsize::new(0);

#[mc::process]
fn body_y(k: usize) -> usize {
    k + 1 + C.load(Ordering::SeqCst)
}

#[mc::process]
fn body_x(k: usize) -> Option<usize> {
    C.store(1, Ordering::SeqCst);
    let pid = body_y::start(k).ok()?;
    body_y::join(pid).ok()
}

#[mc::process]
fn square(x: u64) -> u64 {
    x * x
}

#[mc::process]
fn panics(msg: String) -> u32 {
    panic!("{msg}")
}

#[mc::process]
fn aborts(_: ()) -> u32 {
    std::process::abort()
}

#[mc::process]
fn exits(code: i32) -> u32 {
    std::process::exit(code)
}

#[mc::process]
fn sleeps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[mc::process]
fn echo_reversed(mut data: Vec<u8>) -> Vec<u8> {
    data.reverse();
    data
}

#[mc::process]
fn nest(depth: u32) -> Vec<u32> {
    let me = std::process::id();
    if depth == 0 {
        return vec![me];
    }
    let pid = nest::start(depth - 1).expect("start");
    let mut v = nest::join(pid).expect("child failed");
    v.push(me);
    v
}

#[mc::process]
fn make_block(_: ()) -> String {
    let b = resources::create_shm_block(4096).expect("block");
    b.bytes()[0].store(1, Ordering::Relaxed);
    b.name().to_string()
}

#[mc::process]
fn read_block(id: resources::ResourceId) -> u8 {
    ShmBlock::open(id).expect("open").bytes()[0].load(Ordering::Relaxed)
}

/// Attaches a pool by name: `mc::Error` travels back to the joiner.
#[mc::process]
fn attach_named(name: String) -> Result<u64, mc::Error> {
    let pool = mc::Pool::attach(&name)?;
    Ok(pool.stats().max_size as u64)
}

/// Sets the block's first byte and returns at once.
#[mc::process]
fn flag_and_return(id: resources::ResourceId) -> u8 {
    ShmBlock::open(id).expect("open").bytes()[0].store(1, Ordering::SeqCst);
    1
}

#[mc::process]
fn temp_file_exists(path: String) -> bool {
    std::path::Path::new(&path).exists()
}

#[mc::process]
fn sem_post(id: resources::ResourceId) -> i32 {
    let s = NamedSemaphore::open(id).expect("open");
    s.post().expect("post");
    s.value().expect("value")
}

#[mc::process]
fn nested_run(_: ()) -> bool {
    matches!(mc::run(|| ()), Err(ProcessError::AlreadyRunning))
}

#[mc::process]
fn report_pid(_: ()) -> (u32, u32) {
    // SAFETY: getppid has no preconditions.
    (std::process::id(), unsafe { libc::getppid() } as u32)
}

// ---------------------------------------------------------------------
// Helpers.

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Zombie children of `parent`.
fn zombies_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 2..].split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if state == "Z" && ppid == parent {
            out.push(pid);
        }
    }
    out
}

/// Segments owned by `pid`.
fn segments_of(pid: u32) -> Vec<String> {
    mc::inspect::list_segments()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.header.is_some_and(|h| h.owner_pid == pid))
        .map(|s| s.name)
        .collect()
}

// ---------------------------------------------------------------------
// Scenarios.

fn tutorial_result_is_2() -> TestResult {
    in_run(|| {
        let pid = body_x::start(1).map_err(err)?;
        let r = body_x::join(pid).map_err(err)?;
        ensure!(r == Some(2), "expected Some(2), got {r:?}");
        Ok(())
    })
}

fn create_join_sum_385() -> TestResult {
    in_run(|| {
        let pids: Vec<_> = (1..=10)
            .map(square::start)
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut sum = 0;
        for p in pids {
            sum += square::join(p).map_err(err)?;
        }
        ensure!(sum == 385, "sum {sum}");
        Ok(())
    })
}

fn crash_outcomes() -> TestResult {
    in_run(|| {
        let p = panics::start("boom".into()).map_err(err)?;
        let a = aborts::start(()).map_err(err)?;
        let k = sleeps::start(60_000).map_err(err)?;
        let e = exits::start(3).map_err(err)?;
        let r = square::start(9).map_err(err)?;
        processes::kill(k, Signal::KILL).map_err(err)?;
        let o = panics::join_outcome(p).map_err(err)?;
        ensure!(o == Outcome::Panicked("boom".into()), "panics: {o:?}");
        let o = aborts::join_outcome(a).map_err(err)?;
        ensure!(o == Outcome::Aborted(Signal::ABRT), "aborts: {o:?}");
        let o = sleeps::join(k);
        ensure!(
            matches!(o, Err(JoinError::Killed(Signal::KILL))),
            "killed: {o:?}"
        );
        let s = processes::status(k).map_err(err)?;
        ensure!(
            s == Some(Outcome::Killed(Signal::KILL)),
            "killed status: {s:?}"
        );
        let o = exits::join_outcome(e).map_err(err)?;
        ensure!(o == Outcome::Exited(3), "exits: {o:?}");
        let o = square::join(r).map_err(err)?;
        ensure!(o == 81, "returns: {o:?}");
        let again = square::join(r);
        ensure!(
            matches!(again, Err(JoinError::Join(ProcessError::AlreadyJoined(_)))),
            "second join: {again:?}"
        );
        let s = processes::status(r).map_err(err)?;
        ensure!(s == Some(Outcome::Returned(())), "status after join: {s:?}");
        Ok(())
    })
}

/// `join` gives the cause of a failure directly: the panic's message, the
/// exit code, the signal; a join that cannot be made is told apart; and
/// `try_join` of a running worker is `Ok(None)`, never a failure.
fn join_errors_say_why() -> TestResult {
    in_run(|| {
        let p = panics::start("out of ideas".into()).map_err(err)?;
        let e = exits::start(7).map_err(err)?;
        let k = sleeps::start(60_000).map_err(err)?;
        let r = panics::join(p);
        match &r {
            Err(e @ JoinError::Panicked(m)) if m == "out of ideas" => ensure!(
                e.failed() && e.to_string() == "the process panicked: out of ideas",
                "panic: {e}"
            ),
            other => return Err(format!("panic: {other:?}")),
        }
        let r = exits::join(e);
        ensure!(matches!(r, Err(JoinError::Exited(7))), "exit: {r:?}");
        let r = sleeps::try_join(k);
        ensure!(matches!(r, Ok(None)), "try_join of a running worker: {r:?}");
        processes::kill(k, Signal::KILL).map_err(err)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = loop {
            match sleeps::try_join(k) {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                other => break other,
            }
        };
        match &r {
            Err(e @ JoinError::Killed(Signal::KILL)) => ensure!(
                e.outcome() == Some(Outcome::Killed(Signal::KILL)),
                "killed: {e:?}"
            ),
            other => return Err(format!("try_join of a killed worker: {other:?}")),
        }
        let r = sleeps::join(k);
        match &r {
            Err(e @ JoinError::Join(ProcessError::AlreadyJoined(_))) => {
                ensure!(!e.failed() && e.outcome().is_none(), "{e:?}")
            }
            other => return Err(format!("join after try_join: {other:?}")),
        }
        Ok(())
    })
}

fn thousand_cycles_leave_nothing() -> TestResult {
    let fds_before = fd_count();
    let master = std::process::id();
    in_run(|| {
        let fds_first = fd_count();
        for i in 0..1000u64 {
            let p = square::start(i).map_err(err)?;
            let r = square::join(p).map_err(err)?;
            ensure!(r == i * i, "cycle {i}: {r:?}");
            if i % 100 == 0 {
                let p = make_block::start(()).map_err(err)?;
                make_block::join(p).map_err(err)?;
            }
        }
        ensure!(
            fd_count() == fds_first,
            "first process fds: {fds_first} -> {}",
            fd_count()
        );
        let ok = wait_until(Duration::from_secs(5), || zombies_of(master).is_empty());
        ensure!(ok, "zombies left: {:?}", zombies_of(master));
        Ok(())
    })?;
    ensure!(
        fd_count() == fds_before,
        "master fds: {fds_before} -> {}",
        fd_count()
    );
    ensure!(
        zombies_of(master).is_empty(),
        "zombies after run: {:?}",
        zombies_of(master)
    );
    let segs = segments_of(master);
    ensure!(segs.is_empty(), "segments left: {segs:?}");
    Ok(())
}

fn big_argument_and_result() -> TestResult {
    in_run(|| {
        let data: Vec<u8> = (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let p = echo_reversed::start(data.clone()).map_err(err)?;
        let mut back = echo_reversed::join(p).map_err(err)?;
        back.reverse();
        ensure!(back == data, "1 MiB payload changed on the way");
        Ok(())
    })
}

fn join_timeout_times_out() -> TestResult {
    in_run(|| {
        let p = sleeps::start(60_000).map_err(err)?;
        let t = Instant::now();
        let r = sleeps::join_timeout(p, Duration::from_millis(100));
        ensure!(
            matches!(r, Err(JoinError::Join(ProcessError::Timeout(_)))),
            "join_timeout: {r:?}"
        );
        ensure!(
            t.elapsed() < Duration::from_secs(5),
            "join_timeout took {:?}",
            t.elapsed()
        );
        ensure!(
            sleeps::try_join(p).map_err(err)?.is_none(),
            "try_join on a running worker"
        );
        let q = sleeps::start(10).map_err(err)?;
        let r = sleeps::join_timeout(q, Duration::from_secs(10)).map_err(err)?;
        ensure!(r == 10, "join_timeout on a short worker: {r:?}");
        processes::kill(p, Signal::TERM).map_err(err)?;
        let o = sleeps::join_outcome(p).map_err(err)?;
        ensure!(o == Outcome::Killed(Signal::TERM), "after kill: {o:?}");
        Ok(())
    })
}

fn nested_starts() -> TestResult {
    in_run(|| {
        let p = nest::start(4).map_err(err)?;
        let pids = nest::join(p).map_err(err)?;
        ensure!(pids.len() == 5, "depth: {pids:?}");
        // Every level is a child of the master, not of its starter.
        ensure!(
            pids.windows(2).all(|w| w[0] != w[1]),
            "distinct processes expected: {pids:?}"
        );
        Ok(())
    })
}

fn workers_are_children_of_the_master() -> TestResult {
    let caller = std::process::id();
    in_run(|| {
        // The first process is the caller itself.
        ensure!(
            std::process::id() == caller,
            "first process is not the caller"
        );
        let p = report_pid::start(()).map_err(err)?;
        let (pid, ppid) = report_pid::join(p).map_err(err)?;
        ensure!(pid != caller, "worker pid {pid}");
        // The worker's parent is the master, a child of the caller.
        ensure!(ppid != caller, "worker {pid} is a child of the caller");
        ensure!(
            parent_of(ppid) == Some(caller),
            "the master {ppid} is not a child of the caller {caller}"
        );
        Ok(())
    })
}

/// The parent of process `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn report_lists_killed_and_unjoined() -> TestResult {
    let report = mc::run(|| {
        let a = sleeps::start(60_000).unwrap();
        let b = square::start(3).unwrap();
        // Wait until b has ended, without joining it.
        while processes::status(b).unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        (a.id(), b.id())
    })
    .map_err(err)?;
    let Outcome::Returned((a, b)) = report.outcome else {
        return Err(format!("first process: {}", report.outcome));
    };
    ensure!(report.killed == vec![a], "killed: {:?}", report.killed);
    ensure!(
        report.unjoined == vec![b],
        "unjoined: {:?}",
        report.unjoined
    );
    ensure!(report.started == 3, "started: {}", report.started);
    Ok(())
}

#[mc::process]
fn pool_reader(id: resources::ResourceId) -> (u64, String) {
    // A worker started before the pool existed would attach it here; this
    // one inherited the mapping, and `open_pool` returns it.
    let pool = resources::open_pool(id).expect("open pool");
    let heap = mc::Heap::<u64>::open_root(&pool).expect("open root");
    (heap.copy().expect("copy"), pool.name().to_owned())
}

fn pools_in_the_resource_table() -> TestResult {
    let report = mc::run(|| -> Result<String, String> {
        let (pool, id) = resources::create_pool(1 << 20).map_err(err)?;
        let heap = mc::Heap::create(&pool, &99u64).map_err(err)?;
        heap.set_pool_root();
        let p = pool_reader::start(id).map_err(err)?;
        let (v, name) = pool_reader::join(p).map_err(err)?;
        ensure!(v == 99 && name == pool.name(), "reader saw {v} in {name}");
        Ok(pool.name().to_owned())
    })
    .map_err(err)?;
    let name = report.returned().ok_or("first process failed")??;
    ensure!(
        !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
        "pool segment {name} left behind"
    );
    Ok(())
}

/// The master keeps a bounded number of joined outcomes: the oldest are
/// forgotten (and said to be), recent ones are exact.
fn master_forgets_old_joined_outcomes() -> TestResult {
    let opts = mc::RunOptions::new().keep_outcomes(20);
    let report = mc::run_with(opts, || -> TestResult {
        let mut pids = Vec::new();
        for i in 0..60u64 {
            let p = square::start(i).map_err(err)?;
            ensure!(square::join(p).map_err(err)? == i * i, "square {i}");
            pids.push(p);
        }
        let p = panics::start("late".into()).map_err(err)?;
        let r = panics::join(p);
        ensure!(matches!(r, Err(JoinError::Panicked(_))), "panics: {r:?}");
        let old = pids[0];
        let s = processes::status(old);
        ensure!(
            matches!(s, Err(ProcessError::Forgotten(id)) if id == old.id()),
            "status of a forgotten process: {s:?}"
        );
        ensure!(
            s.unwrap_err().to_string().contains("keep_outcomes"),
            "the error says what to do"
        );
        let r = square::join(old);
        ensure!(
            matches!(r, Err(JoinError::Join(ProcessError::AlreadyJoined(_)))),
            "join of a forgotten process: {r:?}"
        );
        processes::kill(old, Signal::KILL).map_err(err)?;
        let recent = pids[59];
        let s = processes::status(recent).map_err(err)?;
        ensure!(s == Some(Outcome::Returned(())), "recent status: {s:?}");
        let s = processes::status(p).map_err(err)?;
        ensure!(
            s == Some(Outcome::Panicked("late".into())),
            "panic cause kept: {s:?}"
        );
        let r = square::join(recent);
        ensure!(
            matches!(r, Err(JoinError::Join(ProcessError::AlreadyJoined(_)))),
            "second join: {r:?}"
        );
        let s = processes::status(mc::ProcessId::from(pids[59]));
        ensure!(s.is_ok(), "status: {s:?}");
        Ok(())
    })
    .map_err(err)?;
    match report.outcome {
        Outcome::Returned(r) => r,
        other => Err(format!("first process: {other}")),
    }
}

/// A worker that starts sleepers as fast as it can, recording every pid.
#[mc::process]
fn spawner(_: ()) -> u32 {
    loop {
        if let Ok(p) = sleep_and_print_pid::start(60_000) {
            let _ = p;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A worker returns `Result<_, mc::Error>`: the error crosses the process
/// boundary with its kind and message.
fn workers_return_mc_errors() -> TestResult {
    in_run(|| {
        let p = attach_named::start("mc-no-such-pool-for-this-test".into()).map_err(err)?;
        match attach_named::join(p).map_err(err)? {
            Err(e) => {
                ensure!(e.kind() == mc::ErrorKind::Pool, "kind: {e:?}");
                ensure!(
                    e.message().contains("mc-no-such-pool-for-this-test"),
                    "message: {e}"
                );
                Ok(())
            }
            Ok(size) => Err(format!(
                "attached a pool that does not exist ({size} bytes)"
            )),
        }
    })
}

/// A worker joined by the first process is never reported as killed, even
/// when the run ends right after the join (the worker may not have exited
/// yet): the master reads every outcome already sent before it kills.
fn joined_workers_are_never_killed() -> TestResult {
    for round in 0..100 {
        let report = mc::run(|| {
            let pids: Vec<_> = (0..4u64)
                .map(|i| square::start(i).expect("start"))
                .collect();
            pids.into_iter()
                .map(|p| square::join(p).expect("join"))
                .sum::<u64>()
        })
        .map_err(err)?;
        ensure!(
            report.outcome == Outcome::Returned(14),
            "round {round}: {}",
            report.outcome
        );
        ensure!(
            report.killed.is_empty() && report.unjoined.is_empty(),
            "round {round}: {report}"
        );
    }
    // A worker whose body has returned, unjoined, when the run ends right
    // after (the master has its outcome; the worker itself may still be
    // exiting): it is unjoined, never killed. (A worker still inside its
    // body when the run ends is killed: the first process waits for the
    // master to know the outcome, not only for the body's last side
    // effect.)
    for round in 0..100 {
        let report = mc::run(|| {
            let block = resources::create_shm_block(8).expect("block");
            let p = flag_and_return::start(block.id()).expect("start");
            let ended = wait_until(Duration::from_secs(10), || {
                matches!(mc::processes::status(p), Ok(Some(_)))
            });
            assert!(ended, "the worker's outcome never reached the master");
            assert_ne!(block.bytes()[0].load(Ordering::SeqCst), 0, "the worker ran");
            p.id()
        })
        .map_err(err)?;
        let Outcome::Returned(p) = report.outcome else {
            return Err(format!("round {round}: {}", report.outcome));
        };
        ensure!(
            report.killed.is_empty() && report.unjoined == vec![p],
            "round {round}: {report}"
        );
    }
    Ok(())
}

/// Every process a run started is gone when `run` returns, and is listed
/// as killed or unjoined: start requests still in flight when the first
/// process ends do not start anything.
fn no_process_outlives_the_run() -> TestResult {
    for round in 0..5 {
        let report = mc::run(|| {
            for _ in 0..4 {
                spawner::start(()).expect("start");
            }
            std::thread::sleep(Duration::from_millis(30));
        })
        .map_err(err)?;
        let accounted = report.killed.len() + report.unjoined.len();
        ensure!(
            accounted as u64 == report.started - 1,
            "round {round}: {} started besides the first, {} killed and {} unjoined",
            report.started - 1,
            report.killed.len(),
            report.unjoined.len()
        );
        // No child of a master is left (the master is gone: its children
        // would be orphans of this process's session).
        let orphans = std::fs::read_dir("/proc")
            .map_err(err)?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.contains("processes"))
                    && pid != std::process::id()
                    && parent_of(pid) == Some(1)
            })
            .count();
        ensure!(
            orphans == 0,
            "round {round}: {orphans} workers outlived the run"
        );
    }
    Ok(())
}

fn first_process_panic_is_reported() -> TestResult {
    let report = mc::run(|| -> u32 { panic!("first gave up") }).map_err(err)?;
    ensure!(
        report.outcome == Outcome::Panicked("first gave up".into()),
        "outcome: {:?}",
        report.outcome
    );
    Ok(())
}

fn release_join_point_drops_results() -> TestResult {
    in_run(|| {
        let p = square::start(5).map_err(err)?;
        while processes::status(p).map_err(err)?.is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        square::release_join_point().map_err(err)?;
        let r = square::join(p);
        ensure!(
            matches!(r, Err(JoinError::Join(ProcessError::JoinPointReleased(_)))),
            "join: {r:?}"
        );
        let q = square::start(6).map_err(err)?;
        let r = square::join(q);
        ensure!(
            matches!(r, Err(JoinError::Join(ProcessError::JoinPointReleased(_)))),
            "join of new: {r:?}"
        );
        Ok(())
    })
}

fn outside_a_run_is_an_error() -> TestResult {
    let r = square::start(1);
    ensure!(
        matches!(r, Err(ProcessError::NotInWorker)),
        "start outside: {r:?}"
    );
    in_run(|| {
        let p = nested_run::start(()).map_err(err)?;
        ensure!(nested_run::join(p).map_err(err)?, "run inside a worker");
        Ok(())
    })
}

fn user_forked_child_is_not_a_worker() -> TestResult {
    in_run(|| {
        // The first process is single-threaded here; the child makes one
        // request attempt and ends.
        let pid = common::fork_child(|| {
            let ok = matches!(square::start(1), Err(ProcessError::NotInWorker))
                && processes::self_id().is_none();
            if ok {
                0
            } else {
                1
            }
        });
        ensure!(
            common::expect_exit_ok(pid, Duration::from_secs(30)).is_ok(),
            "a child forked by user code could use the worker's connection"
        );
        // The worker's own connection still works.
        let p = square::start(4).map_err(err)?;
        ensure!(square::join(p).map_err(err)? == 16, "worker after the fork");
        Ok(())
    })
}

fn multithreaded_master_is_refused() -> TestResult {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || rx.recv());
    let r = mc::run(|| ());
    drop(tx);
    let _ = t.join();
    ensure!(
        matches!(r, Err(ProcessError::MultiThreaded { threads: 2 })),
        "run: {r:?}"
    );
    ensure!(
        wait_until(Duration::from_secs(5), || fd_count() > 0
            && std::fs::read_dir("/proc/self/task")
                .map(|d| d.count())
                .unwrap_or(0)
                == 1),
        "thread did not end"
    );
    Ok(())
}

fn resources_lifecycle() -> TestResult {
    let master = std::process::id();
    let mut leftover = String::new();
    in_run(|| {
        // A block created by a worker that ends is deleted with it.
        let p = make_block::start(()).map_err(err)?;
        let name = make_block::join(p).map_err(err)?;
        ensure!(
            wait_until(Duration::from_secs(5), || !mc_testkit::shm_exists(&name)),
            "block of an ended worker not deleted: {name}"
        );
        // Created here, looked up by a worker that inherits it.
        let block = resources::create_shm_block(100).map_err(err)?;
        block.bytes()[0].store(7, Ordering::Relaxed);
        let p = read_block::start(block.id()).map_err(err)?;
        ensure!(read_block::join(p).map_err(err)? == 7, "read_block");
        // Wrong kind.
        let r = TempFile::open(block.id());
        ensure!(
            matches!(r, Err(ProcessError::WrongKind { .. })),
            "wrong kind: {r:?}"
        );
        // A temp file survives while a user is left.
        let f = resources::create_temp_file().map_err(err)?;
        let path = f.path().to_string_lossy().into_owned();
        let p = temp_file_exists::start(path.clone()).map_err(err)?;
        ensure!(temp_file_exists::join(p).map_err(err)?, "temp file visible");
        let info = resources::lookup(f.id()).map_err(err)?;
        ensure!(info.name == path, "lookup: {info:?}");
        resources::release(f.id()).map_err(err)?;
        ensure!(
            !std::path::Path::new(&path).exists(),
            "temp file not deleted on release"
        );
        let r = resources::lookup(f.id());
        ensure!(
            matches!(r, Err(ProcessError::NoSuchResource(_))),
            "lookup after delete: {r:?}"
        );
        // Semaphores.
        let s = resources::create_semaphore(0).map_err(err)?;
        let p = sem_post::start(s.id()).map_err(err)?;
        ensure!(sem_post::join(p).map_err(err)? == 1, "sem_post");
        ensure!(s.try_wait().map_err(err)?, "semaphore not posted");
        // Inheritance off: the new worker is not a user, release deletes.
        let b2 = resources::create_shm_block(10).map_err(err)?;
        let p = sleeps::start_with(60_000, StartOptions::new().inherit_none()).map_err(err)?;
        let n2 = b2.name().to_string();
        b2.release().map_err(err)?;
        ensure!(
            !mc_testkit::shm_exists(&n2),
            "block with no user not deleted"
        );
        // Inherited: the worker keeps it alive after the creator releases.
        let b3 = resources::create_shm_block(10).map_err(err)?;
        let q = sleeps::start_with(60_000, StartOptions::new().inherit(b3.id())).map_err(err)?;
        let n3 = b3.name().to_string();
        b3.release().map_err(err)?;
        ensure!(
            mc_testkit::shm_exists(&n3),
            "inherited block deleted too early"
        );
        processes::kill(q, Signal::KILL).map_err(err)?;
        let r = sleeps::join(q);
        ensure!(
            matches!(r, Err(JoinError::Killed(Signal::KILL))),
            "join of the killed worker: {r:?}"
        );
        ensure!(
            wait_until(Duration::from_secs(5), || !mc_testkit::shm_exists(&n3)),
            "block not deleted when its last user ended"
        );
        processes::kill(p, Signal::KILL).map_err(err)?;
        Ok(())
    })?;
    let segs = segments_of(master);
    if !segs.is_empty() {
        leftover = format!("segments left after the run: {segs:?}");
    }
    ensure!(leftover.is_empty(), "{leftover}");
    Ok(())
}

/// Runs a child copy of this program that becomes a master, starts
/// workers, creates a block, prints the workers' pids and the block name,
/// and sleeps; kills it with SIGKILL, then checks that its workers die and
/// that `mc::cleanup` removes the block.
fn sigkill_of_master_leaves_nothing() -> TestResult {
    let exe = std::env::current_exe().map_err(err)?;
    let mut child = Command::new(exe)
        .env("MC_TEST_ROLE", "doomed_master")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(err)?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    let mut pids = Vec::new();
    let mut block = None;
    let mut ready = false;
    for line in lines.by_ref() {
        let line = line.map_err(err)?;
        if let Some(p) = line.strip_prefix("pid ") {
            pids.push(p.parse::<u32>().map_err(err)?);
        } else if let Some(b) = line.strip_prefix("block ") {
            block = Some(b.to_string());
        } else if line == "ready" {
            ready = true;
        }
        if ready && pids.len() == 4 {
            break;
        }
    }
    let block = block.ok_or("no block name")?;
    ensure!(pids.len() == 4, "pids: {pids:?}");
    ensure!(
        mc_testkit::shm_exists(&block),
        "block missing before the kill"
    );
    child.kill().map_err(err)?;
    child.wait().map_err(err)?;
    let dead = wait_until(Duration::from_secs(10), || {
        pids.iter().all(|&p| !mc_testkit::process_alive(p))
    });
    ensure!(
        dead,
        "workers still running after SIGKILL of the master: {pids:?}"
    );
    let removed = mc::cleanup().map_err(err)?;
    // (Another run started meanwhile may have removed it first.)
    ensure!(
        !mc_testkit::shm_exists(&block),
        "block {block} still there after cleanup (removed {removed:?})"
    );
    Ok(())
}

#[mc::process]
fn sleep_and_print_pid(ms: u64) -> u64 {
    println!("pid {}", std::process::id());
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn doomed_master() {
    let _ = mc::run(|| {
        let b = resources::create_shm_block(4096).expect("block");
        println!("block {}", b.name());
        println!("pid {}", std::process::id());
        for _ in 0..3 {
            sleep_and_print_pid::start(60_000).expect("start");
        }
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
    });
}

// ---------------------------------------------------------------------

fn main() {
    if let Ok(role) = std::env::var("MC_TEST_ROLE") {
        if role == "doomed_master" {
            doomed_master();
        }
        return;
    }
    run_scenarios::<()>(&[
        ("tutorial_result_is_2", tutorial_result_is_2),
        ("create_join_sum_385", create_join_sum_385),
        ("crash_outcomes", crash_outcomes),
        ("join_errors_say_why", join_errors_say_why),
        (
            "joined_workers_are_never_killed",
            joined_workers_are_never_killed,
        ),
        ("workers_return_mc_errors", workers_return_mc_errors),
        (
            "thousand_cycles_leave_nothing",
            thousand_cycles_leave_nothing,
        ),
        ("big_argument_and_result", big_argument_and_result),
        ("join_timeout_times_out", join_timeout_times_out),
        ("nested_starts", nested_starts),
        (
            "workers_are_children_of_the_master",
            workers_are_children_of_the_master,
        ),
        (
            "report_lists_killed_and_unjoined",
            report_lists_killed_and_unjoined,
        ),
        (
            "first_process_panic_is_reported",
            first_process_panic_is_reported,
        ),
        (
            "master_forgets_old_joined_outcomes",
            master_forgets_old_joined_outcomes,
        ),
        ("no_process_outlives_the_run", no_process_outlives_the_run),
        (
            "release_join_point_drops_results",
            release_join_point_drops_results,
        ),
        ("outside_a_run_is_an_error", outside_a_run_is_an_error),
        ("resources_lifecycle", resources_lifecycle),
        ("pools_in_the_resource_table", pools_in_the_resource_table),
        (
            "sigkill_of_master_leaves_nothing",
            sigkill_of_master_leaves_nothing,
        ),
        (
            "user_forked_child_is_not_a_worker",
            user_forked_child_is_not_a_worker,
        ),
        // Last: it starts a thread in this process.
        (
            "multithreaded_master_is_refused",
            multithreaded_master_is_refused,
        ),
    ]);
}
