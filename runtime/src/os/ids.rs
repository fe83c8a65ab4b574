//! Who is running: the ids of the calling process and thread (cached, and
//! refreshed in the child of every `fork`), a key that tells this process
//! apart from all others, and whether a thread is still alive.

use std::cell::Cell;
use std::sync::Once;

/// The bits of a lock word that hold a thread id. Linux thread ids are below
/// `PID_MAX_LIMIT` (2^22), so 30 bits are plenty.
pub(crate) const TID_MASK: u32 = (1 << 30) - 1;

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
    let tid = nix::unistd::gettid().as_raw() as u32;
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
    use std::io::Read;
    let mut buf = [0u8; 512];
    let esrch = nix::errno::Errno::ESRCH as i32;
    let mut file = match std::fs::File::open(format!("/proc/{tid}/stat")) {
        Ok(f) => f,
        Err(e) => {
            let gone = e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(esrch);
            return !gone || !proc_mounted();
        }
    };
    let n = match file.read(&mut buf) {
        Ok(n) => n,
        // A thread that exits while we read: the read fails with ESRCH.
        Err(e) => return e.raw_os_error() != Some(esrch),
    };
    if n == 0 {
        return true;
    }
    let stat = &buf[..n];
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
    use std::time::{Duration, Instant};

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
