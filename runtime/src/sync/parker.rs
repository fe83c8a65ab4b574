//! The waits of futures: one thread per process sleeps on the futex words
//! that pending futures wait for (all at once, with `futex_waitv`) and
//! wakes a future when its word changes, so that no executor thread ever
//! blocks.
//!
//! A future registers `(word, value it saw)` with its waker and returns
//! `Pending`; when the word no longer holds that value, the parker wakes
//! the waker and forgets the registration; the future, polled again, looks
//! at the state and registers again if it must still wait. Dropping the
//! [`Registration`] forgets it at once, under the registry's lock, after
//! which the parker never reads the word again (the kernel may still hold
//! its address for a wait in progress, which a word that is unmapped only
//! ends).
//!
//! The parker belongs to its process: in the child of a `fork` (where the
//! thread does not exist) the first registration makes a new one.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::os::futex::{self as os_futex, WaitAny, WAIT_ANY_MAX};
use crate::os::ids::process_key;

struct Reg {
    id: u64,
    addr: usize,
    expected: u32,
    waker: Waker,
    /// Woken then at the latest, changed or not.
    deadline: Option<Instant>,
}

struct Parker {
    /// The process that made it.
    key: u64,
    regs: Mutex<Vec<Reg>>,
    /// Bumped (and woken) when the registrations change, so that the
    /// parker's wait starts over with the new set.
    ctrl: AtomicU32,
    next_id: AtomicU64,
    /// Whether its thread runs (without it, registrations wake at once and
    /// futures poll again).
    running: AtomicBool,
    /// The thread id of its thread (0 until it runs): the holder id of
    /// locks that futures take (see [`holder_tid`]).
    tid: AtomicU32,
    /// Set once whether the thread started is known.
    settled: AtomicBool,
}

/// The parker of the current process (or of the parent a `fork` copied it
/// from: told apart by its key). No lock guards it, so the child of a
/// `fork` never meets a lock that another thread of the parent held.
static CURRENT: AtomicPtr<Parker> = AtomicPtr::new(std::ptr::null_mut());

/// How long the parker sleeps at most before it looks at every word again
/// (a wake-up that the kernel could not deliver, a kernel without
/// `futex_waitv`).
const RECHECK: Duration = Duration::from_millis(50);

fn parker() -> &'static Parker {
    let key = process_key();
    loop {
        let cur = CURRENT.load(Ordering::Acquire);
        // SAFETY: parkers are leaked, never freed: a non-null pointer is a
        // live `Parker` (possibly the parent's, in a forked child).
        if let Some(p) = unsafe { cur.as_ref() } {
            if p.key == key {
                return p;
            }
        }
        let fresh = Box::into_raw(Box::new(Parker {
            key,
            regs: Mutex::new(Vec::new()),
            ctrl: AtomicU32::new(0),
            next_id: AtomicU64::new(1),
            running: AtomicBool::new(false),
            tid: AtomicU32::new(0),
            settled: AtomicBool::new(false),
        }));
        if CURRENT
            .compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another thread made this process's parker first.
            // SAFETY: `fresh` was never shared.
            drop(unsafe { Box::from_raw(fresh) });
            continue;
        }
        // SAFETY: just published, and never freed from now on.
        let p: &'static Parker = unsafe { &*fresh };
        let spawned = std::thread::Builder::new()
            .name("mc-parker".into())
            .spawn(move || p.run());
        p.running.store(spawned.is_ok(), Ordering::SeqCst);
        p.settled.store(true, Ordering::SeqCst);
        return p;
    }
}

