//! Helpers shared by mc's fork-based test programs (`harness = false`) and
//! benchmarks: memory shared with forked children, forking, waits that are
//! always bounded, a scenario runner, and a reproducible random source.
//!
//! Forking is only sound from a single-threaded process: the programs that
//! use this crate run their scenarios one after the other on the main
//! thread.

use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// A child's process id.
pub type ChildPid = i32;

/// Places `value` in a fresh anonymous shared mapping (inherited by
/// children forked later, so that they and this process see the same
/// value) and leaks it.
pub fn shared<T>(value: T) -> &'static T {
    shared_mut(value)
}

/// Like [`shared`], mutably (for values that are themselves shared-memory
/// primitives initialised in place).
#[allow(clippy::mut_from_ref)]
pub fn shared_mut<T>(value: T) -> &'static mut T {
    let len = NonZeroUsize::new(std::mem::size_of::<T>().max(1)).expect("non-zero");
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let p = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .expect("mmap of a shared page");
    let p = p.cast::<T>().as_ptr();
    assert!(p.is_aligned(), "page-aligned mapping");
    // SAFETY: the mapping is page-aligned, large enough, writable and never
    // unmapped, so the reference stays valid for the whole run.
    unsafe {
        p.write(value);
        &mut *p
    }
}

/// Forks a child that runs `f` and exits with its status (1 on panic).
pub fn fork_child(f: impl FnOnce() -> i32) -> ChildPid {
    // SAFETY: the programs using this crate are single-threaded when they
    // fork; the child only runs `f` and leaves with `_exit`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Parent { child } => child.as_raw(),
        ForkResult::Child => {
            let code = catch_unwind(AssertUnwindSafe(f)).unwrap_or(1);
            exit_now(code)
        }
    }
}

/// Ends the calling process at once, without running the exit handlers
/// and destructors copied from the parent.
pub fn exit_now(code: i32) -> ! {
    // Flush what the child printed first.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` has no preconditions and does not return.
    unsafe { nix::libc::_exit(code) }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Exited(i32),
    /// This signal ended it.
    Signaled(i32),
}

impl Ended {
    /// Whether it exited with code 0.
    pub fn ok(self) -> bool {
        self == Ended::Exited(0)
    }
}

/// Waits for `pid` at most `timeout`; kills it on timeout.
///
/// # Errors
///
/// When `waitpid` fails, or the child did not end within `timeout`.
pub fn wait_child(pid: ChildPid, timeout: Duration) -> Result<Ended, String> {
    let start = Instant::now();
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Ended::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Ended::Signaled(sig as i32)),
            Ok(_) => {}
            Err(e) => return Err(format!("waitpid({pid}) failed: {e}")),
        }
        if start.elapsed() > timeout {
            kill(pid);
            let _ = wait_child(pid, Duration::from_secs(5));
            return Err(format!("child {pid} did not finish within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits for `pid` (at most `timeout`) and requires exit code 0.
///
/// # Errors
///
/// As [`wait_child`], and when the child ended otherwise than with exit
/// code 0.
pub fn expect_exit_ok(pid: ChildPid, timeout: Duration) -> Result<(), String> {
    match wait_child(pid, timeout)? {
        e if e.ok() => Ok(()),
        e => Err(format!("child {pid} failed ({e:?})")),
    }
}

/// Forks a child that runs `child(n)`, runs `here(n)` meanwhile, and
/// returns the nanoseconds per unit of `n` that `here` took (a benchmark's
/// two ends in two processes).
///
/// # Panics
///
/// When the child fails or runs longer than ten minutes: a benchmark has
/// no figure to give then.
pub fn ns_per_op_with_child(n: u64, here: impl FnOnce(u64), child: impl FnOnce(u64)) -> f64 {
    let pid = fork_child(|| {
        child(n);
        0
    });
    let t = Instant::now();
    here(n);
    let dt = t.elapsed();
    expect_exit_ok(pid, Duration::from_secs(600)).expect("the benchmark's child failed");
    dt.as_nanos() as f64 / n as f64
}

/// Sends `SIGKILL` to a child.
pub fn kill(pid: ChildPid) {
    let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
}

/// A scenario reporting `Ok(detail)` or `Err(what went wrong)`.
pub type ScenarioOf<D> = fn() -> Result<D, String>;

/// A scenario with a detail line.
pub type Scenario = ScenarioOf<String>;

/// What a scenario reports when it passes: a detail line, or nothing.
pub trait Detail {
    /// The text printed after the scenario's name.
    fn detail(self) -> String;
}

impl Detail for String {
    fn detail(self) -> String {
        self
    }
}

impl Detail for () {
    fn detail(self) -> String {
        String::new()
    }
}

/// How long one scenario may run before the watchdog ends the program.
pub const SCENARIO_LIMIT_SECS: u32 = 120;

/// Runs the scenarios whose names contain one of the command-line filters
/// (all without filters), each under a watchdog of
/// [`SCENARIO_LIMIT_SECS`], prints one line each with its time and
/// `N passed, N failed`, and exits non-zero if any failed or panicked.
pub fn run_scenarios<D: Detail>(scenarios: &[(&str, ScenarioOf<D>)]) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in scenarios {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        watchdog(SCENARIO_LIMIT_SECS);
        let t = Instant::now();
        let r = catch_unwind(f);
        watchdog(0);
        let took = t.elapsed();
        match r {
            Ok(Ok(d)) => {
                passed += 1;
                match d.detail() {
                    d if d.is_empty() => println!("ok     {name} ({took:.2?})"),
                    d => println!("ok     {name}: {d} ({took:.2?})"),
                }
            }
            Ok(Err(e)) => {
                failed += 1;
                println!("FAILED {name}: {e}");
            }
            Err(_) => {
                failed += 1;
                println!("FAILED {name}: panicked");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Polls (with short sleeps) until `cond` holds, at most `timeout`;
/// whether it came to hold.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// [`wait_until`], as a scenario's error when `cond` never holds.
///
/// # Errors
///
/// When `cond` did not hold within `timeout`.
pub fn wait_for(timeout: Duration, cond: impl FnMut() -> bool) -> Result<(), String> {
    if wait_until(timeout, cond) {
        Ok(())
    } else {
        Err(format!("condition not reached within {timeout:?}"))
    }
}

/// `Err(msg())` unless `cond` holds.
///
/// # Errors
///
/// `msg()` when `cond` is false.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// An error's text, for `map_err` in scenarios.
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Returns `Err(format!(…))` from the enclosing function unless the
/// condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Arms a watchdog: the process ends with `SIGALRM` after `seconds`, so
/// that a hung test cannot hang CI (0 disarms it).
pub fn watchdog(seconds: u32) {
    if seconds == 0 {
        nix::unistd::alarm::cancel();
    } else {
        nix::unistd::alarm::set(seconds);
    }
}

/// How many trials a kill -9 test program makes: `KILL_TRIALS` when set
/// (to run longer), else `default`.
pub fn kill_trials(default: usize) -> usize {
    std::env::var("KILL_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: random choices that a seed reproduces.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Whether a shared memory object named `name` exists (in `/dev/shm`).
pub fn shm_exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

/// Whether process `pid` runs: it exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command, which is in parentheses and may
        // hold anything but ends at the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
