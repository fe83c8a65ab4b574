//! Shared (non-private) futex operations, thread ids and thread liveness.
//!
//! Every futex operation here omits `FUTEX_PRIVATE_FLAG`: the kernel then
//! keys the wait queue on the physical page, so processes that map the same
//! shared memory at any address meet on the same queue.

use std::cell::Cell;
use std::sync::atomic::AtomicU32;
use std::sync::Once;
use std::time::{Duration, Instant};

/// The bits of a lock word that hold a thread id. Linux thread ids are below
/// `PID_MAX_LIMIT` (2^22), so 30 bits are plenty.
pub(crate) const TID_MASK: u32 = (1 << 30) - 1;

/// How long a waiter sleeps before it re-examines the lock (and checks
/// whether the holder is still alive). Bounds how late a crashed holder is
/// noticed and how late a wake-up swallowed by a dying waiter is replaced.
pub(crate) const SLICE: Duration = Duration::from_millis(10);

/// How many times a locker re-reads a taken lock before it sleeps.
pub(crate) const SPIN_LIMIT: u32 = 100;

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
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
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

/// The time left before `deadline`, capped at [`SLICE`]; `None` once the
/// deadline has passed.
pub(crate) fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                None
            } else {
                Some((d - now).min(SLICE))
            }
        }
    }
}

/// `now + timeout`, or no deadline when the sum does not fit.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

static ATFORK: Once = Once::new();

/// The process id, cached (0: not known yet); cleared in the child of a
/// `fork`, like the thread id.
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The process key, made on first use (0: not made yet); cleared in the
/// child of a `fork`. See [`process_key`].
static KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn forget_tid_in_child() {
    // The child of `fork` runs in a new thread with a new id.
    let _ = TID.try_with(|t| t.set(0));
    PID.store(0, std::sync::atomic::Ordering::Relaxed);
    KEY.store(0, std::sync::atomic::Ordering::Relaxed);
}

fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only touches a thread-local and
        // atomics.
        unsafe { libc::pthread_atfork(None, None, Some(forget_tid_in_child)) };
    });
}

/// A number that tells this process apart from every other process,
/// including its own forked copies and a later process that reuses its
/// pid: 64 random bits, made on first use and made afresh in the child of
/// every `fork` (through the `pthread_atfork` handler that also refreshes
/// [`current_pid`]). Never 0.
///
/// Guards record it: a guard copied into a child by `fork` finds another
/// key there and refuses to act.
#[inline]
pub(crate) fn process_key() -> u64 {
    let key = KEY.load(std::sync::atomic::Ordering::Relaxed);
    if key != 0 {
        return key;
    }
    make_process_key()
}

#[cold]
fn make_process_key() -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    register_atfork();
    let key = crate::os::random_u64() | 1;
    // Threads racing here agree on the first key stored.
    match KEY.compare_exchange(0, key, Relaxed, Relaxed) {
        Ok(_) => key,
        Err(existing) => existing,
    }
}

/// The calling process's id, without a system call once known (refreshed
/// after `fork` through the same `pthread_atfork` handler as
/// [`current_tid`]).
#[inline]
pub(crate) fn current_pid() -> u32 {
    let pid = PID.load(std::sync::atomic::Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    load_pid()
}

#[cold]
fn load_pid() -> u32 {
    register_atfork();
    let pid = std::process::id();
    PID.store(pid, std::sync::atomic::Ordering::Relaxed);
    pid
}

#[cold]
fn load_tid() -> u32 {
    register_atfork();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    assert!(
        tid != 0 && tid < TID_MASK,
        "thread id {tid} does not fit in a lock word"
    );
    let _ = TID.try_with(|t| t.set(tid));
    tid
}

/// The calling thread's kernel thread id (cached; refreshed after `fork`
/// through a `pthread_atfork` child handler, so children must be made with
/// `fork(3)` — a raw `clone` syscall that then runs Rust code would keep
/// the parent's id).
#[inline]
pub(crate) fn current_tid() -> u32 {
    match TID.try_with(|t| t.get()) {
        Ok(0) | Err(_) => load_tid(),
        Ok(tid) => tid,
    }
}

/// Whether the thread `tid` may still be running.
///
/// A thread counts as dead when `/proc/<tid>` is gone (it exited and was
/// reaped: other threads of a process are reaped at once) or its state is
/// zombie/dead (`Z`/`X`: a SIGKILLed process whose parent has not yet
/// called `waitpid`, or a main thread that exited while its process lives
/// on). `/proc/<tid>` resolves the ids of all threads, not only of thread
/// group leaders. `kill(tid, 0)` is not enough: it succeeds for a zombie,
/// and a SIGKILLed holder stays a zombie until its parent reaps it — the
/// parent may well be the process waiting for the lock.
///
/// When `/proc` is not mounted nothing can be concluded and every thread
/// counts as alive (lockers then wait for the holder instead of taking the
/// lock over: safe, but no recovery).
pub(crate) fn thread_alive(tid: u32) -> bool {
    if tid == 0 || tid >= TID_MASK {
        return false;
    }
    let mut buf = [0u8; 512];
    let path = format!("/proc/{tid}/stat\0");
    // SAFETY: `path` is NUL-terminated; the flags open a file read-only.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        let err = std::io::Error::last_os_error().raw_os_error();
        return !(err == Some(libc::ENOENT) || err == Some(libc::ESRCH)) || !proc_mounted();
    }
    // SAFETY: reads into a live local buffer of the given length; the fd is
    // ours and closed right after.
    let n = unsafe {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        // A thread that exits while we read: the read fails with ESRCH.
        return n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    let stat = &buf[..n as usize];
    // The state follows the last ')' (the command name may contain any byte).
    match stat.iter().rposition(|&b| b == b')') {
        Some(close) => !matches!(stat.get(close + 2), Some(b'Z' | b'X' | b'x')),
        None => true,
    }
}

fn proc_mounted() -> bool {
    std::path::Path::new("/proc/self/stat").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_threads_are_alive() {
        let me = current_tid();
        assert!(thread_alive(me));
        let other = std::thread::spawn(current_tid).join().unwrap();
        assert_ne!(other, me);
        // A non-leader thread that exited is reaped (almost) at once.
        let t = Instant::now();
        while thread_alive(other) {
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "exited thread still alive"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            tx.send(current_tid()).unwrap();
            done_rx.recv().unwrap();
        });
        let live = rx.recv().unwrap();
        assert!(
            thread_alive(live),
            "a live non-leader thread must count as alive"
        );
        done_tx.send(()).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn nonsense_ids_are_dead() {
        assert!(!thread_alive(0));
        assert!(!thread_alive(TID_MASK));
        assert!(!thread_alive(TID_MASK - 1));
    }
}
