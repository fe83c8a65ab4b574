//! The process-shared condition variable.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use super::super::futex::{self, Wait};
use super::{Acquired, LockError, RawMutex};

/// How a [`RawCondvar::wait`] ended (the mutex is held again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CondvarWait {
    /// How the mutex was re-acquired: [`Acquired::OwnerDied`] when its
    /// holder died in between.
    pub acquired: Acquired,
    /// Whether the wait ended because the timeout passed.
    pub timed_out: bool,
}

crate::in_shared::in_shared! {
    /// A condition variable usable from any process that maps it, paired with a
    /// [`RawMutex`] at each wait.
    ///
    /// # Design
    ///
    /// `seq` is a sequence number and the futex word; `waiters` counts the
    /// threads that may be asleep (so that notifying nobody costs no syscall).
    /// A waiter reads `seq` while it holds the mutex, releases the mutex and
    /// sleeps on the futex *as long as `seq` still has that value*;
    /// `notify_one`/`notify_all` increment `seq`, then wake one/all sleepers.
    /// There are no per-waiter entries in shared memory (unlike Netmulticore's
    /// wait entries), so a waiter that dies leaves nothing behind but a `waiters`
    /// count one too high (a needless wake syscall per notify).
    ///
    /// **No lost wake-ups.** A notify between the waiter's read of `seq` and its
    /// sleep changes `seq`, so the kernel refuses to put the waiter to sleep
    /// (`FUTEX_WAIT` compares the word atomically with queueing).
    ///
    /// **A dead waiter does not swallow a wake-up.** A waiter killed while
    /// asleep is taken off the futex queue by the kernel and cannot be chosen
    /// by `FUTEX_WAKE`. One window remains: a waiter that `notify_one` has
    /// already dequeued and woken, killed before it runs. To cover it, sleepers
    /// never sleep longer than a 10 ms slice; after each slice a waiter compares
    /// `seq` with the value it read, and returns if it changed. Every live
    /// waiter that was waiting when the notify happened thus returns within one
    /// slice even if the woken one died: the notify can be late by a slice, never
    /// lost. (The cost is a possible extra spurious wake-up per waiter per slice
    /// while notifications go on, which condition variables allow anyway:
    /// callers re-check their predicate.)
    ///
    /// The mutex is re-acquired before `wait` returns, whatever the timeout (as
    /// with `pthread_cond_timedwait`); a dead holder does not block that.
    pub struct RawCondvar {
        seq: AtomicU32,
        waiters: AtomicU32,
    }
}

impl Default for RawCondvar {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RawCondvar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCondvar").finish_non_exhaustive()
    }
}

impl RawCondvar {
    /// The sequence word a waiter sleeps on, and its waiter count (for an
    /// async wait).
    pub(crate) fn words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.seq, &self.waiters)
    }

    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        RawCondvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Releases `mutex` (held by the calling thread), waits for a
    /// notification or for `timeout`, and takes `mutex` again. Spurious
    /// wake-ups happen: re-check the condition in a loop.
    ///
    /// # Errors
    ///
    /// [`LockError::NotOwner`] when the thread does not hold `mutex` (nothing
    /// happens then); [`LockError::Poisoned`] when `mutex` became not
    /// recoverable meanwhile (it is not held then; releasing it after
    /// [`Acquired::OwnerDied`] without `mark_consistent` makes it so).
    pub fn wait(
        &self,
        mutex: &RawMutex,
        timeout: Option<Duration>,
    ) -> Result<CondvarWait, LockError> {
        if !mutex.is_held_by_current_thread() {
            return Err(LockError::NotOwner);
        }
        let seq = self.seq.load(SeqCst);
        self.waiters.fetch_add(1, SeqCst);
        mutex.unlock()?;
        let deadline = futex::deadline(timeout);
        let mut timed_out = false;
        loop {
            let Some(slice) = futex::next_slice(deadline) else {
                timed_out = true;
                break;
            };
            let r = futex::wait(&self.seq, seq, Some(slice));
            if self.seq.load(SeqCst) != seq {
                break;
            }
            if r == Wait::Woken {
                // A signal, or a wake-up for an older sequence number.
                continue;
            }
        }
        self.waiters.fetch_sub(1, SeqCst);
        let acquired = mutex.lock()?;
        Ok(CondvarWait {
            acquired,
            timed_out,
        })
    }

    /// Wakes one waiter (if any).
    #[inline]
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, SeqCst);
        if self.waiters.load(SeqCst) != 0 {
            futex::wake(&self.seq, 1);
        }
    }

    /// Wakes every waiter.
    #[inline]
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, SeqCst);
        if self.waiters.load(SeqCst) != 0 {
            futex::wake(&self.seq, u32::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::UnsafeCell;
    use std::collections::VecDeque;
    use std::time::Instant;

    struct Queue {
        m: RawMutex,
        not_empty: RawCondvar,
        not_full: RawCondvar,
        q: UnsafeCell<VecDeque<u64>>,
    }
    // SAFETY: `q` is only touched under `m`.
    unsafe impl Sync for Queue {}

    #[test]
    fn producer_consumer_loses_nothing() {
        const N: u64 = 100_000;
        let q = Queue {
            m: RawMutex::new(),
            not_empty: RawCondvar::new(),
            not_full: RawCondvar::new(),
            q: UnsafeCell::new(VecDeque::new()),
        };
        let q = &q;
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..N {
                    q.m.lock().unwrap();
                    // SAFETY: the mutex is held.
                    while unsafe { (*q.q.get()).len() } >= 16 {
                        q.not_full.wait(&q.m, None).unwrap();
                    }
                    // SAFETY: the mutex is held.
                    unsafe { (*q.q.get()).push_back(i) };
                    q.m.unlock().unwrap();
                    q.not_empty.notify_one();
                }
            });
            let mut sum = 0;
            for i in 0..N {
                q.m.lock().unwrap();
                let v = loop {
                    // SAFETY: the mutex is held.
                    if let Some(v) = unsafe { (*q.q.get()).pop_front() } {
                        break v;
                    }
                    q.not_empty.wait(&q.m, None).unwrap();
                };
                q.m.unlock().unwrap();
                q.not_full.notify_one();
                assert_eq!(v, i);
                sum += v;
            }
            assert_eq!(sum, N * (N - 1) / 2);
        });
    }

    #[test]
    fn timeout_and_errors() {
        let m = RawMutex::new();
        let c = RawCondvar::new();
        assert_eq!(c.wait(&m, None), Err(LockError::NotOwner));
        m.lock().unwrap();
        let t = Instant::now();
        let r = c.wait(&m, Some(Duration::from_millis(50))).unwrap();
        assert!(r.timed_out);
        assert_eq!(r.acquired, Acquired::Clean);
        assert!(t.elapsed() >= Duration::from_millis(50) && t.elapsed() < Duration::from_secs(1));
        assert!(m.is_held_by_current_thread());
        m.unlock().unwrap();
    }
}
