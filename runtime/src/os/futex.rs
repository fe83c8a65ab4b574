//! The futex system call, shared (never `FUTEX_PRIVATE_FLAG`): the
//! kernel keys the wait queue on the physical page, so processes that map
//! the same shared memory at any address meet on the same queue.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// How a futex wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Woken (or the word no longer held the expected value, or a signal
    /// interrupted the wait): re-examine the state.
    Woken,
    /// The timeout passed.
    TimedOut,
}

/// Waits while `*word == expected`, at most `timeout`. Spurious wake-ups are
/// possible: callers re-check their state.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wait {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: FUTEX_WAIT reads the aligned 32-bit word at a valid address;
    // the timespec pointer is null or points to a live local.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            0usize,
            0u32,
        )
    };
    if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        Wait::TimedOut
    } else {
        Wait::Woken
    }
}

/// Wakes up to `n` waiters of `word`, in any process.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n.min(i32::MAX as u32),
            0usize,
            0usize,
            0u32,
        );
    }
}
