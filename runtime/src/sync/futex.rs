//! How the locks wait: slices of sleep on shared futexes, spin limits and
//! deadlines, over the futex call and the thread ids of [`crate::os`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::raw::LockError;

pub(crate) use crate::os::futex::{wait, wake, Wait};
pub(crate) use crate::os::ids::{current_pid, current_tid, process_key, thread_alive, TID_MASK};

/// How long a waiter sleeps before it re-examines the lock (and checks
/// whether the holder is still alive). Bounds how late a crashed holder is
/// noticed and how late a wake-up swallowed by a dying waiter is replaced.
pub(crate) const SLICE: Duration = Duration::from_millis(10);

/// How many times a locker re-reads a taken lock before it sleeps.
pub(crate) const SPIN_LIMIT: u32 = 100;

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

/// Set in a lock word (mutex word, reader/writer state) while some locker
/// may be asleep on it.
pub(crate) const WAITERS: u32 = 1 << 31;

/// A locker's wait for the holder of a lock word laid out as
/// `[WAITERS:1][flag:1][holder TID:30]`: a few spins, then sleeps of at most
/// a [`SLICE`] on the word with [`WAITERS`] set, and a few spins again after
/// each wake-up; after each slice spent on the same holder, a check whether
/// that holder is still alive. The clock is read only once it sleeps.
pub(crate) struct HolderWait {
    deadline: Option<Instant>,
    spins: u32,
    /// [`WAITERS`] once this locker has set (or seen) the waiters bit to
    /// sleep: other sleepers may exist that it cannot see, so it keeps the
    /// bit when it takes the lock.
    slept: u32,
    /// The holder waited for and since when (`None`: not slept on yet).
    watched: (u32, Option<Instant>),
}

impl HolderWait {
    /// A wait that gives up after `timeout` (`None`: never).
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        HolderWait {
            deadline: deadline(timeout),
            spins: 0,
            slept: 0,
            watched: (0, None),
        }
    }

    /// When the wait gives up.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// [`WAITERS`] once this locker has gone to sleep, else 0.
    pub(crate) fn slept(&self) -> u32 {
        self.slept
    }

    /// Starts the holder watch's clock, unless it runs already (before a
    /// sleep: a slice counts from the first one).
    pub(crate) fn start_watch(&mut self) {
        if self.watched.1.is_none() {
            self.watched.1 = Some(Instant::now());
        }
    }

    /// Whether a slice has passed since the holder watch (re)started (never
    /// before [`start_watch`](Self::start_watch)).
    pub(crate) fn slice_passed(&self) -> bool {
        self.watched.1.is_some_and(|t| t.elapsed() >= SLICE)
    }

    /// Restarts the holder watch's clock.
    pub(crate) fn restart_watch(&mut self) {
        self.watched.1 = Some(Instant::now());
    }

    /// One round of waiting for `owner` (a thread other than the caller),
    /// the holder recorded in `w`, the value just read from `word`.
    ///
    /// Spins while the spin budget lasts, also when others sleep (the lock
    /// goes to whoever asks first once it is free: the holder of a hot lock
    /// is gone again before a sleeper wakes); else sets [`WAITERS`] (a CAS
    /// with `order`, returning at once if it fails) and sleeps a slice on the
    /// word, after which the budget is whole again. Once a slice has passed
    /// with `owner` still recorded (the word re-read with `order`) and that
    /// thread is dead, calls `dead` with the word re-read; `Some` from it
    /// ends the wait, `None` restarts the watch.
    ///
    /// Returns `Ok(None)` when the caller should read the word again.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the deadline has passed.
    #[inline]
    pub(crate) fn round<R>(
        &mut self,
        word: &AtomicU32,
        w: u32,
        owner: u32,
        order: Ordering,
        dead: impl FnOnce(u32) -> Option<R>,
    ) -> Result<Option<R>, LockError> {
        if self.spins < SPIN_LIMIT {
            self.spins += 1;
            std::hint::spin_loop();
            return Ok(None);
        }
        if w & WAITERS == 0 && word.compare_exchange(w, w | WAITERS, order, order).is_err() {
            return Ok(None);
        }
        self.slept = WAITERS;
        if self.watched.0 != owner {
            self.watched = (owner, None);
        }
        self.start_watch();
        let Some(slice) = next_slice(self.deadline) else {
            return Err(LockError::Timeout);
        };
        wait(word, w | WAITERS, Some(slice));
        self.spins = 0;
        if self.slice_passed() {
            let cur = word.load(order);
            if cur & TID_MASK == owner {
                if !thread_alive(owner) {
                    if let Some(r) = dead(cur) {
                        return Ok(Some(r));
                    }
                }
                self.restart_watch();
            }
        }
        Ok(None)
    }
}
