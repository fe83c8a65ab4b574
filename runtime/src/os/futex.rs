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

/// How a [`wait_any`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitAny {
    /// Woken, a word no longer held its expected value, a signal, or a
    /// word's page was unmapped: re-examine the words.
    Woken,
    /// The timeout passed.
    TimedOut,
    /// The kernel has no `futex_waitv` (Linux before 5.16).
    Unsupported,
}

/// The kernel's `struct futex_waitv`.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: the words are 32 bits (and shared: no
/// `FUTEX2_PRIVATE`).
const FUTEX2_SIZE_U32: u32 = 0x02;

/// The most words one [`wait_any`] takes.
pub(crate) const WAIT_ANY_MAX: usize = 128;

/// Waits, at most `timeout`, while every `(address, expected)` word holds
/// its expected value (`futex_waitv`). The addresses are only handed to
/// the kernel, which never faults on them: one that is no longer mapped
/// ends the wait. At most [`WAIT_ANY_MAX`] words (more are not waited on).
pub(crate) fn wait_any(words: &[(usize, u32)], timeout: Option<Duration>) -> WaitAny {
    let list: Vec<FutexWaitv> = words
        .iter()
        .take(WAIT_ANY_MAX)
        .map(|&(addr, val)| FutexWaitv {
            val: u64::from(val),
            uaddr: addr as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    // The timeout is absolute, on the monotonic clock.
    let abs = timeout.map(|d| {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
        let end = now + nix::sys::time::TimeSpec::from_duration(d);
        libc::timespec {
            tv_sec: end.tv_sec(),
            tv_nsec: end.tv_nsec(),
        }
    });
    let tsp = abs.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `list` is a live array of `list.len()` kernel `futex_waitv`
    // records; the timespec pointer is null or points to a live local. The
    // kernel reads the words at the addresses and reports an unmapped one
    // as EFAULT; nothing here dereferences them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            list.as_ptr(),
            list.len() as libc::c_uint,
            0u32,
            tsp,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return WaitAny::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => WaitAny::TimedOut,
        Some(libc::ENOSYS) => WaitAny::Unsupported,
        _ => WaitAny::Woken,
    }
}