impl Parker {
    fn run(&self) {
        self.tid
            .store(crate::os::ids::current_tid(), Ordering::SeqCst);
        loop {
            let mut wake = Vec::new();
            let mut next_deadline: Option<Instant> = None;
            let words: Vec<(usize, u32)> = {
                let mut regs = self.regs.lock().unwrap_or_else(|p| p.into_inner());
                // Under the lock every registered word is still mapped (a
                // registration is dropped before its word's mapping).
                regs.retain(|r| {
                    // SAFETY: see above: `addr` is the address of a live
                    // `AtomicU32` while it is registered.
                    let now = unsafe { &*std::ptr::with_exposed_provenance::<AtomicU32>(r.addr) }
                        .load(Ordering::SeqCst);
                    let due = r.deadline.is_some_and(|d| d <= Instant::now());
                    if now != r.expected || due {
                        wake.push(r.waker.clone());
                        false
                    } else {
                        if let Some(d) = r.deadline {
                            next_deadline = Some(next_deadline.map_or(d, |n| n.min(d)));
                        }
                        true
                    }
                });
                let ctrl = self.ctrl.load(Ordering::SeqCst);
                let mut w = vec![(self.ctrl.as_ptr().addr(), ctrl)];
                w.extend(
                    regs.iter()
                        .take(WAIT_ANY_MAX - 1)
                        .map(|r| (r.addr, r.expected)),
                );
                w
            };
            // Outside the lock: a waker may run code that registers.
            wake.into_iter().for_each(Waker::wake);
            let timeout = next_deadline.map_or(RECHECK, |d| {
                d.saturating_duration_since(Instant::now()).min(RECHECK)
            });
            if os_futex::wait_any(&words, Some(timeout)) == WaitAny::Unsupported {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn changed(&self) {
        self.ctrl.fetch_add(1, Ordering::SeqCst);
        os_futex::wake(&self.ctrl, 1);
    }
}

/// The holder id of the locks that futures of this process take: the
/// parker thread's id. That thread lives as long as the process, so a
/// lock held by a task (which moves between threads, whose threads may end)
/// is taken over as a dead holder's only when the process is gone. `None`
/// when the parker thread cannot run.
pub(crate) fn holder_tid() -> Option<u32> {
    let p = parker();
    loop {
        let t = p.tid.load(Ordering::SeqCst);
        if t != 0 {
            return Some(t);
        }
        if p.settled.load(Ordering::SeqCst) && !p.running.load(Ordering::SeqCst) {
            return None;
        }
        // The thread was just started: it records its id first thing.
        std::thread::yield_now();
    }
}

/// A future's wait for a word to change; forgotten when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
    key: u64,
}

/// Wakes `waker` once `word` no longer holds `expected` (at once if it
/// already does not).
///
/// The caller keeps `word` mapped (and the `AtomicU32` alive) until the
/// registration is dropped.
pub(crate) fn register(word: &AtomicU32, expected: u32, waker: &Waker) -> Registration {
    register_until(word, expected, waker, None)
}

/// [`register`], also waking `waker` at `deadline` if the word has not
/// changed by then.
pub(crate) fn register_until(
    word: &AtomicU32,
    expected: u32,
    waker: &Waker,
    deadline: Option<Instant>,
) -> Registration {
    let p = parker();
    if !p.running.load(Ordering::SeqCst) {
        // No thread to watch the word: the future polls again at once.
        waker.wake_by_ref();
        return Registration { id: 0, key: p.key };
    }
    let id = p.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut regs = p.regs.lock().unwrap_or_else(|e| e.into_inner());
        regs.push(Reg {
            id,
            addr: std::ptr::from_ref(word).expose_provenance(),
            expected,
            waker: waker.clone(),
            deadline,
        });
    }
    p.changed();
    Registration { id, key: p.key }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // A registration copied by `fork` belongs to the parent's parker.
        if self.key != process_key() {
            return;
        }
        let p = parker();
        let mut regs = p.regs.lock().unwrap_or_else(|e| e.into_inner());
        regs.retain(|r| r.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_when_the_word_changes_and_not_after_a_drop() {
        let word: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(5)));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let reg = register(word, 5, &waker);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!flag.0.load(Ordering::SeqCst), "woken while unchanged");
        word.store(6, Ordering::SeqCst);
        os_futex::wake(word, 1);
        let t = std::time::Instant::now();
        while !flag.0.load(Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(5), "not woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(reg);
        // A dropped registration is never woken.
        let flag2 = Arc::new(Flag(AtomicBool::new(false)));
        let reg2 = register(word, 6, &Waker::from(flag2.clone()));
        drop(reg2);
        word.store(7, Ordering::SeqCst);
        os_futex::wake(word, 1);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!flag2.0.load(Ordering::SeqCst));
        // A word that differs already wakes at once.
        let flag3 = Arc::new(Flag(AtomicBool::new(false)));
        let _reg3 = register(word, 1, &Waker::from(flag3.clone()));
        let t = std::time::Instant::now();
        while !flag3.0.load(Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(5), "not woken");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
