//! Helpers shared by the fork-based tests (`harness = false`): memory
//! shared with forked children, forking, and waits that are always bounded.

#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Places `value` in a fresh anonymous shared mapping (inherited by
/// children made later) and leaks it.
pub fn shared<T>(value: T) -> &'static T {
    let len = std::mem::size_of::<T>().max(1);
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap failed");
    let p = p.cast::<T>();
    // SAFETY: the mapping is page-aligned, large enough, writable and never
    // unmapped, so the reference stays valid for the whole run.
    unsafe {
        p.write(value);
        &*p
    }
}

/// Forks a child that runs `f` and exits with its status (1 on panic).
pub fn fork_child(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the test main is single-threaded when it forks; the child only
    // runs `f` and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(f)).unwrap_or(1);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for `pid` at most `timeout`; kills it on timeout. Returns the raw
/// wait status.
pub fn wait_child(pid: libc::pid_t, timeout: Duration) -> Result<i32, String> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child without blocking.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(status);
        }
        if r < 0 {
            return Err(format!(
                "waitpid({pid}) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        if start.elapsed() > timeout {
            kill(pid);
            let _ = wait_child(pid, Duration::from_secs(5));
            return Err(format!("child {pid} did not finish within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn expect_exit_ok(pid: libc::pid_t, timeout: Duration) -> Result<(), String> {
    let status = wait_child(pid, timeout)?;
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("child {pid} failed (wait status {status:#x})"))
    }
}

pub fn kill(pid: libc::pid_t) {
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// A named scenario: `Ok(detail)` or `Err(what went wrong)`.
pub type Scenario = fn() -> Result<String, String>;

/// Runs the scenarios whose names contain one of the command-line filters
/// (all without filters), prints one line each and `N passed, N failed`,
/// and exits non-zero if any failed or panicked.
pub fn run_scenarios(scenarios: &[(&str, Scenario)]) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in scenarios {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        match catch_unwind(f) {
            Ok(Ok(detail)) => {
                passed += 1;
                println!("ok     {name}: {detail}");
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

/// A small xorshift generator: random choices that a seed reproduces.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
